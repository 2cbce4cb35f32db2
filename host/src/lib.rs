//! A pool of sandboxed worker processes that run WebAssembly components, with
//! the API of Python's `multiprocessing.Pool` (and of its `Process`).
//!
//! ```no_run
//! fn main() -> Result<(), wasmpool::Error> {
//!     // Lets the pool run this program as its workers; returns at once here.
//!     wasmpool::init();
//!
//!     let pool = wasmpool::Pool::builder()
//!         .module_file("tasks.wasm")
//!         .processes(4)
//!         .build()?;
//!     let squares: Vec<i64> = pool.map("square", 0..10, None)?;
//!     assert_eq!(squares[3], 9);
//!     let q: i64 = pool.apply("divide", (7, 2))?;
//!     assert_eq!(q, 3);
//!     pool.close();
//!     pool.join()?;
//!     Ok(())
//! }
//! ```
//!
//! Tasks are plain Rust functions in a guest crate built with
//! [`wasmpool-guest`](https://docs.rs/wasmpool-guest) for `wasm32-wasip2` — or
//! any component that implements `wit/wasmpool.wit`.
//!
//! # Core concepts
//!
//! - **Workers** are separate OS processes, started with exec (never a bare
//!   fork of a process that runs wasmtime). By default a pool starts the
//!   running program itself as its workers: call [`init`] first thing in
//!   `main`, which turns the process into a worker when the pool started it and
//!   returns at once otherwise. That is the whole set-up. Alternatively, point
//!   [`PoolBuilder::worker_program`] at any program that calls [`init`], such
//!   as the `wasmpool` command-line tool or this crate's `wasmpool-worker`,
//!   a program that is only a worker (for test harnesses, and hosts in other
//!   languages).
//! - **The module** is compiled once, by the pool, into an artifact cached on
//!   disk under its content and the engine's configuration
//!   ([`PoolBuilder::cache_dir`]); workers only load it. A second run of the
//!   program does not compile, and a new module compiles only the functions
//!   no module compiled before it (every Python module carries the same
//!   CPython: the second compiles in a third of the time). The cache is used
//!   only if it is private to the user: an artifact is native code, so one
//!   that another user could have written is never loaded.
//! - **Instances**: each worker keeps one instance of the module and runs task
//!   after task on it, so module state persists within a worker, as in
//!   CPython. When a task traps, that instance is thrown away and a fresh one
//!   (with the [initializer](PoolBuilder::initializer) run again) serves the
//!   next task.
//! - **Arguments and results** travel as MessagePack; any serde type works.
//!   `apply` and `starmap` take tuples of positional arguments; `map` and
//!   `imap` take one argument per item.
//! - **Keyword arguments and defaults**: a module declares each task's
//!   parameters ([`TaskInfo::params`]: names and default values); the `_kw`
//!   forms ([`Pool::apply_kw`], [`Pool::starmap_kw`], ...) take keyword
//!   arguments as any serde map and bind them, and the defaults, to the
//!   parameters as Python does, before the task is sent. A call that does not
//!   bind (an unknown keyword, a parameter given twice, one missing, too many
//!   positional arguments) fails alone with [`ErrorKind::BadArguments`]
//!   naming the problem. The positional forms take every argument.
//! - **Chunks**: `map` sends tasks in chunks, one guest call per chunk;
//!   `chunksize` defaults as in CPython (the input spread over four chunks per
//!   process), 1 for `imap`; a chunk also ends at 4 MiB of arguments. Each
//!   task's outcome comes back as soon as it is known, not with its chunk
//!   (see [the channel](#the-channel)). A worker is handed work a little
//!   ahead of what it runs, bounded by count and by expected time, and a
//!   worker that stalls gives back what it had not started.
//! - **Withdrawal**: dropping an [`Imap`] withdraws its tasks that have not
//!   started, and [`AsyncResult::cancel`] does the same for a call; they fail
//!   with [`ErrorKind::Cancelled`], so abandoned work does not hold up other
//!   callers.
//! - **Host functions**: a task may call functions the host offers
//!   ([`PoolBuilder::host_fn`]; `wasmpool_guest::call_host` in a guest) and
//!   wait for their result, while the rest of the pool goes on.
//!
//! | CPython                      | wasmpool                                        |
//! |------------------------------|-------------------------------------------------|
//! | `Pool(4, init, args, n)`     | `Pool::builder().processes(4).initializer(..).max_tasks_per_child(n)` |
//! | `apply(f, args)`             | [`Pool::apply`]                                 |
//! | `apply(f, args, kwds)`       | [`Pool::apply_kw`]                              |
//! | `apply_async(f, args, cb, ecb)` | [`Pool::apply_async`], [`Pool::apply_async_with`] |
//! | `apply_async(f, args, kwds, ..)` | [`Pool::apply_async_kw`], [`Pool::apply_async_kw_with`] |
//! | `map(f, xs, chunksize)`      | [`Pool::map`]                                   |
//! | `map_async(..)`              | [`Pool::map_async`], [`Pool::map_async_with`]   |
//! | `imap`, `imap_unordered`     | [`Pool::imap`], [`Pool::imap_unordered`] (and [`Pool::istarmap_stream`] for items that trickle in) |
//! | `starmap`, `starmap_async`   | [`Pool::starmap`], [`Pool::starmap_async`]      |
//! | `close`, `terminate`, `join` | [`Pool::close`], [`Pool::terminate`], [`Pool::join`] |
//! | `AsyncResult`                | [`AsyncResult`]: `get`, `get_timeout`, `wait`, `ready`, `successful`, `wait_any` |
//!
//! # Processes
//!
//! A [`Process`] runs one task in a worker of its own, with the API of
//! CPython's `multiprocessing.Process`. [`PoolBuilder::context`] compiles
//! the module once into a [`Context`], from which processes start (and
//! pools: [`Context::pool`]), each loading the same artifact:
//!
//! ```no_run
//! # fn main() -> Result<(), wasmpool::Error> {
//! let context = wasmpool::Pool::builder()
//!     .module_file("tasks.wasm")
//!     .plain_output()
//!     .context()?;
//! let p = context.process("greet").args(("bob",)).name("greeter").start()?;
//! p.join();
//! assert_eq!(p.exitcode(), Some(0));
//! # Ok(())
//! # }
//! ```
//!
//! A process is a pool of one worker that runs one task, on the path of
//! any pool task, so it gets all a pool task gets: the limits, the grants,
//! the host functions, the output handler. Its worker is never replaced nor
//! its task retried; once the task ends, the worker exits.
//!
//! | CPython                                  | wasmpool                                   |
//! |------------------------------------------|--------------------------------------------|
//! | `Process(target=f, args=a, name=n, daemon=d)`, `start()` | `context.process(f).args(a).name(n).daemon(d).start()` |
//! | `join()`, `join(timeout)`                | [`Process::join`], [`Process::join_timeout`] |
//! | `is_alive()`, `pid`, `name`, `daemon`    | [`Process::is_alive`], [`Process::pid`], [`Process::name`], [`Process::daemon`] |
//! | `terminate()` (SIGTERM), `kill()` (SIGKILL) | [`Process::terminate`], [`Process::kill`] |
//! | `exitcode`: `None`, `0`, `1`, `-N`       | [`Process::exitcode`]                      |
//! | (the target's return value)              | [`Process::result`]                        |
//!
//! Dropping the handle of a daemon kills the process; dropping that of any
//! other waits for it to end, as CPython waits for its non-daemonic
//! children at exit.
//!
//! # Shared objects
//!
//! The rest of CPython's toolbox — [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Event`], [`Queue`], [`JoinableQueue`],
//! [`Pipe`] and the [`Manager`]'s [`Dict`], [`List`] and [`Value`] — lives
//! on the host. A host program creates an object and passes it to tasks as
//! an argument, as CPython passes `lock` in `args=(lock,)`; the guest takes
//! it as a parameter of the matching type of `wasmpool_guest` and calls its
//! methods, each a request to the host over the worker channel. Host
//! threads use the same objects directly, at the same time:
//!
//! ```no_run
//! # fn main() -> Result<(), wasmpool::Error> {
//! use wasmpool::{Lock, Manager};
//! let pool = wasmpool::Pool::builder().module_file("tasks.wasm").build()?;
//! let lock = Lock::new();
//! let counter = Manager::new().dict([("count".to_string(), 100i64)])?;
//! // In the guest: `fn work(lock: Lock, d: Dict<String, i64>)`.
//! pool.starmap::<(), _, _>("work", (0..10).map(|_| (lock.clone(), counter.clone())), None)?;
//! let _held = lock.acquire(); // a host thread takes part too
//! # Ok(())
//! # }
//! ```
//!
//! **Capabilities.** A handle is a MessagePack `ext` holding the object's
//! kind and id (see `wit/wasmpool.wit`). A task may use the objects handed
//! to it in its arguments, while it runs, and those of the
//! [initializer](PoolBuilder::initializer)'s arguments (which it may have
//! kept) — no other. Two walls check it. The worker's runtime, outside the
//! sandbox, checks every call against the task running now: a worker runs a
//! batch of tasks in one call of the module, which can read every task's
//! arguments, so a task could otherwise name a handle handed to the task
//! after it. The pool checks it again against the tasks the worker holds:
//! the chunk that carries a handle grants it to the worker for as long as
//! the worker holds the chunk (a worker that escaped its sandbox could lie
//! about which of its tasks runs, never reach another worker's objects).
//! Any other id a guest names — forged, kept from a task that ended, or
//! another task's — is refused with an error that says so, and the object
//! is not touched. Guests cannot create objects; they use what they are
//! handed. Handles inside queue items or dict values are data, not grants.
//!
//! **Waiting.** Every operation is tried at once, by the thread reading the
//! worker's channel. One that must wait (`acquire` of a held lock, `get`
//! from an empty queue, `put` on a full one, `wait`, `join`, `recv`,
//! `poll`) holds no thread at all: it is *parked* on its object, a small
//! record, and tried again by whichever thread changes the object (the one
//! that releases the lock, puts the item, sets the event) — which answers
//! the waiting task directly — and once when its timeout passes, by one
//! timer thread shared by every pool. So a thousand tasks blocked on one
//! `Event` cost a thousand records, and a lock handed from one task to the
//! next costs no thread wake-up on the host. Host threads wait as threads
//! do, on a condition variable. A task stopped by its time limit while it
//! waits cancels its wait, and a worker that dies cancels all of its own:
//! a cancelled wait takes nothing (no item, no permit, no lock).
//!
//! **Failure semantics.** When a task ends — returns, fails, panics, traps,
//! times out — or its worker dies, the host lets go of what it held. (A
//! worker holds an object for all the tasks it was handed with it: tasks of
//! one chunk run one after another on one worker, so a lock one of them
//! keeps is let go of once the last of them ends — as a lock kept by a task
//! stays held for the next tasks of a CPython pool worker.)
//!
//! | object | what a holder that ends or dies leaves |
//! |---|---|
//! | [`Lock`], [`RLock`] | released; the next acquirer learns that its previous holder died ([`LockGuard::previous_holder_died`], `Held::previous_holder_died` in the guest), where CPython would deadlock |
//! | [`Semaphore`], [`BoundedSemaphore`] | its permits come back, and the next acquirer is told |
//! | a [`Pipe`]'s [`Connection`] | the task's hold on its end; once nothing holds an end (no task, and the host's handle closed or dropped), the other end reads what was sent, then end of file ([`RecvError::Eof`]), and a send to it fails |
//! | [`Queue`], [`Event`], managed data | nothing to let go of: items put stay put, a waiting get is cancelled |
//!
//! **Bounds.** A queue holds at most its `maxsize` items and [`QUEUE_BYTES`];
//! a pipe direction buffers at most [`PIPE_BYTES`] before a send waits; a
//! dict, list or value holds at most [`MANAGED_BYTES`]; every argument and
//! result crossing the channel is bounded by [`PoolBuilder::max_payload`],
//! and an item too large for the task that asks for it stays where it is.
//! Updates of managed data are atomic one by one: `get` then `set` races,
//! as `d['count'] -= 1` does in CPython, so [`Dict::add`] (an atomic add)
//! and `compare_and_set` are the correct spellings.
//!
//! **Give-backs.** An object's state changes only through operations
//! attributed to a holder, and a give-back undoes exactly what that holder
//! still has: an answer that comes back unclaimed puts its item back at the
//! front of its queue (or pipe), and undoes the acquisition it made — that
//! acquisition, numbered, and only while its holder still holds it, never a
//! release that would free what another holder took since. When two events
//! cross:
//!
//! | race | what happens |
//! |---|---|
//! | an answer vs the task's time limit, the answer not yet read by the task | the worker sends it back as unclaimed, before the task's timeout: its item is back in the queue when the caller sees the timeout |
//! | an answer vs the time limit, the answer read but the task stopped before its next move (a call, output, its outcome) | the same: a task whose instance is thrown away never used it (with a granted directory, the task might have written it down: it counts as used) |
//! | a grant vs the time limit, the task's hold let go of first | the late give-back finds the acquisition gone and undoes nothing: the next holder keeps the lock |
//! | a wait vs its cancellation (time limit, kill, terminate, revocation) | a cancelled wait takes nothing, even if what it waited for comes while it is being tried: every try of a task's operation runs under its worker's grants, and a cancelled one is gone from them |
//! | an operation in flight (a `release`, a `put`) vs its worker's death or its task's end | the same: the operation runs wholly before the grants change, or is refused after; what the holder held is let go of only after the grants changed, so nothing is let go of twice (a second release would free another holder's lock) |
//! | an undone acquisition that was told its previous holder died vs the next acquirer | the news is put back in the same step as the lock or permit: the next acquirer hears it |
//! | a late answer to a call of an instance thrown away (its task timed out) vs a call of the next instance on the worker | calls are numbered for the worker's life, not the instance's: the late answer matches no call of the next task, and goes back |
//! | a task's end vs what the worker remembers of answers | remembered weakly: a pipe end the task held closes with it |
//! | an answer vs a worker killed before the host heard of its death | an answer made after the worker was gone, which its pipe refuses, goes back; one written before the worker died is taken along with it, as by a CPython process killed after its `get` returned |
//!
//! # Crash semantics
//!
//! Every submitted task gets exactly one outcome, whatever happens to it, so
//! waiting on a result always ends. Each failure is an [`Error`] with a
//! [`kind`](Error::kind) to branch on and the task's index:
//!
//! | what happened | kind | what the pool does |
//! |---|---|---|
//! | the task returned `Err` | [`ErrorKind::Failed`] | nothing: the instance is fine |
//! | the task panicked | [`ErrorKind::Panic`] (with the message) | renews the instance |
//! | the task trapped (`unreachable`, out-of-bounds, stack overflow, ...) | [`ErrorKind::Trap`], with [`TrapDetails`]: code and wasm backtrace | renews the instance |
//! | the task ran past [`PoolBuilder::task_timeout`] | [`ErrorKind::Timeout`] | stops it in the worker, loop or sleep alike, and renews the instance |
//! | the worker did not answer within the time limits plus a grace period | [`ErrorKind::Timeout`] | kills and replaces the worker (the watchdog) |
//! | the task's memory would grow past [`PoolBuilder::memory_limit`] | [`ErrorKind::MemoryLimit`] | renews the instance |
//! | the task used up [`PoolBuilder::fuel`] | [`ErrorKind::OutOfFuel`] | renews the instance |
//! | the worker process died (killed, OOM killer, crash) | [`ErrorKind::WorkerLost`], with its exit status or signal | fails only the task it was running (or runs it again, with [`PoolBuilder::retries`]); its finished tasks keep their outcomes, its unstarted tasks run elsewhere; starts a replacement |
//! | the caller dropped its [`Imap`] or cancelled its [`AsyncResult`] before the task started | [`ErrorKind::Cancelled`] | takes the task back from the queue or from the worker holding it |
//! | unknown task, wrong number of arguments | [`ErrorKind::UnknownTask`], [`ErrorKind::BadArguments`] | refuses the call at once |
//! | arguments that do not decode, a result that does not decode, a payload over [`PoolBuilder::max_payload`] | [`ErrorKind::BadArguments`], [`ErrorKind::BadResult`] | fails that task only |
//! | not wasm, a core module, a component that is not a task module | [`ErrorKind::BadModule`] | refuses it in [`PoolBuilder::build`], before any worker starts |
//! | the module's linear memory starts larger than [`PoolBuilder::memory_limit`] | [`ErrorKind::MemoryLimit`], naming the bytes it needs and the limit | refuses it in [`PoolBuilder::build`], before any worker starts |
//! | the module's start or its `describe` ran past [`PoolBuilder::startup_timeout`] | [`ErrorKind::BadModule`], naming the module and the stage | stops it; [`PoolBuilder::build`] fails rather than waits |
//! | the initializer ran past [`PoolBuilder::initializer_timeout`] | [`ErrorKind::Initializer`] | at start, `build` fails; on a renewed instance, the tasks waiting for it fail, and the worker goes on (or, if it could not stop the initializer, is replaced) |
//! | the pool was terminated (or dropped) under the task | [`ErrorKind::Terminated`] | — |
//! | (NATS) the agent running the task was lost: killed, its machine or network gone | [`ErrorKind::WorkerLost`], once the task ran on [`Nats::agent_retries`] + 1 agents | after the [ack wait](Nats::ack_wait), JetStream hands the agent's chunks to others; outcomes reported twice reach the caller once |
//! | (NATS) the server cannot be reached, or refuses the credentials | [`ErrorKind::Remote`], naming the server and why | [`PoolBuilder::build`] and [`AgentBuilder::start`] fail |
//! | (NATS) the server restarts, or is out of reach, while a job runs | — (the tasks go on) | host and agents reconnect; what the server did not store is published again; the server keeps the job, its chunks and its reports |
//! | (NATS) the server stays out of reach for over a minute | [`ErrorKind::Remote`] | the tasks the pool has out there fail; the pool goes on when the server is back |
//! | (NATS) a report, chunk or output not signed by whom it must be (forged, replayed from another job, junk) | — (dropped, with a warning naming its subject) | the task gets the outcome of an agent the job admitted |
//! | (NATS) a chunk acknowledged on the server with no outcome (taken by a client that did not run it) | [`ErrorKind::WorkerLost`] after [`Nats::agent_retries`] + 1 times | sent again within about 6 s |
//! | (NATS) the agent of a task that holds a shared object (a lock, a permit) or waits on one is lost | the task: [`ErrorKind::WorkerLost`] or run again, as above | what it held is let go of, the next holder told ([`LockGuard::previous_holder_died`]), and its waits given up, once its agent has been silent for the ack wait (at most a third more) |
//! | (NATS) a task's call on the host, or its answer, lost with a restarting server | — | the agent sends it again every 2 s; the host runs it once and answers it again |
//! | (NATS) no agent starts a [`Process`] (none serves the server, or none is free) | [`ErrorKind::Spawn`] from `start`, after [`Nats::process_start_limit`] | the job is over; an agent's start that crosses the limit either comes first (`start` returns the process) or finds the job over, never both |
//!
//! A renewed instance runs the [initializer](PoolBuilder::initializer) again
//! before its next task, so no broken state reaches it. The rest of a `map`
//! goes on whatever happens to one of its tasks.
//!
//! Shutting down cannot hang: [`Pool::close`], [`Pool::join`],
//! [`Pool::terminate`] and dropping the pool work with tasks in flight, after
//! workers died, and from inside a callback (which cannot wait for its own
//! thread, so it waits for the workers only). Workers die with the pool even
//! if it is killed (`PR_SET_PDEATHSIG`, and end of file on their channel),
//! and every worker that exits is reaped. Workers are killed through
//! pidfds, so a signal never reaches a process that reused a reaped
//! worker's pid. They run in a process group of their own: a Ctrl-C on the
//! terminal reaches the host alone, which decides what becomes of its tasks
//! (a host that dies of it takes its workers along).
//!
//! # Several machines
//!
//! With [`PoolBuilder::nats`] a pool runs its tasks on [`Agent`]s
//! (`wasmpool agent`) on any machine, through a NATS server with JetStream;
//! every call is the same. Between the API and what runs chunks is one seam,
//! the backend (`backend/mod.rs`): the local backend (`backend/local/`)
//! runs them on worker processes here; the NATS backend (`backend/nats/`)
//! publishes them to a job's work queue, keeping at most a window of chunks
//! out, and delivers the first outcome of each task that agents report.
//!
//! Who said what is signed ([`SigningKey`], NATS nkeys): a job's record and
//! chunks by its host, output and calls by the agent that ran them, each
//! signature good for one message of one job. Before it takes a job's
//! chunks, an agent asks the job's host to serve it (`enroll.rs` on both
//! sides); the host admits it (any agent, or only those of
//! [`Nats::trust_agent`]), hands it the job's environment variables and a
//! report key made for that agent, sealed to a key it made for that
//! request, and from then on takes its reports only: each carries an
//! HMAC-SHA256 tag under that agent's report key, good for one report of
//! one job (a microsecond to make or check, where a signature takes 30). An agent serves only jobs signed by the keys of
//! [`AgentBuilder::trust_host`], if given, and pins every job to the key it
//! was first signed with. A chunk the server says was acknowledged, whose
//! outcomes never came, is sent again.
//!
//! An agent watches the server's bucket of jobs, fetches a job's module from
//! the object store (checked against its SHA-256), runs a local pool for it
//! with the job's limits (within the agent's caps), pulls chunks while it
//! has room, publishes each task's outcome as it comes, acknowledges a
//! chunk once its outcomes are stored, and shows progress while a chunk
//! runs. It keeps twice its processes' worth of chunks not yet done, and
//! more (up to 8 a process) while its fetches arrive to find its workers
//! idle: a link with a long round trip is covered by chunks already here,
//! and chunks of long tasks are not hoarded. A chunk's outcomes travel to
//! the server while the next chunks run (up to 32 chunks a process held in
//! all). The pool's window ([`Nats::window`]) bounds all of it: on a slow
//! link, raise it. A job whose host is silent for 15 s is dropped; a deleted job's
//! workers are killed. An agent serves at most
//! [`AgentBuilder::max_jobs`](crate::AgentBuilder::max_jobs) jobs at once,
//! and packs outcomes into reports by their encoded size, cutting an error
//! too large for the server's messages rather than running it again.
//!
//! The host watches its job's state on the server at every heartbeat
//! (`backend/nats/watchdog.rs`): a consumer, stream, bucket or module that
//! vanished is made again, the chunks out are sent again where their
//! messages or reports may be lost, and the reports read anew; so every task
//! still gets exactly one outcome. What cannot be made again fails the
//! tasks out with [`ErrorKind::Remote`], naming it. README's "Several
//! machines" says how to deploy agents safely: what is protected, by what,
//! and what is not (arguments and results cross the server in clear).
//!
//! A task on an agent calls the host's functions and uses the shared
//! objects in its arguments as a local task does: the agent's pool passes
//! each call, signed, to the job's host over core NATS (`agent/calls.rs`),
//! which checks it against the chunks out — the task runs (its chunk is out,
//! its outcome has not come) and was handed the object — serves it as a
//! local worker's call (`backend/calls/`), and answers, signed, on a subject
//! unique to the agent's process (`backend/nats/calls.rs`). Each task is a
//! holder of its own; what it held is let go of, and the next holder told,
//! when its outcome comes, when its worker dies (its agent says so), or
//! when its agent has shown no sign of life for the ack wait — the time
//! after which the server gives its chunks to other agents too — plus at
//! most a third of it (an agent started again with the same key is another
//! run of it, whose signs of life keep nothing of its predecessor's). A call not answered is sent again every 2 s (or a
//! third of the ack wait): the host runs each call once and answers it
//! again. The initializer cannot be handed objects (an agent's workers
//! outlive any one task of the host's).
//!
//! A [`Context`] built for NATS starts each [`Process`] as a job of one task
//! (`backend/nats/process.rs`), which an agent runs in a worker of its own
//! (`agent/process.rs`); `start` waits until an agent started it, at most
//! [`Nats::process_start_limit`]. The agent reports the worker started (its
//! pid), what the task writes, and the worker's exit (its exit code, with
//! the task's outcome), in that order, among the job's reports; `kill` and
//! `terminate` reach it as signed controls. Its task never runs twice: lost with its
//! agent, it fails, and the process ends as killed. With the environment
//! variable [`NATS_ENV`] (`WASMPOOL_NATS=nats://host:4222`), a program's
//! pools and processes built without [`PoolBuilder::nats`] run on the
//! agents of that server, unchanged.
//!
//! What is stored on file, and why. The server stores on file what must
//! outlive a crash of any one party: the job's record (agents that start
//! later find it), its module (fetched by hash), its chunks (a work queue:
//! a chunk stays until an agent acknowledges it, so that a lost agent's
//! chunks go to another), and the agents' reports (a stream the host reads
//! in order: an agent acknowledges a chunk once its reports are stored, so
//! that an outcome acknowledged is an outcome the host will read, even
//! across a restart of the server or of the host's reader). A process's
//! output and exit go among its reports, to come before its end. What need
//! not be stored goes over core NATS: a pool's guest output (as it comes,
//! for the output handler; lost with a restarting server, as a terminal's
//! would be), requests to serve a job (asked again until answered), the
//! host's controls (a process not stopped is stopped again by its host), and
//! tasks' calls and their answers — a call lives only as long as its task
//! waits for it, which a restarting server does not change: it is sent
//! again until answered, and the host's record of it (which runs it once)
//! is what must survive, and lives with the objects, on the host.
//!
//! The reports need not be stored either, and are the next to leave the
//! file (not built yet): the host, not the stream, is what an outcome must
//! reach, and the host runs no longer than its pool. An agent could send
//! each report to the host as a core-NATS request, tagged as now, and
//! acknowledge the chunk once the host answers (its answer tagged with the
//! agent's report key, so that no other client of the server can make an
//! agent drop a chunk unreported): the host's answer is then the point of
//! durability. A report lost with a restarting server is not answered, the
//! agent asks again, and a chunk whose agent gives up is unacknowledged and
//! runs again elsewhere; a duplicate outcome is dropped by the host, which
//! takes each task's first, and is answered all the same. That would take a
//! store, its acknowledgement and a delivery off each chunk's path (BENCHMARKS.md:
//! the server's share is about a third of a chunk's CPU).
//!
//! # The channel
//!
//! The pool and each worker talk over the worker's stdin and stdout, in
//! frames (a length, then a postcard-encoded message: `channel/`). Both
//! directions are multiplexed, so nothing waits for anything it need not:
//!
//! - **Pool → worker**: batches (a chunk's tasks, numbered), withdrawals of
//!   batches not started, replies to host calls, and a shutdown. The pipe
//!   is non-blocking: a message goes straight in when it has room, and only
//!   when it is full does a writer thread (started then) wait for it to
//!   drain, so the thread supervising a worker never blocks on its pipe,
//!   and its watchdog and stop signal always fire. An idle worker's main
//!   thread waits on the pipe itself: a batch is one wake-up from running.
//!   While a batch runs, the worker's ticker reads the pipe every
//!   millisecond (a withdrawal is seen while a task runs), and a task
//!   waiting on a host call reads its reply itself.
//! - **Worker → pool**: outcomes, output, host-call requests, and
//!   "withdrawn". Outcomes stream: each leaves the worker within a
//!   millisecond of its task's end (the ticker writes what waits); what
//!   finishes closer together shares a frame (at most 1 MiB waits), so a
//!   million tiny tasks cost a few hundred writes, and a slow task never
//!   holds back the outcomes before it.
//! - **In the pool**, a thread per worker reads its channel and delivers
//!   each outcome straight to its caller; a caller whose `apply` (or `map`)
//!   finds a worker idle writes the batch to it itself (unless tasks have a
//!   time limit or a quota per worker, which its slot keeps). The thread
//!   that supervises the worker (its slot) feeds it from the queue, watches
//!   it, and replaces it, but is not on the way of a task to an idle worker
//!   and back: an `apply` round trip wakes the worker, the thread reading
//!   it, and the caller.
//! - **When a worker dies**, the pool knows from the outcomes it received
//!   which tasks finished (they keep them), which one ran (it fails with
//!   [`ErrorKind::WorkerLost`]) and which never started (they run
//!   elsewhere). Outcomes still coalescing in the worker at that moment —
//!   at most a millisecond's worth — are lost with it: the first of those
//!   tasks fails, the others run again.
//!
//! # The house
//!
//! The code follows a task along this walk, each step a folder or file of
//! `host/src/`, every import running down it:
//!
//! 1. `builder.rs`: [`PoolBuilder`] settles the configuration into the
//!    `Settings` a backend is built from (`backend/settings.rs`); a
//!    [`Context`] (`process/context.rs`) holds the module compiled with them;
//! 2. `pool/`: the API ([`Pool`], `submit.rs` where a call becomes chunks,
//!    `result.rs` and `imap.rs` where outcomes come back); `process/` for a
//!    [`Process`]'s one task;
//! 3. `args/`: the call's arguments, encoded and bound to the task's
//!    parameters; `chunk.rs`: the call's submission and the chunks its tasks
//!    travel in, which owe each task exactly one outcome;
//! 4. `backend/`: the seam (`mod.rs`'s `Backend` trait, and what both
//!    backends hand up: `kill.rs`, `output.rs`, `host_fns.rs`);
//! 5. `backend/local/`: a slot thread per worker (`slot.rs`; the policy in
//!    `schedule.rs`; what a worker holds in `in_flight.rs`), the child's
//!    handle (`child.rs`) and the two ends of its pipe (`outbound.rs`,
//!    `inbound.rs`);
//! 6. `channel/`: the messages between pool and worker, and their codec;
//! 7. `worker/`, the far side, in the child: `inbox.rs` (messages in),
//!    `runtime/` (wasmtime: `runner.rs` runs a batch, `imports.rs` is what a
//!    guest may call, `traps.rs` what a trap becomes), `outbox.rs`
//!    (outcomes out), `ticker.rs`, and the sandbox;
//! 8. back through `channel/` to `backend/local/inbound.rs`, the thread that
//!    reads the worker: outcomes go to their chunk and its submission's sink
//!    (in `pool/`); a task's calls are served beside it, by
//!    `backend/calls/`: its host calls in `host_fns.rs` and its operations
//!    on shared objects (`objects/`) in `objects.rs`.
//!
//! On NATS, `backend/nats/remote.rs` publishes the chunk (`wire.rs` says
//! how), `agent/job.rs` pulls it on an agent, and `agent/chunk.rs` runs it
//! on the agent's local pool and reports each outcome back to `remote.rs`.
//! A task's calls go from the agent's pool to `agent/calls.rs`, which sends
//! them to the host, where `backend/nats/calls.rs` checks them and serves
//! them in `backend/calls/`.
//!
//! # Limits
//!
//! Two walls stand around every task:
//!
//! 1. **The wasm sandbox.** A guest gets no files, no environment variables,
//!    no arguments and no network: only clocks and randomness. The pool can
//!    grant directories ([`PoolBuilder::preopen_dir`], read-only or
//!    read-write) and named variables ([`PoolBuilder::env`]). What a guest
//!    writes to stdout and stderr is captured, at most
//!    [`PoolBuilder::output_limit`] per task, and handed to
//!    [`PoolBuilder::on_output`] with the task it came from, line by line
//!    as the task writes it (all of it before the task's outcome); it
//!    reaches the host's stdout only if the host asks for that
//!    ([`PoolBuilder::plain_output`]).
//! 2. **The worker process.** It starts with an empty environment, only its
//!    channel open (inherited descriptors are closed first thing), no core
//!    dumps, a cap of 256 descriptors and `no_new_privs`; once its module is
//!    loaded a seccomp filter refuses exec, fork, sockets, ptrace, signals to
//!    other processes, mounts and namespaces, and — when no directory is
//!    granted — opening files. A guest that escaped wasmtime still could not
//!    act. [`PoolBuilder::verify_sandbox`] makes each worker prove it.
//!
//! **Between tasks.** A worker's instance serves task after task, as a
//! Python worker process does: what one task leaves in its globals or
//! memory, the next on that worker can read. It is renewed after a task
//! that trapped, panicked or hit a limit, so no broken state reaches the
//! next. For tasks that must not see each other (one tenant's after
//! another's), [`PoolBuilder::fresh_instance`] runs every task on a fresh
//! instance, made from a pre-instantiated image with copy-on-write memory:
//! about 8 µs more per task for a Rust guest, about 0.5 ms for a Python
//! one, against about 1.7 ms for a fresh process
//! ([`PoolBuilder::max_tasks_per_child`] of 1), which stays the wall for
//! what a process keeps (BENCHMARKS.md, "Isolation between tasks").
//!
//! Outside tasks: a fresh instance must start and list its tasks within
//! [`PoolBuilder::startup_timeout`] (5 s by default), and the initializer
//! must return within [`PoolBuilder::initializer_timeout`] (30 s). A pool
//! with a task time limit compiles epoch checks into the module and stops
//! them cleanly; without one (the checks cost a compute-bound guest about a
//! third of its speed) a backstop thread in the worker reports the stage and
//! ends the worker.
//!
//! Per task: wall-clock time ([`PoolBuilder::task_timeout`], enforced by
//! epoch interruption and async cancellation inside the worker, backed by
//! the watchdog), linear memory ([`PoolBuilder::memory_limit`], 1 GiB by
//! default, enforced by a resource limiter), fuel
//! ([`PoolBuilder::fuel`], deterministic), and the size of arguments and
//! results ([`PoolBuilder::max_payload`], 64 MiB by default).
//!
//! Every `Duration` the API takes may be as large as `Duration::MAX`, which
//! means no limit.
//!
//! **Bounds.** Everything that crosses a boundary has one, applied where it
//! is crossed; past it comes an error that names the bound, never a stall
//! or a host that grows without end:
//!
//! | What | Bound | Past it |
//! |---|---|---|
//! | arguments, a result, an object call's arguments or answer, a host call's | [`PoolBuilder::max_payload`]: 64 MiB by default, at most 512 MiB | that task fails ([`ErrorKind::BadArguments`], [`ErrorKind::BadResult`]), that call is refused |
//! | a name a guest gives: a task's, a parameter's, a host function's, an object operation's | [`NAME_BYTES`] = 256 bytes, no control characters | refused in the worker before anything is sent, quoting its start, escaped |
//! | an error message from a guest | [`MESSAGE_BYTES`] = 64 KiB | cut, keeping its first and last halves and saying how many bytes went |
//! | a trap's backtrace | [`BACKTRACE_FRAMES`] = 20 innermost frames, each name 256 bytes | the rest replaced by a frame `… more frames` |
//! | a module's list of its tasks | [`DESCRIPTION_BYTES`] = 16 MiB | the module is refused at build |
//! | what a task writes to stdout, and to stderr | [`PoolBuilder::output_limit`]: 64 KiB each by default | the rest dropped, the output marked truncated |
//! | a module file | [`PoolBuilder::module_limit`]: [`MODULE_BYTES`] = 512 MiB by default (what agents fetch); a regular file only | refused by its size before it is read, or by its kind (a device, a FIFO, a directory) without blocking |
//! | a task's linear memory | [`PoolBuilder::memory_limit`]: 1 GiB by default, at most 4 GiB (what a wasm memory addresses) | the task fails ([`ErrorKind::MemoryLimit`]); a larger limit is refused at build |
//! | a frame from a worker | what the bounds above add up to (the payload limit, a flush of output and one failure) | the worker is killed as one that broke the protocol |
//! | a pool's processes | the machine's: the least of 64 per CPU, what `RLIMIT_NPROC`, `pid_max`, `threads-max` and a cgroup's `pids.max` leave at 6 threads a worker, and what the available memory leaves at 32 MiB a worker | refused at build naming the bound and its sources, unless [forced](PoolBuilder::force_processes); a pool stops starting workers at the first that cannot start |
//! | a worker's descriptors | 256 (or the host's limit, if lower) | the guest's `open` fails |
//! | text of a task's making shown on a terminal (its output, its messages) | no control character acts | escaped (`\x1b`, [`escape_controls`]); an [output handler](PoolBuilder::on_output) or a file gets the bytes as written |
//!
//! **On disk**, the artifact cache ([`PoolBuilder::cache_dir`]) holds native
//! code, so it is trusted only while it is private: owned by the user and
//! writable by nobody else (made with mode 0700 when missing). Files are
//! opened through the directory the pool checked, must belong to the user,
//! and a worker loads exactly the file (device and inode) the pool checked.
//! A cache that is not private is not read or written: the pool compiles
//! into a private temporary directory instead and logs a warning once.
//! The compiled functions kept for later compiles are native code too, and
//! follow the same rules: read only from the private cache, only files the
//! user wrote, each found only under the SHA-256 Cranelift computes of the
//! function's code and of the compiler's settings and version.
//! The cache keeps at most [`PoolBuilder::cache_limit`] bytes of artifacts
//! and compiled functions (1 GiB by default): building a pool removes the least recently used
//! beyond it, never one that a live pool — of any process — uses (each
//! pool holds a shared lock on its artifact, and only a file that can be
//! locked exclusively is removed).
//!
//! Memory reservations are sized to the pool: each worker's pooling
//! allocator holds slots for two instances (the one in use and its
//! replacement) — eight linear memories of 4 GiB of address space each,
//! plus guards — instead of wasmtime's default of thousands of slots and
//! terabytes of address space. A component may hold up to 64 core
//! instances, 4 memories and 16 tables of up to 65,536 elements: room for
//! a CPython guest built by componentize-py (14 core instances) several
//! times over.
//!
//! # Crate features
//!
//! | feature | default | what it brings |
//! |---|---|---|
//! | `nats` | on | [`PoolBuilder::nats`], [`Agent`] and [`Nats`]: pools whose tasks run on agents on other machines, through a NATS JetStream server (async-nats, tokio's network) |
//! | `internals` | off | entry points for the fuzz targets and micro-benchmarks; not public API |
//!
//! Without default features the crate runs pools and processes on this
//! machine, and brings no network client. The `wasmpool` command is not
//! part of this crate: it is the `wasmpool-cli` crate's, so a program that
//! embeds a pool compiles no command-line parser or progress bar. A program
//! that cannot call [`init`] first thing in `main` starts its workers from
//! the `wasmpool-worker` binary of this crate (or the `wasmpool` command)
//! with [`PoolBuilder::worker_program`].

#[cfg(feature = "nats")]
mod agent;
mod args;
mod backend;
mod builder;
mod cache;
mod channel;
mod chunk;
mod engine;
mod error;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
mod module;
mod objects;
mod pool;
mod process;
mod settled;
mod user_code;
mod worker;

#[cfg(feature = "nats")]
pub use agent::{Agent, AgentBuilder};
#[cfg(feature = "nats")]
pub use backend::nats::{AgentInfo, Nats, SigningKey};
pub use backend::output::{GuestOutput, Stream, escape_controls};
#[cfg(feature = "nats")]
pub use builder::NATS_ENV;
pub use builder::PoolBuilder;
pub use channel::bounds::{BACKTRACE_FRAMES, DESCRIPTION_BYTES, MESSAGE_BYTES, NAME_BYTES};
pub use channel::{ParamInfo, Preopen, TaskInfo};
/// The channels [`Pool::istarmap_stream`] takes its items from.
pub use crossbeam_channel;
pub use error::{Error, ErrorKind, GetTimeoutError, NextTimeout, NotReady, TrapDetails};
pub use module::{Compiling, MODULE_BYTES, default_cache_dir};
pub use objects::{
    BoundedSemaphore, Connection, Dict, Event, Guard, JoinableQueue, List, Lock, LockGuard,
    MANAGED_BYTES, Manager, PIPE_BYTES, Pipe, QUEUE_BYTES, Queue, QueueError, RLock, RLockGuard,
    RecvError, Semaphore, SemaphoreGuard, Value,
};
pub use pool::result::Callbacks;
pub use pool::{AsyncResult, Entry, Imap, Indexed, Pool};
pub use process::{Context, Process, ProcessBuilder};

/// Makes this program usable as the workers of its pools; call it first
/// thing in `main`.
///
/// When the process was started by a pool as a worker, `init` runs the worker
/// and exits the process when the pool is done with it: it never returns.
/// Otherwise it returns at once, and pools built afterwards run this program
/// as their workers.
pub fn init() {
    if let Some(marker) = std::env::var_os(worker::MARKER) {
        std::process::exit(worker::main(&marker));
    }
    builder::INIT_CALLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

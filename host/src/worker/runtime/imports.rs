//! The guest's imports: the state they work on ([`HostState`]) and the
//! `context`, `host`, `objects` and `outcomes` interfaces of
//! `wit/wasmpool.wit`, each task's outcome sent on as the guest reports it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde_bytes::ByteBuf;
use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{ResourceTable, WasmList};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::channel::{Failure, FromWorker, Limits, bounds};
use crate::error::{Error, ErrorKind};
use crate::worker::capture::Capture;
use crate::worker::inbox::{Inbox, Reply};
use crate::worker::outbox::Outbox;

use super::bindings;
use super::bindings::wasmpool::task::objects::ObjectError;
use super::bindings::wasmpool::task::types::{ErrorKind as GuestErrorKind, TaskError};
use super::limits::{Clock, Limiter};

/// The state a guest's imports work on.
pub(crate) struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) pid: u32,
    /// The index of the task running now, which its output is attributed to.
    pub(super) index: Arc<AtomicU64>,
    /// Where outcomes and output go.
    pub(super) outbox: Arc<Outbox>,
    /// Where the replies to host calls come from; unset in-process.
    pub(super) inbox: Arc<OnceLock<Arc<Inbox>>>,
    /// What the guest reported during the current call.
    pub(super) reported: Reported,
    pub(super) stdout: Capture,
    pub(super) stderr: Capture,
    pub(super) clock: Arc<Clock>,
    pub(super) limits: Limits,
    /// The answer to the task's last object call, until the task makes its
    /// next move (another call, output, its outcome).
    pub(super) last_answer: Option<LastAnswer>,
    /// The shared objects every task may use: the initializer's.
    pub(super) lifetime_objects: Arc<[u64]>,
    /// The shared objects handed to the tasks of the current batch, as
    /// (task index, object id): a task may use only its own.
    pub(super) handed: Vec<(u64, u64)>,
    /// Whether the last answer is kept, to give back should the task's
    /// time limit stop it before its next move: only where tasks have a
    /// time limit, and can leave no trace but their calls, output and
    /// outcome (no directory is granted), so that an answer a task made no
    /// move after is one it never used. Elsewhere no answer is copied.
    pub(super) keeps_answers: bool,
}

/// The answer to an object call, as the task took it.
pub(super) struct LastAnswer {
    call: u64,
    result: ByteBuf,
    /// The task's writes to stdout and stderr when it took it.
    writes: u64,
}

/// What a guest reported during one call.
#[derive(Debug, Default)]
pub(super) struct Reported {
    /// Tasks whose outcome was sent on.
    pub(super) tasks: usize,
    /// The last of them panicked (a guest reports its panic, then aborts).
    pub(super) panicked: bool,
    /// The initializer's outcome, when the call runs it: it is no task of a
    /// batch, so it is kept here rather than sent.
    pub(super) initializer: Option<Result<(), Error>>,
    /// The call runs the initializer.
    pub(super) initializing: bool,
}

impl HostState {
    /// The index of the task running now.
    pub(super) fn index(&self) -> u64 {
        self.index.load(Ordering::Relaxed)
    }

    /// Whether the task running now may use the shared object `id`: it was
    /// handed to it, or to the initializer.
    fn may_use(&self, id: u64) -> bool {
        let index = self.index();
        self.lifetime_objects.contains(&id) || self.handed.contains(&(index, id))
    }

    /// Sends what is left of the running task's output on (whole lines went
    /// as they were written), ahead of its outcome.
    pub(super) fn collect_output(&self) {
        self.stdout.end_task();
        self.stderr.end_task();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::wasmpool::task::context::Host for HostState {
    fn worker_pid(&mut self) -> u32 {
        self.pid
    }

    fn task_index(&mut self) -> u64 {
        self.index()
    }
}

impl HostState {
    /// Sends `request` (a call numbered `call`) to the pool and waits for
    /// its reply. The wait is a future: the task's time limit still stops it
    /// (dropping the future); an object call then tells the pool what
    /// became of it (see [`Asked`]).
    async fn ask(
        &mut self,
        call: u64,
        request: FromWorker,
        object_call: bool,
    ) -> Result<ByteBuf, Failure> {
        let gone = || Failure::Refused("the pool is gone".into());
        // A call is a move: the answer before it was used.
        self.last_answer = None;
        let Some(inbox) = self.inbox.get() else {
            return Err(Failure::Refused(
                "no pool to call: this module runs outside a pool".into(),
            ));
        };
        let mut asked = Asked {
            outbox: &self.outbox,
            call,
            reply: inbox.expect_reply(call),
            settled: !object_call,
        };
        if self.outbox.send_now(&request).is_err() {
            asked.settled = true;
            return Err(gone());
        }
        let reply = inbox.reply(&mut asked.reply).await;
        asked.settled = true;
        reply.unwrap_or_else(|| Err(gone()))
    }

    /// How many writes the task's stdout and stderr have seen.
    fn writes(&self) -> u64 {
        self.stdout.writes() + self.stderr.writes()
    }

    /// The task was stopped by its time limit. An object call's answer it
    /// took and made no move after since — no call, no output, no outcome:
    /// the instance it was in is thrown away — goes back to the pool as
    /// unclaimed, so that what it carries (an item, a lock) is not lost.
    pub(super) fn give_back_unused_answer(&mut self) {
        let Some(last) = self.last_answer.take() else {
            return;
        };
        if last.writes == self.writes() {
            let _ = self.outbox.send_now(&FromWorker::Unclaimed {
                call: last.call,
                result: last.result,
            });
        }
    }

    /// Numbers the next call; refuses a name over the channel's bound and
    /// arguments over the payload limit, before anything is sent.
    ///
    /// Numbers are unique for the worker's life, not an instance's: an
    /// instance thrown away (its task timed out) may leave a call whose
    /// answer is still on its way, and that answer must match no call of
    /// the next instance — neither in the inbox, which would hand it to
    /// the wrong task, nor in the pool's memory of answers it gives back.
    fn next_call(&self, what: &str, name: &str, args: &[u8]) -> Result<u64, Failure> {
        static NEXT_CALL: AtomicU64 = AtomicU64::new(0);
        bounds::check_name(what, name).map_err(Failure::Refused)?;
        let limit = self.limits.max_payload;
        if args.len() as u64 > limit {
            return Err(Failure::Refused(format!(
                "the arguments of {what} `{name}` take {} bytes, over the payload limit of {limit} bytes",
                args.len()
            )));
        }
        Ok(NEXT_CALL.fetch_add(1, Ordering::Relaxed))
    }
}

impl bindings::wasmpool::task::host::Host for HostState {
    /// Sends the call to the pool and waits for the reply.
    async fn call(&mut self, name: String, args: Vec<u8>) -> Result<Vec<u8>, String> {
        let call = self
            .next_call("a host function", &name, &args)
            .map_err(|failure| failure.to_string())?;
        let request = FromWorker::Request {
            call,
            index: self.index(),
            name,
            args: ByteBuf::from(args),
        };
        match self.ask(call, request, false).await {
            Ok(result) => Ok(result.into_vec()),
            Err(failure) => Err(failure.to_string()),
        }
    }
}

/// An object call its task waits for. Dropped unsettled with the future of
/// a task its time limit stopped, it tells the pool that the task stopped
/// waiting: with `Unclaimed` and the answer, if the answer had reached the
/// task already (so that what it carries — an item, a lock — goes back),
/// else with `Cancel`. An answer that comes later finds no one waiting, and
/// the inbox sends it back as `Unclaimed`.
struct Asked<'a> {
    outbox: &'a Outbox,
    call: u64,
    reply: oneshot::Receiver<Reply>,
    /// Answered, or not an object call: nothing to tell.
    settled: bool,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Closed first: from now on the inbox cannot hand the answer here,
        // and sends it back itself.
        self.reply.close();
        let told = match self.reply.try_recv() {
            Ok(Ok(result)) => FromWorker::Unclaimed {
                call: self.call,
                result,
            },
            _ => FromWorker::Cancel { call: self.call },
        };
        let _ = self.outbox.send_now(&told);
    }
}

impl bindings::wasmpool::task::objects::Host for HostState {
    /// Sends the operation to the pool and waits for the reply; a task
    /// stopped meanwhile cancels the wait on the pool's side.
    async fn invoke(
        &mut self,
        object: u64,
        op: String,
        args: Vec<u8>,
    ) -> Result<Vec<u8>, ObjectError> {
        let call = self
            .next_call(&format!("an operation of object {object}"), &op, &args)
            .map_err(object_error)?;
        if !self.may_use(object) {
            // Refused here, before the pool hears of it: the pool grants a
            // worker the objects of every task it holds, and a task may
            // find another's handle in its batch.
            return Err(ObjectError::Refused(format!(
                "this task was not handed a shared object with id {object}: the handle is \
                 forged, or belongs to another task"
            )));
        }
        let request = FromWorker::Invoke {
            call,
            index: self.index(),
            object,
            op,
            args: ByteBuf::from(args),
        };
        let answer = self.ask(call, request, true).await.map_err(object_error)?;
        if self.keeps_answers {
            self.last_answer = Some(LastAnswer {
                call,
                result: answer.clone(),
                writes: self.writes(),
            });
        }
        Ok(answer.into_vec())
    }
}

fn object_error(failure: Failure) -> ObjectError {
    match failure {
        Failure::Refused(why) => ObjectError::Refused(why),
        Failure::TimedOut => ObjectError::TimedOut,
        Failure::Closed(why) => ObjectError::Closed(why),
    }
}

/// Starts the clock and the fuel budget of the next task, where limits need
/// them.
pub(super) fn start_task(store: &mut StoreContextMut<'_, HostState>) -> wasmtime::Result<()> {
    let limits = &store.data().limits;
    if limits.task_timeout.is_some() {
        store.data().clock.start_task();
    }
    if let Some(fuel) = store.data().limits.fuel {
        store.set_fuel(fuel)?;
    }
    Ok(())
}

/// `outcomes.finish`: sends a task's outcome on (after what it wrote) and
/// starts the next task. The result is copied from the guest's memory
/// straight into the outbox.
pub(super) fn finish(
    mut store: StoreContextMut<'_, HostState>,
    (outcome,): (Result<WasmList<u8>, TaskError>,),
) -> wasmtime::Result<()> {
    store.data_mut().collect_output();
    // The outcome is a move: the last answer was used.
    store.data_mut().last_answer = None;
    let max_payload = store.data().limits.max_payload;
    let outcome = match outcome {
        Ok(list) => {
            let result = list.as_le_slice(&store);
            if result.len() as u64 > max_payload {
                Err(Error::new(
                    ErrorKind::BadResult,
                    format!(
                        "the result takes {} bytes, over the payload limit of {max_payload} bytes",
                        result.len()
                    ),
                ))
            } else if store.data().reported.initializing {
                Ok(None)
            } else {
                // Sent from the guest's memory: no copy of the result first.
                // A broken channel ends the worker at the end of the batch.
                let _ = store.data().outbox.ok(result);
                Ok(Some(()))
            }
        }
        Err(err) => Err(guest_error(err)),
    };
    let state = store.data_mut();
    let index = state.index();
    let reported = &mut state.reported;
    reported.panicked = matches!(&outcome, Err(err) if err.kind() == ErrorKind::Panic);
    if reported.initializing {
        reported.initializer.get_or_insert(outcome.map(drop));
    } else {
        reported.tasks += 1;
        if let Err(err) = outcome {
            let _ = state.outbox.err(err.with_index(index));
        }
    }
    state.index.fetch_add(1, Ordering::Relaxed);
    start_task(&mut store)
}

fn guest_error(err: TaskError) -> Error {
    let kind = match err.kind {
        GuestErrorKind::Failed => ErrorKind::Failed,
        GuestErrorKind::Panic => ErrorKind::Panic,
        GuestErrorKind::BadArguments => ErrorKind::BadArguments,
        GuestErrorKind::UnknownTask => ErrorKind::UnknownTask,
        GuestErrorKind::BadResult => ErrorKind::BadResult,
    };
    Error::new(kind, err.message)
}

//! What callers use: [`Pool`] (the API of `multiprocessing.Pool`), built by
//! a [`PoolBuilder`](crate::PoolBuilder), and what calls return —
//! [`AsyncResult`] and [`Imap`].
//!
//! A task's walk starts here: a call becomes a submission ([`submit`]) whose tasks
//! are encoded into chunks (`crate::chunk`) and queued for the slots
//! (`crate::backend::local`), which hand them to workers (`crate::worker`)
//! over the channel (`crate::channel`); outcomes come back the same way to
//! the submission's sink, which fills the [`AsyncResult`] or feeds the [`Imap`].

pub(crate) mod callbacks;
pub(crate) mod imap;
pub(crate) mod result;
pub(crate) mod submit;

use std::fmt;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::KillHandle;
use crate::channel::TaskInfo;
use crate::chunk::Shape;
use crate::error::{Error, ErrorKind};
use callbacks::CallbackThread;
use result::Callbacks;
use submit::Submitter;

pub use imap::{Entry, Imap, Indexed};
pub use result::AsyncResult;

use imap::Items;

/// A pool of sandboxed worker processes running the tasks of one module.
///
/// The API is CPython's `multiprocessing.Pool`: see the [crate
/// documentation](crate) for an overview. A `Pool` is `Send` and `Sync`: tasks
/// may be submitted from many threads at once.
///
/// Dropping a pool terminates it: tasks not finished fail with
/// [`ErrorKind::Terminated`], and every worker is killed and reaped. Call
/// [`close`](Self::close) and [`join`](Self::join) first to let them finish.
pub struct Pool {
    pub(crate) submitter: Submitter,
    pub(crate) callbacks: Arc<CallbackThread>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.submitter.processes())
            .field("tasks", &self.submitter.tasks)
            .field("closed", &self.submitter.is_closed())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool that submits through `submitter`, whose module offers `tasks`;
    /// starts its callback thread. On error the backend is terminated.
    pub(crate) fn new(mut submitter: Submitter, tasks: Vec<TaskInfo>) -> Result<Pool, Error> {
        submitter.tasks = tasks;
        match CallbackThread::start() {
            Ok(callbacks) => Ok(Pool {
                submitter,
                callbacks,
            }),
            Err(err) => {
                submitter.shut_down();
                Err(Error::new(
                    ErrorKind::Spawn,
                    format!("cannot start the callback thread: {err}"),
                ))
            }
        }
    }

    /// How many worker processes the pool runs.
    pub fn processes(&self) -> usize {
        self.submitter.processes()
    }

    /// The tasks the module offers, by name.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.submitter.tasks
    }

    /// The pids of the worker processes running now (fewer while some are
    /// being replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.submitter
            .backend
            .workers()
            .iter()
            .map(KillHandle::pid)
            .collect()
    }

    /// The agents serving the pool, for a pool built with
    /// [`PoolBuilder::nats`](crate::PoolBuilder::nats): every agent of its
    /// server that showed it lives in the last 16 s (agents serve every job of their server). Empty for
    /// a local pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Remote`] if the server cannot be asked.
    #[cfg(feature = "nats")]
    pub fn agents(&self) -> Result<Vec<crate::AgentInfo>, Error> {
        self.submitter.backend.agents()
    }

    /// The chunk size CPython's `map` picks: the tasks spread over four
    /// chunks per process.
    fn default_chunksize(&self, tasks: usize) -> usize {
        tasks.div_ceil(self.processes() * 4).max(1)
    }

    /// Runs `task` with `args` (a tuple of its positional arguments) on a
    /// worker and waits for its result.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// let q: i64 = pool.apply("divide", (7, 2))?;
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The task's failure, or why it could not be submitted.
    pub fn apply<R, A>(&self, task: &str, args: A) -> Result<R, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        self.apply_async(task, args)?.get()
    }

    /// Submits `task` with `args` and returns at once with a handle to its result.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] or [`ErrorKind::PoolClosed`] at once;
    /// anything else through the [`AsyncResult`].
    pub fn apply_async<R, A>(&self, task: &str, args: A) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        self.apply_async_with(task, args, Callbacks::new())
    }

    /// [`apply_async`](Self::apply_async) with a callback and an error callback.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Self::apply_async).
    pub fn apply_async_with<R, A>(
        &self,
        task: &str,
        args: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        self.single_async(task, args, Shape::Star, callbacks)
    }

    /// Runs `task` with positional `args` (a tuple) and keyword `kwargs` on a
    /// worker and waits for its result, as CPython's `apply(func, args,
    /// kwds)`.
    ///
    /// `kwargs` is any value that serialises as a map of parameter names to
    /// values: a `BTreeMap<String, V>`, a struct with named fields, a
    /// `serde_json` object, or `()` for none. The pool binds them to the
    /// task's parameters (see [`TaskInfo::params`]) as Python binds a call:
    /// `args` fill the first parameters, `kwargs` others by name, and the
    /// parameters left take their defaults.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// use std::collections::BTreeMap;
    /// // greet(name, greeting = "Hello")
    /// let kwargs = BTreeMap::from([("greeting", "Hi")]);
    /// let s: String = pool.apply_kw("greet", ("Ada",), kwargs)?;
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadArguments`] naming what does not bind: an unknown
    /// keyword (with the task's parameters), a parameter given both by
    /// position and by keyword, a required parameter missing, or too many
    /// positional arguments. Otherwise as [`apply`](Self::apply).
    pub fn apply_kw<R, A, K>(&self, task: &str, args: A, kwargs: K) -> Result<R, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
    {
        self.apply_async_kw(task, args, kwargs)?.get()
    }

    /// [`apply_kw`](Self::apply_kw) that returns at once with a handle to its
    /// result.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Self::apply_async); arguments that do not bind
    /// through the [`AsyncResult`].
    pub fn apply_async_kw<R, A, K>(
        &self,
        task: &str,
        args: A,
        kwargs: K,
    ) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
    {
        self.apply_async_kw_with(task, args, kwargs, Callbacks::new())
    }

    /// [`apply_async_kw`](Self::apply_async_kw) with a callback and an error
    /// callback.
    ///
    /// # Errors
    ///
    /// As [`apply_async_kw`](Self::apply_async_kw).
    pub fn apply_async_kw_with<R, A, K>(
        &self,
        task: &str,
        args: A,
        kwargs: K,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
    {
        self.single_async(task, (args, kwargs), Shape::Keywords, callbacks)
    }

    fn single_async<R, A>(
        &self,
        task: &str,
        item: A,
        shape: Shape,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        let (result, sink) = result::gather(1, result::single, callbacks, self.callbacks.queue());
        let submission = self.submitter.submission(sink);
        let result = result.with_submission(&submission);
        self.submitter.submit(task, [item], shape, 1, submission)?;
        Ok(result)
    }

    /// Runs `task` on every item of `items` and returns the results in order.
    ///
    /// Each item is the task's single argument. `chunksize` (`None` for
    /// CPython's default) sets how many items a worker takes at once.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// let squares: Vec<i64> = pool.map("square", 0..10, None)?;
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The failure of the first task (by index) that failed; the other tasks
    /// still run. Use [`imap`](Self::imap) for each task's own outcome.
    pub fn map<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Vec<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        self.map_async(task, items, chunksize)?.get()
    }

    /// Like [`map`](Self::map), but returns at once with a handle to the results.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] or [`ErrorKind::PoolClosed`] at once;
    /// task failures through the [`AsyncResult`].
    pub fn map_async<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        self.map_async_with(task, items, chunksize, Callbacks::new())
    }

    /// [`map_async`](Self::map_async) with a callback (called once with all
    /// the results) and an error callback (called once per failed task).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn map_async_with<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        let items: Vec<T> = items.into_iter().collect();
        self.many_async(task, items, Shape::Single, chunksize.into(), callbacks)
    }

    /// Like [`map`](Self::map), but each item is a tuple of the task's
    /// positional arguments: `[(1, 2), (3, 4)]` runs `f(1, 2)` and `f(3, 4)`.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub fn starmap<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Vec<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.starmap_async(task, items, chunksize)?.get()
    }

    /// Like [`starmap`](Self::starmap), but returns at once with a handle to the results.
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        self.starmap_async_with(task, items, chunksize, Callbacks::new())
    }

    /// [`starmap_async`](Self::starmap_async) with callbacks, as
    /// [`map_async_with`](Self::map_async_with).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async_with<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.many_async(task, items, Shape::Star, chunksize.into(), callbacks)
    }

    /// Like [`starmap`](Self::starmap), but each item is a pair of
    /// positional arguments (a tuple) and keyword arguments (a map), bound
    /// to the task's parameters as [`apply_kw`](Self::apply_kw) binds them:
    /// `[((1,), kw)]` runs `f(1, **kw)`.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map). An item that does not bind fails alone, with
    /// [`ErrorKind::BadArguments`]; the others still run.
    pub fn starmap_kw<R, A, K, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Vec<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
        I: IntoIterator<Item = (A, K)>,
    {
        self.starmap_async_kw(task, items, chunksize)?.get()
    }

    /// Like [`starmap_kw`](Self::starmap_kw), but returns at once with a
    /// handle to the results.
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async_kw<R, A, K, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
        I: IntoIterator<Item = (A, K)>,
    {
        self.starmap_async_kw_with(task, items, chunksize, Callbacks::new())
    }

    /// [`starmap_async_kw`](Self::starmap_async_kw) with callbacks, as
    /// [`map_async_with`](Self::map_async_with).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async_kw_with<R, A, K, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
        I: IntoIterator<Item = (A, K)>,
    {
        let items: Vec<(A, K)> = items.into_iter().collect();
        self.many_async(task, items, Shape::Keywords, chunksize.into(), callbacks)
    }

    fn many_async<R, A>(
        &self,
        task: &str,
        items: Vec<A>,
        shape: Shape,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        // Check before anything is submitted, so a bad call leaves no trace.
        self.submitter.task(task)?;
        self.submitter.sender()?;
        let chunksize = chunksize.unwrap_or_else(|| self.default_chunksize(items.len()));
        let (result, sink) =
            result::gather(items.len(), result::all, callbacks, self.callbacks.queue());
        let submission = self.submitter.submission(sink);
        let result = result.with_submission(&submission);
        self.submitter
            .submit(task, items, shape, chunksize, submission)?;
        Ok(result)
    }

    /// A lazy, ordered [`map`](Self::map): results come back in input order as
    /// they are ready, each task's own outcome.
    ///
    /// `items` is pulled as results are consumed, through a bounded window, so
    /// an endless input runs in bounded memory. `chunksize` defaults to 1, as
    /// in CPython.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownTask`] or [`ErrorKind::PoolClosed`] at once.
    pub fn imap<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Imap<'_, R, T, I::IntoIter>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        Imap::new(
            &self.submitter,
            task,
            Items::Pulled(items.into_iter()),
            chunksize.into().unwrap_or(1),
            true,
            Shape::Single,
        )
    }

    /// Like [`imap`](Self::imap), but results come back as soon as they are
    /// ready, in any order. Each carries its task's index.
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    pub fn imap_unordered<R, T, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
    ) -> Result<Imap<'_, R, T, I::IntoIter>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        T: Serialize,
        I: IntoIterator<Item = T>,
    {
        Imap::new(
            &self.submitter,
            task,
            Items::Pulled(items.into_iter()),
            chunksize.into().unwrap_or(1),
            false,
            Shape::Single,
        )
    }

    /// A lazy [`starmap`](Self::starmap): as [`imap`](Self::imap) (or, with
    /// `ordered` false, [`imap_unordered`](Self::imap_unordered)), but each
    /// item is a tuple of the task's positional arguments.
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    pub fn istarmap<R, A, I>(
        &self,
        task: &str,
        items: I,
        chunksize: impl Into<Option<usize>>,
        ordered: bool,
    ) -> Result<Imap<'_, R, A, I::IntoIter>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        I: IntoIterator<Item = A>,
    {
        Imap::new(
            &self.submitter,
            task,
            Items::Pulled(items.into_iter()),
            chunksize.into().unwrap_or(1),
            ordered,
            Shape::Star,
        )
    }

    /// Like [`istarmap`](Self::istarmap), but the items come from a channel,
    /// as a producer sends them: each item is submitted as soon as it comes
    /// (a chunk goes out with what there is when the channel is momentarily
    /// empty), and results are yielded as they finish even while no item
    /// comes. Use it when items trickle in, such as lines of a pipe, where
    /// `istarmap` would wait inside its input for the next item before
    /// yielding finished results.
    ///
    /// Ends once the channel is disconnected and every result was yielded.
    /// Once the pool is closed or terminated the channel is let go (its
    /// sender's `send` fails), and items left in it are no tasks; a
    /// terminate wakes a waiting iterator.
    ///
    /// ```no_run
    /// # let pool = wasmpool::Pool::builder().module_file("m.wasm").build()?;
    /// let (tx, rx) = wasmpool::crossbeam_channel::bounded(64);
    /// std::thread::spawn(move || {
    ///     for x in 0..10i64 {
    ///         tx.send((x,)).unwrap();
    ///         std::thread::sleep(std::time::Duration::from_millis(100));
    ///     }
    /// });
    /// for result in pool.istarmap_stream::<i64, _>("square", rx, None, true)? {
    ///     println!("{}", result?);
    /// }
    /// # Ok::<(), wasmpool::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    pub fn istarmap_stream<R, A>(
        &self,
        task: &str,
        items: Receiver<A>,
        chunksize: impl Into<Option<usize>>,
        ordered: bool,
    ) -> Result<Imap<'_, R, A, std::iter::Empty<A>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
    {
        Imap::new(
            &self.submitter,
            task,
            Items::Streamed(items),
            chunksize.into().unwrap_or(1),
            ordered,
            Shape::Star,
        )
    }

    /// Like [`istarmap_stream`](Self::istarmap_stream), but each item is a
    /// pair of positional arguments and keyword arguments, bound to the
    /// task's parameters as [`apply_kw`](Self::apply_kw) binds them. An item
    /// that does not bind fails alone, with [`ErrorKind::BadArguments`].
    ///
    /// # Errors
    ///
    /// As [`imap`](Self::imap).
    #[expect(
        clippy::type_complexity,
        reason = "istarmap_stream's Imap, its items pairs"
    )]
    pub fn istarmap_kw_stream<R, A, K>(
        &self,
        task: &str,
        items: Receiver<(A, K)>,
        chunksize: impl Into<Option<usize>>,
        ordered: bool,
    ) -> Result<Imap<'_, R, (A, K), std::iter::Empty<(A, K)>>, Error>
    where
        R: DeserializeOwned + Send + 'static,
        A: Serialize,
        K: Serialize,
    {
        Imap::new(
            &self.submitter,
            task,
            Items::Streamed(items),
            chunksize.into().unwrap_or(1),
            ordered,
            Shape::Keywords,
        )
    }

    /// Stops the pool from taking new tasks; those already submitted still
    /// run. Then [`join`](Self::join) waits for them.
    pub fn close(&self) {
        self.submitter.close();
    }

    /// Stops the pool at once: workers are killed, tasks not finished fail
    /// with [`ErrorKind::Terminated`].
    pub fn terminate(&self) {
        self.close();
        self.submitter.backend.terminate();
    }

    /// Waits until every worker has exited and every callback has run. Call
    /// [`close`](Self::close) or [`terminate`](Self::terminate) first.
    ///
    /// Safe to call from a callback: it then waits for the workers, not for
    /// the callback thread it runs on.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] if the pool was neither closed nor terminated
    /// (CPython raises `ValueError`).
    pub fn join(&self) -> Result<(), Error> {
        if !self.submitter.is_closed() {
            return Err(Error::new(
                ErrorKind::Usage,
                "join() needs close() or terminate() first: the pool is still running",
            ));
        }
        // The local backend's slots end after their workers are reaped.
        self.submitter.backend.join();
        self.callbacks.finish();
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
        let _ = self.join();
    }
}

//! How many chunks of a job an agent keeps here, not yet done: enough that
//! its workers do not wait out the round trip of a fetch (on a slow link,
//! tens of milliseconds), and no more than that, so that an agent does not
//! sit on chunks another could run.
//!
//! The agent keeps twice its processes' worth, and as many more as it has
//! learnt it needs: each fetch that arrives to find nothing here (its
//! workers were idle for want of chunks) adds one, and each that finds more
//! than the base still waiting takes one away. Chunks of long tasks never
//! leave the agent idle, so it never keeps more than the base of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The chunks here that are not yet done.
#[derive(Debug, Default)]
pub(crate) struct Depth {
    pending: AtomicUsize,
    changed: Notify,
}

/// One chunk here, not yet done: it counts until dropped.
#[derive(Debug)]
pub(crate) struct Here(Arc<Depth>);

impl Drop for Here {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Depth {
    /// Counts a chunk that just came.
    pub(crate) fn here(self: &Arc<Self>) -> Here {
        self.pending.fetch_add(1, Ordering::AcqRel);
        Here(self.clone())
    }

    /// The chunks here not yet done.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Waits until fewer than `limit` chunks are here; returns how many are.
    pub(crate) async fn below(&self, limit: usize) -> usize {
        loop {
            let changed = self.changed.notified();
            let pending = self.pending();
            if pending < limit {
                return pending;
            }
            changed.await;
        }
    }
}

/// How many chunks to keep here beyond the base, as learnt from fetches.
#[derive(Debug)]
pub(crate) struct Ahead {
    base: usize,
    extra: usize,
    most: usize,
}

impl Ahead {
    /// Keeps `base` chunks here, and at most `most` in all.
    pub(crate) fn new(base: usize, most: usize) -> Ahead {
        Ahead {
            base,
            extra: 0,
            most: most.max(base),
        }
    }

    /// How many chunks to keep here now.
    pub(crate) fn keep(&self) -> usize {
        self.base + self.extra
    }

    /// A fetch brought chunks, and found `pending` here not yet done.
    pub(crate) fn fetched(&mut self, pending: usize) {
        if pending == 0 {
            // The workers ran out while the fetch was on its way.
            self.extra = (self.extra + 1).min(self.most - self.base);
        } else if pending > self.base {
            self.extra = self.extra.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_that_find_the_workers_idle_keep_more_up_to_the_most() {
        let mut ahead = Ahead::new(4, 16);
        for _ in 0..20 {
            ahead.fetched(0);
        }
        assert_eq!(ahead.keep(), 16);
        // Chunks waiting beyond the base: keep fewer again.
        ahead.fetched(9);
        ahead.fetched(9);
        assert_eq!(ahead.keep(), 14);
    }

    #[test]
    fn chunks_that_never_run_out_are_kept_at_the_base() {
        let mut ahead = Ahead::new(4, 16);
        for pending in [1, 3, 4, 2, 4, 1] {
            ahead.fetched(pending);
        }
        assert_eq!(ahead.keep(), 4);
    }

    #[tokio::test]
    async fn a_chunk_counts_until_it_is_done() {
        let depth = Arc::new(Depth::default());
        let first = depth.here();
        let second = depth.here();
        assert_eq!(depth.pending(), 2);
        let waiting = tokio::spawn({
            let depth = depth.clone();
            async move { depth.below(2).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.unwrap(), 1);
        drop(second);
        assert_eq!(depth.pending(), 0);
    }
}

//! Takers whose item lands at a random microsecond around their time limit:
//! items put on a queue, or messages sent on a pipe, while a worker may be
//! SIGKILLed or the pool terminated in the same window. No item is ever
//! taken twice; without kills none is lost (each is returned by a task,
//! seen by a task its time limit stopped, or still there); and a pipe whose
//! other end nothing holds any more reads end-of-file. On the code before
//! the fixes of issue 19, queue history 4 loses an item.

use std::time::{Duration, Instant};

use super::{Chaos, Rng, run};
use crate::calls::{Pools, pool_hearing_its_tasks};
use crate::common::{OUTCOME_WAIT, outcome};
use wasmpool::{AsyncResult, Connection, ErrorKind, Event, Pipe, Pool, Queue, RecvError};

pub fn queue_histories_take_each_item_at_most_once_and_lose_none_to_time_limits(at: &dyn Pools) {
    run(at, "queue", 100, Duration::from_millis(500), |seed| {
        history(at, seed, Channel::queue())
    });
}

pub fn pipe_histories_take_each_message_at_most_once_and_end_with_end_of_file(at: &dyn Pools) {
    run(at, "pipe", 60, Duration::from_millis(500), |seed| {
        history(at, seed, Channel::pipe())
    });
}

/// Where the items go: a queue, or a pipe whose one end the host sends on
/// and whose other end the takers receive on.
enum Channel {
    Queue(Queue<i64>),
    Pipe {
        ours: Connection,
        theirs: Connection,
    },
}

impl Channel {
    fn queue() -> Channel {
        Channel::Queue(Queue::new())
    }

    fn pipe() -> Channel {
        let (ours, theirs) = Pipe::new(true);
        Channel::Pipe { ours, theirs }
    }

    /// A taker: a task that sets `started`, waits for one item and says so
    /// on stderr before it returns it.
    fn taker(&self, pool: &Pool, started: &Event) -> AsyncResult<i64> {
        match self {
            Channel::Queue(queue) => pool.apply_async("announce_take_and_say", (started, queue)),
            Channel::Pipe { theirs, .. } => {
                pool.apply_async("announce_recv_and_say", (started, theirs))
            }
        }
        .unwrap()
    }

    fn put(&self, item: i64) {
        match self {
            Channel::Queue(queue) => queue.put(&item).unwrap(),
            Channel::Pipe { ours, .. } => ours.send(&item).unwrap(),
        }
    }

    /// An item still there, if one comes within a moment.
    fn left(&self) -> Option<i64> {
        let moment = Duration::from_millis(20);
        match self {
            Channel::Queue(queue) => queue.get_timeout(moment).ok(),
            Channel::Pipe { theirs, .. } => {
                if !theirs.poll(Some(moment)) {
                    return None;
                }
                theirs.recv().ok()
            }
        }
    }
}

/// Runs history `seed` on `channel`; what its tasks did, for the tally.
fn history(place: &dyn Pools, seed: u64, channel: Channel) -> String {
    let mut rng = Rng::new(seed);
    let limit = Duration::from_millis(40 + rng.below(30));
    let items = 2 + rng.below(4) as i64;
    // The chaos strikes, if at all, near the last taker's time limit.
    let chaos = Chaos::pick(&mut rng, limit);
    let (pool, said) = pool_hearing_its_tasks(place, 1 + rng.below(2) as usize, limit);
    let started = Event::new();
    let mut returned = Vec::new();
    let mut failed = 0;
    let mut puts = Vec::new();
    for item in 0..items {
        started.clear();
        let taker = channel.taker(&pool, &started);
        assert!(
            started.wait_timeout(OUTCOME_WAIT),
            "history {seed}: task {item} started"
        );
        // The put lands within a few milliseconds of the taker's time
        // limit, at a random microsecond: its answer crosses the limit.
        let at = rng.near(limit);
        puts.push(at);
        let strike = chaos.at().filter(|_| item == items - 1);
        let begun = Instant::now();
        let mut events = vec![(at, true)];
        events.extend(strike.map(|when| (when, false)));
        events.sort_by_key(|(at, _)| *at);
        for (at, put) in events {
            std::thread::sleep(at.saturating_sub(begun.elapsed()));
            if put {
                channel.put(item);
            } else {
                chaos.strike(place, &pool);
            }
        }
        match outcome(&taker, "a taker of a history") {
            Ok(item) => returned.push(item),
            Err(err) => {
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::Timeout | ErrorKind::WorkerLost | ErrorKind::Terminated
                    ),
                    "history {seed}: {err}"
                );
                failed += 1;
            }
        }
        if matches!(chaos, Chaos::Terminate(_)) && strike.is_some() {
            break;
        }
    }
    // What comes back late (an answer that reached a stopped task after
    // its outcome) comes within a moment.
    let settle = Instant::now() + Duration::from_millis(200);
    let mut left = Vec::new();
    while Instant::now() < settle {
        left.extend(channel.left());
    }
    let seen: Vec<i64> = said
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| line.trim().strip_prefix("took ")?.parse().ok())
        .filter(|item| !returned.contains(item))
        .collect();
    let mut accounted: Vec<i64> = returned.iter().chain(&seen).chain(&left).copied().collect();
    accounted.sort_unstable();
    let mut unique = accounted.clone();
    unique.dedup();
    assert_eq!(
        accounted, unique,
        "history {seed} ({chaos:?}, limit {limit:?}): an item taken twice: returned {returned:?}, \
         seen {seen:?}, left {left:?}"
    );
    if chaos == Chaos::None {
        assert_eq!(
            accounted,
            (0..items).collect::<Vec<_>>(),
            "history {seed} (limit {limit:?}, puts {puts:?}): an item lost: returned {returned:?}, \
             seen {seen:?}, left {left:?}; the tasks said {:?}",
            said.lock().unwrap()
        );
    }
    if let Channel::Pipe { ours, theirs } = channel {
        // Every task that held the other end has its outcome; once the
        // host lets go of it too, it is closed.
        drop(theirs);
        assert_eq!(
            ours.recv_bytes_timeout(OUTCOME_WAIT),
            Err(RecvError::Eof),
            "history {seed} ({chaos:?}): end-of-file once nothing holds the other end"
        );
    }
    let timed_out = if failed == 0 {
        "every task took one"
    } else {
        "some timed out"
    };
    format!("{}, {timed_out}", chaos.name())
}

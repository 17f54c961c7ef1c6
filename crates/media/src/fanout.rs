//! Direct fan-out: subscribers that take their new items in the publisher's wake-up itself,
//! instead of a task per subscriber woken through the stream's notifier.
//!
//! Why: at a thousand players of one stream, waking a thousand tasks per frame (each then
//! reading the ring and writing its socket) cost about a fifth of the server's CPU in task
//! switching alone (measured with a prototype: 27 % of a core instead of 31–36 % at the same
//! writes). A [`DirectReader`] is called instead, by a few fan-out tasks per stream: at most
//! one per core ([`crate::HubConfig::fanout_tasks`]), each calling its share of the readers
//! in a fixed order, which tokio runs on its worker threads so that a large audience uses
//! every core.
//!
//! The hub stays free of IO: what a reader does when called is the reader's business (the
//! server's connection writer encodes and sends without blocking, and hands the work to its
//! own task when the socket is full or anything else needs waiting for).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Fan-out tasks a stream may have when the configuration does not say: one per core tokio's
/// default runtime has (`std::thread::available_parallelism`, one worker thread each).
///
/// Why one per core, and filled evenly: every round a task calls its readers in the same order,
/// so each player keeps its place and its lag stays steady; more tasks than worker threads run
/// in a different order every frame and the places move. Measured on the 2-vCPU machine of
/// `BENCHMARKS.md` (kernel-stamped arrivals, lag+ p99 video / audio at N = 1000): one task of
/// 1000 players, 18 / 39 ms; two of 500, 15–16 / 37–38 ms; four of 250, 16 / 40 ms, the same
/// CPU (31–35 %) throughout; at N = 3500–4000 eight tasks of 512 had lag+ p99 280–335 ms against
/// 144–151 ms for four of 1024 (a day earlier). Earlier still, with arrivals timed in the load
/// client, eight tasks of 128 were 2–3 ms worse than one of 1024 at N = 1000.
///
/// A round does not yield: a task keeps its worker thread for its whole round, while tokio's
/// other workers take the rest of the queue. Yielding every 128 readers measured worse (lag+
/// p99 41.0–41.5 against 38.1–40.7 ms at N = 1000, CPU 1–2 points higher): the round then
/// moved between threads and players lost their places again.
pub fn default_fanout_tasks() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Readers each task of a stream must have before the stream gets one more task (up to
/// [`crate::HubConfig::fanout_tasks`]): a small audience stays on one task, since waking a
/// second one per frame costs more than its shorter round saves.
pub const DEFAULT_MIN_READERS_PER_TASK: usize = 128;

/// A subscriber served by the stream's fan-out tasks (see [`crate::Subscription::read_directly`]).
pub trait DirectReader: Send + Sync {
    /// New items are readable. Called from a fan-out task (or, without a tokio runtime, the
    /// thread that pushed), with no lock of the hub held: it must not block, since the other
    /// readers of its shard wait for it. It may be called once more after its subscription was
    /// dropped, by a round that started before.
    fn items_ready(&self);
}

/// One registered reader.
#[derive(Clone)]
struct Member {
    id: u64,
    reader: Arc<dyn DirectReader>,
}

/// A share of a stream's readers and the task that calls them.
#[derive(Default)]
struct Shard {
    /// Replaced, never edited in place, so the fan-out task iterates a snapshot without
    /// holding the lock (a reader may join or leave meanwhile).
    members: Mutex<Arc<Vec<Member>>>,
    /// Wakes the shard's task.
    ready: Notify,
    /// Set when the stream goes away: the task ends.
    closed: std::sync::atomic::AtomicBool,
}

impl Shard {
    fn members(&self) -> Arc<Vec<Member>> {
        Arc::clone(&self.members.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn call_members(&self) {
        for member in self.members().iter() {
            member.reader.items_ready();
        }
    }
}

/// The direct readers of one stream, in shards, one task each.
pub(crate) struct Fanout {
    shards: Mutex<FanoutShards>,
    /// At most this many shards (at least 1).
    max_shards: usize,
    /// A new shard only once every shard has this many readers.
    min_readers_per_shard: usize,
}

#[derive(Default)]
struct FanoutShards {
    list: Vec<Arc<Shard>>,
    next_id: u64,
    /// Shards have tasks (a tokio runtime was running at the first registration); otherwise
    /// the pusher calls the readers itself.
    spawned: bool,
}

/// Where in its shard's round a new reader goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place {
    /// Called first in every round of the first shard: for the few readers whose delay others
    /// inherit (a relay to another server).
    First,
    /// After the readers already there, in the shard with the fewest (a new shard once every
    /// shard has its minimum and there may be more).
    Last,
}

/// Where a registered reader is, to remove it.
#[derive(Debug)]
pub(crate) struct Registration {
    shard: usize,
    id: u64,
}

impl Fanout {
    /// No readers yet; at most `max_shards` shards (raised to 1), a new one only once every
    /// shard has `min_readers_per_shard` readers.
    pub(crate) fn new(max_shards: usize, min_readers_per_shard: usize) -> Fanout {
        Fanout {
            shards: Mutex::default(),
            max_shards: max_shards.max(1),
            min_readers_per_shard,
        }
    }

    fn shards(&self) -> std::sync::MutexGuard<'_, FanoutShards> {
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `reader` to its place: [`Place::Last`] at the end of the shard with the fewest
    /// readers (the first of those), or of a new shard, with its task, when there is none or
    /// every shard has its minimum and there may be one more; [`Place::First`] at the front of
    /// the first shard. Leaving readers are not moved: newcomers even the shards out again.
    pub(crate) fn register(&self, reader: Arc<dyn DirectReader>, place: Place) -> Registration {
        let mut shards = self.shards();
        let id = shards.next_id;
        shards.next_id += 1;
        let with_room = match place {
            Place::First => shards.list.first().map(|_| 0),
            Place::Last => {
                let fewest = shards
                    .list
                    .iter()
                    .map(|shard| shard.members().len())
                    .enumerate()
                    .min_by_key(|&(index, len)| (len, index));
                match fewest {
                    Some((_, len))
                        if len >= self.min_readers_per_shard
                            && shards.list.len() < self.max_shards =>
                    {
                        None
                    }
                    other => other.map(|(index, _)| index),
                }
            }
        };
        let index = match with_room {
            Some(index) => index,
            None => {
                let shard = Arc::new(Shard::default());
                if shards.list.is_empty() {
                    shards.spawned = tokio::runtime::Handle::try_current().is_ok();
                }
                if shards.spawned {
                    tokio::spawn(run_shard(Arc::clone(&shard)));
                }
                shards.list.push(shard);
                shards.list.len() - 1
            }
        };
        let shard = &shards.list[index];
        let mut members = shard.members.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::with_capacity(members.len() + 1);
        let member = Member { id, reader };
        match place {
            Place::First => {
                next.push(member);
                next.extend(members.iter().cloned());
            }
            Place::Last => {
                next.extend(members.iter().cloned());
                next.push(member);
            }
        }
        *members = Arc::new(next);
        Registration { shard: index, id }
    }

    /// Removes a reader: rounds that start after this returns do not call it. A round already
    /// under way took its list before and may still call it once.
    pub(crate) fn unregister(&self, registration: &Registration) {
        let shards = self.shards();
        let Some(shard) = shards.list.get(registration.shard) else {
            return;
        };
        let mut members = shard.members.lock().unwrap_or_else(PoisonError::into_inner);
        let next: Vec<Member> = members
            .iter()
            .filter(|member| member.id != registration.id)
            .cloned()
            .collect();
        *members = Arc::new(next);
    }

    /// Has every direct reader called: by the shards' tasks, or here without a runtime.
    pub(crate) fn wake(&self) {
        let shards = self.shards();
        if shards.spawned {
            for shard in &shards.list {
                shard.ready.notify_one();
            }
            return;
        }
        let inline: Vec<Arc<Shard>> = shards.list.clone();
        drop(shards);
        for shard in inline {
            shard.call_members();
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for shard in &self.shards().list {
            shard
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
            shard.ready.notify_one();
        }
    }
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shards = self.shards();
        f.debug_struct("Fanout")
            .field("shards", &shards.list.len())
            .finish()
    }
}

/// A shard's task: calls every member once per wake-up (wake-ups that come while it works
/// leave one permit, so a burst of pushes costs one more round, not one per push).
async fn run_shard(shard: Arc<Shard>) {
    loop {
        shard.ready.notified().await;
        if shard.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        shard.call_members();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::sync::atomic::AtomicUsize);

    impl DirectReader for Counter {
        fn items_ready(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn counters(count: usize) -> Vec<Arc<Counter>> {
        (0..count)
            .map(|_| Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0))))
            .collect()
    }

    fn shard_sizes(fanout: &Fanout) -> Vec<usize> {
        let shards = fanout.shards();
        shards
            .list
            .iter()
            .map(|shard| shard.members().len())
            .collect()
    }

    #[test]
    fn readers_fill_each_shard_to_its_minimum_then_the_smallest_of_at_most_max_shards() {
        let fanout = Fanout::new(3, 2);
        let readers = counters(8);
        let mut sizes = Vec::new();
        for reader in &readers {
            fanout.register(Arc::clone(reader) as Arc<dyn DirectReader>, Place::Last);
            sizes.push(shard_sizes(&fanout));
        }
        assert_eq!(sizes[1], [2], "one shard until it has its minimum");
        assert_eq!(sizes[2], [2, 1], "then a second");
        assert_eq!(sizes[4], [2, 2, 1], "and a third");
        assert_eq!(
            sizes[7],
            [3, 3, 2],
            "no fourth: the smallest takes the next"
        );
        // No tokio runtime here: the pusher's own thread calls every shard.
        fanout.wake();
        for reader in &readers {
            assert_eq!(reader.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn a_newcomer_goes_to_the_shard_that_players_left() {
        let fanout = Fanout::new(2, 1);
        let readers = counters(5);
        let registrations: Vec<Registration> = readers
            .iter()
            .map(|reader| fanout.register(Arc::clone(reader) as Arc<dyn DirectReader>, Place::Last))
            .collect();
        assert_eq!(shard_sizes(&fanout), [3, 2]);
        fanout.unregister(&registrations[0]);
        fanout.unregister(&registrations[2]);
        assert_eq!(shard_sizes(&fanout), [1, 2]);
        fanout.register(
            Arc::clone(&readers[0]) as Arc<dyn DirectReader>,
            Place::Last,
        );
        assert_eq!(shard_sizes(&fanout), [2, 2]);
    }
}

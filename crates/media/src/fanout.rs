//! Direct fan-out: subscribers that take their new items in the publisher's wake-up itself,
//! instead of a task per subscriber woken through the stream's notifier.
//!
//! Why: at a thousand players of one stream, waking a thousand tasks per frame (each then
//! reading the ring and writing its socket) cost about a fifth of the server's CPU in task
//! switching alone (measured with a prototype: 27 % of a core instead of 31–36 % at the same
//! writes). A [`DirectReader`] is called instead, in a small number of fan-out tasks per stream
//! (one per [`crate::HubConfig::fanout_shard_size`] readers, by default [`DEFAULT_SHARD_SIZE`]),
//! which tokio spreads over its worker threads so that a large audience uses every core.
//!
//! The hub stays free of IO: what a reader does when called is the reader's business (the
//! server's connection writer encodes and sends without blocking, and hands the work to its
//! own task when the socket is full or anything else needs waiting for).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Readers per fan-out task by default ([`crate::HubConfig::fanout_shard_size`]): as many as
/// one thread calls in a few milliseconds (a thousand players' writes take about 9 ms of one
/// core per frame on the 2-vCPU machine of `BENCHMARKS.md`), so a stream needs a second task,
/// and a second core, only beyond that.
///
/// Measured there with arrivals timed by the kernel, alternating runs of one binary: at
/// N = 1000, one task of 1024 and two of 512 gave the same lag+ p99 (38 ms; video 16–18,
/// audio 36–40) and CPU (33.7–37.2 % against 35.4–35.7 %); at N = 1500, three tasks of 512
/// cost more than two of 1024 (58.9 / 56.9 % CPU against 49.4 / 55.9 %, lag+ p99 45 / 44
/// against 42 / 42 ms): more tasks than worker threads run in a different order every frame.
/// Players dealt out in turn to two tasks (an even split whatever the audience) cost 3 points
/// more at N = 1000 (38.4–38.8 %): neighbours in memory written from two cores. With arrivals
/// timed in the load client, eight tasks of 128 were 2–3 ms worse than one of 1024.
///
/// A round does not yield: a full shard keeps its worker thread for one round, while tokio's
/// other workers take the rest of the queue. Yielding every 128 readers measured worse (lag+
/// p99 41.0–41.5 against 38.1–40.7 ms at N = 1000, CPU 1–2 points higher): the round then
/// moved between threads and players lost their places again.
pub const DEFAULT_SHARD_SIZE: usize = 1024;

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

/// Up to [`crate::HubConfig::fanout_shard_size`] readers and the task that calls them.
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

/// The direct readers of one stream, in shards.
pub(crate) struct Fanout {
    shards: Mutex<FanoutShards>,
    /// Readers per shard ([`crate::HubConfig::fanout_shard_size`], at least 1).
    shard_size: usize,
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
    /// After the readers already there, in the first shard with room.
    Last,
}

/// Where a registered reader is, to remove it.
#[derive(Debug)]
pub(crate) struct Registration {
    shard: usize,
    id: u64,
}

impl Fanout {
    /// No readers yet; shards of `shard_size` readers (raised to 1).
    pub(crate) fn new(shard_size: usize) -> Fanout {
        Fanout {
            shards: Mutex::default(),
            shard_size: shard_size.max(1),
        }
    }

    fn shards(&self) -> std::sync::MutexGuard<'_, FanoutShards> {
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `reader` to its place: [`Place::Last`] in the first shard with fewer than
    /// `shard_size` readers (a new shard, and its task, if none), [`Place::First`] at the front
    /// of the first shard, full or not.
    pub(crate) fn register(&self, reader: Arc<dyn DirectReader>, place: Place) -> Registration {
        let mut shards = self.shards();
        let id = shards.next_id;
        shards.next_id += 1;
        let with_room = match place {
            Place::First => shards.list.first().map(|_| 0),
            Place::Last => shards
                .list
                .iter()
                .position(|shard| shard.members().len() < self.shard_size),
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

    #[test]
    fn readers_fill_shards_of_the_configured_size_and_each_is_called_once() {
        let fanout = Fanout::new(2);
        let readers: Vec<Arc<Counter>> = (0..5)
            .map(|_| Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0))))
            .collect();
        for reader in &readers {
            fanout.register(Arc::clone(reader) as Arc<dyn DirectReader>, Place::Last);
        }
        let sizes: Vec<usize> = fanout
            .shards()
            .list
            .iter()
            .map(|shard| shard.members().len())
            .collect();
        assert_eq!(sizes, [2, 2, 1]);
        // No tokio runtime here: the pusher's own thread calls every shard.
        fanout.wake();
        for reader in &readers {
            assert_eq!(reader.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        }
    }
}

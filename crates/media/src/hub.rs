//! The hub: the map from stream name to stream for one application instance,
//! and the entry points to publish, subscribe and inspect streams.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::publisher::Publisher;
use crate::stream::{ReplacedSignal, StreamEntry, StreamState};
use crate::subscription::Subscription;

/// Default number of items in one stream's shared ring.
pub const DEFAULT_RING_CAPACITY: usize = 256;
/// Default bound of the cached keyframe group of one stream (8 MiB).
pub const DEFAULT_GOP_CACHE_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Default silence after which a new publisher may take a name over (the
/// Flash Media Server `PublishTimeout`).
pub const DEFAULT_PUBLISHER_TAKEOVER_AFTER: Duration = Duration::from_secs(2);
/// Default bound on how long audio waits to leave with the next video frame.
pub const DEFAULT_AUDIO_HOLD: Duration = Duration::from_millis(50);
/// Default audience from which audio is held (below it, about 2 % of a core is at stake).
pub const DEFAULT_AUDIO_HOLD_MIN_SUBSCRIBERS: usize = 100;
/// Default number of audio frames held at once: one (a second one releases both).
pub const DEFAULT_AUDIO_HOLD_MAX_FRAMES: usize = 1;

/// Tuning of a [`StreamHub`].
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Items (frames, metadata, publish events) kept in one stream's shared
    /// ring; bounds memory per stream whatever the number of subscribers.
    /// Values below 8 are raised to 8.
    pub ring_capacity: usize,
    /// Bound (payload bytes plus a small per-frame overhead) of the cached
    /// last keyframe group. A group growing past it is not cached: new
    /// subscribers then wait for the next keyframe.
    pub gop_cache_max_bytes: usize,
    /// A publisher silent for this long may be taken over by a new one.
    pub publisher_takeover_after: Duration,
    /// Longest an audio frame of a stream with video waits for the next
    /// video frame before its players are woken (see the crate docs, "Fewer
    /// wake-ups"). Zero wakes the players on every frame.
    pub audio_hold: Duration,
    /// Audio is held only while a stream has at least this many subscribers: a small
    /// audience gains little CPU from it, so its audio is not delayed.
    pub audio_hold_min_subscribers: usize,
    /// Audio frames held at once, at most: one more arriving before the video frame releases
    /// them all with it. Audio that comes bunched is already late from its publisher (ffmpeg
    /// sends the audio it has read when it reads a video frame, and that video frame only
    /// with the next audio frame), so holding it too would add to the worst lateness; a lone
    /// audio frame waits. Measured at 1000 players: 1 keeps the all-frame lag p99 at the
    /// hold-free figure for 37 writes per player a second instead of 54 (unbounded: 30 writes,
    /// lag p99 5–6 ms higher).
    pub audio_hold_max_frames: usize,
    /// Players (direct readers) per fan-out task of a stream: a stream with more uses one more
    /// task, which tokio may run on another core. Default [`crate::fanout::DEFAULT_SHARD_SIZE`]
    /// (1024); values below 1 are raised to 1.
    pub fanout_shard_size: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            ring_capacity: DEFAULT_RING_CAPACITY,
            gop_cache_max_bytes: DEFAULT_GOP_CACHE_MAX_BYTES,
            publisher_takeover_after: DEFAULT_PUBLISHER_TAKEOVER_AFTER,
            audio_hold: DEFAULT_AUDIO_HOLD,
            audio_hold_min_subscribers: DEFAULT_AUDIO_HOLD_MIN_SUBSCRIBERS,
            audio_hold_max_frames: DEFAULT_AUDIO_HOLD_MAX_FRAMES,
            fanout_shard_size: crate::fanout::DEFAULT_SHARD_SIZE,
        }
    }
}

/// Snapshot of one stream for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// A publisher currently owns the stream.
    pub live: bool,
    /// Connection id of that publisher.
    pub publisher_client_id: Option<u64>,
    /// Current number of subscriptions (playing or waiting).
    pub subscribers: usize,
    /// Frames sent in the current (or last) publish session.
    pub frames_published: u64,
    /// Payload bytes of those frames.
    pub bytes_published: u64,
}

/// Why [`StreamHub::publish`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Another publisher is live on this name and not silent long enough to
    /// be taken over (becomes `NetStream.Publish.BadName`).
    #[error("stream {name:?} is already being published")]
    AlreadyPublishing {
        /// The stream name.
        name: String,
    },
}

/// Live streams of one application instance, by name. Cheap to clone: all
/// clones share the same streams.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<HubInner>,
}

/// State shared by the hub, its publishers and its subscriptions.
#[derive(Debug)]
pub(crate) struct HubInner {
    config: HubConfig,
    /// Lock order: this map first, then a stream's state.
    streams: Mutex<HashMap<String, Arc<StreamEntry>>>,
}

impl HubInner {
    pub(crate) fn config(&self) -> &HubConfig {
        &self.config
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, Arc<StreamEntry>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of `name` in the locked map, created if the name is new.
    fn entry_in(
        &self,
        streams: &mut HashMap<String, Arc<StreamEntry>>,
        name: &str,
    ) -> Arc<StreamEntry> {
        Arc::clone(
            streams
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(StreamEntry::new(name, &self.config))),
        )
    }

    fn find(&self, name: &str) -> Option<Arc<StreamEntry>> {
        self.streams().get(name).cloned()
    }

    /// Applies `release` (a publisher or subscription going away) to the
    /// stream's state, then removes the entry from the map when nobody uses
    /// it any more. Holding the map lock makes "unused" final: nobody can
    /// find the entry meanwhile.
    pub(crate) fn release(&self, entry: &Arc<StreamEntry>, release: impl FnOnce(&mut StreamState)) {
        let mut streams = self.streams();
        let unused = {
            let mut state = entry.write();
            release(&mut state);
            state.is_unused()
        };
        if unused
            && streams
                .get(&entry.name)
                .is_some_and(|current| Arc::ptr_eq(current, entry))
        {
            streams.remove(&entry.name);
        }
    }
}

impl StreamHub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Self {
        Self {
            inner: Arc::new(HubInner {
                config,
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration this hub was built with.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Start publishing `name` for connection `client_id`.
    ///
    /// Fails with [`PublishError::AlreadyPublishing`] when a live publisher
    /// exists whose last frame (or publish start) is younger than
    /// [`HubConfig::publisher_takeover_after`]. Otherwise an older, silent
    /// publisher is taken over: its [`Publisher`] is marked replaced, its later
    /// sends are ignored, current subscribers see `Unpublished` then
    /// `PublishStarted`, and the new publisher owns the name.
    pub fn publish(&self, name: &str, client_id: u64) -> Result<Publisher, PublishError> {
        let (entry, session, replaced) = {
            let mut streams = self.inner.streams();
            let entry = self.inner.entry_in(&mut streams, name);
            let mut state = entry.write();
            if let Some(current) = &state.publisher {
                if current.last_activity.elapsed() < self.inner.config.publisher_takeover_after {
                    return Err(PublishError::AlreadyPublishing {
                        name: name.to_owned(),
                    });
                }
                if let Some(previous) = state.end_session() {
                    tracing::debug!(
                        stream = name,
                        previous_client_id = previous.client_id,
                        client_id,
                        "silent publisher taken over"
                    );
                    previous.replaced.mark_replaced();
                }
            }
            let replaced = Arc::new(ReplacedSignal::default());
            let session = state.start_session(client_id, Arc::clone(&replaced));
            drop(state);
            (entry, session, replaced)
        };
        entry.wake_subscribers();
        Ok(Publisher::new(
            Arc::clone(&self.inner),
            entry,
            session,
            replaced,
        ))
    }

    /// Subscribe to `name`, live or not (a player may wait for a publisher).
    ///
    /// On a live stream the subscription first yields the cached metadata,
    /// sequence headers and keyframe group, then live frames; on a stream
    /// without publisher it yields `PublishStarted` when one arrives.
    pub fn subscribe(&self, name: &str) -> Subscription {
        let mut streams = self.inner.streams();
        let entry = self.inner.entry_in(&mut streams, name);
        let mut state = entry.write();
        state.subscribers += 1;
        // Snapshot and cursor under the lock the publisher pushes under: no
        // gap and no duplicate between the caches and the ring.
        let subscription = Subscription::join(Arc::clone(&self.inner), Arc::clone(&entry), &state);
        drop(state);
        drop(streams);
        subscription
    }

    /// True when `name` has a publisher.
    pub fn is_live(&self, name: &str) -> bool {
        self.inner
            .find(name)
            .is_some_and(|entry| entry.read().publisher.is_some())
    }

    /// Names of the streams that have a publisher, sorted.
    pub fn live_stream_names(&self) -> Vec<String> {
        let entries: Vec<Arc<StreamEntry>> = self.inner.streams().values().cloned().collect();
        let mut names: Vec<String> = entries
            .iter()
            .filter(|entry| entry.read().publisher.is_some())
            .map(|entry| entry.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Statistics of `name`, `None` when nobody publishes or subscribes to it.
    pub fn stream_stats(&self, name: &str) -> Option<StreamStats> {
        let entry = self.inner.find(name)?;
        let state = entry.read();
        Some(StreamStats {
            live: state.publisher.is_some(),
            publisher_client_id: state.publisher.as_ref().map(|p| p.client_id),
            subscribers: state.subscribers,
            frames_published: state.frames_published,
            bytes_published: state.bytes_published,
        })
    }

    /// The stream entry of `name`, for white-box tests.
    #[cfg(test)]
    pub(crate) fn entry(&self, name: &str) -> Option<Arc<StreamEntry>> {
        self.inner.find(name)
    }
}

impl fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamHub")
            .field("config", &self.inner.config)
            .field("streams", &self.inner.streams().len())
            .finish()
    }
}

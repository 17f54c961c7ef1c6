//! One named stream: its shared ring, its caches, its current publisher and
//! its subscriber count, all behind one lock. Everything here is crate
//! private; [`crate::Publisher`] writes into it and [`crate::Subscription`]
//! reads from it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::cache::{KeyframeGroupCache, StreamContext};
use crate::fanout::Fanout;
use crate::frame::{FrameKind, MediaFrame};
use crate::hub::HubConfig;
use crate::ring::SequencedRing;

/// Smallest ring accepted, so that the half / three-quarter lag thresholds
/// of the dropping policy stay meaningful.
pub(crate) const MIN_RING_CAPACITY: usize = 8;

/// A stream as stored in the hub's map. Shared by the hub, the publisher and
/// every subscription of that name.
#[derive(Debug)]
pub(crate) struct StreamEntry {
    pub(crate) name: String,
    state: RwLock<StreamState>,
    /// Woken after every push into the ring.
    new_items: Notify,
    /// Readers called directly after every push (see [`crate::fanout`]).
    pub(crate) fanout: Fanout,
}

impl StreamEntry {
    pub(crate) fn new(name: &str, config: &HubConfig) -> Self {
        Self {
            name: name.to_owned(),
            state: RwLock::new(StreamState::new(config)),
            new_items: Notify::new(),
            fanout: Fanout::new(config.fanout_shard_size),
        }
    }

    /// Shared access (subscribers reading the ring).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, StreamState> {
        // Nothing panics while holding the lock, but a poisoned lock must not
        // take the whole stream down with it either.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive access (publisher pushing, subscribe/unsubscribe).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, StreamState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The notifier subscribers wait on for new ring items.
    pub(crate) fn new_items(&self) -> &Notify {
        &self.new_items
    }

    /// Wakes every subscriber waiting for a new item. Call after releasing
    /// the lock.
    pub(crate) fn wake_subscribers(&self) {
        self.new_items.notify_waiters();
        self.fanout.wake();
    }
}

/// What travels through the ring.
#[derive(Clone, Debug)]
pub(crate) enum RingItem {
    /// Publish session with this id started.
    SessionStarted(u64),
    /// The current publish session ended (unpublish or takeover).
    SessionEnded,
    /// `onMetaData` body.
    Metadata(Bytes),
    /// Audio, video or data frame.
    Frame(MediaFrame),
}

/// One ring entry: the item and the decoder context in force just before it.
#[derive(Debug)]
pub(crate) struct RingSlot {
    pub(crate) item: RingItem,
    pub(crate) context_before: Arc<StreamContext>,
}

/// Signal from the hub to a publisher that another one took its name.
#[derive(Debug, Default)]
pub(crate) struct ReplacedSignal {
    replaced: AtomicBool,
    notify: Notify,
}

impl ReplacedSignal {
    pub(crate) fn mark_replaced(&self) {
        self.replaced.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// Resolves once [`Self::mark_replaced`] has been called (at once if it
    /// already was).
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before checking the flag so no wake-up is missed.
            notified.as_mut().enable();
            if self.is_replaced() {
                return;
            }
            notified.await;
        }
    }
}

/// The publisher currently owning a stream.
#[derive(Debug)]
pub(crate) struct PublisherSlot {
    pub(crate) session: u64,
    pub(crate) client_id: u64,
    /// Publish start or last frame/metadata: decides takeover.
    pub(crate) last_activity: Instant,
    pub(crate) replaced: Arc<ReplacedSignal>,
}

/// Mutable state of one stream.
#[derive(Debug)]
pub(crate) struct StreamState {
    pub(crate) ring: SequencedRing<RingSlot>,
    /// Context in force after the newest ring item.
    pub(crate) context: Arc<StreamContext>,
    pub(crate) keyframe_group: KeyframeGroupCache,
    pub(crate) publisher: Option<PublisherSlot>,
    pub(crate) subscribers: usize,
    /// Counters of the current (or last) publish session.
    pub(crate) frames_published: u64,
    pub(crate) bytes_published: u64,
    /// The current publish session has sent video.
    video_seen: bool,
    next_session: u64,
    /// Sequence number up to which (excluded) readers may read: items pushed after it are
    /// held audio, handed to no one until the next wake-up.
    released_end: u64,
}

impl StreamState {
    fn new(config: &HubConfig) -> Self {
        Self {
            ring: SequencedRing::new(config.ring_capacity.max(MIN_RING_CAPACITY)),
            context: Arc::new(StreamContext::default()),
            keyframe_group: KeyframeGroupCache::new(config.gop_cache_max_bytes),
            publisher: None,
            subscribers: 0,
            frames_published: 0,
            bytes_published: 0,
            video_seen: false,
            next_session: 1,
            released_end: 0,
        }
    }

    /// True when the entry may be removed from the hub.
    pub(crate) fn is_unused(&self) -> bool {
        self.publisher.is_none() && self.subscribers == 0
    }

    /// True when `session` is the publish session currently owning the stream.
    pub(crate) fn is_owned_by(&self, session: u64) -> bool {
        self.publisher
            .as_ref()
            .is_some_and(|publisher| publisher.session == session)
    }

    /// Starts a new publish session owned by `client_id`; the caller must have
    /// ended the previous one. Returns the session id.
    pub(crate) fn start_session(&mut self, client_id: u64, replaced: Arc<ReplacedSignal>) -> u64 {
        let session = self.next_session;
        self.next_session += 1;
        self.publisher = Some(PublisherSlot {
            session,
            client_id,
            last_activity: Instant::now(),
            replaced,
        });
        self.frames_published = 0;
        self.bytes_published = 0;
        self.video_seen = false;
        self.push(RingItem::SessionStarted(session));
        self.context = Arc::new(StreamContext::for_session(session));
        session
    }

    /// Ends the current publish session, if any: subscribers will see
    /// `Unpublished`, and the caches are cleared. Returns the old publisher.
    pub(crate) fn end_session(&mut self) -> Option<PublisherSlot> {
        let publisher = self.publisher.take()?;
        self.push(RingItem::SessionEnded);
        self.context = Arc::new(StreamContext::default());
        self.keyframe_group.reset();
        Some(publisher)
    }

    /// True once the current publish session has sent a video frame.
    pub(crate) fn has_video(&self) -> bool {
        self.video_seen
    }

    /// Caches and pushes a frame of the current session. A `held` frame is not handed to
    /// readers until the next push that is not held, or [`Self::release_held`].
    pub(crate) fn accept_frame(&mut self, frame: MediaFrame, held: bool) {
        self.touch();
        self.video_seen |= frame.kind == FrameKind::Video;
        self.frames_published += 1;
        self.bytes_published += frame.payload.len() as u64;
        self.keyframe_group.observe(&frame);
        let next_context = self.context.with_sequence_header(&frame);
        self.push_held(RingItem::Frame(frame));
        if !held {
            self.release_held();
        }
        if let Some(next_context) = next_context {
            self.context = Arc::new(next_context);
        }
    }

    /// Sequence number up to which (excluded) readers may read.
    pub(crate) fn released_end(&self) -> u64 {
        self.released_end
    }

    /// Items pushed and not yet released (held audio frames).
    pub(crate) fn held_count(&self) -> u64 {
        self.ring.end_sequence() - self.released_end
    }

    /// Hands every held item to readers (call before waking them).
    pub(crate) fn release_held(&mut self) {
        self.released_end = self.ring.end_sequence();
    }

    /// Caches (replacing the previous) and pushes an `onMetaData` body.
    pub(crate) fn accept_metadata(&mut self, payload: Bytes) {
        self.touch();
        let mut next_context = StreamContext::clone(&self.context);
        next_context.metadata = Some(payload.clone());
        self.push(RingItem::Metadata(payload));
        self.context = Arc::new(next_context);
    }

    fn touch(&mut self) {
        if let Some(publisher) = &mut self.publisher {
            publisher.last_activity = Instant::now();
        }
    }

    /// Pushes an item readers may read at once (and any held before it).
    fn push(&mut self, item: RingItem) {
        self.push_held(item);
        self.release_held();
    }

    fn push_held(&mut self, item: RingItem) {
        let slot = RingSlot {
            item,
            context_before: Arc::clone(&self.context),
        };
        // The evicted slot (if any) is dropped here: only refcount decrements.
        let _evicted = self.ring.push(slot);
    }
}

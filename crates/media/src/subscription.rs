//! The playing side of a stream: a cursor into the stream's shared ring plus
//! the few events queued when joining, and the dropping policy that lets a
//! slow subscriber catch up without ever slowing the publisher down.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::cache::StreamContext;
use crate::fanout::{DirectReader, Place, Registration};
use crate::frame::{FrameKind, MediaFrame};
use crate::hub::HubInner;
use crate::stream::{RingItem, StreamEntry, StreamState};

/// What a [`Subscription`] yields, in stream order.
#[derive(Clone, Debug)]
pub enum SubscriptionEvent {
    /// A publisher started after this subscription began waiting (becomes
    /// `NetStream.Play.PublishNotify`).
    PublishStarted,
    /// The AMF0 body of an `onMetaData` data message.
    Metadata(Bytes),
    /// An audio, video or data frame (sequence headers included).
    Frame(MediaFrame),
    /// The publisher went away (becomes `NetStream.Play.UnpublishNotify`).
    /// The subscription stays and may see `PublishStarted` again.
    Unpublished,
}

/// One player's view of a stream. Dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<HubInner>,
    entry: Arc<StreamEntry>,
    reader: RingReader,
    /// Set once [`Self::read_directly`] registered a reader with the stream's fan-out.
    direct: Option<Registration>,
}

impl Subscription {
    /// Builds the subscription of a newcomer. Must be called under the
    /// stream's write lock, the one the publisher holds when it pushes, so
    /// that the cache snapshot and the ring cursor describe the same instant.
    pub(crate) fn join(hub: Arc<HubInner>, entry: Arc<StreamEntry>, state: &StreamState) -> Self {
        Self {
            hub,
            entry,
            reader: RingReader::join(state),
            direct: None,
        }
    }

    /// From now on, after every push the stream calls `reader` (from one of its fan-out
    /// tasks), which takes what is ready with [`Self::try_recv`]: no task needs to wait in
    /// [`Self::recv`] (which still works). Items already readable are not announced: read
    /// them after registering. Registering again replaces the previous reader. Dropping the
    /// subscription unregisters it.
    pub fn read_directly(&mut self, reader: Arc<dyn DirectReader>) {
        self.register_direct(reader, Place::Last);
    }

    /// Like [`Self::read_directly`], but `reader` is called first in every round of the
    /// stream's first fan-out task, before that task's players: for a reader whose delay is
    /// passed on to others, such as a relay to another server (its far players would otherwise
    /// wait for up to a round of local writes, about 9 ms at a thousand players).
    pub fn read_directly_first(&mut self, reader: Arc<dyn DirectReader>) {
        self.register_direct(reader, Place::First);
    }

    fn register_direct(&mut self, reader: Arc<dyn DirectReader>, place: Place) {
        if let Some(previous) = self.direct.take() {
            self.entry.fanout.unregister(&previous);
        }
        self.direct = Some(self.entry.fanout.register(reader, place));
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// The next event, waiting for one if needed.
    ///
    /// Cancel-safe: if the future is dropped before completion (e.g. in
    /// `tokio::select!`), no event is lost.
    pub async fn recv(&mut self) -> SubscriptionEvent {
        let entry = &self.entry;
        let reader = &mut self.reader;
        loop {
            let notified = entry.new_items().notified();
            let mut notified = std::pin::pin!(notified);
            // Register interest before looking, so a push between the look
            // and the await still wakes us.
            notified.as_mut().enable();
            if let Some(event) = reader.try_next(entry) {
                return event;
            }
            notified.await;
        }
    }

    /// The next event if one is ready, without waiting (for batching writes).
    pub fn try_recv(&mut self) -> Option<SubscriptionEvent> {
        self.reader.try_next(&self.entry)
    }

    /// Frames this subscription did not deliver: lost because it was overrun
    /// in the ring, or dropped by the lag policy.
    pub fn dropped_frames(&self) -> u64 {
        self.reader.dropped_frames
    }

    /// Whether the stream is live as seen through the events this
    /// subscription has produced so far (initially: live when subscribing).
    pub fn is_live(&self) -> bool {
        self.reader.delivered.session.is_some()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registration) = self.direct.take() {
            self.entry.fanout.unregister(&registration);
        }
        self.hub.release(&self.entry, |state| {
            state.subscribers = state.subscribers.saturating_sub(1);
        });
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.entry.name)
            .field("position", &self.reader.position)
            .field("live", &self.is_live())
            .field("dropped_frames", &self.reader.dropped_frames)
            .finish()
    }
}

/// Capacity the per-subscriber event queue keeps after draining.
const SMALL_QUEUE: usize = 16;

/// The decoder context a subscriber has been given so far, to tell what an
/// overrun made it miss.
#[derive(Debug, Default)]
struct DeliveredContext {
    session: Option<u64>,
    metadata: Option<Bytes>,
    audio_sequence_header: Option<Bytes>,
    video_sequence_header: Option<Bytes>,
}

/// Per-subscriber reading state: a cursor into the shared ring and the
/// dropping policy.
#[derive(Debug)]
struct RingReader {
    /// Sequence number of the next ring item to read.
    position: u64,
    /// Events to hand out before reading the ring again: the join snapshot,
    /// or re-synchronisation after an overrun.
    queued: VecDeque<SubscriptionEvent>,
    delivered: DeliveredContext,
    /// Drop video (but sequence headers) until the next video keyframe.
    skip_video_until_keyframe: bool,
    dropped_frames: u64,
}

impl RingReader {
    /// The reader of a newcomer: on a live stream, the cached context and
    /// keyframe group are queued and the cursor starts after the newest item.
    fn join(state: &StreamState) -> Self {
        let mut reader = Self {
            position: state.ring.end_sequence(),
            queued: VecDeque::new(),
            delivered: DeliveredContext::default(),
            skip_video_until_keyframe: false,
            dropped_frames: 0,
        };
        if state.context.session.is_some() {
            reader.queue_context_changes(&state.context, false);
            let group = state.keyframe_group.frames();
            reader
                .queued
                .extend(group.iter().cloned().map(SubscriptionEvent::Frame));
            // Without a cached group, the next video frames cannot be decoded
            // until a keyframe comes.
            reader.skip_video_until_keyframe = group.is_empty();
        }
        reader
    }

    /// The next queued event, else the next one from the ring (taking the
    /// stream lock in shared mode only when needed).
    fn try_next(&mut self, entry: &StreamEntry) -> Option<SubscriptionEvent> {
        if let Some(event) = self.queued.pop_front() {
            return Some(event);
        }
        if self.queued.capacity() > SMALL_QUEUE {
            // The join snapshot (a whole keyframe group) made it large; a thousand players
            // each keeping that capacity would cost megabytes for nothing.
            self.queued = VecDeque::new();
        }
        let state = entry.read();
        self.next_event(&entry.name, &state)
    }

    /// Reads the ring from the cursor, applying the dropping policy, until
    /// an event is ready or the ring is exhausted.
    fn next_event(&mut self, stream_name: &str, state: &StreamState) -> Option<SubscriptionEvent> {
        let ring = &state.ring;
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            if self.position < ring.first_sequence() {
                let lost = ring.first_sequence() - self.position;
                self.dropped_frames += lost;
                self.position = ring.first_sequence();
                self.skip_video_until_keyframe = true;
                tracing::debug!(
                    stream = stream_name,
                    lost,
                    total_dropped = self.dropped_frames,
                    "subscriber overrun, skipping to next keyframe"
                );
                if let Some(slot) = ring.get(self.position) {
                    self.queue_context_changes(&slot.context_before, true);
                }
                continue;
            }
            // Held audio waits for the next wake-up, for every reader alike.
            if self.position >= state.released_end() {
                return None;
            }
            let slot = ring.get(self.position)?;
            // Items waiting for this subscriber, the current one included.
            let backlog = ring.end_sequence() - self.position;
            self.position += 1;
            self.read_item(&slot.item, backlog, ring.capacity() as u64);
        }
    }

    /// Turns one ring item into queued events (or a counted drop).
    fn read_item(&mut self, item: &RingItem, backlog: u64, capacity: u64) {
        match item {
            RingItem::SessionStarted(session) => {
                if self.delivered.session.is_some() {
                    self.queued.push_back(SubscriptionEvent::Unpublished);
                }
                self.delivered = DeliveredContext {
                    session: Some(*session),
                    ..DeliveredContext::default()
                };
                self.skip_video_until_keyframe = false;
                self.queued.push_back(SubscriptionEvent::PublishStarted);
            }
            RingItem::SessionEnded => {
                if self.delivered.session.is_some() {
                    self.queued.push_back(SubscriptionEvent::Unpublished);
                }
                self.delivered = DeliveredContext::default();
                self.skip_video_until_keyframe = false;
            }
            RingItem::Metadata(payload) => {
                self.delivered.metadata = Some(payload.clone());
                self.queued
                    .push_back(SubscriptionEvent::Metadata(payload.clone()));
            }
            RingItem::Frame(frame) => {
                if self.should_drop(frame, backlog, capacity) {
                    self.dropped_frames += 1;
                    return;
                }
                if frame.sequence_header {
                    match frame.kind {
                        FrameKind::Audio => {
                            self.delivered.audio_sequence_header = Some(frame.payload.clone());
                        }
                        FrameKind::Video => {
                            self.delivered.video_sequence_header = Some(frame.payload.clone());
                        }
                        FrameKind::Data => {}
                    }
                }
                self.queued
                    .push_back(SubscriptionEvent::Frame(frame.clone()));
            }
        }
    }

    /// The dropping policy. Audio, data, metadata and sequence headers are
    /// always kept; video is dropped when the subscriber lags:
    /// - backlog above half the ring: disposable inter frames are dropped;
    /// - backlog above three quarters: every video frame up to the next
    ///   keyframe is dropped (as after an overrun or a join without cache).
    fn should_drop(&mut self, frame: &MediaFrame, backlog: u64, capacity: u64) -> bool {
        if frame.kind != FrameKind::Video || frame.sequence_header {
            return false;
        }
        if frame.is_video_keyframe() {
            self.skip_video_until_keyframe = false;
            return false;
        }
        if self.skip_video_until_keyframe {
            return true;
        }
        if backlog * 4 > capacity * 3 {
            self.skip_video_until_keyframe = true;
            return true;
        }
        frame.disposable && backlog * 2 > capacity
    }

    /// Queues what it takes to bring the subscriber from what it was given
    /// to `context`: publish events, then metadata and sequence headers that
    /// it has not seen (or that changed). A newcomer to a live stream gets no
    /// `PublishStarted` (`announce_session_start` false); an overrun
    /// subscriber that missed a session start does.
    fn queue_context_changes(&mut self, context: &StreamContext, announce_session_start: bool) {
        if self.delivered.session != context.session {
            if self.delivered.session.is_some() {
                self.queued.push_back(SubscriptionEvent::Unpublished);
            }
            self.delivered = DeliveredContext {
                session: context.session,
                ..DeliveredContext::default()
            };
            if context.session.is_some() && announce_session_start {
                self.queued.push_back(SubscriptionEvent::PublishStarted);
            }
        }
        if context.session.is_none() {
            return;
        }
        if let Some(metadata) = &context.metadata {
            if self.delivered.metadata.as_ref() != Some(metadata) {
                self.delivered.metadata = Some(metadata.clone());
                self.queued
                    .push_back(SubscriptionEvent::Metadata(metadata.clone()));
            }
        }
        for header in [
            &context.audio_sequence_header,
            &context.video_sequence_header,
        ]
        .into_iter()
        .flatten()
        {
            let delivered = match header.kind {
                FrameKind::Audio => &mut self.delivered.audio_sequence_header,
                FrameKind::Video => &mut self.delivered.video_sequence_header,
                FrameKind::Data => continue,
            };
            if delivered.as_ref() != Some(&header.payload) {
                *delivered = Some(header.payload.clone());
                self.queued
                    .push_back(SubscriptionEvent::Frame(header.clone()));
            }
        }
    }
}

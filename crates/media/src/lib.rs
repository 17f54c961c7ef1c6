//! `ascend-media`: the stream hub of one application instance.
//!
//! No sockets and no RTMP here: the server hands the hub the bodies of the
//! audio, video and data messages it receives from a publishing connection
//! ([`Publisher::send`]), and each playing connection reads them back from a
//! [`Subscription`]. Streams are found by name in a [`StreamHub`].
//!
//! # Design
//!
//! **Shared ring.** Each stream owns one bounded ring of
//! [`HubConfig::ring_capacity`] items (frames, metadata, and "publish
//! started"/"unpublished" markers), numbered by an ever-increasing sequence
//! number. A frame is pushed once whatever the number of subscribers, and its
//! payload is a [`bytes::Bytes`] shared by everyone: the hub only ever clones
//! the reference, never the bytes. When the ring is full the oldest item is
//! evicted, so the publisher never waits for anyone.
//!
//! **Per-subscriber cursor.** A subscription is the sequence number of the
//! next item it will read, plus a few flags. A subscriber that never reads
//! costs its cursor and nothing more; it just falls out of the ring. Readers
//! take the stream lock in shared mode; after each push the publisher wakes
//! waiting readers through a [`tokio::sync::Notify`]. [`Subscription::recv`]
//! is cancel-safe.
//!
//! **Joining mid-stream.** Per stream the hub caches the latest metadata, the
//! latest audio and video sequence headers and the current keyframe group
//! (from the last video keyframe on, with the audio and data frames in
//! between). A newcomer to a live stream gets them first, in that order,
//! then live frames. The snapshot and the cursor are taken under the lock the
//! publisher pushes under, so there is no gap and no duplicate between them.
//! Caches are cleared when the publisher goes away.
//!
//! **Dropping policy**, applied by each subscriber to itself while reading,
//! so the publisher's cost stays O(1) per frame:
//! - backlog above half the ring: disposable video frames are dropped;
//! - backlog above three quarters: video frames are dropped up to the next
//!   keyframe;
//! - overrun (items evicted before being read): they are counted lost, the
//!   subscriber re-synchronises from the context stored with the oldest
//!   remaining ring item (re-sending publish events, metadata and sequence
//!   headers it missed) and skips video up to the next keyframe.
//!
//! Audio, data, metadata and sequence headers are never dropped by the
//! policy. Every frame not delivered is counted in
//! [`Subscription::dropped_frames`].
//!
//! **Memory bound** per stream: the ring (at most `ring_capacity` items, each
//! holding a frame reference and an `Arc` to the context in force), the
//! caches (the keyframe group is bounded by
//! [`HubConfig::gop_cache_max_bytes`]; a group growing past it is dropped and
//! newcomers wait for the next keyframe), and per subscription its cursor
//! plus, until it has read them, the references of its join snapshot (at most
//! one keyframe group).
//!
//! **Fewer wake-ups.** An audio frame of a stream that carries video is
//! pushed without waking the players, and no reader sees it yet (not even one
//! that is awake anyway): it leaves with the next video frame, in the same
//! write, or after [`HubConfig::audio_hold`] at the latest, and at most
//! [`HubConfig::audio_hold_max_frames`] audio frames wait at once (one more
//! releases them: bunched audio is already late). This saves about a third of
//! the writes per player for a usual stream (about 43 audio and 30 video
//! frames a second) for at most the hold of added audio latency. Only
//! streams with a large audience ([`HubConfig::audio_hold_min_subscribers`])
//! hold: for a few players the saving is small and the latency is not.
//!
//! **Direct fan-out** ([`fanout`]). A subscription can register a
//! [`DirectReader`] ([`Subscription::read_directly`]): after every push, one
//! fan-out task per [`HubConfig::fanout_shard_size`] such readers (1024 by
//! default) calls each of them,
//! and the reader takes what is ready with [`Subscription::try_recv`] in that
//! call. The server's socket writers do so, encoding and sending without
//! blocking; at a thousand players this saves a task wake-up per player per
//! frame (about a fifth of the server's CPU). Readers that wait in
//! [`Subscription::recv`] (relays, tests) are woken as before.
//!
//! **Publishers.** One per name. A second one is refused with
//! [`PublishError::AlreadyPublishing`] unless the current one has been silent
//! for [`HubConfig::publisher_takeover_after`], in which case it is taken
//! over ([`Publisher::replaced`]). Dropping a [`Publisher`] unpublishes;
//! subscriptions stay and get [`SubscriptionEvent::Unpublished`], then
//! [`SubscriptionEvent::PublishStarted`] when someone publishes again. A
//! stream with neither publisher nor subscriber is removed from the hub.
//!
//! **Locks.** The hub's name map, then a stream's state, never the other
//! way round. `Publisher::send` only takes its stream's lock. A stream's
//! fan-out registry has locks of its own, taken after the state lock is
//! released and never held while a reader is called (the fan-out tasks call
//! a snapshot of their readers).

mod audio_hold;
mod cache;
pub mod fanout;
mod frame;
mod hub;
mod publisher;
mod ring;
mod stream;
mod subscription;

#[cfg(test)]
mod tests;

pub use fanout::DirectReader;
pub use frame::{FrameKind, MediaFrame};
pub use hub::{
    HubConfig, PublishError, StreamHub, StreamStats, DEFAULT_AUDIO_HOLD,
    DEFAULT_AUDIO_HOLD_MAX_FRAMES, DEFAULT_AUDIO_HOLD_MIN_SUBSCRIBERS, DEFAULT_GOP_CACHE_MAX_BYTES,
    DEFAULT_PUBLISHER_TAKEOVER_AFTER, DEFAULT_RING_CAPACITY,
};
pub use publisher::Publisher;
pub use subscription::{Subscription, SubscriptionEvent};

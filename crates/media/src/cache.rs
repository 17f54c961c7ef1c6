//! Per-stream caches that let a player join a live stream mid-way: the
//! decoder context (metadata and sequence headers, see [`StreamContext`]) and
//! the current keyframe group (see [`KeyframeGroupCache`]).

use bytes::Bytes;

use crate::frame::{FrameKind, MediaFrame};

/// What a decoder needs before the frames of a stream at a given point: the
/// publish session and the latest metadata and sequence headers.
///
/// Immutable once built and shared through `Arc`: the stream keeps the current
/// one, and every ring slot keeps the one in force before its item, so an
/// overrun subscriber can re-synchronise at any retained position.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamContext {
    /// The publish session in force, `None` when nobody publishes.
    pub(crate) session: Option<u64>,
    /// Latest `onMetaData` body.
    pub(crate) metadata: Option<Bytes>,
    /// Latest audio sequence header (AAC AudioSpecificConfig, ...).
    pub(crate) audio_sequence_header: Option<MediaFrame>,
    /// Latest video sequence header (AVC/HEVC decoder configuration, ...).
    pub(crate) video_sequence_header: Option<MediaFrame>,
}

impl StreamContext {
    /// The context at the start of publish session `session`: nothing known yet.
    pub(crate) fn for_session(session: u64) -> Self {
        Self {
            session: Some(session),
            ..Self::default()
        }
    }

    /// This context with `frame` applied if it is a sequence header;
    /// `None` when `frame` does not change the context.
    pub(crate) fn with_sequence_header(&self, frame: &MediaFrame) -> Option<Self> {
        if !frame.sequence_header {
            return None;
        }
        let mut next = self.clone();
        match frame.kind {
            FrameKind::Audio => next.audio_sequence_header = Some(frame.clone()),
            FrameKind::Video => next.video_sequence_header = Some(frame.clone()),
            FrameKind::Data => return None,
        }
        Some(next)
    }
}

/// Memory charged per cached frame on top of its payload, so that a group of
/// many tiny frames is bounded too.
const CACHED_FRAME_OVERHEAD_BYTES: usize = std::mem::size_of::<MediaFrame>();

/// The frames since the last video keyframe (audio, video and data in arrival
/// order), so that a new subscriber can start decoding at once.
///
/// Bounded by `max_bytes` (payload plus per-frame overhead): a group that
/// grows past it is dropped and nothing is cached until the next keyframe.
#[derive(Debug)]
pub(crate) struct KeyframeGroupCache {
    frames: Vec<MediaFrame>,
    bytes: usize,
    max_bytes: usize,
    /// True between a keyframe and the moment the group overflows (or the
    /// video configuration changes).
    collecting: bool,
}

impl KeyframeGroupCache {
    /// An empty cache bounded by `max_bytes`.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            frames: Vec::new(),
            bytes: 0,
            max_bytes,
            collecting: false,
        }
    }

    /// The cached group, starting with a video keyframe, or empty.
    pub(crate) fn frames(&self) -> &[MediaFrame] {
        &self.frames
    }

    /// Bytes currently charged to the cache.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Updates the cache with a frame the publisher sent.
    pub(crate) fn observe(&mut self, frame: &MediaFrame) {
        if frame.is_video_keyframe() {
            self.frames.clear();
            self.bytes = 0;
            self.collecting = true;
            self.append(frame);
        } else if frame.sequence_header {
            if frame.kind == FrameKind::Video {
                // Frames before a new video configuration cannot be decoded
                // with it: wait for the keyframe that follows.
                self.reset();
            }
        } else if self.collecting {
            self.append(frame);
        }
    }

    /// Forgets everything and releases the memory (end of a publish session).
    pub(crate) fn reset(&mut self) {
        self.frames = Vec::new();
        self.bytes = 0;
        self.collecting = false;
    }

    fn append(&mut self, frame: &MediaFrame) {
        let cost = frame.payload.len() + CACHED_FRAME_OVERHEAD_BYTES;
        if self.bytes.saturating_add(cost) > self.max_bytes {
            self.reset();
            return;
        }
        self.bytes += cost;
        self.frames.push(frame.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(first: u8, second: u8, len: usize) -> MediaFrame {
        let mut payload = vec![0u8; len.max(2)];
        payload[0] = first;
        payload[1] = second;
        MediaFrame::video(0, Bytes::from(payload))
    }

    #[test]
    fn group_starts_at_keyframe_and_excludes_sequence_headers() {
        let mut cache = KeyframeGroupCache::new(1 << 20);
        cache.observe(&video(0x27, 1, 10)); // inter before any keyframe
        assert!(cache.frames().is_empty());
        cache.observe(&video(0x17, 0, 10)); // sequence header
        cache.observe(&video(0x17, 1, 10)); // keyframe
        cache.observe(&MediaFrame::audio(0, Bytes::from_static(&[0xaf, 1, 2])));
        cache.observe(&video(0x27, 1, 10));
        let frames = cache.frames();
        assert_eq!(frames.len(), 3);
        assert!(frames[0].is_video_keyframe());
        assert_eq!(frames[1].kind, FrameKind::Audio);
        cache.observe(&video(0x17, 1, 10));
        assert_eq!(cache.frames().len(), 1);
    }

    #[test]
    fn oversized_group_is_dropped_until_next_keyframe() {
        let max = 3 * (100 + CACHED_FRAME_OVERHEAD_BYTES);
        let mut cache = KeyframeGroupCache::new(max);
        cache.observe(&video(0x17, 1, 100));
        cache.observe(&video(0x27, 1, 100));
        cache.observe(&video(0x27, 1, 100));
        assert_eq!(cache.frames().len(), 3);
        assert!(cache.bytes() <= max);
        cache.observe(&video(0x27, 1, 100));
        assert!(cache.frames().is_empty());
        assert_eq!(cache.bytes(), 0);
        cache.observe(&video(0x27, 1, 100));
        assert!(cache.frames().is_empty(), "no caching until next keyframe");
        cache.observe(&video(0x17, 1, 100));
        assert_eq!(cache.frames().len(), 1);
    }

    #[test]
    fn new_video_configuration_invalidates_group() {
        let mut cache = KeyframeGroupCache::new(1 << 20);
        cache.observe(&video(0x17, 1, 10));
        cache.observe(&video(0x17, 0, 10));
        assert!(cache.frames().is_empty());
        cache.observe(&video(0x27, 1, 10));
        assert!(cache.frames().is_empty());
    }
}

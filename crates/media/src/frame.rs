//! Media frames: one RTMP audio, video or data message body, with the few
//! flags the hub needs (keyframe, sequence header, disposable) read from the
//! FLV tag header bytes at the start of the body.
//!
//! Parsing never panics: short or empty payloads simply get all flags false.

use bytes::Bytes;

/// What kind of RTMP message a [`MediaFrame`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// RTMP audio message (type 8), body is an FLV audio tag body.
    Audio,
    /// RTMP video message (type 9), body is an FLV video tag body.
    Video,
    /// RTMP data message (type 18), AMF0-encoded (onCuePoint, onTextData, ...).
    Data,
}

/// One RTMP audio/video/data message body (FLV tag body), shared by all
/// subscribers.
///
/// Cloning a `MediaFrame` only bumps the reference count of `payload`; the hub
/// never copies payload bytes.
#[derive(Clone, Debug)]
pub struct MediaFrame {
    /// Audio, video or data.
    pub kind: FrameKind,
    /// RTMP timestamp in milliseconds.
    pub timestamp: u32,
    /// The message body exactly as received.
    pub payload: Bytes,
    /// Video: frame type 1 (keyframe) or 4 (generated keyframe), legacy or
    /// enhanced RTMP. Also true for sequence headers, which carry frame type 1.
    pub keyframe: bool,
    /// Decoder configuration: AVC/HEVC sequence header, enhanced-RTMP
    /// "sequence start" (video or audio), or AAC AudioSpecificConfig.
    pub sequence_header: bool,
    /// Video frame type 3 (disposable inter frame): may be dropped first.
    pub disposable: bool,
}

/// FLV video frame types (high nibble, or bits 4-6 in enhanced RTMP).
const VIDEO_FRAME_KEY: u8 = 1;
const VIDEO_FRAME_DISPOSABLE_INTER: u8 = 3;
const VIDEO_FRAME_GENERATED_KEY: u8 = 4;
/// Video info / command frame: its second byte is a command, not a packet type.
const VIDEO_FRAME_COMMAND: u8 = 5;

/// Legacy FLV video codec ids whose second byte is an AVC-style packet type.
const VIDEO_CODEC_AVC: u8 = 7;
const VIDEO_CODEC_HEVC: u8 = 12;
/// Legacy AVC-style packet type for a sequence header (decoder configuration).
const AVC_PACKET_SEQUENCE_HEADER: u8 = 0;

/// Enhanced RTMP: top bit of the first video byte marks the extended header.
const ENHANCED_VIDEO_HEADER_BIT: u8 = 0x80;
/// Enhanced RTMP video packet types that carry decoder configuration.
const ENHANCED_VIDEO_SEQUENCE_START: u8 = 0;
const ENHANCED_VIDEO_MPEG2TS_SEQUENCE_START: u8 = 5;

/// FLV sound formats (high nibble of the first audio byte).
const SOUND_FORMAT_AAC: u8 = 10;
/// Enhanced RTMP audio: sound format 9 means "extended header", the low
/// nibble is then the audio packet type.
const SOUND_FORMAT_EX_HEADER: u8 = 9;
const AAC_PACKET_SEQUENCE_HEADER: u8 = 0;
const ENHANCED_AUDIO_SEQUENCE_START: u8 = 0;

impl MediaFrame {
    /// An audio frame; `sequence_header` is set for an AAC AudioSpecificConfig
    /// (sound format 10 and AAC packet type 0) and for an enhanced-RTMP audio
    /// "sequence start" (sound format 9, packet type 0: Opus, FLAC, ... config).
    pub fn audio(timestamp: u32, payload: Bytes) -> Self {
        let sequence_header = match payload.first() {
            Some(&first) => {
                let sound_format = first >> 4;
                if sound_format == SOUND_FORMAT_AAC {
                    payload.get(1) == Some(&AAC_PACKET_SEQUENCE_HEADER)
                } else if sound_format == SOUND_FORMAT_EX_HEADER {
                    first & 0x0f == ENHANCED_AUDIO_SEQUENCE_START
                } else {
                    false
                }
            }
            None => false,
        };
        Self {
            kind: FrameKind::Audio,
            timestamp,
            payload,
            keyframe: false,
            sequence_header,
            disposable: false,
        }
    }

    /// A video frame; flags come from the FLV video byte (legacy or enhanced
    /// RTMP) and, for AVC/HEVC, the packet type byte after it.
    pub fn video(timestamp: u32, payload: Bytes) -> Self {
        let header = VideoTagHeader::parse(&payload);
        Self {
            kind: FrameKind::Video,
            timestamp,
            payload,
            keyframe: matches!(
                header.frame_type,
                VIDEO_FRAME_KEY | VIDEO_FRAME_GENERATED_KEY
            ),
            sequence_header: header.sequence_header,
            disposable: header.frame_type == VIDEO_FRAME_DISPOSABLE_INTER,
        }
    }

    /// A data message (AMF-encoded body such as onCuePoint); no flags.
    pub fn data(timestamp: u32, payload: Bytes) -> Self {
        Self {
            kind: FrameKind::Data,
            timestamp,
            payload,
            keyframe: false,
            sequence_header: false,
            disposable: false,
        }
    }

    /// True for a video keyframe that carries a picture (not a sequence
    /// header): the frame a decoder can start from, and the start of a
    /// keyframe group.
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == FrameKind::Video && self.keyframe && !self.sequence_header
    }
}

/// The fields of an FLV video tag header the hub cares about.
struct VideoTagHeader {
    /// 0 when the payload is empty.
    frame_type: u8,
    sequence_header: bool,
}

impl VideoTagHeader {
    fn parse(payload: &[u8]) -> Self {
        let Some(&first) = payload.first() else {
            return Self {
                frame_type: 0,
                sequence_header: false,
            };
        };
        if first & ENHANCED_VIDEO_HEADER_BIT != 0 {
            let frame_type = (first >> 4) & 0x07;
            let packet_type = first & 0x0f;
            Self {
                frame_type,
                sequence_header: frame_type != VIDEO_FRAME_COMMAND
                    && matches!(
                        packet_type,
                        ENHANCED_VIDEO_SEQUENCE_START | ENHANCED_VIDEO_MPEG2TS_SEQUENCE_START
                    ),
            }
        } else {
            let frame_type = first >> 4;
            let codec = first & 0x0f;
            let has_packet_type = frame_type != VIDEO_FRAME_COMMAND
                && matches!(codec, VIDEO_CODEC_AVC | VIDEO_CODEC_HEVC);
            Self {
                frame_type,
                sequence_header: has_packet_type
                    && payload.get(1) == Some(&AVC_PACKET_SEQUENCE_HEADER),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &'static [u8]) -> MediaFrame {
        MediaFrame::video(0, Bytes::from_static(bytes))
    }

    fn audio(bytes: &'static [u8]) -> MediaFrame {
        MediaFrame::audio(0, Bytes::from_static(bytes))
    }

    #[test]
    fn avc_sequence_header_is_keyframe_and_sequence_header() {
        let frame = video(&[0x17, 0x00, 0, 0, 0, 1, 0x64]);
        assert!(frame.keyframe);
        assert!(frame.sequence_header);
        assert!(!frame.disposable);
        assert!(!frame.is_video_keyframe());
    }

    #[test]
    fn avc_keyframe_nalus_is_keyframe_only() {
        let frame = video(&[0x17, 0x01, 0, 0, 0]);
        assert!(frame.keyframe);
        assert!(!frame.sequence_header);
        assert!(frame.is_video_keyframe());
    }

    #[test]
    fn avc_inter_and_disposable_frames() {
        let inter = video(&[0x27, 0x01, 0, 0, 0]);
        assert!(!inter.keyframe && !inter.sequence_header && !inter.disposable);
        let disposable = video(&[0x37, 0x01, 0, 0, 0]);
        assert!(!disposable.keyframe && disposable.disposable);
        let generated = video(&[0x47, 0x01]);
        assert!(generated.keyframe && generated.is_video_keyframe());
        let command = video(&[0x57, 0x00]);
        assert!(!command.keyframe && !command.sequence_header && !command.disposable);
    }

    #[test]
    fn hevc_sequence_header_is_recognised() {
        let frame = video(&[0x1c, 0x00, 0, 0, 0]);
        assert!(frame.keyframe && frame.sequence_header);
    }

    #[test]
    fn legacy_codec_without_packet_type_is_never_sequence_header() {
        // Sorenson H.263 (codec 2) keyframe whose second byte happens to be 0.
        let frame = video(&[0x12, 0x00, 0x84]);
        assert!(frame.keyframe);
        assert!(!frame.sequence_header);
    }

    #[test]
    fn enhanced_rtmp_video_flags() {
        // 0x80 | frame type 1 << 4 | packet type 0 (sequence start), "hvc1".
        let start = video(&[0x90, b'h', b'v', b'c', b'1']);
        assert!(start.keyframe && start.sequence_header);
        // keyframe, coded frames X (3)
        let key = video(&[0x93, b'a', b'v', b'0', b'1']);
        assert!(key.is_video_keyframe());
        // inter frame (2), coded frames (1)
        let inter = video(&[0xa1, b'v', b'p', b'0', b'9']);
        assert!(!inter.keyframe && !inter.sequence_header && !inter.disposable);
        // disposable inter (3), coded frames X
        let disposable = video(&[0xb3]);
        assert!(disposable.disposable);
        // keyframe, MPEG2TS sequence start (5)
        let ts_start = video(&[0x95]);
        assert!(ts_start.sequence_header);
        // keyframe, metadata (4) and sequence end (2) are not configuration
        assert!(!video(&[0x94]).sequence_header);
        assert!(!video(&[0x92]).sequence_header);
        // command frame (5) is never configuration
        assert!(!video(&[0xd0, 0x00]).sequence_header);
    }

    #[test]
    fn aac_sequence_header_and_raw_frames() {
        let header = audio(&[0xaf, 0x00, 0x12, 0x10]);
        assert!(header.sequence_header);
        assert!(!header.keyframe && !header.disposable);
        let raw = audio(&[0xaf, 0x01, 0x21]);
        assert!(!raw.sequence_header);
        // MP3 (format 2): second byte 0 means nothing.
        assert!(!audio(&[0x2f, 0x00]).sequence_header);
    }

    #[test]
    fn enhanced_rtmp_audio_sequence_start() {
        assert!(audio(&[0x90, b'O', b'p', b'u', b's']).sequence_header);
        assert!(!audio(&[0x91, b'O', b'p', b'u', b's']).sequence_header);
    }

    #[test]
    fn empty_and_truncated_payloads_have_no_flags() {
        for frame in [video(&[]), audio(&[]), MediaFrame::data(0, Bytes::new())] {
            assert!(!frame.keyframe && !frame.sequence_header && !frame.disposable);
        }
        // AVC keyframe with the packet type byte missing.
        let truncated = video(&[0x17]);
        assert!(truncated.keyframe && !truncated.sequence_header);
        // AAC with the packet type byte missing.
        assert!(!audio(&[0xaf]).sequence_header);
    }

    #[test]
    fn every_first_byte_parses_without_panicking() {
        for first in 0..=u8::MAX {
            for payload in [vec![first], vec![first, 0], vec![first, 1, 2, 3]] {
                let payload = Bytes::from(payload);
                let _ = MediaFrame::video(0, payload.clone());
                let _ = MediaFrame::audio(0, payload.clone());
                let _ = MediaFrame::data(0, payload);
            }
        }
    }
}

//! Fuzz target `flv_classify`: [`MediaFrame::audio`] and [`MediaFrame::video`] on arbitrary FLV
//! tag bodies (legacy and enhanced RTMP headers), each input classified both ways.
//!
//! The flags must be consistent: audio is never a keyframe nor disposable; a video frame is not
//! both a keyframe and disposable; an empty body carries no flag; `is_video_keyframe` is a
//! keyframe that is not a sequence header; the payload is kept as received.

#![no_main]

use ascend_media::{FrameKind, MediaFrame};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);

    let audio = MediaFrame::audio(7, payload.clone());
    assert_eq!(audio.kind, FrameKind::Audio);
    assert!(!audio.keyframe && !audio.disposable && !audio.is_video_keyframe());
    assert!(!data.is_empty() || !audio.sequence_header);
    assert_eq!(&audio.payload[..], data);

    let video = MediaFrame::video(7, payload.clone());
    assert_eq!(video.kind, FrameKind::Video);
    assert!(!(video.keyframe && video.disposable));
    assert!(!data.is_empty() || !(video.keyframe || video.sequence_header || video.disposable));
    assert_eq!(
        video.is_video_keyframe(),
        video.keyframe && !video.sequence_header
    );
    assert_eq!(&video.payload[..], data);

    let data_frame = MediaFrame::data(7, payload);
    assert!(!data_frame.keyframe && !data_frame.sequence_header && !data_frame.disposable);
});

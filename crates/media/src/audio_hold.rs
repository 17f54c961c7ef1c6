//! Fewer wake-ups per frame: an audio frame of a stream that carries video
//! does not wake the stream's players by itself; it leaves with the next
//! video frame, or after [`crate::HubConfig::audio_hold`] at the latest.
//!
//! Why: every wake-up of a player becomes one `writev` on its socket, and on
//! a busy server the kernel's per-write cost dominates (profiled: about
//! three quarters of the CPU at 1000 players of one 2.5 Mbit/s stream). A
//! typical stream has about 43 audio and 30 video frames a second; sending
//! each audio frame together with the next video frame halves the writes per
//! player. The price is at most the hold (50 ms by default) of added audio
//! latency, and in practice less than one video frame interval. At most
//! [`crate::HubConfig::audio_hold_max_frames`] frames are held at once: a
//! publisher that sends audio in bunches (ffmpeg does) has already made it
//! late, so a bunch leaves at once, which keeps about a third of the writes
//! saved instead of nearly half, without adding to the latest audio. Streams with
//! no video, or with fewer subscribers than
//! [`crate::HubConfig::audio_hold_min_subscribers`], are never held; metadata,
//! data and sequence headers wake at once and take held audio with them.
//!
//! The bound is kept by one small task per publisher ([`release_held_audio`]),
//! armed when a hold starts: it wakes the players if the audio is still held
//! when the hold runs out.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::stream::StreamEntry;

/// Hold state shared by a publisher and its release task.
#[derive(Debug, Default)]
pub(crate) struct AudioHold {
    /// Since when frames have been in the ring without a wake-up, if any.
    held_since: Mutex<Option<Instant>>,
    /// Starts the release timer.
    armed: Notify,
}

impl AudioHold {
    fn held_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.held_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that a frame was pushed without a wake-up; arms the release
    /// timer when this starts a hold.
    pub(crate) fn hold(&self) {
        let mut held_since = self.held_since();
        if held_since.is_none() {
            *held_since = Some(Instant::now());
            self.armed.notify_one();
        }
    }

    /// Records that the players are being woken: nothing is held any more.
    pub(crate) fn release(&self) {
        *self.held_since() = None;
    }
}

/// Wakes `entry`'s players when a hold lasts `after`. Runs until aborted
/// (the publisher aborts it when dropped).
///
/// Each hold is timed from its own start, so a hold that a video frame ended
/// early never shortens the next one (that would add wake-ups, the very
/// cost the hold removes).
pub(crate) async fn release_held_audio(
    hold: Arc<AudioHold>,
    entry: Arc<StreamEntry>,
    after: Duration,
) {
    loop {
        hold.armed.notified().await;
        // A permit left by a hold that already ended finds nothing held.
        loop {
            let Some(since) = *hold.held_since() else {
                break;
            };
            let deadline = since + after;
            if Instant::now() < deadline {
                tokio::time::sleep_until(deadline.into()).await;
                continue;
            }
            let expired = {
                let mut held_since = hold.held_since();
                // Still the same hold: nobody woke the players meanwhile.
                if *held_since == Some(since) {
                    *held_since = None;
                    true
                } else {
                    false
                }
            };
            if expired {
                entry.write().release_held();
                entry.wake_subscribers();
                break;
            }
        }
    }
}

//! The publishing side of a stream: the handle a publishing connection holds
//! to push metadata and frames. Dropping it unpublishes the stream.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::audio_hold::{release_held_audio, AudioHold};
use crate::frame::{FrameKind, MediaFrame};
use crate::hub::HubInner;
use crate::stream::{ReplacedSignal, StreamEntry};

/// Owner of a stream name for one publish session.
///
/// Dropping it unpublishes: subscribers get `Unpublished` and the caches are
/// cleared (unless this publisher was already taken over, in which case the
/// drop does nothing to the new session).
pub struct Publisher {
    hub: Arc<HubInner>,
    entry: Arc<StreamEntry>,
    session: u64,
    replaced: Arc<ReplacedSignal>,
    /// Present when audio may be held (a hold is configured and a tokio
    /// runtime runs the release task).
    audio_hold: Option<HeldAudio>,
}

/// The hold state and the task that bounds it.
struct HeldAudio {
    state: Arc<AudioHold>,
    release_task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub(crate) fn new(
        hub: Arc<HubInner>,
        entry: Arc<StreamEntry>,
        session: u64,
        replaced: Arc<ReplacedSignal>,
    ) -> Self {
        let after = hub.config().audio_hold;
        let audio_hold = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !after.is_zero() => {
                let state = Arc::new(AudioHold::default());
                let release_task = runtime.spawn(release_held_audio(
                    Arc::clone(&state),
                    Arc::clone(&entry),
                    after,
                ));
                Some(HeldAudio {
                    state,
                    release_task,
                })
            }
            _ => None,
        };
        Self {
            hub,
            entry,
            session,
            replaced,
            audio_hold,
        }
    }

    /// Wakes the players, taking any held audio with this wake-up.
    fn wake_subscribers(&self) {
        if let Some(held) = &self.audio_hold {
            held.state.release();
        }
        self.entry.wake_subscribers();
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Sets the stream metadata: the AMF0 body of an `onMetaData` data
    /// message. Cached (replacing the previous) for later subscribers and
    /// delivered in order to current ones. Ignored once replaced.
    pub fn set_metadata(&self, payload: Bytes) {
        {
            let mut state = self.entry.write();
            if !state.is_owned_by(self.session) {
                return;
            }
            state.accept_metadata(payload);
        }
        self.wake_subscribers();
    }

    /// Sends one frame: updates the caches, then one push into the shared
    /// ring. O(1) in the number of subscribers apart from waking them; never
    /// waits for a subscriber. Ignored once replaced. An audio frame of a
    /// stream with video and a large audience may wait for the next video
    /// frame before the players are woken ([`crate::HubConfig::audio_hold`]).
    pub fn send(&self, frame: MediaFrame) {
        let hold = {
            let mut state = self.entry.write();
            if !state.is_owned_by(self.session) {
                return;
            }
            let config = self.hub.config();
            let holdable = frame.kind == FrameKind::Audio
                && !frame.sequence_header
                && state.has_video()
                && state.subscribers >= config.audio_hold_min_subscribers
                && state.held_count() < config.audio_hold_max_frames as u64;
            let hold = self.audio_hold.as_ref().filter(|_| holdable);
            state.accept_frame(frame, hold.is_some());
            hold
        };
        match hold {
            Some(held) => held.state.hold(),
            None => self.wake_subscribers(),
        }
    }

    /// True once another publisher took this stream over.
    pub fn is_replaced(&self) -> bool {
        self.replaced.is_replaced()
    }

    /// Resolves when another publisher took this stream over (at once if it
    /// already happened). Cancel-safe.
    pub async fn replaced(&self) {
        self.replaced.wait().await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(held) = &self.audio_hold {
            held.release_task.abort();
        }
        let session = self.session;
        let mut unpublished = false;
        self.hub.release(&self.entry, |state| {
            if state.is_owned_by(session) {
                unpublished = state.end_session().is_some();
            }
        });
        // (A publisher taken over needs no wake-up for audio it held: the
        // takeover woke the players.)
        if unpublished {
            tracing::debug!(stream = %self.entry.name, "unpublished");
            self.entry.wake_subscribers();
        }
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.entry.name)
            .field("session", &self.session)
            .field("replaced", &self.is_replaced())
            .finish()
    }
}

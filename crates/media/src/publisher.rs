//! The publishing side of a stream: the handle a publishing connection holds
//! to push metadata and frames. Dropping it unpublishes the stream.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::frame::MediaFrame;
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
}

impl Publisher {
    pub(crate) fn new(
        hub: Arc<HubInner>,
        entry: Arc<StreamEntry>,
        session: u64,
        replaced: Arc<ReplacedSignal>,
    ) -> Self {
        Self {
            hub,
            entry,
            session,
            replaced,
        }
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
        self.entry.wake_subscribers();
    }

    /// Sends one frame: updates the caches, then one push into the shared
    /// ring. O(1) in the number of subscribers apart from waking them; never
    /// waits for a subscriber. Ignored once replaced.
    pub fn send(&self, frame: MediaFrame) {
        {
            let mut state = self.entry.write();
            if !state.is_owned_by(self.session) {
                return;
            }
            state.accept_frame(frame);
        }
        self.entry.wake_subscribers();
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
        let session = self.session;
        let mut unpublished = false;
        self.hub.release(&self.entry, |state| {
            if state.is_owned_by(session) {
                unpublished = state.end_session().is_some();
            }
        });
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

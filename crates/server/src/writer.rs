//! The one writer of a client socket: commands from the connection task and frames from the
//! streams the client plays, chunked by the connection's one [`ChunkEncoder`] and written with
//! vectored writes (headers + shared payloads, nothing copied).
//!
//! Two paths write, one at a time (the lock around the writer's state, never held across a wait):
//! - **the fan-out path**: after every push, the stream's fan-out task calls
//!   [`DirectReader::items_ready`]; when the writer is idle (nothing unsent, no command
//!   waiting) it encodes the new frames and sends them at once, without blocking, in the
//!   fan-out task. This is the common case, and it costs no task wake-up per player per frame.
//! - **the writer task**: everything else. Commands from the connection, a socket that was
//!   full (it waits for room, then catches up on the frames that came meanwhile, with the
//!   hub's dropping policy), frames the fan-out path could not take (the lock was busy).
//!
//! The writer never blocks anyone: while it waits on a slow socket, the hub's ring moves on and
//! the client's subscription drops frames by priority; commands wait in a bounded channel
//! (the connection task drops the client when it fills). A write that makes no progress for the
//! stall timeout ends the connection.

use ascend_media::{DirectReader, FrameKind, Subscription, SubscriptionEvent};
use ascend_rtmp::server::play_status_message;
use ascend_rtmp::{build, ChunkEncoder, RawMessage, WriteBatch, MAX_WRITE_SLICES};
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::Poll;
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Notify};

/// Bytes gathered before a write is issued, when more is ready at once.
const BATCH_TARGET_BYTES: usize = 256 * 1024;

/// What the connection task asks of its writer.
pub enum WriterCommand {
    /// Send these messages, in order.
    Messages(Vec<RawMessage>),
    /// Start sending a stream's events on `stream_id` (after Play.Start was sent).
    Play {
        /// The client's NetStream.
        stream_id: u32,
        /// Stream name (for status descriptions).
        name: String,
        /// The hub subscription.
        /// (Boxed: keeps every command, and so each channel block, small.)
        subscription: Box<Subscription>,
    },
    /// Stop sending on `stream_id`.
    Stop {
        /// The client's NetStream.
        stream_id: u32,
    },
    /// Pause or resume `stream_id`.
    Pause {
        /// The client's NetStream.
        stream_id: u32,
        /// True to pause.
        paused: bool,
    },
    /// receiveAudio / receiveVideo.
    ReceiveMedia {
        /// The client's NetStream.
        stream_id: u32,
        /// Audio (true) or video (false).
        audio: bool,
        /// Receive it or not.
        enabled: bool,
    },
}

struct Player {
    stream_id: u32,
    name: String,
    subscription: Box<Subscription>,
    paused: bool,
    receive_audio: bool,
    receive_video: bool,
}

/// Messages handed to the writer and not yet taken by it, shared by a connection and its
/// writer: the channel bounds commands, this bounds the messages inside them.
#[derive(Clone, Default)]
pub struct QueuedMessages(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl QueuedMessages {
    /// Counts `count` more messages; the new total.
    pub fn add(&self, count: usize) -> usize {
        self.0
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed)
            + count
    }

    fn remove(&self, count: usize) {
        self.0
            .fetch_sub(count, std::sync::atomic::Ordering::Relaxed);
    }

    fn taken(&self, command: &Option<WriterCommand>) {
        if let Some(WriterCommand::Messages(messages)) = command {
            self.remove(messages.len());
        }
    }
}

/// What the writer did, for the disconnect log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    /// Bytes written to the socket.
    pub bytes_written: u64,
    /// Frames the client's subscriptions dropped because it was slow.
    pub frames_dropped: u64,
}

/// Why the writer task woke up.
enum Wake {
    /// A command, or `None` once the connection dropped its sender.
    Command(Option<WriterCommand>),
    /// The fan-out path left it work.
    Nudged,
}

/// What the writer task and the fan-out path share.
struct WriterShared {
    core: Mutex<WriterCore>,
    socket: OwnedWriteHalf,
    /// Wakes the writer task: the fan-out path left it work.
    task_wake: Notify,
}

/// The writer's state, taken by one path at a time.
struct WriterCore {
    commands: mpsc::Receiver<WriterCommand>,
    encoder: ChunkEncoder,
    /// Encoded and not yet sent. Not empty only while the writer task owns the socket (it is
    /// waiting for room): the fan-out path then leaves everything to it.
    batch: WriteBatch,
    players: Vec<Player>,
    stats: WriterStats,
    /// A send of the fan-out path failed: the writer task ends with this error.
    failed: Option<std::io::Error>,
}

impl WriterShared {
    fn lock(&self) -> MutexGuard<'_, WriterCore> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stream(&self) -> &tokio::net::TcpStream {
        self.socket.as_ref()
    }
}

impl DirectReader for WriterShared {
    fn items_ready(&self) {
        let mut core = match self.core.try_lock() {
            Ok(core) => core,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // The writer task is at work: it will look again.
            Err(TryLockError::WouldBlock) => {
                self.task_wake.notify_one();
                return;
            }
        };
        let busy = !core.batch.is_empty() || core.failed.is_some() || !core.commands.is_empty();
        let leave_to_task = busy || {
            core.gather_events();
            match core.send_without_waiting(self.stream()) {
                Ok(all_sent) => !all_sent,
                Err(error) => {
                    core.failed = Some(error);
                    true
                }
            }
        };
        drop(core);
        if leave_to_task {
            self.task_wake.notify_one();
        }
    }
}

impl WriterCore {
    /// Encodes the events ready on every played stream, up to the batch target.
    fn gather_events(&mut self) {
        loop {
            let mut progressed = false;
            for index in 0..self.players.len() {
                if self.batch.len() >= BATCH_TARGET_BYTES {
                    return;
                }
                if let Some(event) = self.players[index].subscription.try_recv() {
                    self.handle_event(index, event);
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Sends as much of the batch as the socket takes now; true when all of it went.
    fn send_without_waiting(&mut self, stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
        // Straight on the socket: asking tokio whether the socket is writable costs a cache
        // miss per player per frame. A full socket goes through tokio (in `write_remaining`),
        // which then learns that it must wait.
        self.send_with(|slices| socket2::SockRef::from(stream).send_vectored(slices))
    }

    /// Hands the batch to `send` until it is empty (true) or the socket is full (false).
    fn send_with(
        &mut self,
        mut send: impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<bool> {
        while !self.batch.is_empty() {
            let sent = {
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                let count = self.batch.io_slices(&mut slices);
                send(&slices[..count])
            };
            match sent {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    self.stats.bytes_written += written as u64;
                    self.batch.advance(written);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}

/// Runs the writer until the connection task drops its sender or a write fails or stalls.
pub async fn run(
    socket: OwnedWriteHalf,
    commands: mpsc::Receiver<WriterCommand>,
    stall_timeout: Duration,
    queued: QueuedMessages,
) -> (WriterStats, std::io::Result<()>) {
    let shared = Arc::new(WriterShared {
        core: Mutex::new(WriterCore {
            commands,
            encoder: ChunkEncoder::new(),
            batch: WriteBatch::new(),
            players: Vec::new(),
            stats: WriterStats::default(),
            failed: None,
        }),
        socket,
        task_wake: Notify::new(),
    });
    let result = loop {
        let wake = next_wake(&shared).await;
        let closing = {
            let mut core = shared.lock();
            let mut closing = false;
            if let Wake::Command(command) = wake {
                queued.taken(&command);
                closing |= core.handle_command(command, &shared);
            }
            // Gather whatever else is ready so it leaves in the same write: commands first.
            while !closing && core.batch.len() < BATCH_TARGET_BYTES {
                match core.commands.try_recv() {
                    Ok(command) => {
                        let command = Some(command);
                        queued.taken(&command);
                        closing |= core.handle_command(command, &shared);
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => closing = true,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            if !closing {
                core.gather_events();
            }
            if let Some(error) = core.failed.take() {
                break Err(error);
            }
            if let Err(error) = core.send_without_waiting(shared.stream()) {
                break Err(error);
            }
            closing
        };
        if let Err(error) = write_remaining(&shared, stall_timeout).await {
            break Err(error);
        }
        if closing {
            let _ = socket2::SockRef::from(shared.stream()).shutdown(std::net::Shutdown::Write);
            break Ok(());
        }
    };
    let mut core = shared.lock();
    // Unregisters from the streams' fan-outs (which hold this writer) and tells the
    // connection task that nothing more will be written.
    for player in std::mem::take(&mut core.players) {
        core.stats.frames_dropped += player.subscription.dropped_frames();
    }
    core.commands.close();
    (core.stats, result)
}

/// Waits for a command, or for work the fan-out path left.
async fn next_wake(shared: &WriterShared) -> Wake {
    let nudged = shared.task_wake.notified();
    let mut nudged = std::pin::pin!(nudged);
    poll_fn(|cx| {
        if let Poll::Ready(command) = shared.lock().commands.poll_recv(cx) {
            return Poll::Ready(Wake::Command(command));
        }
        if nudged.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Wake::Nudged);
        }
        Poll::Pending
    })
    .await
}

/// Sends what the socket did not take at once: waits for room (at most the stall timeout
/// each time), through tokio so that it learns when the socket is full.
async fn write_remaining(shared: &WriterShared, stall_timeout: Duration) -> std::io::Result<()> {
    loop {
        if shared
            .lock()
            .send_with(|slices| shared.socket.try_write_vectored(slices))?
        {
            return Ok(());
        }
        if tokio::time::timeout(stall_timeout, shared.stream().writable())
            .await
            .is_err()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "client read nothing for {} s (write_stall_timeout_secs)",
                    stall_timeout.as_secs()
                ),
            ));
        }
    }
}

impl WriterCore {
    /// Carries out a command of the connection (`None`: it dropped its sender); true when
    /// the writer should finish. New subscriptions register `writer` with their stream's
    /// fan-out.
    fn handle_command(
        &mut self,
        command: Option<WriterCommand>,
        writer: &Arc<WriterShared>,
    ) -> bool {
        let Self {
            encoder,
            batch,
            players,
            stats,
            ..
        } = self;
        let Some(command) = command else {
            return true;
        };
        match command {
            WriterCommand::Messages(messages) => {
                for message in &messages {
                    encoder.encode(message, batch);
                }
            }
            WriterCommand::Play {
                stream_id,
                name,
                mut subscription,
            } => {
                retire(players, stream_id, stats);
                subscription.read_directly(Arc::clone(writer) as Arc<dyn DirectReader>);
                players.push(Player {
                    stream_id,
                    name,
                    subscription,
                    paused: false,
                    receive_audio: true,
                    receive_video: true,
                });
            }
            WriterCommand::Stop { stream_id } => retire(players, stream_id, stats),
            WriterCommand::Pause { stream_id, paused } => {
                if let Some(player) = players.iter_mut().find(|p| p.stream_id == stream_id) {
                    player.paused = paused;
                }
            }
            WriterCommand::ReceiveMedia {
                stream_id,
                audio,
                enabled,
            } => {
                if let Some(player) = players.iter_mut().find(|p| p.stream_id == stream_id) {
                    if audio {
                        player.receive_audio = enabled;
                    } else {
                        player.receive_video = enabled;
                    }
                }
            }
        }
        false
    }

    /// Encodes an event of player `index`'s stream (events come from the fan-out path and the
    /// writer task's gathering, both through [`Self::gather_events`]).
    fn handle_event(&mut self, index: usize, event: SubscriptionEvent) {
        let Some(player) = self.players.get(index) else {
            return;
        };
        let stream_id = player.stream_id;
        let message = match event {
            SubscriptionEvent::PublishStarted => Some(play_status_message(
                stream_id,
                "status",
                "NetStream.Play.PublishNotify",
                &player.name,
            )),
            SubscriptionEvent::Unpublished => Some(play_status_message(
                stream_id,
                "status",
                "NetStream.Play.UnpublishNotify",
                &player.name,
            )),
            SubscriptionEvent::Metadata(body) => Some(build::data_from_body(stream_id, 0, body)),
            SubscriptionEvent::Frame(frame) => {
                // Sequence headers always pass: a resumed player needs them to decode.
                let wanted = frame.sequence_header
                    || match frame.kind {
                        FrameKind::Audio => player.receive_audio && !player.paused,
                        FrameKind::Video => player.receive_video && !player.paused,
                        FrameKind::Data => !player.paused,
                    };
                wanted.then(|| match frame.kind {
                    FrameKind::Audio => build::audio(stream_id, frame.timestamp, frame.payload),
                    FrameKind::Video => build::video(stream_id, frame.timestamp, frame.payload),
                    FrameKind::Data => {
                        build::data_from_body(stream_id, frame.timestamp, frame.payload)
                    }
                })
            }
        };
        if let Some(message) = message {
            self.encoder.encode(&message, &mut self.batch);
        }
    }
}

fn retire(players: &mut Vec<Player>, stream_id: u32, stats: &mut WriterStats) {
    players.retain(|p| {
        if p.stream_id == stream_id {
            stats.frames_dropped += p.subscription.dropped_frames();
            false
        } else {
            true
        }
    });
}

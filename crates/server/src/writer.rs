//! The one writer of a client socket: commands from the connection task and frames from the
//! streams the client plays, chunked by the connection's one [`ChunkEncoder`] and written with
//! vectored writes (headers + shared payloads, nothing copied).
//!
//! The writer never blocks anyone: while it waits on a slow socket, the hub's ring moves on and
//! the client's subscription drops frames by priority; commands wait in a bounded channel
//! (the connection task drops the client when it fills). A write that makes no progress for the
//! stall timeout ends the connection.

use ascend_media::{FrameKind, Subscription, SubscriptionEvent};
use ascend_rtmp::server::play_status_message;
use ascend_rtmp::{build, ChunkEncoder, RawMessage, WriteBatch, MAX_WRITE_SLICES};
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

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

    fn taken(&self, input: &Input) {
        if let Input::Command(Some(WriterCommand::Messages(messages))) = input {
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

enum Input {
    Command(Option<WriterCommand>),
    Event(usize, SubscriptionEvent),
}

/// Runs the writer until the connection task drops its sender or a write fails or stalls.
pub async fn run(
    mut socket: OwnedWriteHalf,
    mut commands: mpsc::Receiver<WriterCommand>,
    stall_timeout: Duration,
    queued: QueuedMessages,
) -> (WriterStats, std::io::Result<()>) {
    let mut encoder = ChunkEncoder::new();
    let mut batch = WriteBatch::new();
    let mut players: Vec<Player> = Vec::new();
    let mut stats = WriterStats::default();
    let mut closing = false;
    let result = loop {
        let input = next_input(&mut commands, &mut players).await;
        queued.taken(&input);
        closing |= handle(input, &mut players, &mut encoder, &mut batch, &mut stats);
        // Gather whatever else is ready so it leaves in the same write.
        while !closing && batch.len() < BATCH_TARGET_BYTES {
            let mut progressed = false;
            match commands.try_recv() {
                Ok(command) => {
                    if let WriterCommand::Messages(messages) = &command {
                        queued.remove(messages.len());
                    }
                    closing |= handle(
                        Input::Command(Some(command)),
                        &mut players,
                        &mut encoder,
                        &mut batch,
                        &mut stats,
                    );
                    progressed = true;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => closing = true,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            for index in 0..players.len() {
                if let Some(event) = players[index].subscription.try_recv() {
                    handle(
                        Input::Event(index, event),
                        &mut players,
                        &mut encoder,
                        &mut batch,
                        &mut stats,
                    );
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if let Err(error) = write_all(&mut socket, &mut batch, stall_timeout, &mut stats).await {
            break Err(error);
        }
        if closing {
            let _ = socket.shutdown().await;
            break Ok(());
        }
    };
    stats.frames_dropped += players
        .iter()
        .map(|p| p.subscription.dropped_frames())
        .sum::<u64>();
    (stats, result)
}

/// Waits for a command or an event of any played stream.
async fn next_input(commands: &mut mpsc::Receiver<WriterCommand>, players: &mut [Player]) -> Input {
    // Almost every connection plays at most one stream: wait without allocating.
    match players {
        [] => return Input::Command(commands.recv().await),
        [player] => {
            return tokio::select! {
                biased;
                command = commands.recv() => Input::Command(command),
                event = player.subscription.recv() => Input::Event(0, event),
            }
        }
        _ => {}
    }
    // The receive futures must live for the whole wait: each registers for a wake-up.
    type EventFuture<'a> = Pin<Box<dyn Future<Output = (usize, SubscriptionEvent)> + Send + 'a>>;
    let mut events: Vec<EventFuture<'_>> = players
        .iter_mut()
        .enumerate()
        .map(|(index, player)| -> EventFuture<'_> {
            Box::pin(async move { (index, player.subscription.recv().await) })
        })
        .collect();
    poll_fn(|cx| {
        if let Poll::Ready(command) = commands.poll_recv(cx) {
            return Poll::Ready(Input::Command(command));
        }
        for event in events.iter_mut() {
            if let Poll::Ready((index, event)) = event.as_mut().poll(cx) {
                return Poll::Ready(Input::Event(index, event));
            }
        }
        Poll::Pending
    })
    .await
}

/// Encodes what `input` asks for; true when the writer should finish.
fn handle(
    input: Input,
    players: &mut Vec<Player>,
    encoder: &mut ChunkEncoder,
    batch: &mut WriteBatch,
    stats: &mut WriterStats,
) -> bool {
    match input {
        Input::Command(None) => return true,
        Input::Command(Some(command)) => match command {
            WriterCommand::Messages(messages) => {
                for message in &messages {
                    encoder.encode(message, batch);
                }
            }
            WriterCommand::Play {
                stream_id,
                name,
                subscription,
            } => {
                retire(players, stream_id, stats);
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
        },
        Input::Event(index, event) => {
            let Some(player) = players.get(index) else {
                return false;
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
                SubscriptionEvent::Metadata(body) => {
                    Some(build::data_from_body(stream_id, 0, body))
                }
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
                encoder.encode(&message, batch);
            }
        }
    }
    false
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

/// Writes the whole batch; the socket must take something within `stall_timeout` whenever it
/// is full. Tries the write first (the common case: the socket has room), and waits for room
/// only when it has none, so a frame costs no allocation and no timer.
async fn write_all(
    socket: &mut OwnedWriteHalf,
    batch: &mut WriteBatch,
    stall_timeout: Duration,
    stats: &mut WriterStats,
) -> std::io::Result<()> {
    while !batch.is_empty() {
        // In a block of its own: the array must not live across the wait below, or every
        // writer's future would carry it (1 KiB per connection).
        let attempt = {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let count = batch.io_slices(&mut slices);
            // The system call first, straight on the socket: asking tokio whether the socket
            // is writable costs a cache miss per player per frame. Only a full socket goes
            // through tokio (below), which then learns that it must wait.
            let stream: &tokio::net::TcpStream = socket.as_ref();
            match socket2::SockRef::from(stream).send_vectored(&slices[..count]) {
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    socket.try_write_vectored(&slices[..count])
                }
                other => other,
            }
        };
        let written = match attempt {
            Ok(written) => written,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if tokio::time::timeout(stall_timeout, socket.writable())
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
                continue;
            }
            Err(error) => return Err(error),
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        stats.bytes_written += written as u64;
        batch.advance(written);
    }
    Ok(())
}

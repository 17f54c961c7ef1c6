//! A tap between the publisher and the server under test: it forwards every byte both ways
//! and writes down when each audio and video message has wholly passed towards the server.
//!
//! Why: the bench's lag figures are measured against RTMP timestamps, so they carry the
//! publisher's own lateness (ffmpeg's muxer sends audio up to 33 ms late) and they are
//! relative to each player's best frame, which a server can move: one that sends the second
//! frame of a bunch of audio a few milliseconds after the first (nginx-rtmp does, about 6 ms)
//! makes its best frames later and so its lag figures smaller. The time a frame spends in the
//! server, its arrival at a player less its passage through this tap, has neither problem.
//!
//! The tap runs in the bench's process on plain threads (one publisher, a few megabits); the
//! load client, another process, reads the passages from a file at the end of its window and
//! matches them to what its players received by kind and timestamp. Both sides use the wall
//! clock, the one clock two processes share.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, LineWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ascend_rtmp::protocol::ProtocolCore;
use ascend_rtmp::{ChunkLimits, Message};

/// Bytes of the client's handshake (C0, C1, C2) before its first chunk.
const CLIENT_HANDSHAKE_BYTES: usize = 1 + 1536 + 1536;

/// A running tap; dropping it stops accepting (forwarding ends with the connections).
pub struct Tap {
    /// Where the publisher connects (127.0.0.1).
    pub port: u16,
    /// Where the passages are written, one line each: `audio|video timestamp wall_us`.
    pub log: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Microseconds since the Unix epoch.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Starts a tap on a free loopback port that forwards to `server_port` and writes passages
/// to `log`.
pub fn start(server_port: u16, log: &Path) -> Result<Tap> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the tap")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let writer = Arc::new(Mutex::new(LineWriter::new(file)));
    let stop = Arc::new(AtomicBool::new(false));
    let accepting = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !accepting.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((publisher, _)) => {
                    let writer = Arc::clone(&writer);
                    std::thread::spawn(move || {
                        // A failed forward ends with the connection; the publisher sees it.
                        let _ = forward(publisher, server_port, &writer);
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return,
            }
        }
    });
    Ok(Tap {
        port,
        log: log.to_path_buf(),
        stop,
    })
}

fn forward(
    mut publisher: TcpStream,
    server_port: u16,
    writer: &Mutex<LineWriter<std::fs::File>>,
) -> Result<()> {
    publisher.set_nonblocking(false)?;
    let mut server = TcpStream::connect(("127.0.0.1", server_port))?;
    server.set_nodelay(true)?;
    let (mut from_server, mut to_publisher) = (server.try_clone()?, publisher.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_publisher);
        let _ = to_publisher.shutdown(Shutdown::Write);
    });
    let mut recorder = PassageRecorder::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = publisher.read(&mut buffer)?;
        if read == 0 {
            let _ = server.shutdown(Shutdown::Write);
            return Ok(());
        }
        server.write_all(&buffer[..read])?;
        let now = wall_us();
        let passed = recorder.push(&buffer[..read]);
        if !passed.is_empty() {
            let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
            for (audio, timestamp) in passed {
                let kind = if audio { "audio" } else { "video" };
                writeln!(writer, "{kind} {timestamp} {now}")?;
            }
        }
    }
}

/// Finds the audio and video messages in a publisher's bytes, with the protocol layer the
/// server and client sessions read with (chunk sizes, aborts, aggregates).
struct PassageRecorder {
    handshake_left: usize,
    protocol: ProtocolCore,
    /// The chunk stream could not be read: stop looking (the bytes are still forwarded).
    broken: bool,
}

impl Default for PassageRecorder {
    fn default() -> Self {
        PassageRecorder {
            handshake_left: CLIENT_HANDSHAKE_BYTES,
            protocol: ProtocolCore::new(ChunkLimits::default()),
            broken: false,
        }
    }
}

impl PassageRecorder {
    /// Takes the next bytes; returns (audio, timestamp) of each audio or video message they
    /// completed.
    fn push(&mut self, mut bytes: &[u8]) -> Vec<(bool, u32)> {
        let skipped = self.handshake_left.min(bytes.len());
        self.handshake_left -= skipped;
        bytes = &bytes[skipped..];
        let mut passed = Vec::new();
        if self.broken || bytes.is_empty() {
            return passed;
        }
        self.protocol.receive_bytes(bytes);
        // The tap only listens: what the protocol layer would answer (acknowledgements,
        // pings) is the server's to send.
        drop(self.protocol.take_outgoing());
        loop {
            match self.protocol.next_incoming() {
                Ok(Some(incoming)) => match incoming.message {
                    Ok(Message::Audio(_)) => passed.push((true, incoming.timestamp)),
                    Ok(Message::Video(_)) => passed.push((false, incoming.timestamp)),
                    _ => {}
                },
                Ok(None) => return passed,
                Err(_) => {
                    self.broken = true;
                    return passed;
                }
            }
        }
    }
}

/// Reads a tap's log: (audio, timestamp) → when it first passed, µs since the Unix epoch.
pub fn read_passages(log: &Path) -> Result<HashMap<(bool, u32), u64>> {
    let file = std::fs::File::open(log).with_context(|| format!("opening {}", log.display()))?;
    let mut passages = HashMap::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let (Some(kind), Some(timestamp), Some(at)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(timestamp), Ok(at)) = (timestamp.parse::<u32>(), at.parse::<u64>()) else {
            continue;
        };
        passages.entry((kind == "audio", timestamp)).or_insert(at);
    }
    Ok(passages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ascend_rtmp::{ChunkEncoder, RawMessage, WriteBatch};
    use bytes::Bytes;

    fn message(type_id: u8, timestamp: u32, payload: Vec<u8>) -> RawMessage {
        RawMessage {
            chunk_stream_id: if type_id == 1 {
                2
            } else {
                4 + u32::from(type_id)
            },
            type_id,
            stream_id: u32::from(type_id != 1),
            timestamp,
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn the_recorder_finds_audio_and_video_after_the_handshake_and_a_chunk_size_change() {
        let mut encoder = ChunkEncoder::new();
        let mut batch = WriteBatch::new();
        batch.push_raw(&[3u8; CLIENT_HANDSHAKE_BYTES]);
        encoder.encode(&message(9, 0, vec![0x17; 300]), &mut batch);
        // Set Chunk Size: the encoder switches to 4096 itself, the recorder must follow.
        encoder.encode(&message(1, 0, 4096u32.to_be_bytes().to_vec()), &mut batch);
        assert_eq!(encoder.chunk_size(), 4096);
        encoder.encode(&message(8, 23, vec![0xaf; 1000]), &mut batch);
        encoder.encode(&message(9, 33, vec![0x27; 5000]), &mut batch);
        let bytes = batch.to_vec();

        let mut recorder = PassageRecorder::default();
        let mut passed = Vec::new();
        // Fed in uneven pieces, as a socket would.
        for piece in bytes.chunks(777) {
            passed.extend(recorder.push(piece));
        }
        assert!(!recorder.broken);
        assert_eq!(passed, [(false, 0), (true, 23), (false, 33)]);
    }
}

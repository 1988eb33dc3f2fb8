//! One stream connection of `cefwire sink` (plain TCP or TLS over a
//! non-blocking mio socket) and the frame it has in progress. It reads
//! until the socket would block (or its share of a turn is used), splits
//! what it read into messages with [`deframe`] and hands the counts to
//! [`Receiving::account`]. It keeps only the bytes after the last complete
//! frame, so an idle connection holds no buffer and a busy one at most
//! one frame (`--max-message-bytes`) plus one read.
//!
//! It does not accept, register or close sockets: the event loop
//! (`event_loop.rs`) owns the poll and the connection table.

use super::{Receiving, message_hash};
use crate::syslog::frame::{DeframeError, Framing, deframe};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;

/// Bytes one connection may read in one turn of the loop before the others
/// get theirs (a flooding sender cannot starve the rest).
const READ_SHARE: usize = 1 << 20;

/// A frame-in-progress buffer larger than this is given back once the
/// frame is done (a burst of long frames does not pin memory).
const KEEP_CAPACITY: usize = 64 * 1024;

/// What a turn left the connection as.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Turn {
    /// Read until the socket would block: wait for the next event.
    Idle,
    /// Stopped after its share with more to read: serve again next turn.
    More,
    /// The peer closed, or the stream broke: close it.
    Closed,
}

/// A stream that cannot go on: the event loop closes it.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A frame over `--max-message-bytes` (or a line that never ends):
    /// the stream cannot be split any further.
    #[error("{0}")]
    Flood(DeframeError),
    #[error("writing --out failed")]
    Out,
}

pub(super) struct Connection {
    pub stream: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    frames: PartialFrame,
}

impl Connection {
    pub fn new(stream: TcpStream, tls: Option<rustls::ServerConnection>) -> Self {
        Self { stream, tls: tls.map(Box::new), frames: PartialFrame::default() }
    }

    /// Reads what the socket holds (up to [`READ_SHARE`]), accounts for
    /// the messages and, for TLS, writes the handshake records rustls has.
    pub fn serve(
        &mut self,
        shared: &Receiving,
        scratch: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<Turn, ConnectionError> {
        let mut read = 0;
        let turn = loop {
            if read >= READ_SHARE {
                break Turn::More;
            }
            let n = match self.read(scratch) {
                Ok(0) => break Turn::Closed,
                Ok(n) => n,
                Err(ConnectionError::Io(err)) if would_block(&err) => break Turn::Idle,
                Err(ConnectionError::Io(err)) if interrupted(&err) => continue,
                Err(err) => {
                    self.flush_tls();
                    return Err(err);
                }
            };
            read += n;
            self.take(&scratch[..n], shared, out)?;
        };
        if turn == Turn::Closed && !self.frames.is_empty() {
            // The connection ended inside a frame.
            shared.counters.framing_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.flush_tls();
        Ok(turn)
    }

    /// Plaintext into `buf`: `Ok(0)` at the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(self.stream.read(buf)?);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(err) if would_block(&err) => {}
                // Closed without close_notify after read_tls saw the end.
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err.into()),
            }
            if tls.read_tls(&mut self.stream)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets()?;
            // Handshake answers go out at once: the client waits for them.
            write_tls_records(tls, &mut self.stream);
        }
    }

    /// Writes what rustls holds (handshake records, alerts); the rest
    /// goes out on the next `WRITABLE` event.
    fn flush_tls(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            write_tls_records(tls, &mut self.stream);
        }
    }

    /// Splits `data` (after the frame in progress) into messages and
    /// accounts for them.
    fn take(&mut self, data: &[u8], shared: &Receiving, out: &mut Vec<u8>) -> Result<(), ConnectionError> {
        let keep = shared.out.is_some();
        let (mut messages, mut hash) = (0u64, 0u64);
        let result = self.frames.take(data, shared.framing, shared.max_message_bytes, |message| {
            messages += 1;
            hash = hash.wrapping_add(message_hash(message));
            if keep {
                out.extend_from_slice(message);
                out.push(b'\n');
            }
        });
        let bad_counts = match result {
            Ok(skipped) => skipped,
            Err(err) => {
                // Count what came before the flood, then close.
                shared.counters.framing_errors.fetch_add(1, Ordering::Relaxed);
                shared.account(messages, data.len() as u64, hash, out).map_err(|_| ConnectionError::Out)?;
                return Err(ConnectionError::Flood(err));
            }
        };
        if bad_counts > 0 {
            shared.counters.framing_errors.fetch_add(bad_counts, Ordering::Relaxed);
        }
        shared.account(messages, data.len() as u64, hash, out).map_err(|_| ConnectionError::Out)
    }
}

/// The bytes of a stream after its last complete frame.
#[derive(Default)]
pub(super) struct PartialFrame {
    bytes: Vec<u8>,
}

impl PartialFrame {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Calls `each` for every message completed by `data` and keeps the
    /// rest. A bad octet count is skipped up to the next line (counted in
    /// the returned number); a frame over `max_len` is an error, after
    /// which the stream cannot be split.
    pub fn take(
        &mut self,
        data: &[u8],
        framing: Option<Framing>,
        max_len: usize,
        mut each: impl FnMut(&[u8]),
    ) -> Result<u64, DeframeError> {
        let mut bad_counts = 0;
        if self.bytes.is_empty() {
            // The usual case: frames straight from the read buffer.
            let used = deframe_skipping_bad_counts(data, framing, max_len, &mut each, &mut bad_counts)?;
            self.bytes.extend_from_slice(&data[used..]);
        } else {
            self.bytes.extend_from_slice(data);
            let used = deframe_skipping_bad_counts(&self.bytes, framing, max_len, &mut each, &mut bad_counts)?;
            self.bytes.drain(..used);
        }
        if self.bytes.is_empty() && self.bytes.capacity() > KEEP_CAPACITY {
            self.bytes = Vec::new();
        } else if self.bytes.capacity() > KEEP_CAPACITY.max(self.bytes.len() * 2) {
            self.bytes.shrink_to(self.bytes.len());
        }
        Ok(bad_counts)
    }
}

/// [`deframe`] over `data` as far as it goes: bytes consumed.
fn deframe_skipping_bad_counts(
    data: &[u8],
    framing: Option<Framing>,
    max_len: usize,
    each: &mut impl FnMut(&[u8]),
    bad_counts: &mut u64,
) -> Result<usize, DeframeError> {
    let mut at = 0;
    loop {
        match deframe(&data[at..], framing, max_len, &mut *each) {
            Ok(used) => return Ok(at + used),
            Err((_, err @ DeframeError::TooLong(..))) => return Err(err),
            Err((bad, DeframeError::BadCount(_))) => {
                // Skip to the next line and try again from there.
                *bad_counts += 1;
                let from = at + bad;
                at = match memchr::memchr(b'\n', &data[from..]) {
                    Some(p) => from + p + 1,
                    None => data.len(),
                };
            }
        }
    }
}

/// Writes the TLS records rustls holds until the socket would block (the
/// `WRITABLE` event brings the rest) or fails (the next read reports it).
fn write_tls_records(tls: &mut rustls::ServerConnection, stream: &mut TcpStream) {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(err) if interrupted(&err) => {}
            Err(_) => return,
        }
    }
    let _ = stream.flush();
}

fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of octet-counted and newline frames (some starting with
    /// digits), as a sender mixing both would write it.
    fn mixed_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut stream = Vec::new();
        let mut messages = Vec::new();
        for i in 0..40 {
            let message = match i % 4 {
                0 => format!("<134>octet {i} with 12 34 digits"),
                1 => format!("2017-11-22T17:50:{i:02}.000Z host CEF:0|newline {i}"),
                2 => format!("<134>newline {i}\r"),
                _ => format!("{i}{i}-starts with digits, no space after them"),
            };
            let framing = if i % 4 == 0 { Framing::OctetCounting } else { Framing::NewLine };
            framing.frame(message.as_bytes(), &mut stream);
            messages.push(message.trim_end_matches('\r').as_bytes().to_vec());
        }
        (stream, messages)
    }

    fn split_at(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, PartialFrame) {
        let mut frames = PartialFrame::default();
        let mut got = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([stream.len()].iter()) {
            let skipped = frames.take(&stream[from..cut], None, 1 << 16, |m| got.push(m.to_vec())).unwrap();
            assert_eq!(skipped, 0);
            from = cut;
        }
        (got, frames)
    }

    #[test]
    fn a_stream_split_at_any_byte_gives_the_same_messages() {
        let (stream, expected) = mixed_stream();
        // One byte per read.
        let (got, rest) = split_at(&stream, &(1..stream.len()).collect::<Vec<_>>());
        assert_eq!(got, expected);
        assert!(rest.is_empty());
        // Every single cut, and every cut followed by one 7 bytes later.
        for cut in 1..stream.len() {
            let (got, rest) = split_at(&stream, &[cut]);
            assert_eq!(got, expected, "cut at {cut}");
            assert!(rest.is_empty());
            if cut + 7 < stream.len() {
                assert_eq!(split_at(&stream, &[cut, cut + 7]).0, expected, "cuts at {cut}, {}", cut + 7);
            }
        }
    }

    #[test]
    fn only_the_frame_in_progress_is_kept() {
        let mut frames = PartialFrame::default();
        let mut count = 0;
        let long = vec![b'x'; 60_000];
        for _ in 0..10 {
            frames.take(&long, None, 1 << 20, |_| count += 1).unwrap();
        }
        assert!(frames.bytes.len() == 600_000, "a frame in progress is kept whole");
        frames.take(b"\n<134>next", None, 1 << 20, |_| count += 1).unwrap();
        assert_eq!(count, 1);
        assert_eq!(frames.bytes, b"<134>next");
        assert!(frames.bytes.capacity() <= KEEP_CAPACITY, "capacity {} given back", frames.bytes.capacity());
        frames.take(b"\n", None, 1 << 20, |_| count += 1).unwrap();
        assert_eq!((count, frames.bytes.len()), (2, 0));
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_and_a_bad_count_is_skipped() {
        let mut frames = PartialFrame::default();
        let err = frames.take(&[b'x'; 5000], None, 4096, |_| ()).unwrap_err();
        assert_eq!(err, DeframeError::TooLong(5000, 4096));
        let mut frames = PartialFrame::default();
        let mut got = Vec::new();
        let skipped = frames
            .take(b"12x4 garbage\n5 hello", Some(Framing::OctetCounting), 4096, |m| got.push(m.to_vec()))
            .unwrap();
        assert_eq!((skipped, got), (1, vec![b"hello".to_vec()]));
    }
}

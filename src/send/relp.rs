//! RELP, the Reliable Event Logging Protocol (rsyslog's `imrelp`/`omrelp`,
//! librelp): the frames a client writes, the parser of what a server
//! answers, and the client's window of un-acknowledged messages.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The client opens a
//! session with `open` and its offers (`relp_version`, `commands=syslog`),
//! waits for `rsp` `200`, then sends each message as a `syslog` command with
//! the next transaction number (1 to 999,999,999, then 1 again); the server
//! answers every command with an `rsp` carrying the same number, in order,
//! `200 OK` or an error (`500 …`). At most `window` commands are
//! un-answered at a time. The server may announce its end with the hint
//! `0 serverclose 0`; the client ends with `close`.
//!
//! This module owns the bytes of the protocol and the window's
//! bookkeeping; it does no I/O and knows nothing of sockets or batches
//! beyond a position per message (the writer's business). Nothing here
//! allocates after construction.

use std::collections::VecDeque;

/// librelp's limit on a message (`maxDataSize` of `imrelp`, 128 KiB):
/// longer ones make the server end the session, so the sender cuts them.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// Un-acknowledged messages allowed by default. librelp's own default is
/// 128; on loopback and LAN links that caps throughput at a few round
/// trips' worth of messages, while 1024 (≈ 300 KiB of CEF) keeps a 1 Gbit/s
/// link with a 2 ms round trip full. It is also the most a receiver that
/// dies without answering can get twice.
pub const DEFAULT_WINDOW: usize = 1024;

/// Highest transaction number; the next one is 1 (0 is for hints).
const MAX_TXNR: u32 = 999_999_999;

/// Longest answer accepted from a server (answers are short: a status,
/// a text and, for `open`, the offers). Longer means a broken peer.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The offers of our `open` command.
const OPEN_OFFERS: &[u8] =
    concat!("relp_version=0\nrelp_software=cefwire,", env!("CARGO_PKG_VERSION"), "\ncommands=syslog").as_bytes();

/// Appends one frame: `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
fn encode(out: &mut Vec<u8>, txnr: u32, command: &[u8], data: &[u8]) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(txnr).as_bytes());
    out.push(b' ');
    out.extend_from_slice(command);
    out.push(b' ');
    out.extend_from_slice(digits.format(data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// Appends the `open` command with our offers.
pub fn encode_open(out: &mut Vec<u8>, txnr: u32) {
    encode(out, txnr, b"open", OPEN_OFFERS);
}

/// Appends a `syslog` command carrying `message`.
pub fn encode_syslog(out: &mut Vec<u8>, txnr: u32, message: &[u8]) {
    encode(out, txnr, b"syslog", message);
}

/// Appends the `close` command.
pub fn encode_close(out: &mut Vec<u8>, txnr: u32) {
    encode(out, txnr, b"close", b"");
}

/// Bytes a `syslog` frame adds around a message (for sizing buffers).
pub const SYSLOG_FRAME_OVERHEAD: usize = 9 + 1 + 6 + 1 + 9 + 1 + 1;

/// What a server sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// An answer to command `txnr`: a status (200 is success), its text,
    /// and what follows the first line (the offers, for `open`).
    Response { txnr: u32, status: u16, text: &'a [u8], data: &'a [u8] },
    /// The hint that the server is closing the session.
    ServerClose,
    /// Any other command: RELP servers send none, a client ignores them.
    Other { txnr: u32, command: &'a [u8] },
}

/// Why what a server sent is not RELP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelpError {
    #[error("bad transaction number")]
    BadTxnr,
    #[error("bad command name")]
    BadCommand,
    #[error("bad data length")]
    BadLength,
    #[error("answer longer than {MAX_RESPONSE_BYTES} bytes")]
    TooLong,
    #[error("frame does not end with LF")]
    NoTrailer,
    #[error("response without a 3-digit status")]
    BadStatus,
}

/// Reads `1*9DIGIT` from the front of `bytes`, ended by a space (or, with
/// `lf_ends`, an LF). `Ok(None)`: more bytes are needed.
fn number(bytes: &[u8], lf_ends: bool, error: RelpError) -> Result<Option<(u32, usize)>, RelpError> {
    let mut value: u32 = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'0'..=b'9' if at < 9 => value = value * 10 + u32::from(byte - b'0'),
            b' ' if at > 0 => return Ok(Some((value, at))),
            b'\n' if at > 0 && lf_ends => return Ok(Some((value, at))),
            _ => return Err(error),
        }
    }
    Ok(None)
}

/// Parses the frame at the front of `bytes`. `Ok(None)` when it is not
/// complete yet; otherwise the frame and how many bytes it took.
pub fn parse_frame(bytes: &[u8]) -> Result<Option<(ServerFrame<'_>, usize)>, RelpError> {
    let Some((txnr, mut at)) = number(bytes, false, RelpError::BadTxnr)? else { return Ok(None) };
    at += 1;
    let command_start = at;
    loop {
        match bytes.get(at) {
            None => return Ok(None),
            Some(b' ') if at > command_start => break,
            Some(byte) if byte.is_ascii_alphabetic() && at - command_start < 32 => at += 1,
            Some(_) => return Err(RelpError::BadCommand),
        }
    }
    let command = &bytes[command_start..at];
    at += 1;
    let Some((len, used)) = number(&bytes[at..], true, RelpError::BadLength)? else { return Ok(None) };
    let len = len as usize;
    if len > MAX_RESPONSE_BYTES {
        return Err(RelpError::TooLong);
    }
    at += used;
    // A frame without data may or may not have the space before the LF.
    if bytes.get(at) == Some(&b' ') {
        at += 1;
    } else if len > 0 {
        return if at < bytes.len() { Err(RelpError::BadLength) } else { Ok(None) };
    }
    let Some(data) = bytes.get(at..at + len) else { return Ok(None) };
    at += len;
    match bytes.get(at) {
        None => return Ok(None),
        Some(b'\n') => at += 1,
        Some(_) => return Err(RelpError::NoTrailer),
    }
    let frame = match command {
        b"rsp" => {
            let (status, rest) = match data.split_first_chunk::<3>() {
                Some((digits, rest)) if digits.iter().all(u8::is_ascii_digit) => {
                    (digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')), rest)
                }
                // An empty answer (what librelp sends to `close`) is a success.
                None if data.is_empty() => (200, data),
                _ => return Err(RelpError::BadStatus),
            };
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let (text, data) = match memchr::memchr(b'\n', rest) {
                Some(lf) => (&rest[..lf], &rest[lf + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            ServerFrame::Response { txnr, status, text, data }
        }
        b"serverclose" => ServerFrame::ServerClose,
        _ => ServerFrame::Other { txnr, command },
    };
    Ok(Some((frame, at)))
}

/// Whether the offers of the server's answer to `open` let us send
/// `syslog` commands (a server that does not list it must not get them).
pub fn offers_allow_syslog(offers: &[u8]) -> bool {
    offers.split(|&b| b == b'\n').any(|offer| {
        offer.strip_prefix(b"commands=").is_some_and(|values| values.split(|&b| b == b',').any(|v| v == b"syslog"))
    })
}

/// Where a message is, for the writer: batch sequence number and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageAt {
    pub seq: u64,
    pub index: usize,
}

/// The client's side of one session: transaction numbers and the window
/// of messages sent and not answered yet, oldest first.
#[derive(Debug)]
pub struct RelpWindow {
    limit: usize,
    next_txnr: u32,
    unanswered: VecDeque<(u32, MessageAt)>,
}

/// What an answer meant for the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// The oldest message was acknowledged.
    Message(MessageAt),
    /// The answer is for a command that is not a message (`open`, `close`).
    Command(u32),
}

impl RelpWindow {
    /// A window of at most `limit` (≥ 1) un-answered messages.
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self { limit, next_txnr: 1, unanswered: VecDeque::with_capacity(limit) }
    }

    /// A new session starts at transaction 1 with nothing outstanding.
    pub fn reset(&mut self) {
        self.next_txnr = 1;
        self.unanswered.clear();
    }

    /// The next transaction number, for a command that is not a message.
    pub fn take_txnr(&mut self) -> u32 {
        let txnr = self.next_txnr;
        self.next_txnr = if txnr >= MAX_TXNR { 1 } else { txnr + 1 };
        txnr
    }

    pub fn is_full(&self) -> bool {
        self.unanswered.len() >= self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.unanswered.is_empty()
    }

    pub fn len(&self) -> usize {
        self.unanswered.len()
    }

    /// The oldest message not acknowledged yet.
    pub fn oldest(&self) -> Option<MessageAt> {
        self.unanswered.front().map(|&(_, at)| at)
    }

    /// Takes a transaction number for the message at `at` and remembers it
    /// until answered. The caller checks [`is_full`](Self::is_full) first.
    pub fn send(&mut self, at: MessageAt) -> u32 {
        let txnr = self.take_txnr();
        self.unanswered.push_back((txnr, at));
        txnr
    }

    /// A successful answer to `txnr`. Answers come in order, so it must be
    /// the oldest message (or a command that is not a message); anything
    /// else is a protocol error (`None`).
    pub fn answered(&mut self, txnr: u32) -> Option<Answered> {
        match self.unanswered.front() {
            Some(&(oldest, at)) if oldest == txnr => {
                self.unanswered.pop_front();
                Some(Answered::Message(at))
            }
            _ if self.unanswered.iter().any(|&(t, _)| t == txnr) => None,
            _ => Some(Answered::Command(txnr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_are_written_as_librelp_reads_them() {
        let mut out = Vec::new();
        encode_syslog(&mut out, 7, b"<134>hello");
        encode_close(&mut out, 8);
        assert_eq!(out, b"7 syslog 10 <134>hello\n8 close 0\n");
        out.clear();
        encode_open(&mut out, 1);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("1 open ") && text.contains("relp_version=0\n") && text.ends_with("commands=syslog\n")
        );
    }

    #[test]
    fn answers_from_imrelp_parse() {
        let offers = "200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog";
        let open = format!("1 rsp {} {offers}\n", offers.len()).into_bytes();
        let (frame, used) = parse_frame(&open).unwrap().unwrap();
        assert_eq!(used, open.len());
        let ServerFrame::Response { txnr, status, text, data } = frame else { panic!("{frame:?}") };
        assert_eq!((txnr, status, text), (1, 200, &b"OK"[..]));
        assert!(offers_allow_syslog(data));
        assert!(!offers_allow_syslog(b"relp_version=0\ncommands=eventlog"));

        assert_eq!(
            parse_frame(b"12 rsp 6 200 OK\nrest").unwrap(),
            Some((ServerFrame::Response { txnr: 12, status: 200, text: b"OK", data: b"" }, 16))
        );
        assert_eq!(
            parse_frame(b"3 rsp 20 500 command disabled\n").unwrap().unwrap().0,
            ServerFrame::Response { txnr: 3, status: 500, text: b"command disabled", data: b"" }
        );
        assert_eq!(parse_frame(b"0 serverclose 0\n").unwrap(), Some((ServerFrame::ServerClose, 16)));
        assert_eq!(
            parse_frame(b"9 rsp 0\n").unwrap().unwrap().0,
            ServerFrame::Response { txnr: 9, status: 200, text: b"", data: b"" }
        );
    }

    #[test]
    fn incomplete_frames_wait_and_broken_ones_fail() {
        let whole = b"12 rsp 6 200 OK\n";
        for cut in 0..whole.len() {
            assert_eq!(parse_frame(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse_frame(b"x rsp 6 200 OK\n"), Err(RelpError::BadTxnr));
        assert_eq!(parse_frame(b"1234567890 rsp"), Err(RelpError::BadTxnr));
        assert_eq!(parse_frame(b"1 r5p 6"), Err(RelpError::BadCommand));
        assert_eq!(parse_frame(b"1 rsp 6x"), Err(RelpError::BadLength));
        assert_eq!(parse_frame(b"1 rsp 6 200 OKX"), Err(RelpError::NoTrailer));
        assert_eq!(parse_frame(b"1 rsp 999999999 "), Err(RelpError::TooLong));
        assert_eq!(parse_frame(b"1 rsp 2 OK\n"), Err(RelpError::BadStatus));
    }

    #[test]
    fn the_window_answers_in_order_and_wraps_transaction_numbers() {
        let mut window = RelpWindow::new(2);
        let open = window.take_txnr();
        assert_eq!(window.answered(open), Some(Answered::Command(1)));
        let a = window.send(MessageAt { seq: 0, index: 0 });
        let b = window.send(MessageAt { seq: 0, index: 1 });
        assert!(window.is_full());
        assert_eq!(window.answered(b), None, "answers come in order");
        assert_eq!(window.answered(a), Some(Answered::Message(MessageAt { seq: 0, index: 0 })));
        assert_eq!(window.oldest(), Some(MessageAt { seq: 0, index: 1 }));
        window.next_txnr = MAX_TXNR;
        assert_eq!(window.take_txnr(), MAX_TXNR);
        assert_eq!(window.take_txnr(), 1);
        window.reset();
        assert!(window.is_empty() && window.take_txnr() == 1);
    }

    proptest! {
        /// Any frame we write parses back (as a server's command), whole or
        /// fed byte by byte.
        #[test]
        fn written_frames_parse_back(txnr in 1u32..=MAX_TXNR, message in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            encode_syslog(&mut out, txnr, &message);
            let (frame, used) = parse_frame(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(frame, ServerFrame::Other { txnr, command: b"syslog" });
            for cut in 0..out.len() {
                prop_assert_eq!(parse_frame(&out[..cut]).unwrap(), None);
            }
        }

        /// Arbitrary bytes never panic, and a frame never claims more bytes
        /// than it was given.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((_, used))) = parse_frame(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}

//! The resend after a broken syslog connection. The window holds the last
//! messages handed to syslog, so they can be sent again when the
//! connection is re-established (the receiver that went away may have lost
//! them); its file (`resend.bin` in the state directory) is written as soon
//! as a break is noticed, so a stop or crash before the reconnection does
//! not lose them, and the next start sends them first.
//!
//! It owns the window (two reused generations), the file format (a magic
//! line, the payload's length and its SHA-256, then the length-prefixed
//! messages: a file that is not exactly that — truncated, zeroed, foreign
//! — is refused and set aside, never sent) and the bookkeeping of a break
//! ([`Resender`]). It does not decide when the loop
//! waits for syslog, and never touches the checkpoint.

use super::logfile::AgentLog;
use super::outage::Outage;
use super::state::write_atomically;
use crate::records::MessageSink;
use crate::send::SyslogSender;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the saved resend window inside the state directory.
pub const RESEND_FILE: &str = "resend.bin";

/// The last messages sent: two generations of length-prefixed messages,
/// each at most half the window, reused (no allocation once both have
/// grown).
pub struct ResendWindow {
    half: usize,
    current: Vec<u8>,
    previous: Vec<u8>,
    /// Messages pushed so far (tells whether a saved copy is stale).
    pushed: u64,
}

impl ResendWindow {
    /// A window of about `bytes` (at least 2 KiB). Both generations are
    /// reserved at once, so pushing never allocates (unless one message
    /// alone is larger than half the window).
    pub fn new(bytes: usize) -> Self {
        let half = (bytes / 2).max(1024);
        Self { half, current: Vec::with_capacity(half), previous: Vec::with_capacity(half), pushed: 0 }
    }

    /// Keeps `message`, forgetting the older generation when the current
    /// one is full.
    pub fn push(&mut self, message: &[u8]) {
        if self.current.len() + message.len() + 4 > self.half {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.extend_from_slice(&(message.len() as u32).to_le_bytes());
        self.current.extend_from_slice(message);
        self.pushed += 1;
    }

    /// Messages pushed since the window was made.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    pub fn is_empty(&self) -> bool {
        self.previous.is_empty() && self.current.is_empty()
    }

    /// Both generations, oldest first, in the file format: each message
    /// as a little-endian `u32` length and its bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        [&self.previous[..], &self.current[..]].concat()
    }

    /// The messages kept, oldest first.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        [&self.previous, &self.current].into_iter().flat_map(|generation| saved_messages(generation))
    }
}

/// The first bytes of a resend file.
const FILE_MAGIC: &[u8] = b"cefwire resend window v1\n";

/// The resend file of `window`: [`FILE_MAGIC`], the payload's length
/// (little-endian `u64`) and SHA-256, then the payload
/// ([`ResendWindow::to_bytes`]).
pub fn encode_file(window: &ResendWindow) -> Vec<u8> {
    let payload = window.to_bytes();
    let mut file = Vec::with_capacity(FILE_MAGIC.len() + 8 + 32 + payload.len());
    file.extend_from_slice(FILE_MAGIC);
    file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    file.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &payload).as_ref());
    file.extend_from_slice(&payload);
    file
}

/// The messages of a resend file, if it is one: the magic, the length and
/// the checksum agree, and the payload is whole messages, none empty.
pub fn decode_file(file: &[u8]) -> Result<Vec<&[u8]>, String> {
    let rest = file.strip_prefix(FILE_MAGIC).ok_or("it does not start with the resend file's header")?;
    let (len, rest) = rest.split_first_chunk::<8>().ok_or("its header is cut off")?;
    let (sum, payload) = rest.split_first_chunk::<32>().ok_or("its header is cut off")?;
    if payload.len() as u64 != u64::from_le_bytes(*len) {
        return Err(format!(
            "it holds {} bytes of messages, its header says {}",
            payload.len(),
            u64::from_le_bytes(*len)
        ));
    }
    if ring::digest::digest(&ring::digest::SHA256, payload).as_ref() != sum {
        return Err("its checksum does not match its contents".to_owned());
    }
    let messages: Vec<&[u8]> = saved_messages(payload).collect();
    let used: usize = messages.iter().map(|m| m.len() + 4).sum();
    if used != payload.len() || messages.iter().any(|m| m.is_empty()) {
        return Err("its messages are not well formed".to_owned());
    }
    Ok(messages)
}

/// The messages of a saved resend window ([`ResendWindow::to_bytes`]); a
/// cut-off end is ignored.
pub fn saved_messages(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let message = tail.get(..u32::from_le_bytes(*len) as usize)?;
        rest = &tail[message.len()..];
        Some(message)
    })
}

/// The window and the bookkeeping of a broken syslog connection: save the
/// window to [`RESEND_FILE`] when a break is noticed, send it again when
/// the connection is re-established (or on the next start, from the
/// file), and remove the file once that resend is written.
pub struct Resender {
    window: ResendWindow,
    /// `STATE_DIR/resend.bin`.
    path: PathBuf,
    /// Reconnections already made good.
    reconnects_seen: u64,
    /// Sender errors already accounted for: more means a connection broke.
    errors_seen: u64,
    /// The file holds the window (as of this many pushes) for a break not
    /// yet made good.
    saved: Option<u64>,
    /// After a resend: once this many messages are written, it is done.
    written_by: Option<u64>,
    file_outage: Outage,
    /// Every destination acknowledges each message it has written (RELP)
    /// and the sender re-sends exactly the unacknowledged ones: a resend of
    /// the window would only duplicate.
    exact: bool,
}

impl Resender {
    /// A window of about `window_bytes`, saved in `state_dir`.
    pub fn new(window_bytes: usize, state_dir: &Path) -> Self {
        Self::saved_at(window_bytes, state_dir.join(RESEND_FILE))
    }

    /// A window of about `window_bytes`, saved at `path` (a second source
    /// sharing the state directory keeps its own file).
    pub fn saved_at(window_bytes: usize, path: PathBuf) -> Self {
        Self {
            window: ResendWindow::new(window_bytes),
            path,
            reconnects_seen: 0,
            errors_seen: 0,
            saved: None,
            written_by: None,
            file_outage: Outage::default(),
            exact: false,
        }
    }

    /// With destinations that acknowledge every message (RELP): breaks are
    /// made good by the sender alone (exactly the unacknowledged messages
    /// go again), so the window is neither saved nor sent again. A window a
    /// previous run saved is still sent on start.
    pub fn exact_delivery(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// The window, for the record gate to keep each message sent.
    pub fn window(&mut self) -> &mut ResendWindow {
        &mut self.window
    }

    /// On start: sends the window a previous run saved when its syslog
    /// connection broke (it stopped before it could send it again).
    pub fn send_saved(&mut self, sender: &mut SyslogSender, log: &AgentLog) {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return,
            Err(err) => {
                log.warn(&format!("cannot read {}: {err}", self.path.display()));
                return;
            }
        };
        let messages = match decode_file(&bytes) {
            Ok(messages) => messages,
            Err(why) => {
                // Never send what may be garbage; keep it for a look.
                let aside = self.path.with_extension("bin.invalid");
                let kept = match std::fs::rename(&self.path, &aside) {
                    Ok(()) => format!("moved to {}", aside.display()),
                    Err(err) => format!("could not be moved aside: {err}"),
                };
                log.error(&format!(
                    "{} is not a valid resend file ({why}); nothing of it is sent ({kept}). The previous run's last \
                     messages may be missing at the receiver if its connection broke",
                    self.path.display()
                ));
                return;
            }
        };
        for message in &messages {
            self.window.push(message);
        }
        let count = commit_copies(sender, messages.iter().copied());
        // The file stays until these are written.
        self.saved = Some(self.window.pushed());
        self.written_by = Some(sender.messages_accepted());
        log.warn(&format!(
            "syslog: the previous run's connection broke before it could send its last messages again; sent the last \
             {count} messages again (the receiver may have lost them)"
        ));
    }

    /// After the syslog connection was re-established, sends the last
    /// messages again: the receiver that went away may have lost them.
    pub fn after_reconnect(&mut self, sender: &mut SyslogSender, log: &AgentLog) {
        let reconnects = sender.report().reconnects;
        if reconnects <= self.reconnects_seen {
            return;
        }
        self.reconnects_seen = reconnects;
        if self.exact {
            log.info("syslog: the connection was re-established; the receiver acknowledges each message, so only those it had not acknowledged were sent again");
            return;
        }
        let count = commit_copies(sender, self.window.messages());
        self.written_by = Some(sender.messages_accepted());
        log.warn(&format!(
            "syslog: the connection was re-established; sent the last {count} messages again (the receiver may have lost them)"
        ));
    }

    /// When a syslog connection has broken since the window was last made
    /// good, saves the window to [`RESEND_FILE`] (again only if messages
    /// were added since): those messages are in the checkpoint already, and
    /// a stop or a crash before the reconnection would otherwise lose what
    /// the receiver lost.
    pub fn note_break(&mut self, sender: &SyslogSender, log: &AgentLog) {
        if self.exact {
            return;
        }
        let errors = sender.report().errors;
        if errors <= self.errors_seen || self.saved == Some(self.window.pushed()) {
            return;
        }
        if self.window.is_empty() {
            self.errors_seen = errors;
            return;
        }
        match write_atomically(&self.path, &encode_file(&self.window)) {
            Ok(()) => {
                self.saved = Some(self.window.pushed());
                self.file_outage.recovered();
            }
            Err(err) => {
                if self.file_outage.failed() {
                    log.error(&format!(
                        "cannot save the last messages to {} ({err}); if the agent stops before syslog is back, \
                         what the receiver lost is not sent again",
                        self.path.display()
                    ));
                }
            }
        }
    }

    /// Called with the count of messages written: once the resend after a
    /// reconnection is written, the saved window is no longer needed.
    pub fn written(&mut self, sender: &SyslogSender, written: u64, log: &AgentLog) {
        let Some(target) = self.written_by else { return };
        let report = sender.report();
        if written < target || report.reconnects > self.reconnects_seen {
            return;
        }
        self.written_by = None;
        self.errors_seen = report.errors;
        if self.saved.take().is_some()
            && let Err(err) = std::fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            log.warn(&format!("cannot remove {}: {err}", self.path.display()));
        }
    }
}

/// Hands a copy of each message to the sender; returns how many it took
/// (it stops at the first refusal: the sender is shutting down).
fn commit_copies<'m>(sender: &mut SyslogSender, messages: impl IntoIterator<Item = &'m [u8]>) -> u64 {
    let mut count = 0;
    for message in messages {
        let buffer = sender.buffer();
        let start = buffer.len();
        buffer.extend_from_slice(message);
        if sender.commit(start).is_err() {
            break;
        }
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_window_keeps_the_newest_messages() {
        let mut window = ResendWindow::new(2048);
        for n in 0..300u32 {
            window.push(format!("message {n:03}").as_bytes());
        }
        let kept: Vec<String> = window.messages().map(|m| String::from_utf8(m.to_vec()).unwrap()).collect();
        // 15 bytes a message: at least one half (1024 bytes), at most both.
        assert!((1024 / 15..=2048 / 15).contains(&kept.len()), "{}", kept.len());
        assert_eq!(kept.last().unwrap(), "message 299");
        let first: u32 = kept[0][8..].parse().unwrap();
        let expected: Vec<String> = (first..300).map(|n| format!("message {n:03}")).collect();
        assert_eq!(kept, expected, "consecutive, oldest first");
        assert_eq!(window.pushed(), 300);
    }

    #[test]
    fn the_file_reads_back_and_anything_else_is_refused() {
        let mut window = ResendWindow::new(4096);
        for n in 0..100u32 {
            window.push(format!("<134>message {n:03}").as_bytes());
        }
        let file = encode_file(&window);
        let kept: Vec<&[u8]> = window.messages().collect();
        assert_eq!(decode_file(&file).unwrap(), kept);
        let refused = |bytes: &[u8]| decode_file(bytes).unwrap_err();
        assert!(refused(&vec![0; 1 << 20]).contains("header"), "a megabyte of zeros");
        assert!(refused(b"<134>2026-12-05T00:00:00Z host CEF:0|...\n").contains("header"), "arbitrary bytes");
        assert!(refused(&file[..file.len() - 1]).contains("its header says"), "cut off");
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(refused(&flipped).contains("checksum"), "one bit changed");
        // A payload of empty messages with a valid header and checksum.
        let zeros = vec![0u8; 64];
        let mut forged = FILE_MAGIC.to_vec();
        forged.extend_from_slice(&(zeros.len() as u64).to_le_bytes());
        forged.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &zeros).as_ref());
        forged.extend_from_slice(&zeros);
        assert!(refused(&forged).contains("not well formed"), "empty messages");
    }

    #[test]
    fn saved_window_reads_back_and_ignores_a_cut_off_end() {
        let mut window = ResendWindow::new(2048);
        for n in 0..300u32 {
            window.push(format!("message {n:03}").as_bytes());
        }
        let mut bytes = window.to_bytes();
        let kept: Vec<&[u8]> = window.messages().collect();
        assert_eq!(saved_messages(&bytes).collect::<Vec<_>>(), kept);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(saved_messages(&bytes).count(), kept.len() - 1);
        assert_eq!(saved_messages(&[7, 0, 0]).count(), 0);
    }
}

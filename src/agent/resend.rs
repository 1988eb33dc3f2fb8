//! The resend window: the last messages handed to syslog, kept so they can
//! be sent again after the syslog connection broke (the receiver that went
//! away may have lost them), and its file format (`resend.bin` in the state
//! directory, written when a break is noticed so a stop or crash before the
//! reconnection does not lose them).
//!
//! It owns the two reused generations of messages and the bytes on disk; it
//! does not decide when to save, send or forget them (that is the agent's
//! loop) and does no I/O itself.

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

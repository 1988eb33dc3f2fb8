//! Batches of framed messages and the rule for cutting an oversize message.
//!
//! A [`Batch`] is a byte buffer holding whole frames back to back plus the
//! end offset of every frame, so the writer can resume after a partial
//! write or a reconnect from a frame boundary and can peel single messages
//! off for UDP datagrams. Batches are allocated once, cleared and reused;
//! they never shrink.

use crate::syslog::frame::Framing;

/// Whole frames back to back, with where each one ends.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// End offset (exclusive) of each frame in `bytes`.
    pub ends: Vec<usize>,
}

impl Batch {
    pub fn with_capacity(bytes: usize, messages: usize) -> Self {
        Self { bytes: Vec::with_capacity(bytes), ends: Vec::with_capacity(messages) }
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    pub fn messages(&self) -> usize {
        self.ends.len()
    }

    /// Start offset of frame `index`.
    pub fn frame_start(&self, index: usize) -> usize {
        if index == 0 { 0 } else { self.ends[index - 1] }
    }

    /// The offset of the first byte of the frame that contains `offset`
    /// (where a resend after a broken connection must start).
    pub fn frame_boundary_at_or_before(&self, offset: usize) -> usize {
        // Frames ending at or before `offset` are complete.
        let complete = self.ends.partition_point(|&end| end <= offset);
        self.frame_start(complete)
    }

    /// Number of frames that end at or before `offset`.
    pub fn frames_before(&self, offset: usize) -> usize {
        self.ends.partition_point(|&end| end <= offset)
    }

    /// Message `index` without its framing (for a datagram).
    pub fn payload(&self, index: usize, framing: Framing) -> &[u8] {
        let frame = &self.bytes[self.frame_start(index)..self.ends[index]];
        match framing {
            Framing::NewLine => &frame[..frame.len() - 1],
            Framing::OctetCounting => match memchr::memchr(b' ', frame) {
                Some(space) => &frame[space + 1..],
                None => frame,
            },
        }
    }
}

/// The length to cut `message` to so that it is at most `max` bytes, ends
/// on a UTF-8 character boundary and not inside a CEF escape sequence
/// (`\\`, `\=`, `\n`, `\r`, `\|`). Returns `message.len()` when it fits.
pub fn truncated_len(message: &[u8], max: usize) -> usize {
    if message.len() <= max {
        return message.len();
    }
    let mut cut = max;
    // A UTF-8 continuation byte (10xxxxxx) at the cut means a character
    // would be split: move back to its first byte.
    while cut > 0 && message[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    // An odd run of backslashes before the cut ends in the first half of
    // an escape sequence.
    let backslashes = message[..cut].iter().rev().take_while(|&&b| b == b'\\').count();
    if backslashes % 2 == 1 {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundaries_and_payloads() {
        let mut batch = Batch::default();
        for m in [&b"one"[..], b"three", b"x"] {
            Framing::NewLine.frame(m, &mut batch.bytes);
            batch.ends.push(batch.bytes.len());
        }
        assert_eq!(batch.ends, vec![4, 10, 12]);
        assert_eq!(batch.frame_boundary_at_or_before(0), 0);
        assert_eq!(batch.frame_boundary_at_or_before(3), 0);
        assert_eq!(batch.frame_boundary_at_or_before(4), 4);
        assert_eq!(batch.frame_boundary_at_or_before(9), 4);
        assert_eq!(batch.frame_boundary_at_or_before(12), 12);
        assert_eq!(batch.frames_before(9), 1);
        assert_eq!(batch.payload(1, Framing::NewLine), b"three");
        let mut octets = Batch::default();
        Framing::OctetCounting.frame(b"hello", &mut octets.bytes);
        octets.ends.push(octets.bytes.len());
        assert_eq!(octets.payload(0, Framing::OctetCounting), b"hello");
    }

    #[test]
    fn truncation_respects_characters_and_escapes() {
        assert_eq!(truncated_len(b"abcdef", 10), 6);
        assert_eq!(truncated_len(b"abcdef", 4), 4);
        // "é" is two bytes: never split it.
        assert_eq!(truncated_len("abé".as_bytes(), 3), 2);
        // `\=` must not lose its second half.
        assert_eq!(truncated_len(br"ab\=cd", 3), 2);
        // `\\` complete before the cut is kept.
        assert_eq!(truncated_len(br"a\\bcd", 3), 3);
    }

    proptest! {
        #[test]
        fn truncation_is_valid_utf8_without_split_escapes(s in r#"[a-z\\=é€😀 ]{0,60}"#, max in 0usize..70) {
            let bytes = s.as_bytes();
            let cut = truncated_len(bytes, max);
            prop_assert!(cut <= max || cut == bytes.len() && bytes.len() <= max);
            prop_assert!(std::str::from_utf8(&bytes[..cut]).is_ok());
            if cut < bytes.len() {
                let run = bytes[..cut].iter().rev().take_while(|&&b| b == b'\\').count();
                prop_assert_eq!(run % 2, 0);
                // Never cuts more than one character plus one backslash short.
                prop_assert!(max - cut <= 5);
            }
        }
    }
}

//! An NDJSON input cut into blocks of whole lines, each read straight into
//! a buffer the caller owns (the parallel loop's chunks), so the bytes are
//! copied once: from the (decompressing) source into the block.
//!
//! A read rarely ends on a line end: the block is cut after its last `\n`
//! and the bytes after it are carried to the front of the next block. A
//! line that does not fit grows the block, up to one byte over the line
//! limit; a line over the limit is reported (with its number) and skipped
//! by reading through it without holding it, as [`super::lines`] does — a
//! NUL byte met while skipping ends the input as binary. Lines that fit in
//! a block are not measured here: whoever splits the block checks each
//! against [`LineBlocks::max_line`]. The first line number of every block
//! is counted here, so each block knows where it is in the input.
//!
//! This module owns the cutting and the line count; it does not look at
//! what the lines hold (blank lines, `\r`, JSON are the caller's).

use super::DocumentReader;
use super::lines::{LineError, count_newlines};
use crate::json::INPUT_PADDING;

/// What [`LineBlocks::next_block`] put in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// `buffer[..len]`: whole lines, the first numbered `first_line`; each
    /// ends with `\n` but the input's last when it has none. Followed by at
    /// least [`INPUT_PADDING`] bytes.
    Lines { first_line: u64, len: usize },
    /// Line `line` is longer than `limit` and is skipped; the buffer holds
    /// nothing of use.
    TooLong { line: u64, limit: usize },
}

/// Cuts one input into [`Block`]s; keeps what a block leaves for the next.
pub struct LineBlocks {
    /// Bytes after the last line end of the previous block: the start of
    /// the next block.
    carry: Vec<u8>,
    /// The number of the first line not yet handed out.
    next_line: u64,
    max_line: usize,
    /// The line at the front was reported too long: skip it first.
    skip_pending: bool,
    /// The part of it already read held a NUL byte.
    binary_pending: bool,
    eof: bool,
}

impl LineBlocks {
    /// Blocks of the rest of `reader` (its layout detected already, so a
    /// byte order mark and leading blank lines are behind it).
    pub fn new(reader: &DocumentReader) -> Self {
        Self {
            carry: Vec::new(),
            next_line: reader.lines_read() + 1,
            max_line: reader.max_document(),
            skip_pending: false,
            binary_pending: false,
            eof: false,
        }
    }

    /// The longest line allowed; longer ones inside a block are the
    /// caller's to reject.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Reads the next block into `buffer`, about `size` bytes (more when
    /// one line needs it). `buffer` keeps its length between calls (its
    /// capacity plus padding), so a reused buffer is not cleared or
    /// zeroed. `None` at the end of the input.
    pub fn next_block(
        &mut self,
        reader: &mut DocumentReader,
        buffer: &mut Vec<u8>,
        size: usize,
    ) -> Result<Option<Block>, LineError> {
        if self.skip_pending {
            self.skip_long_line(reader, buffer, size)?;
        }
        let mut capacity = size.max(1).max(self.carry.len());
        reserve(buffer, capacity);
        let mut len = self.carry.len();
        buffer[..len].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut last_newline = memchr::memrchr(b'\n', &buffer[..len]);
        loop {
            if len == capacity {
                if last_newline.is_some() {
                    break;
                }
                // One line fills the block.
                if capacity > self.max_line {
                    return Ok(Some(self.too_long(&buffer[..len])));
                }
                capacity = capacity.saturating_mul(2).min(self.max_line.saturating_add(1));
                reserve(buffer, capacity);
            }
            if self.eof {
                break;
            }
            let wanted = capacity - len;
            let n = reader.read_through(&mut buffer[len..capacity])?;
            if n == 0 {
                self.eof = true;
                break;
            }
            if let Some(at) = memchr::memrchr(b'\n', &buffer[len..len + n]) {
                last_newline = Some(len + at);
            }
            len += n;
            // A short read (a pipe, a decompressor's boundary): what is
            // here goes now rather than waiting for more.
            if n < wanted && last_newline.is_some() {
                break;
            }
        }
        if len == 0 {
            return Ok(None);
        }
        let end = match last_newline {
            Some(at) if !self.eof => at + 1,
            _ => len,
        };
        self.carry.extend_from_slice(&buffer[end..len]);
        let first_line = self.next_line;
        // The input's last line may lack its `\n`.
        self.next_line += count_newlines(&buffer[..end]) as u64 + u64::from(buffer[end - 1] != b'\n');
        Ok(Some(Block::Lines { first_line, len: end }))
    }

    /// Reports the line that fills `read` (all of it read so far, no line
    /// end in it) as too long; the next call skips the rest of it.
    #[cold]
    fn too_long(&mut self, read: &[u8]) -> Block {
        self.skip_pending = true;
        self.binary_pending = memchr::memchr(0, read).is_some();
        Block::TooLong { line: self.next_line, limit: self.max_line }
    }

    /// Reads through the rest of the line reported too long, using
    /// `buffer` as scratch; what follows its `\n` is carried.
    #[cold]
    fn skip_long_line(
        &mut self,
        reader: &mut DocumentReader,
        buffer: &mut Vec<u8>,
        size: usize,
    ) -> Result<(), LineError> {
        let line = self.next_line;
        if self.binary_pending {
            return Err(LineError::Binary { line });
        }
        let capacity = size.max(1);
        reserve(buffer, capacity);
        while !self.eof {
            let n = reader.read_through(&mut buffer[..capacity])?;
            match memchr::memchr2(b'\n', 0, &buffer[..n]) {
                _ if n == 0 => self.eof = true,
                Some(at) if buffer[at] == 0 => return Err(LineError::Binary { line }),
                Some(at) => {
                    self.carry.extend_from_slice(&buffer[at + 1..n]);
                    break;
                }
                None => {}
            }
        }
        self.skip_pending = false;
        self.next_line += 1;
        Ok(())
    }
}

/// Makes `buffer` hold at least `capacity` bytes plus the padding.
fn reserve(buffer: &mut Vec<u8>, capacity: usize) {
    if buffer.len() < capacity + INPUT_PADDING {
        buffer.resize(capacity + INPUT_PADDING, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Read};

    /// A reader that returns at most `step` bytes per call.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (self.data.len() - self.at).min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// What the blocks of `data` hold: `(line number, line)` for each line
    /// (its `\n` kept), `(line, "TOO LONG")` for skipped ones, and the error.
    fn cut(data: &[u8], size: usize, step: usize, max_line: usize) -> (Vec<(u64, String)>, Option<String>) {
        let trickle = Trickle { data: data.to_vec(), at: 0, step };
        let mut reader = DocumentReader::from_reader("t", Box::new(trickle)).with_max_document(max_line);
        reader.detect().unwrap();
        let mut blocks = LineBlocks::new(&reader);
        let mut buffer = Vec::new();
        let mut got = Vec::new();
        loop {
            match blocks.next_block(&mut reader, &mut buffer, size) {
                Ok(Some(Block::Lines { first_line, len })) => {
                    assert!(buffer.len() >= len + INPUT_PADDING, "padding after the block");
                    assert!(len > 0);
                    let text = String::from_utf8(buffer[..len].to_vec()).unwrap();
                    for (n, line) in text.split_inclusive('\n').enumerate() {
                        got.push((first_line + n as u64, line.to_owned()));
                    }
                }
                Ok(Some(Block::TooLong { line, limit })) => {
                    assert_eq!(limit, max_line);
                    got.push((line, "TOO LONG".to_owned()));
                }
                Ok(None) => return (got, None),
                Err(err) => return (got, Some(err.to_string())),
            }
        }
    }

    /// The trivially correct twin: split the whole text, lines longer than
    /// the limit are "TOO LONG" only when they do not fit in one block
    /// (the caller measures the others).
    fn naive(data: &str, max_line: usize) -> Vec<(u64, String)> {
        data.split_inclusive('\n')
            .enumerate()
            .map(|(n, line)| {
                let content = line.strip_suffix('\n').unwrap_or(line);
                let text = if content.len() > max_line { "TOO LONG".to_owned() } else { line.to_owned() };
                (n as u64 + 1, text)
            })
            .collect()
    }

    /// The caller's view: lines over the limit that came whole in a block
    /// count as too long too.
    fn measured(got: Vec<(u64, String)>, max_line: usize) -> Vec<(u64, String)> {
        got.into_iter()
            .map(|(n, line)| {
                let content = line.strip_suffix('\n').unwrap_or(&line);
                if content.len() > max_line { (n, "TOO LONG".to_owned()) } else { (n, line) }
            })
            .collect()
    }

    #[test]
    fn a_line_ending_exactly_at_the_block_end_starts_no_empty_block() {
        // Blocks of 4: "aaa\n" fills the first exactly.
        let (got, err) = cut(b"aaa\nbbb\ncc", 4, 100, 100);
        assert_eq!(err, None);
        assert_eq!(got, vec![(1, "aaa\n".into()), (2, "bbb\n".into()), (3, "cc".into())]);
    }

    #[test]
    fn crlf_split_between_reads_stays_one_line_end() {
        // Reads of 4: the `\r` is the last byte of the first read.
        let (got, _) = cut(b"{a}\r\n{b}\r\n", 4, 4, 100);
        assert_eq!(got, vec![(1, "{a}\r\n".into()), (2, "{b}\r\n".into())]);
    }

    #[test]
    fn a_long_line_over_several_blocks_is_skipped_and_the_next_lines_keep_their_numbers() {
        let long = "x".repeat(1000);
        let text = format!("one\n{long}\ntwo\nthree\n{long}");
        let (got, err) = cut(text.as_bytes(), 16, 7, 100);
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                (1, "one\n".into()),
                (2, "TOO LONG".into()),
                (3, "two\n".into()),
                (4, "three\n".into()),
                (5, "TOO LONG".into())
            ]
        );
    }

    #[test]
    fn a_nul_in_a_skipped_line_ends_the_input_as_binary() {
        let text = format!("ok\n{}\0{}\nafter\n", "x".repeat(50), "y".repeat(200));
        let (got, err) = cut(text.as_bytes(), 8, 5, 20);
        assert_eq!(got, vec![(1, "ok\n".into()), (2, "TOO LONG".into())]);
        assert_eq!(err.as_deref(), Some("line 2 holds a NUL byte: the input is binary, not JSON or syslog text"));
    }

    #[test]
    fn a_long_line_is_not_held_whole() {
        let text = format!("{}\nok\n", "x".repeat(1 << 20));
        let trickle = Trickle { data: text.into_bytes(), at: 0, step: 1 << 16 };
        let mut reader = DocumentReader::from_reader("t", Box::new(trickle)).with_max_document(1000);
        reader.detect().unwrap();
        let mut blocks = LineBlocks::new(&reader);
        let mut buffer = Vec::new();
        while blocks.next_block(&mut reader, &mut buffer, 64).unwrap().is_some() {}
        assert!(buffer.len() <= 2048 + INPUT_PADDING, "the buffer grew to {}", buffer.len());
    }

    proptest::proptest! {
        #[test]
        fn same_lines_and_numbers_as_splitting_the_whole_text(
            text in "[ab\r\n]{0,200}",
            size in 1usize..40,
            step in 1usize..50,
            max_line in 1usize..30,
        ) {
            // A first line of `[` or `{` alone would make it one document.
            let text = format!("a\n{text}");
            let (got, err) = cut(text.as_bytes(), size, step, max_line);
            proptest::prop_assert_eq!(err, None);
            proptest::prop_assert_eq!(measured(got, max_line), naive(&text, max_line));
        }
    }
}

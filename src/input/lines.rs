//! A reused read buffer that hands out one line at a time, in place and
//! followed by enough spare bytes for simd-json to parse it without a copy.
//!
//! Lines are found with memchr. When the unread tail reaches the end of the
//! buffer it is rolled to the front; the buffer grows only for a line longer
//! than itself, never past the line limit, so memory stays flat whatever the
//! size or shape of the input. A line over the limit is an error that the
//! caller may step over: the next read skips it (a NUL byte while skipping
//! ends the input, which is binary, not text). A UTF-8 byte order mark at
//! the start of the input is dropped.

use crate::json::INPUT_PADDING;
use std::io::{self, Read};

/// Initial buffer size: large reads, few syscalls.
const DEFAULT_CAPACITY: usize = 1 << 20;

/// One line, `\n` and a trailing `\r` removed. `bytes[..len]` is the line;
/// `bytes[len..]` is at least [`INPUT_PADDING`] bytes the parser may read.
pub struct Line<'a> {
    /// 1-based line number in the input.
    pub number: u64,
    pub bytes: &'a mut [u8],
    pub len: usize,
}

/// Why reading stopped early.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Recoverable: the next read skips the line.
    #[error("line {line} is longer than the limit of {} (--max-document-mb); skipped", crate::input::human_limit(*limit))]
    TooLong { line: u64, limit: usize },
    /// The rest of the input as one document is over the limit.
    #[error("the document starting on line {line} is larger than the limit of {} (--max-document-mb)", crate::input::human_limit(*limit))]
    DocumentTooLarge { line: u64, limit: usize },
    #[error("line {line} holds a NUL byte: the input is binary, not JSON or syslog text")]
    Binary { line: u64 },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads lines from `R` into one reused buffer.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unread data is `buf[start..end]`; `buf.len()` is capacity + padding.
    start: usize,
    end: usize,
    eof: bool,
    line_number: u64,
    max_line: usize,
    bytes_read: u64,
    /// The start of the input was checked for a byte order mark.
    bom_checked: bool,
    /// The line at `start` was reported too long: skip it on the next read.
    skip_pending: bool,
}

/// The UTF-8 byte order mark some Windows tools write first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_capacity(inner, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(inner: R, capacity: usize) -> Self {
        Self {
            inner,
            buf: vec![0; capacity.max(64) + INPUT_PADDING],
            start: 0,
            end: 0,
            eof: false,
            line_number: 0,
            max_line: 1 << 30,
            bytes_read: 0,
            bom_checked: false,
            skip_pending: false,
        }
    }

    /// Lines longer than `limit` bytes are an error (default 1 GiB).
    pub fn set_max_line(&mut self, limit: usize) {
        self.max_line = limit;
    }

    /// Decompressed bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Lines handed out (or skipped) so far: the number of the last one.
    pub fn lines_read(&self) -> u64 {
        self.line_number
    }

    fn capacity(&self) -> usize {
        self.buf.len() - INPUT_PADDING
    }

    /// Makes sure the next line is in the buffer. Returns where it ends (its
    /// `\n`, or the end of the data) and whether a `\n` ends it; `None`
    /// when no data is left.
    fn buffer_line(&mut self) -> Result<Option<(usize, bool)>, LineError> {
        if !self.bom_checked {
            self.skip_bom()?;
        }
        if self.skip_pending {
            self.skip_long_line()?;
        }
        let mut searched = self.start;
        let (end, found) = loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                break (searched + pos, true);
            }
            if self.eof {
                break (self.end, false);
            }
            if self.end - self.start > self.max_line {
                return Err(LineError::TooLong { line: self.line_number + 1, limit: self.max_line });
            }
            searched = self.end;
            let shift = self.start;
            self.fill(self.max_line)?;
            searched -= shift;
        };
        // The rule is the line's length, not what happens to be buffered:
        // a long line found whole in a large read is over the limit too.
        if end - self.start > self.max_line {
            return Err(LineError::TooLong { line: self.line_number + 1, limit: self.max_line });
        }
        Ok((found || self.start < end).then_some((end, found)))
    }

    /// [`Self::buffer_line`] for a read that consumes the line: a line
    /// over the limit is skipped by the next read.
    fn buffer_line_to_consume(&mut self) -> Result<Option<(usize, bool)>, LineError> {
        let buffered = self.buffer_line();
        if let Err(LineError::TooLong { .. }) = buffered {
            self.skip_pending = true;
        }
        buffered
    }

    fn skip_bom(&mut self) -> Result<(), LineError> {
        while self.end - self.start < BOM.len() && !self.eof {
            self.fill(self.max_line)?;
        }
        if self.buf[self.start..self.end].starts_with(BOM) {
            self.start += BOM.len();
        }
        self.bom_checked = true;
        Ok(())
    }

    /// Drops the line at `start` (reported too long) through its `\n`,
    /// reading without keeping: memory stays at the buffer's size.
    #[cold]
    fn skip_long_line(&mut self) -> Result<(), LineError> {
        let line = self.line_number + 1;
        loop {
            match memchr::memchr2(b'\n', 0, &self.buf[self.start..self.end]) {
                Some(pos) if self.buf[self.start + pos] == 0 => return Err(LineError::Binary { line }),
                Some(pos) => {
                    self.start += pos + 1;
                    break;
                }
                None if self.eof => {
                    self.start = self.end;
                    break;
                }
                None => {
                    self.start = self.end;
                    self.fill(self.max_line)?;
                }
            }
        }
        self.skip_pending = false;
        self.line_number += 1;
        Ok(())
    }

    /// Several whole lines at once, for callers that pass lines through
    /// unchanged: every complete line buffered within `max` bytes (at
    /// least one, however long), each with its `\n`, reading more only when
    /// no line is buffered. The last line of an input without a final
    /// `\n` comes alone, without one. `None` at the end of the input.
    pub fn next_line_block(&mut self, max: usize) -> Result<Option<&[u8]>, LineError> {
        let Some((first_end, found)) = self.buffer_line_to_consume()? else {
            return Ok(None);
        };
        let start = self.start;
        let block_end = if found {
            let window_end = self.end.min(start + max.max(1));
            match memchr::memrchr(b'\n', &self.buf[start..window_end]) {
                Some(last) if start + last > first_end => start + last + 1,
                _ => first_end + 1,
            }
        } else {
            first_end
        };
        let block = &self.buf[start..block_end];
        // Counted for error messages.
        self.line_number += count_newlines(block) as u64 + u64::from(!found);
        self.start = block_end;
        Ok(Some(&self.buf[start..block_end]))
    }

    /// Raw bytes from where the lines handed out end: what is buffered
    /// first, then straight from the input into `out` (no copy through the
    /// buffer). For a caller that cuts the rest of the input into lines
    /// itself; after this, only more of it makes sense. `Ok(0)` at the end.
    pub fn read_through(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start < self.end {
            let n = (self.end - self.start).min(out.len());
            out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        if self.eof || out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.inner.read(out) {
                Ok(n) => {
                    self.eof = n == 0;
                    self.bytes_read += n as u64;
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Whether the next line (or the end of the input) can be had without
    /// reading more, i.e. without blocking on a pipe.
    pub fn has_buffered_line(&self) -> bool {
        self.eof || memchr::memchr(b'\n', &self.buf[self.start..self.end]).is_some()
    }

    /// The next line without consuming it (a trailing `\r` kept), or
    /// `None` at the end of the input.
    pub fn peek_line(&mut self) -> Result<Option<&[u8]>, LineError> {
        Ok(self.buffer_line()?.map(|(end, _)| &self.buf[self.start..end]))
    }

    /// What is buffered from the next line on, after reading until it holds
    /// `lines` line ends, or `bytes` bytes, or the buffer is full, or the
    /// input ended; nothing is consumed and the buffer does not grow. For
    /// looking at the first lines of an input before choosing how to read
    /// it. An error only when the next line itself cannot be buffered.
    pub fn peek_ahead(&mut self, lines: usize, bytes: usize) -> Result<&[u8], LineError> {
        self.buffer_line()?;
        loop {
            let data = &self.buf[self.start..self.end];
            let enough = self.eof
                || data.len() >= bytes.min(self.capacity())
                || memchr::memchr_iter(b'\n', data).nth(lines.saturating_sub(1)).is_some();
            if enough {
                return Ok(&self.buf[self.start..self.end]);
            }
            self.fill(self.max_line)?;
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, LineError> {
        let Some((line_end, found)) = self.buffer_line_to_consume()? else {
            return Ok(None);
        };
        let line_start = self.start;
        self.start = if found { line_end + 1 } else { line_end };
        self.line_number += 1;
        let mut len = line_end - line_start;
        if len > 0 && self.buf[line_start + len - 1] == b'\r' {
            len -= 1;
        }
        Ok(Some(Line { number: self.line_number, bytes: &mut self.buf[line_start..], len }))
    }

    /// The next line that holds more than whitespace; blank lines are
    /// consumed (and counted).
    pub fn next_non_blank_line(&mut self) -> Result<Option<Line<'_>>, LineError> {
        while let Some((end, found)) = self.buffer_line_to_consume()? {
            if !self.buf[self.start..end].iter().all(u8::is_ascii_whitespace) {
                break;
            }
            self.start = if found { end + 1 } else { end };
            self.line_number += 1;
        }
        self.next_line()
    }

    /// Everything not yet read, as one padded block (for whole-document
    /// inputs such as a pretty-printed API page). Returns the block and the
    /// line number its first byte is on.
    pub fn read_rest(&mut self, limit: usize) -> Result<(u64, &mut [u8], usize), LineError> {
        let first_line = self.line_number + 1;
        while !self.eof {
            if self.end - self.start > limit {
                return Err(LineError::DocumentTooLarge { line: first_line, limit });
            }
            self.fill(limit)?;
        }
        let len = self.end - self.start;
        let start = self.start;
        self.start = self.end;
        Ok((first_line, &mut self.buf[start..], len))
    }

    /// Makes room and reads more: rolls unread bytes to the front, grows the
    /// buffer when it is full of one unfinished line, to at most one byte
    /// over `limit` (enough to tell that a line is over it).
    fn fill(&mut self, limit: usize) -> Result<(), LineError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.capacity() {
            let grown = (self.capacity() * 2).min(limit.saturating_add(1)).max(self.capacity() + 1);
            self.buf.resize(grown + INPUT_PADDING, 0);
        }
        let capacity = self.capacity();
        loop {
            match self.inner.read(&mut self.buf[self.end..capacity]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Counts `\n` bytes. Sums per 64-byte chunk in a `u8`, which the compiler
/// turns into wide compares (a plain `filter().count()` does not vectorise).
pub(crate) fn count_newlines(bytes: &[u8]) -> usize {
    let mut chunks = bytes.chunks_exact(64);
    let mut count = 0;
    for chunk in &mut chunks {
        let mut in_chunk = 0u8;
        for &b in chunk {
            in_chunk += u8::from(b == b'\n');
        }
        count += usize::from(in_chunk);
    }
    count + chunks.remainder().iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that returns at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn collect(data: &[u8], capacity: usize, step: usize) -> Vec<(u64, Vec<u8>)> {
        let mut reader = LineReader::with_capacity(Trickle { data, step }, capacity);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            assert!(line.bytes.len() >= line.len + INPUT_PADDING, "padding after every line");
            lines.push((line.number, line.bytes[..line.len].to_vec()));
        }
        lines
    }

    #[test]
    fn lines_crlf_and_last_line_without_newline() {
        let got = collect(b"a\r\nbb\n\nccc", 64, 3);
        let want: Vec<(u64, Vec<u8>)> =
            vec![(1, b"a".to_vec()), (2, b"bb".to_vec()), (3, b"".to_vec()), (4, b"ccc".to_vec())];
        assert_eq!(got, want);
    }

    #[test]
    fn grows_for_a_line_longer_than_the_buffer() {
        let long = vec![b'x'; 1000];
        let mut data = long.clone();
        data.extend_from_slice(b"\nshort\n");
        let got = collect(&data, 64, 100);
        assert_eq!(got, vec![(1, long), (2, b"short".to_vec())]);
    }

    #[test]
    fn line_limit_is_an_error() {
        let data = vec![b'x'; 500];
        let mut reader = LineReader::with_capacity(&data[..], 64);
        reader.set_max_line(100);
        assert!(matches!(reader.next_line(), Err(LineError::TooLong { line: 1, .. })));
    }

    #[test]
    fn a_line_over_the_limit_is_too_long_even_when_read_whole() {
        // One read brings the 80-byte line and its `\n` into the buffer
        // (200); the limit (50) still applies, and the next line keeps its
        // number.
        let data = format!("{}\nok\n", "x".repeat(80));
        let mut reader = LineReader::with_capacity(data.as_bytes(), 200);
        reader.set_max_line(50);
        assert!(matches!(reader.next_line(), Err(LineError::TooLong { line: 1, limit: 50 })));
        let next = reader.next_line().unwrap().unwrap();
        assert_eq!((next.number, &next.bytes[..next.len]), (2, &b"ok"[..]));
    }

    #[test]
    fn peek_does_not_consume() {
        let data = b"first\nsecond";
        let mut reader = LineReader::with_capacity(&data[..], 64);
        assert_eq!(reader.peek_line().unwrap(), Some(&b"first"[..]));
        assert_eq!(reader.next_line().unwrap().map(|l| l.len), Some(5));
        assert_eq!(reader.peek_line().unwrap(), Some(&b"second"[..]));
        assert_eq!(reader.next_line().unwrap().map(|l| l.number), Some(2));
        assert!(reader.peek_line().unwrap().is_none());
    }

    #[test]
    fn newline_count_matches_a_plain_count() {
        let text: Vec<u8> = (0..1000u32).map(|i| if i % 7 == 0 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
        for len in [0, 1, 63, 64, 65, 500, 1000] {
            assert_eq!(count_newlines(&text[..len]), text[..len].iter().filter(|&&b| b == b'\n').count());
        }
    }

    #[test]
    fn line_blocks_hold_whole_lines_within_the_limit() {
        let data = b"aa\nbbbb\ncc\nlast";
        let mut reader = LineReader::with_capacity(&data[..], 64);
        assert_eq!(reader.next_line_block(8).unwrap(), Some(&b"aa\nbbbb\n"[..]));
        assert_eq!(reader.next_line_block(1).unwrap(), Some(&b"cc\n"[..]));
        assert_eq!(reader.next_line_block(100).unwrap(), Some(&b"last"[..]));
        assert_eq!(reader.next_line_block(100).unwrap(), None);
        let mut reader = LineReader::with_capacity(&b"a-very-long-line\nx\n"[..], 64);
        assert_eq!(reader.next_line_block(4).unwrap(), Some(&b"a-very-long-line\n"[..]));
        assert_eq!(reader.next_line().unwrap().map(|l| l.number), Some(2));
    }

    proptest! {
        #[test]
        fn same_lines_as_split(text in "[a-z\n\r]{0,300}", capacity in 64usize..200, step in 1usize..90) {
            let got: Vec<Vec<u8>> = collect(text.as_bytes(), capacity, step).into_iter().map(|l| l.1).collect();
            let mut want: Vec<Vec<u8>> = text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).as_bytes().to_vec())
                .collect();
            if text.is_empty() || text.ends_with('\n') {
                want.pop();
            }
            prop_assert_eq!(got, want);
        }
    }
}

//! Inputs as a sequence of JSON documents, each padded in place for the
//! parser.
//!
//! An input is read line by line (NDJSON: one record, or one API page, per
//! line) unless it opens a document that spans lines — a pretty-printed
//! page or bare array — in which case the whole input is one document. The
//! choice looks at the first few lines, not only the first: NDJSON whose
//! first line is bad (truncated, trailing garbage) is still NDJSON, and
//! that line is one bad document among good ones. No document is held
//! beyond `max_document_bytes` (`--max-document-mb`): a longer line is
//! reported and skipped, a larger whole document ends the input with an
//! error naming its line. This module finds documents; it never parses
//! them.

pub mod blocks;
pub mod lines;
pub mod source;

use lines::{LineError, LineReader};
use source::{Compression, InputPath, OpenInput};
use std::io::Read;

/// Default of `--max-document-mb`: the largest line or whole-document
/// input held in memory. An API page of 5000 records is about 10 MB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 32 << 20;

/// How many lines, and bytes, layout detection looks at.
const DETECT_LINES: usize = 4;
const DETECT_BYTES: usize = 256 * 1024;

/// Why a line over the size limit produced no record.
#[cold]
pub fn too_long_reason(limit: usize) -> String {
    format!("line longer than the limit of {} (--max-document-mb): skipped, not kept", human_limit(limit))
}

/// A byte limit for messages, in MiB when it is a whole number of them.
pub fn human_limit(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// How an input holds its documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One document per line.
    Lines,
    /// The whole input is one document.
    Whole,
}

/// One JSON document: `bytes[..len]`, padded for in-place parsing.
pub struct Document<'a> {
    /// Line the document starts on (1-based).
    pub line: u64,
    pub bytes: &'a mut [u8],
    pub len: usize,
    /// The whole input is this one document (it may span many lines).
    pub whole_input: bool,
}

/// Reads documents from one opened input.
pub struct DocumentReader {
    name: String,
    lines: LineReader<Box<dyn Read + Send>>,
    layout: Option<Layout>,
    compression: Compression,
    size: Option<u64>,
    raw_bytes_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    max_document: usize,
}

impl DocumentReader {
    /// Opens `path` (see [`source::open`]).
    pub fn open(path: &InputPath) -> std::io::Result<Self> {
        Ok(Self::from_input(source::open(path)?))
    }

    pub fn from_input(input: OpenInput) -> Self {
        let mut lines = LineReader::new(input.reader);
        lines.set_max_line(DEFAULT_MAX_DOCUMENT_BYTES);
        Self {
            name: input.name,
            lines,
            layout: None,
            compression: input.compression,
            size: input.size,
            raw_bytes_read: input.raw_bytes_read,
            max_document: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }

    /// The largest line, or whole-document input, held in memory.
    pub fn with_max_document(mut self, bytes: usize) -> Self {
        self.max_document = bytes;
        self.lines.set_max_line(bytes);
        self
    }

    /// A reader over bytes already in memory (tests, API bodies).
    pub fn from_reader(name: &str, reader: Box<dyn Read + Send>) -> Self {
        Self::from_input(OpenInput {
            name: name.to_owned(),
            reader,
            compression: Compression::None,
            size: None,
            raw_bytes_read: Default::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Size of the input file on disk, if known.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Bytes read from the file so far, before decompression.
    pub fn raw_bytes_read(&self) -> u64 {
        self.raw_bytes_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Decompressed bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.lines.bytes_read()
    }

    /// The layout, once the first document has been looked at.
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// The layout, looked at first if it was not yet (nothing is consumed
    /// but blank lines).
    pub fn detect(&mut self) -> Result<Layout, LineError> {
        match self.layout {
            Some(layout) => Ok(layout),
            None => {
                let layout = self.detect_layout()?;
                self.layout = Some(layout);
                Ok(layout)
            }
        }
    }

    /// Lines read so far: the number of the last line handed out.
    pub fn lines_read(&self) -> u64 {
        self.lines.lines_read()
    }

    /// The next document, or `None` at the end of the input.
    pub fn next_document(&mut self) -> Result<Option<Document<'_>>, LineError> {
        match self.detect()? {
            Layout::Whole => {
                let (line, bytes, len) = self.lines.read_rest(self.max_document)?;
                if bytes[..len].iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                Ok(Some(Document { line, bytes, len, whole_input: true }))
            }
            Layout::Lines => Ok(self.lines.next_non_blank_line()?.map(|line| Document {
                line: line.number,
                bytes: line.bytes,
                len: line.len,
                whole_input: false,
            })),
        }
    }

    /// Whether the input holds JSON (NDJSON or pages) rather than
    /// already-rendered lines: one of its first non-blank lines starts with
    /// `{` or `[`. Nothing is consumed. `None` for an empty input.
    pub fn holds_json(&mut self) -> Result<Option<bool>, LineError> {
        let head = match self.lines.peek_ahead(DETECT_LINES * 2, DETECT_BYTES) {
            Ok(head) => head,
            // Too long to look at: the line readers report it in turn.
            Err(LineError::TooLong { .. }) => return Ok(Some(false)),
            Err(err) => return Err(err),
        };
        let mut lines = non_blank_lines(head).take(DETECT_LINES * 2).peekable();
        if lines.peek().is_none() {
            return Ok(None);
        }
        Ok(Some(lines.any(|line| matches!(line.first(), Some(b'{' | b'[')))))
    }

    /// Whole lines in one block, for inputs of already-rendered lines
    /// (see [`LineReader::next_line_block`]).
    pub fn next_line_block(&mut self, max: usize) -> Result<Option<&[u8]>, LineError> {
        self.lines.next_line_block(max)
    }

    /// The rest of the input as raw bytes, straight into `out` (see
    /// [`LineReader::read_through`]); for [`blocks::LineBlocks`].
    pub fn read_through(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.lines.read_through(out)
    }

    /// The largest line, or whole-document input, held in memory.
    pub fn max_document(&self) -> usize {
        self.max_document
    }

    /// Whether the next line can be had without reading more (so a caller
    /// can flush its output before it would block on a quiet pipe).
    pub fn has_buffered_line(&self) -> bool {
        self.lines.has_buffered_line()
    }

    /// The next line as it is (no JSON layout detection), for inputs of
    /// already-rendered lines.
    pub fn next_raw_line(&mut self) -> Result<Option<lines::Line<'_>>, LineError> {
        self.lines.next_line()
    }

    /// NDJSON unless the first non-blank line opens a document that goes
    /// on over the next lines: a lone `{` or `[`, or one that starts with
    /// either and is not whole, followed by lines none of which is a whole
    /// object (in NDJSON with a bad first line, the next lines are).
    fn detect_layout(&mut self) -> Result<Layout, LineError> {
        // Blank lines before the first document are consumed (and counted),
        // so that a whole document starts on its first line.
        loop {
            match self.lines.peek_line() {
                Ok(Some(line)) if line.trim_ascii().is_empty() => {
                    self.lines.next_line()?;
                }
                Ok(_) => break,
                Err(LineError::TooLong { .. }) => return Ok(Layout::Lines),
                Err(err) => return Err(err),
            }
        }
        let head = match self.lines.peek_ahead(DETECT_LINES, DETECT_BYTES) {
            Ok(head) => head,
            // A first line over the limit is reported as such, line by line.
            Err(LineError::TooLong { .. }) => return Ok(Layout::Lines),
            Err(err) => return Err(err),
        };
        let mut lines = non_blank_lines(head);
        let Some(first) = lines.next() else { return Ok(Layout::Lines) };
        if first == b"{" || first == b"[" {
            return Ok(Layout::Whole);
        }
        let opens_document = matches!(first.first(), Some(b'{' | b'[')) && !is_whole_value(first);
        if opens_document && !lines.take(DETECT_LINES - 1).any(is_whole_object) {
            Ok(Layout::Whole)
        } else {
            Ok(Layout::Lines)
        }
    }
}

/// The lines of `head` with something on them, trimmed.
fn non_blank_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n').map(<[u8]>::trim_ascii).filter(|line| !line.is_empty())
}

fn is_whole_object(line: &[u8]) -> bool {
    line.first() == Some(&b'{') && line.last() == Some(&b'}')
}

fn is_whole_value(line: &[u8]) -> bool {
    is_whole_object(line) || (line.first() == Some(&b'[') && line.last() == Some(&b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(text: &'static str) -> (Option<Layout>, Vec<(u64, String)>) {
        let mut reader = DocumentReader::from_reader("t", Box::new(text.as_bytes()));
        let mut docs = Vec::new();
        while let Some(doc) = reader.next_document().unwrap() {
            docs.push((doc.line, String::from_utf8(doc.bytes[..doc.len].to_vec()).unwrap()));
        }
        (reader.layout(), docs)
    }

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_numbers() {
        let (layout, docs) = documents("\n{\"a\":1}\r\n  \n{\"b\":2}");
        assert_eq!(layout, Some(Layout::Lines));
        assert_eq!(docs, vec![(2, "{\"a\":1}".to_owned()), (4, "{\"b\":2}".to_owned())]);
    }

    #[test]
    fn pretty_page_and_bare_array_are_whole_documents() {
        let (layout, docs) = documents("\n{\n \"data\": []\n}\n");
        assert_eq!(layout, Some(Layout::Whole));
        assert_eq!(docs, vec![(2, "{\n \"data\": []\n}\n".to_owned())]);
        let (layout, docs) = documents("[{\"a\":1},\n{\"a\":2}]");
        assert_eq!(layout, Some(Layout::Whole));
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn empty_input_has_no_documents() {
        assert!(documents("").1.is_empty());
        assert!(documents("\n \n").1.is_empty());
    }
}

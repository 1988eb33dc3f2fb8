//! Inputs as a sequence of JSON documents, each padded in place for the
//! parser.
//!
//! An input is read line by line (NDJSON: one record, or one API page, per
//! line) unless its first non-blank line is not a complete object — a
//! pretty-printed page or a bare array — in which case the whole input is
//! one document. This module finds documents; it never parses them.

pub mod lines;
pub mod source;

use lines::{LineError, LineReader};
use source::{Compression, InputPath, OpenInput};
use std::io::Read;

/// A single whole-document input larger than this is refused (NDJSON has
/// no such limit: it is streamed).
pub const MAX_DOCUMENT_BYTES: usize = 2 << 30;

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
}

impl DocumentReader {
    /// Opens `path` (see [`source::open`]).
    pub fn open(path: &InputPath) -> std::io::Result<Self> {
        Ok(Self::from_input(source::open(path)?))
    }

    pub fn from_input(input: OpenInput) -> Self {
        Self {
            name: input.name,
            lines: LineReader::new(input.reader),
            layout: None,
            compression: input.compression,
            size: input.size,
            raw_bytes_read: input.raw_bytes_read,
        }
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

    /// The next document, or `None` at the end of the input.
    pub fn next_document(&mut self) -> Result<Option<Document<'_>>, LineError> {
        let layout = match self.layout {
            Some(layout) => layout,
            None => {
                let layout = self.detect_layout()?;
                self.layout = Some(layout);
                layout
            }
        };
        match layout {
            Layout::Whole => {
                let (line, bytes, len) = self.lines.read_rest(MAX_DOCUMENT_BYTES)?;
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

    /// The first line that is not blank, not consumed (blank lines before
    /// it are), or `None` for an empty input. Lets a caller tell JSON from
    /// already-rendered lines before reading anything.
    pub fn peek_first_line(&mut self) -> Result<Option<&[u8]>, LineError> {
        loop {
            let blank = match self.lines.peek_line()? {
                None => return Ok(None),
                Some(line) => line.trim_ascii().is_empty(),
            };
            if !blank {
                return self.lines.peek_line();
            }
            self.lines.next_line()?;
        }
    }

    /// Whole lines in one block, for inputs of already-rendered lines
    /// (see [`LineReader::next_line_block`]).
    pub fn next_line_block(&mut self, max: usize) -> Result<Option<&[u8]>, LineError> {
        self.lines.next_line_block(max)
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

    /// NDJSON when the first non-blank line is a whole object on its own.
    fn detect_layout(&mut self) -> Result<Layout, LineError> {
        loop {
            let Some(line) = self.lines.peek_line()? else {
                return Ok(Layout::Lines);
            };
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                self.lines.next_line()?;
                continue;
            }
            let whole_object = trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}');
            return Ok(if whole_object { Layout::Lines } else { Layout::Whole });
        }
    }
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

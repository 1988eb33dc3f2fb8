//! Documents → records → CEF messages: the loop every job shares.
//!
//! [`RecordConverter`] parses one document (an NDJSON line, an API page or a
//! bare array) with the reused parser, walks its records, formats each into
//! the buffer a [`MessageSink`] lends it and tells the sink when a message is
//! complete. Records that cannot be converted go to the [`RejectLog`] with
//! file, line and reason; the records around them still go through.
//! Nothing in the per-record path allocates once buffers are warm.

use crate::cef::{CefFormatter, CefOptions, RecordKind};
use crate::json::{JsonParser, JsonValue, write_compact_json};
use crate::rejects::{RejectLog, RejectedRecord};
use std::io;

/// Where converted messages go: a file writer or a syslog batcher.
pub trait MessageSink {
    /// The buffer the next message is appended to.
    fn buffer(&mut self) -> &mut Vec<u8>;
    /// The message appended since `start` is complete; frame and, when the
    /// buffer is full enough, hand it on. An error stops the run.
    fn commit(&mut self, start: usize) -> io::Result<()>;
}

/// Counts of one run (or one input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertCounts {
    /// Records seen (converted + rejected).
    pub records: u64,
    pub activities: u64,
    pub alerts: u64,
    pub rejected: u64,
}

impl ConvertCounts {
    pub fn converted(&self) -> u64 {
        self.activities + self.alerts
    }

    pub fn add(&mut self, other: &ConvertCounts) {
        self.records += other.records;
        self.activities += other.activities;
        self.alerts += other.alerts;
        self.rejected += other.rejected;
    }
}

/// Where a document came from, for messages.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub file: &'a str,
    /// Line the document starts on.
    pub line: u64,
    /// The document may span several lines (a whole-file page): records
    /// inside it are then located by counting newlines.
    pub multi_line: bool,
}

/// Parses documents and converts their records.
pub struct RecordConverter {
    parser: JsonParser,
    formatter: CefFormatter,
    /// Copy of the current document's original bytes, kept only when
    /// rejects are written verbatim (parsing modifies the buffer).
    original: Vec<u8>,
    pub counts: ConvertCounts,
}

impl RecordConverter {
    pub fn new(options: &CefOptions) -> Self {
        Self {
            parser: JsonParser::new(),
            formatter: CefFormatter::new(options),
            original: Vec::new(),
            counts: ConvertCounts::default(),
        }
    }

    /// Converts every record of `bytes[..len]` (padded for the parser).
    pub fn convert_document(
        &mut self,
        origin: Origin<'_>,
        bytes: &mut [u8],
        len: usize,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
    ) -> io::Result<()> {
        self.convert_document_with(origin, bytes, len, sink, rejects, |_| ())
    }

    /// Like [`Self::convert_document`], but first shows the parsed root to
    /// `inspect` (not called when the document is not JSON). The API
    /// reader uses it to learn the paging fields of a page from the same
    /// parse that converts it.
    pub fn convert_document_with(
        &mut self,
        origin: Origin<'_>,
        bytes: &mut [u8],
        len: usize,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
        inspect: impl FnOnce(JsonValue<'_, '_>),
    ) -> io::Result<()> {
        let keep_original = rejects.keeps_records() || origin.multi_line;
        self.original.clear();
        if keep_original {
            self.original.extend_from_slice(&bytes[..len]);
        }
        // Records are located by where their strings sit in the buffer.
        let base = bytes.as_ptr() as usize;
        let Self { parser, formatter, original, counts } = self;
        let parsed = parser.parse(bytes, len, |root| {
            inspect(root);
            let mut ctx = RecordContext { formatter, counts, sink, rejects, origin, base, original };
            match page_records(root) {
                Some(records) => {
                    for (index, record) in records.enumerate() {
                        ctx.convert(record, Some(index))?;
                    }
                    Ok(())
                }
                None => ctx.convert(root, None),
            }
        });
        match parsed {
            Ok(result) => result,
            Err(err) => {
                self.counts.records += 1;
                self.counts.rejected += 1;
                let raw = if rejects.keeps_records() {
                    RejectedRecord::Verbatim(&self.original)
                } else {
                    RejectedRecord::None
                };
                rejects.reject(origin.file, origin.line, None, &err, raw)
            }
        }
    }
}

/// The records of a page (`{"data":[…]}` without an `_id`) or a bare array;
/// `None` when the document is itself one record.
fn page_records<'t, 'i>(root: JsonValue<'t, 'i>) -> Option<impl Iterator<Item = JsonValue<'t, 'i>>> {
    if let Some(items) = root.array() {
        return Some(items);
    }
    if root.get("_id").is_some() {
        return None;
    }
    root.get("data")?.array()
}

struct RecordContext<'a, 'o> {
    formatter: &'a mut CefFormatter,
    counts: &'a mut ConvertCounts,
    sink: &'a mut dyn MessageSink,
    rejects: &'a mut RejectLog,
    origin: Origin<'o>,
    /// Address of the document's first byte, to locate records for messages.
    base: usize,
    original: &'a [u8],
}

impl RecordContext<'_, '_> {
    fn convert(&mut self, record: JsonValue<'_, '_>, index: Option<usize>) -> io::Result<()> {
        self.counts.records += 1;
        let buffer = self.sink.buffer();
        let start = buffer.len();
        match self.formatter.format(record, buffer) {
            Ok(RecordKind::Activity) => {
                self.counts.activities += 1;
                self.sink.commit(start)
            }
            Ok(RecordKind::Alert) => {
                self.counts.alerts += 1;
                self.sink.commit(start)
            }
            Err(err) => {
                self.counts.rejected += 1;
                self.reject(record, index, &err)
            }
        }
    }

    #[cold]
    fn reject(
        &mut self,
        record: JsonValue<'_, '_>,
        index: Option<usize>,
        reason: &dyn std::fmt::Display,
    ) -> io::Result<()> {
        let line = self.origin.line + self.newlines_before(record);
        let raw = match index {
            // A whole line is one record: keep it byte for byte.
            None if !self.original.is_empty() && !self.origin.multi_line => RejectedRecord::Verbatim(self.original),
            _ if self.rejects.keeps_records() => {
                let mut json = Vec::new();
                write_compact_json(record, &mut json);
                return self.rejects.reject(self.origin.file, line, index, reason, RejectedRecord::Json(&json));
            }
            _ => RejectedRecord::None,
        };
        self.rejects.reject(self.origin.file, line, index, reason, raw)
    }

    /// Lines between the document start and the record (records inside a
    /// multi-line page), found from where its first key sits in the buffer:
    /// in-place unescaping never moves the start of a string.
    fn newlines_before(&self, record: JsonValue<'_, '_>) -> u64 {
        let Some(ptr) = record.first_str_ptr() else { return 0 };
        let offset = (ptr as usize).saturating_sub(self.base);
        let prefix = &self.original[..offset.min(self.original.len())];
        memchr::memchr_iter(b'\n', prefix).count() as u64
    }
}

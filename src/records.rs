//! Documents → records → CEF messages: the loop every job shares.
//!
//! [`RecordConverter`] parses one document (an NDJSON line, an API page or a
//! bare array) with the reused parser, walks its records, formats each into
//! the buffer a [`MessageSink`] lends it and tells the sink when a message is
//! complete. Records that cannot be converted go to the [`RejectLog`] with
//! file, line and reason; the records around them still go through.
//!
//! Per record, a [`RecordGate`] is asked before formatting whether to send
//! it and told after the sink took its message: the agent's `_id`
//! de-duplication and resend window plug in there ([`crate::agent::gate`]);
//! `convert`, `replay` and `backfill` use [`NoGate`], which compiles away.
//! [`RecordConverter::convert_page`] is the entry for API pages: it shows
//! the parsed page to its caller first (the paging fields come from the
//! same parse that converts the page) and treats an answer that is not a
//! page as the caller's error, not as a rejected record.
//!
//! Nothing in the per-record path allocates once buffers are warm. This
//! module knows nothing of where documents come from or where messages go.

use crate::cef::{CefFormatter, CefOptions, KindChoice, RecordError, RecordFields, RecordKey, RecordKind};
use crate::json::{JsonError, JsonParser, JsonValue, write_compact_json};
use crate::rejects::{RejectLog, RejectedRecord};
use std::io;

/// Where converted messages go: a file writer or a syslog batcher.
pub trait MessageSink {
    /// The buffer the next message is appended to.
    fn buffer(&mut self) -> &mut Vec<u8>;
    /// The message appended since `start` is complete; frame and, when the
    /// buffer is full enough, hand it on. An error stops the run.
    fn commit(&mut self, start: usize) -> io::Result<()>;

    /// Messages converted elsewhere (a worker of [`crate::parallel`]), in
    /// order: each is appended and committed as if formatted here. A sink
    /// whose output is the block's own layout may take it whole.
    fn commit_block(&mut self, block: &MessageBlock) -> io::Result<()> {
        for message in block.messages() {
            let buffer = self.buffer();
            let start = buffer.len();
            buffer.extend_from_slice(message);
            self.commit(start)?;
        }
        Ok(())
    }
}

/// Messages kept in one reused buffer, each followed by `\n` (the layout
/// of a file of CEF lines), for a worker of the parallel loop.
#[derive(Debug, Default)]
pub struct MessageBlock {
    bytes: Vec<u8>,
    /// Where each message's `\n` is.
    ends: Vec<usize>,
}

impl MessageBlock {
    /// Forgets the messages, keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// The messages, each followed by `\n`, back to back.
    pub fn as_lines(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each message, without its `\n`.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        let mut from = 0;
        self.ends.iter().map(move |&end| {
            let message = &self.bytes[from..end];
            from = end + 1;
            message
        })
    }
}

impl MessageSink for MessageBlock {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    fn commit(&mut self, _start: usize) -> io::Result<()> {
        self.ends.push(self.bytes.len());
        self.bytes.push(b'\n');
        Ok(())
    }
}

/// Decides, record by record, what the loop sends, and hears what was
/// sent. Called in this order for each record: [`admit`](Self::admit);
/// then, when it was admitted and formatted, [`formatted`](Self::formatted)
/// and, once the sink took the message, [`committed`](Self::committed). A
/// record the formatter rejects after being admitted gets neither.
pub trait RecordGate {
    /// Before formatting, with the record's fields and its id and time
    /// (read once, shared with the formatter). `false` skips the record:
    /// it is counted in [`ConvertCounts::skipped`], not rejected.
    fn admit(&mut self, fields: &RecordFields<'_, '_>, key: &RecordKey<'_, '_>) -> bool;
    /// The admitted record's message as formatted, before the sink frames
    /// it (after [`MessageSink::commit`] the bytes may be gone).
    fn formatted(&mut self, message: &[u8]);
    /// The sink took the message.
    fn committed(&mut self);
}

/// The gate of jobs that send every record: admits all, hears nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGate;

impl RecordGate for NoGate {
    #[inline(always)]
    fn admit(&mut self, _: &RecordFields<'_, '_>, _: &RecordKey<'_, '_>) -> bool {
        true
    }

    #[inline(always)]
    fn formatted(&mut self, _: &[u8]) {}

    #[inline(always)]
    fn committed(&mut self) {}
}

/// Counts of one run (or one input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertCounts {
    /// Records seen (converted + rejected + skipped).
    pub records: u64,
    pub activities: u64,
    pub alerts: u64,
    /// Streaming `CloudAppEvents` records (written as activities).
    pub cloud_app_events: u64,
    /// Graph `alerts_v2` alerts (written as alerts).
    pub graph_alerts: u64,
    pub rejected: u64,
    /// Records the gate turned away (the agent: sent before).
    pub skipped: u64,
    /// Streaming records of other tables, passed over on purpose.
    pub other_tables: u64,
}

impl ConvertCounts {
    pub fn converted(&self) -> u64 {
        self.activities + self.alerts + self.cloud_app_events + self.graph_alerts
    }

    pub fn add(&mut self, other: &ConvertCounts) {
        self.records += other.records;
        self.activities += other.activities;
        self.alerts += other.alerts;
        self.cloud_app_events += other.cloud_app_events;
        self.graph_alerts += other.graph_alerts;
        self.rejected += other.rejected;
        self.skipped += other.skipped;
        self.other_tables += other.other_tables;
    }

    /// `12 activities, 3 alerts`, naming only the successor sources' kinds
    /// that occurred, then the skipped records if any.
    pub fn kinds_text(&self) -> String {
        let mut text = format!("{} activities, {} alerts", self.activities, self.alerts);
        if self.cloud_app_events > 0 {
            text.push_str(&format!(", {} CloudAppEvents", self.cloud_app_events));
        }
        if self.graph_alerts > 0 {
            text.push_str(&format!(", {} Graph alerts", self.graph_alerts));
        }
        if self.other_tables > 0 {
            text.push_str(&format!("; skipped {} streaming records of other tables", self.other_tables));
        }
        text
    }

    fn count(&mut self, kind: RecordKind) {
        let counter = match kind {
            RecordKind::Activity => &mut self.activities,
            RecordKind::Alert => &mut self.alerts,
            RecordKind::CloudAppEvent => &mut self.cloud_app_events,
            RecordKind::GraphAlert => &mut self.graph_alerts,
        };
        *counter += 1;
    }

    /// What was counted since `earlier` (a copy taken before).
    pub fn since(&self, earlier: &ConvertCounts) -> ConvertCounts {
        ConvertCounts {
            records: self.records - earlier.records,
            activities: self.activities - earlier.activities,
            alerts: self.alerts - earlier.alerts,
            cloud_app_events: self.cloud_app_events - earlier.cloud_app_events,
            graph_alerts: self.graph_alerts - earlier.graph_alerts,
            rejected: self.rejected - earlier.rejected,
            skipped: self.skipped - earlier.skipped,
            other_tables: self.other_tables - earlier.other_tables,
        }
    }
}

/// Why an API page gave no records.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("the page is not JSON: {0}")]
    NotJson(JsonError),
    #[error("the answer is not an API page (no \"data\" array)")]
    NotAPage,
    /// The sink failed (a stop is [`crate::stop::Stop::error`]).
    #[error("{0}")]
    Sink(io::Error),
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

    /// Switches the mapping for the documents that follow.
    pub fn set_kind(&mut self, kind: KindChoice) {
        self.formatter.set_kind(kind);
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
        self.convert_document_gated(origin, bytes, len, sink, rejects, &mut NoGate)
    }

    /// Like [`Self::convert_document`], each record through `gate` (the
    /// Event Hubs source drops records read twice after a rebalance).
    pub fn convert_document_gated<G: RecordGate>(
        &mut self,
        origin: Origin<'_>,
        bytes: &mut [u8],
        len: usize,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
        gate: &mut G,
    ) -> io::Result<()> {
        self.keep_original(origin, bytes, len, rejects.keeps_records());
        // Records are located by where their strings sit in the buffer.
        let base = bytes.as_ptr() as usize;
        let Self { parser, formatter, original, counts } = self;
        let parsed = parser.parse(bytes, len, |root| {
            let mut ctx = RecordContext { formatter, counts, sink, rejects, origin, base, original, gate };
            match page_records(root) {
                Some(records) => ctx.convert_all(records),
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

    /// A document that could not be read at all (a line over the size
    /// limit, skipped): one record, rejected, located by its line.
    #[cold]
    pub fn reject_unreadable(
        &mut self,
        file: &str,
        line: u64,
        reason: &dyn std::fmt::Display,
        rejects: &mut RejectLog,
    ) -> io::Result<()> {
        self.counts.records += 1;
        self.counts.rejected += 1;
        rejects.reject(file, line, None, reason, RejectedRecord::None)
    }

    /// Converts the records of an API page (`{"data":[…]}`, Graph's
    /// `{"value":[…]}`) through `gate`.
    /// `read_page` sees the parsed page first and returns what the caller
    /// learns from it (the paging fields); `None` means it is not a page,
    /// and nothing is converted. A body that is not JSON or not a page is
    /// an error of the answer, not a rejected record. Records are located
    /// as `origin.file:origin.line: record N`.
    #[allow(clippy::too_many_arguments)]
    pub fn convert_page<G: RecordGate, T>(
        &mut self,
        origin: Origin<'_>,
        bytes: &mut [u8],
        len: usize,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
        gate: &mut G,
        read_page: impl FnOnce(JsonValue<'_, '_>) -> Option<T>,
    ) -> Result<T, PageError> {
        // Records of a page are kept as compact JSON: the copy of the
        // original is needed only to count lines.
        self.keep_original(origin, bytes, len, false);
        let base = bytes.as_ptr() as usize;
        let Self { parser, formatter, original, counts } = self;
        let parsed = parser.parse(bytes, len, |root| {
            // A Graph page holds its records in `value`.
            let records = root.get("data").or_else(|| root.get("value")).and_then(|data| data.array());
            let Some((learned, records)) = read_page(root).zip(records) else { return Err(PageError::NotAPage) };
            let mut ctx = RecordContext { formatter, counts, sink, rejects, origin, base, original, gate };
            ctx.convert_all(records).map_err(PageError::Sink)?;
            Ok(learned)
        });
        parsed.map_err(PageError::NotJson)?
    }

    /// Keeps a copy of the document when rejects are written verbatim or
    /// records must be located by line (parsing modifies the buffer).
    fn keep_original(&mut self, origin: Origin<'_>, bytes: &[u8], len: usize, verbatim: bool) {
        self.original.clear();
        if verbatim || origin.multi_line {
            self.original.extend_from_slice(&bytes[..len]);
        }
    }
}

/// The records of a page (`{"data":[…]}` without an `_id`), a streaming
/// envelope (`{"records":[…]}`), a Graph page (`{"value":[…]}`) or a bare
/// array; `None` when the document is itself one record.
fn page_records<'t, 'i>(root: JsonValue<'t, 'i>) -> Option<impl Iterator<Item = JsonValue<'t, 'i>>> {
    if let Some(items) = root.array() {
        return Some(items);
    }
    let mut list = None;
    for (key, value) in root.object()? {
        match key {
            "_id" => return None,
            "data" | "records" | "value" if list.is_none() => list = value.array(),
            _ => {}
        }
    }
    list
}

struct RecordContext<'a, 'o, G> {
    formatter: &'a mut CefFormatter,
    counts: &'a mut ConvertCounts,
    sink: &'a mut dyn MessageSink,
    rejects: &'a mut RejectLog,
    origin: Origin<'o>,
    /// Address of the document's first byte, to locate records for messages.
    base: usize,
    original: &'a [u8],
    gate: &'a mut G,
}

impl<G: RecordGate> RecordContext<'_, '_, G> {
    fn convert_all<'t, 'i: 't>(&mut self, records: impl Iterator<Item = JsonValue<'t, 'i>>) -> io::Result<()> {
        for (index, record) in records.enumerate() {
            self.convert(record, Some(index))?;
        }
        Ok(())
    }

    fn convert(&mut self, record: JsonValue<'_, '_>, index: Option<usize>) -> io::Result<()> {
        self.counts.records += 1;
        let Some(fields) = RecordFields::scan(record) else {
            self.counts.rejected += 1;
            return self.reject(record, index, &RecordError::NotAnObject);
        };
        let key = self.formatter.read_key(&fields);
        if key.kind.as_ref().err().is_some_and(RecordError::is_skip) {
            self.counts.other_tables += 1;
            return Ok(());
        }
        if !self.gate.admit(&fields, &key) {
            self.counts.skipped += 1;
            return Ok(());
        }
        let buffer = self.sink.buffer();
        let start = buffer.len();
        match self.formatter.format_keyed(&fields, &key, buffer) {
            Ok(kind) => {
                self.counts.count(kind);
                self.gate.formatted(&buffer[start..]);
                self.sink.commit(start)?;
                self.gate.committed();
                Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::INPUT_PADDING;

    /// Keeps every message.
    #[derive(Default)]
    struct Lines(Vec<u8>, Vec<String>);

    impl MessageSink for Lines {
        fn buffer(&mut self) -> &mut Vec<u8> {
            &mut self.0
        }

        fn commit(&mut self, start: usize) -> io::Result<()> {
            self.1.push(String::from_utf8(self.0[start..].to_vec()).unwrap());
            self.0.truncate(start);
            Ok(())
        }
    }

    fn padded(text: &str) -> (Vec<u8>, usize) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(text.len() + INPUT_PADDING, 0);
        (bytes, text.len())
    }

    /// Writes down what it is told, and turns away the ids it is given.
    #[derive(Default)]
    struct Recording {
        refuse: Vec<&'static str>,
        events: Vec<String>,
    }

    impl RecordGate for Recording {
        fn admit(&mut self, _: &RecordFields<'_, '_>, key: &RecordKey<'_, '_>) -> bool {
            let id = key.id.and_then(|v| v.as_str()).unwrap_or("-").to_owned();
            let admitted = !self.refuse.contains(&id.as_str());
            self.events.push(format!("admit {id} {:?} {admitted}", key.time.ok()));
            admitted
        }

        fn formatted(&mut self, message: &[u8]) {
            self.events.push(format!("formatted {}", message.len()));
        }

        fn committed(&mut self) {
            self.events.push("committed".to_owned());
        }
    }

    const ORIGIN: Origin<'static> = Origin { file: "alerts", line: 2, multi_line: false };

    #[test]
    fn the_gate_admits_before_formatting_and_hears_after_commit() {
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
        let mut sink = Lines::default();
        let mut gate = Recording { refuse: vec!["b"], ..Recording::default() };
        let (mut bytes, len) = padded(
            r#"{"data":[{"_id":"a","timestamp":"7","eventTypeName":"E"},{"_id":"b","timestamp":8,"eventTypeName":"E"},{"_id":"c","eventTypeName":"E"},3]}"#,
        );
        converter.convert_page(ORIGIN, &mut bytes, len, &mut sink, &mut rejects, &mut gate, |_| Some(())).unwrap();
        let a = sink.1[0].len();
        assert_eq!(
            gate.events,
            [
                "admit a Some(7) true".to_owned(),
                format!("formatted {a}"),
                "committed".to_owned(),
                "admit b Some(8) false".to_owned(),
                // Admitted, then rejected by the formatter (no timestamp): not committed.
                "admit c None true".to_owned(),
            ],
            "the id and time are read once and shown to the gate; the record that is not an object never reaches it"
        );
        assert_eq!(sink.1.len(), 1);
        let counts = converter.counts;
        assert_eq!((counts.records, counts.activities, counts.skipped, counts.rejected), (4, 1, 1, 2));
    }

    /// Notes each admission in a log shared with the page reader.
    struct Noting(std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>);

    impl RecordGate for Noting {
        fn admit(&mut self, _: &RecordFields<'_, '_>, _: &RecordKey<'_, '_>) -> bool {
            self.0.borrow_mut().push("record");
            true
        }

        fn formatted(&mut self, _: &[u8]) {}

        fn committed(&mut self) {}
    }

    #[test]
    fn the_page_is_read_before_its_records_are_converted() {
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
        let mut sink = Lines::default();
        let (mut bytes, len) = padded(
            r#"{"data":[{"_id":"a","timestamp":1,"eventTypeName":"E"},{"_id":"b","timestamp":2,"eventTypeName":"E"}],"hasNext":true}"#,
        );
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut gate = Noting(std::rc::Rc::clone(&log));
        let has_next = converter
            .convert_page(ORIGIN, &mut bytes, len, &mut sink, &mut rejects, &mut gate, |root| {
                log.borrow_mut().push("page");
                Some(matches!(root.get("hasNext").and_then(|v| v.scalar()), Some(crate::json::Scalar::Bool(true))))
            })
            .unwrap();
        assert!(has_next, "what the reader learned comes back");
        assert_eq!(*log.borrow(), ["page", "record", "record"], "the paging fields first, then the records");
        assert_eq!(sink.1.len(), 2);
    }

    #[test]
    fn an_answer_that_is_not_json_or_not_a_page_is_an_error_not_a_reject() {
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut rejects = RejectLog::with_messages(10, Box::new(io::sink()));
        let mut sink = Lines::default();
        for (text, not_json) in [
            (r#"{"data":[{"_id":"a""#, true),
            (r#"{"error":"throttled"}"#, false),
            (r#"[{"_id":"a","timestamp":1,"eventTypeName":"E"}]"#, false),
            (r#"{"data":{"_id":"a"}}"#, false),
        ] {
            let (mut bytes, len) = padded(text);
            let read = converter.convert_page(ORIGIN, &mut bytes, len, &mut sink, &mut rejects, &mut NoGate, |root| {
                root.get("data").map(|_| ())
            });
            match read {
                Err(PageError::NotJson(_)) if not_json => {}
                Err(PageError::NotAPage) if !not_json => {}
                other => panic!("{text}: {:?}", other.err()),
            }
        }
        assert_eq!(converter.counts, ConvertCounts::default(), "nothing counted");
        assert_eq!((rejects.total(), sink.1.len()), (0, 0), "nothing rejected, nothing sent");
    }
}

//! Reporting of records that produced no message: a `FILE:LINE: reason`
//! line on stderr (the first [`RejectLog::new`]`(limit)` of them, then a
//! count), and optionally the rejected records themselves in a file
//! (`--rejects`), one per line, so they can be fixed and fed again. Every
//! job's record loop reports here, the agent's included (its records are
//! located as `STREAM@QUERY_START:PAGE: record N`). It owns the messages
//! and the file; it does not decide what is rejected.
//!
//! A worker of the parallel loop ([`crate::parallel`]) reports into a
//! [`RejectBatch`] instead ([`RejectLog::recording`]): the messages and
//! records of its chunk, kept in reused buffers, which the one real log
//! takes in input order ([`RejectLog::append`]) so that what is shown and
//! kept is the same whatever the number of threads.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The record to keep in the rejects file.
pub enum RejectedRecord<'a> {
    /// The input line exactly as read.
    Verbatim(&'a [u8]),
    /// A record taken out of a page, re-serialised as compact JSON.
    Json(&'a [u8]),
    /// Nothing kept (no rejects file).
    None,
}

/// Collects rejected records.
pub struct RejectLog {
    shown: u64,
    show_limit: u64,
    total: u64,
    /// The rejects file: its name (for messages) and a buffered writer.
    file: Option<(String, BufWriter<Box<dyn Write + Send>>)>,
    /// Messages go here (stderr in the binary, a buffer in tests).
    messages: Box<dyn Write + Send>,
    /// A worker's log: rejects are kept here for the real log.
    recording: Option<RejectBatch>,
}

/// The rejects of one chunk, recorded by a worker for the real log: the
/// message text and the record of each, back to back in one reused buffer.
#[derive(Debug, Default)]
pub struct RejectBatch {
    text: Vec<u8>,
    entries: Vec<RecordedReject>,
    /// Keep the records (the real log writes a rejects file).
    keep_records: bool,
    /// Messages are formatted for the first this many rejects of a chunk
    /// only: the real log cannot show more than that from one chunk.
    show_limit: u64,
}

#[derive(Debug, Clone, Copy)]
struct RecordedReject {
    /// `text[..message_end]` (from the previous entry's end) is the message,
    /// without its newline; empty when beyond the show limit.
    message_end: usize,
    /// `text[message_end..record_end]` is the record, if one was kept.
    record_end: usize,
    has_record: bool,
}

impl RejectBatch {
    /// Forgets what was recorded, keeping the buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
    }

    /// Rejects recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl RejectLog {
    /// Shows the first `show_limit` rejects on stderr.
    pub fn new(show_limit: u64) -> Self {
        Self::with_messages(show_limit, Box::new(io::stderr()))
    }

    pub fn with_messages(show_limit: u64, messages: Box<dyn Write + Send>) -> Self {
        Self { shown: 0, show_limit, total: 0, file: None, messages, recording: None }
    }

    /// A worker's log: records into a [`RejectBatch`] (given with
    /// [`Self::record_into`]) what `real` would show and keep.
    pub fn recording(real: &RejectLog) -> Self {
        let mut log = Self::with_messages(real.show_limit, Box::new(io::sink()));
        log.recording = Some(RejectBatch {
            keep_records: real.keeps_records(),
            show_limit: real.show_limit,
            ..RejectBatch::default()
        });
        log
    }

    /// Swaps the batch this [`Self::recording`] log records into with
    /// `batch`: the log goes on in `batch`, `batch` holds what was recorded.
    pub fn swap_recording(&mut self, batch: &mut RejectBatch) {
        let current = self.recording.as_mut().expect("a recording reject log");
        batch.keep_records = current.keep_records;
        batch.show_limit = current.show_limit;
        std::mem::swap(current, batch);
    }

    /// Takes in the rejects a worker recorded, as if they had been
    /// reported here one by one.
    pub fn append(&mut self, batch: &RejectBatch) -> io::Result<()> {
        let mut from = 0;
        for entry in &batch.entries {
            self.total += 1;
            let message = &batch.text[from..entry.message_end];
            if self.shown < self.show_limit && !message.is_empty() {
                self.shown += 1;
                let _ = self.messages.write_all(message).and_then(|()| self.messages.write_all(b"\n"));
            }
            if entry.has_record {
                self.keep(&batch.text[entry.message_end..entry.record_end])?;
            }
            from = entry.record_end;
        }
        Ok(())
    }

    /// Also writes every rejected record to `path` (created or emptied).
    pub fn keep_records_in(&mut self, path: &Path) -> io::Result<()> {
        let file = File::create(path)?;
        self.keep_records_in_writer(path.display().to_string(), Box::new(file));
        Ok(())
    }

    /// Also writes every rejected record to `out`, a file its owner opened
    /// (the agent appends to one it keeps); `name` is used in messages.
    pub fn keep_records_in_writer(&mut self, name: String, out: Box<dyn Write + Send>) {
        self.file = Some((name, BufWriter::new(out)));
    }

    /// True when rejected records are written to a file.
    pub fn keeps_records(&self) -> bool {
        self.file.is_some() || self.recording.as_ref().is_some_and(|r| r.keep_records)
    }

    /// Records rejected so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Reports one rejected record. Fails only when the rejects file
    /// cannot be written.
    #[cold]
    pub fn reject(
        &mut self,
        file: &str,
        line: u64,
        record_index: Option<usize>,
        reason: &dyn Display,
        record: RejectedRecord<'_>,
    ) -> io::Result<()> {
        self.total += 1;
        if let Some(batch) = &mut self.recording {
            batch.record(file, line, record_index, reason, record);
            return Ok(());
        }
        if self.shown < self.show_limit {
            self.shown += 1;
            // A failing stderr must not stop the conversion.
            let _ = write_message(&mut self.messages, file, line, record_index, reason);
        }
        match record {
            RejectedRecord::Verbatim(b) | RejectedRecord::Json(b) => self.keep(b),
            RejectedRecord::None => Ok(()),
        }
    }

    /// Writes one record to the rejects file, if there is one.
    fn keep(&mut self, record: &[u8]) -> io::Result<()> {
        if let Some((name, out)) = &mut self.file {
            out.write_all(record)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| io::Error::new(e.kind(), format!("writing rejects file {name}: {e}")))?;
        }
        Ok(())
    }

    /// Writes out what the rejects file buffered (the agent does so before
    /// its checkpoint moves past the records).
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some((name, out)) = &mut self.file {
            out.flush().map_err(|e| io::Error::new(e.kind(), format!("writing rejects file {name}: {e}")))?;
        }
        Ok(())
    }

    /// Flushes the rejects file and notes how many messages were not shown.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.total > self.shown {
            let _ = writeln!(
                self.messages,
                "... {} more rejected records not shown{}",
                self.total - self.shown,
                if self.file.is_some() {
                    " (all are in the rejects file)"
                } else {
                    " (use --rejects FILE to keep them)"
                }
            );
        }
        self.flush()
    }
}

/// The message of one reject, without its newline.
fn write_message(
    out: &mut dyn Write,
    file: &str,
    line: u64,
    record_index: Option<usize>,
    reason: &dyn Display,
) -> io::Result<()> {
    match record_index {
        Some(index) => writeln!(out, "{file}:{line}: record {}: {reason}", index + 1),
        None => writeln!(out, "{file}:{line}: {reason}"),
    }
}

impl RejectBatch {
    #[cold]
    fn record(
        &mut self,
        file: &str,
        line: u64,
        record_index: Option<usize>,
        reason: &dyn Display,
        record: RejectedRecord<'_>,
    ) {
        if (self.entries.len() as u64) < self.show_limit {
            // Writing into a Vec cannot fail.
            let _ = write_message(&mut self.text, file, line, record_index, reason);
            self.text.pop(); // the newline; `append` writes its own
        }
        let message_end = self.text.len();
        let kept = match record {
            RejectedRecord::Verbatim(b) | RejectedRecord::Json(b) if self.keep_records => Some(b),
            _ => None,
        };
        if let Some(bytes) = kept {
            self.text.extend_from_slice(bytes);
        }
        self.entries.push(RecordedReject { message_end, record_end: self.text.len(), has_record: kept.is_some() });
    }
}

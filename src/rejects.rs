//! Reporting of records that produced no message: a `FILE:LINE: reason`
//! line on stderr (the first [`RejectLog::new`]`(limit)` of them, then a
//! count), and optionally the rejected records themselves in a file
//! (`--rejects`), one per line, so they can be fixed and fed again. Every
//! job's record loop reports here, the agent's included (its records are
//! located as `STREAM@QUERY_START:PAGE: record N`). It owns the messages
//! and the file; it does not decide what is rejected.

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
}

impl RejectLog {
    /// Shows the first `show_limit` rejects on stderr.
    pub fn new(show_limit: u64) -> Self {
        Self::with_messages(show_limit, Box::new(io::stderr()))
    }

    pub fn with_messages(show_limit: u64, messages: Box<dyn Write + Send>) -> Self {
        Self { shown: 0, show_limit, total: 0, file: None, messages }
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
        self.file.is_some()
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
        if self.shown < self.show_limit {
            self.shown += 1;
            // A failing stderr must not stop the conversion.
            let _ = match record_index {
                Some(index) => writeln!(self.messages, "{file}:{line}: record {}: {reason}", index + 1),
                None => writeln!(self.messages, "{file}:{line}: {reason}"),
            };
        }
        if let Some((name, out)) = &mut self.file {
            let bytes = match record {
                RejectedRecord::Verbatim(b) | RejectedRecord::Json(b) => b,
                RejectedRecord::None => return Ok(()),
            };
            out.write_all(bytes)
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

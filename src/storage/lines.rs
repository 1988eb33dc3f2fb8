//! One chunk of archive lines → records on the shared record loop. Each
//! line (LF or CRLF) is one envelope record; it is copied into a reused,
//! padded buffer and converted through the caller's gate (backfill's and
//! the agent's `ReportId` de-duplication). A rejected record is located as
//! `BLOB@OFFSET` (the byte offset of its line: blobs have no line numbers
//! a reader started from a checkpoint could know); a line over the limit,
//! which the reader skipped without reading it whole, is one reject.

use crate::azure::archive::ChunkPosition;
use crate::json::INPUT_PADDING;
use crate::records::{MessageSink, Origin, RecordConverter, RecordGate};
use crate::rejects::RejectLog;
use std::fmt::Write as _;
use std::io;

/// Reused buffers for converting chunks.
#[derive(Debug, Default)]
pub struct ChunkLines {
    line: Vec<u8>,
    origin: String,
    /// Lines seen (records, blank lines apart).
    pub lines: u64,
}

impl ChunkLines {
    /// Converts every line of `chunk` (the bytes of `position`).
    pub fn convert<G: RecordGate>(
        &mut self,
        position: &ChunkPosition,
        chunk: &[u8],
        converter: &mut RecordConverter,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
        gate: &mut G,
    ) -> io::Result<()> {
        let mut at = 0;
        while at < chunk.len() {
            let end = memchr::memchr(b'\n', &chunk[at..]).map_or(chunk.len(), |n| at + n);
            let mut line = &chunk[at..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let offset = position.start + at as u64;
            at = end + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.lines += 1;
            self.line.clear();
            self.line.extend_from_slice(line);
            self.line.resize(line.len() + INPUT_PADDING, 0);
            self.origin.clear();
            let _ = write!(self.origin, "{}@{offset}", position.blob);
            let origin = Origin { file: &self.origin, line: 1, multi_line: false };
            converter.convert_document_gated(origin, &mut self.line, line.len(), sink, rejects, gate)?;
        }
        Ok(())
    }

    /// The line of `position` was over `limit` bytes: one rejected record.
    #[cold]
    pub fn too_long(
        &mut self,
        position: &ChunkPosition,
        limit: u64,
        converter: &mut RecordConverter,
        rejects: &mut RejectLog,
    ) -> io::Result<()> {
        self.lines += 1;
        self.origin.clear();
        let _ = write!(self.origin, "{}@{}", position.blob, position.start);
        let reason = format!(
            "line of {} bytes is longer than the limit of {limit} bytes; skipped without being read whole",
            position.end - position.start
        );
        converter.reject_unreadable(&self.origin, 1, &reason, rejects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cef::CefOptions;
    use crate::records::{MessageBlock, NoGate};

    #[test]
    fn lines_crlf_or_lf_blank_lines_and_rejects_with_their_offset() {
        let record = |id: u32| {
            format!(
                r#"{{"time":"2024-05-01T12:00:00Z","category":"AdvancedHunting-CloudAppEvents","properties":{{"Timestamp":"2024-05-01T12:00:00Z","ReportId":{id},"ActionType":"FileDownloaded"}}}}"#
            )
        };
        let chunk = format!("{}\r\n\n{}\nnot json\r\n{}\n", record(1), record(2), record(3));
        let position = ChunkPosition { blob: "b".into(), start: 100, end: 100 + chunk.len() as u64 };
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut block = MessageBlock::default();
        let (rejected, mut rejects) = {
            let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
            impl io::Write for Shared {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    self.0.lock().unwrap().extend_from_slice(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            (out.clone(), RejectLog::with_messages(10, Box::new(Shared(out))))
        };
        let mut lines = ChunkLines::default();
        lines.convert(&position, chunk.as_bytes(), &mut converter, &mut block, &mut rejects, &mut NoGate).unwrap();
        assert_eq!(lines.lines, 4);
        assert_eq!(block.len(), 3, "three records, the blank line skipped");
        assert!(block.messages().all(|m| !m.contains(&b'\r')));
        let not_json_at = 100 + chunk.find("not json").unwrap();
        lines
            .too_long(&ChunkPosition { blob: "b".into(), start: 7, end: 5007 }, 4096, &mut converter, &mut rejects)
            .unwrap();
        rejects.finish().unwrap();
        let text = String::from_utf8(rejected.lock().unwrap().clone()).unwrap();
        assert!(text.contains(&format!("b@{not_json_at}:1:")), "{text}");
        assert!(text.contains("b@7:1: line of 5000 bytes is longer than the limit of 4096 bytes"), "{text}");
        assert_eq!(converter.counts.rejected, 2);
    }
}

//! The agent's [`RecordGate`]: send every record once. Before a record is
//! formatted its `_id` is looked up among the ids already sent (the overlap
//! of consecutive queries re-reads records on purpose); after the sink took
//! its message the id is remembered with the record's cursor time, and the
//! message is kept in the [`ResendWindow`].
//!
//! It owns only these per-record decisions: it reads the id and the time
//! once (from what the record loop read for the formatter), and does not
//! parse, send, save the checkpoint or decide when ids are forgotten.

use super::resend::ResendWindow;
use super::state::SeenIds;
use crate::api::TimeKey;
use crate::cef::{RecordFields, RecordKey};
use crate::records::RecordGate;

/// Skips records sent before; remembers those sent now. One per page.
pub struct SendOnceGate<'a> {
    seen: &'a mut SeenIds,
    resend: &'a mut ResendWindow,
    /// The field the stream's cursor runs on (`created` or `timestamp`).
    key: TimeKey,
    digits: itoa::Buffer,
    /// Of the record admitted last, for [`RecordGate::committed`].
    admitted: Admitted,
    /// The newest `timestamp` of a record sent through this gate.
    pub newest_sent_ms: Option<i64>,
}

#[derive(Clone, Copy, Default)]
struct Admitted {
    hash: u64,
    /// Its cursor-field time (else its timestamp, else 0).
    cursor_ms: i64,
    timestamp_ms: Option<i64>,
}

impl<'a> SendOnceGate<'a> {
    /// `key` names the cursor field of the stream (activities: `created`,
    /// alerts: `date`).
    pub fn new(seen: &'a mut SeenIds, resend: &'a mut ResendWindow, key: TimeKey) -> Self {
        Self { seen, resend, key, digits: itoa::Buffer::new(), admitted: Admitted::default(), newest_sent_ms: None }
    }
}

impl RecordGate for SendOnceGate<'_> {
    fn admit(&mut self, fields: &RecordFields<'_, '_>, key: &RecordKey<'_, '_>) -> bool {
        // No usable id: the formatter rejects the record.
        let Some(hash) = key.id_hash(&mut self.digits) else { return true };
        if self.seen.contains(hash) {
            return false;
        }
        let timestamp_ms = key.time.ok();
        let cursor_ms = match self.key {
            TimeKey::Date => timestamp_ms,
            TimeKey::Created => fields.created.and_then(|v| v.as_i64_lenient()).or(timestamp_ms),
        };
        self.admitted = Admitted { hash, cursor_ms: cursor_ms.unwrap_or(0), timestamp_ms };
        true
    }

    fn formatted(&mut self, message: &[u8]) {
        self.resend.push(message);
    }

    fn committed(&mut self) {
        let Admitted { hash, cursor_ms, timestamp_ms } = self.admitted;
        self.seen.insert(cursor_ms, hash);
        self.newest_sent_ms = self.newest_sent_ms.max(timestamp_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cef::CefOptions;
    use crate::cef::id_hash;
    use crate::json::INPUT_PADDING;
    use crate::records::{MessageSink, Origin, RecordConverter};
    use crate::rejects::RejectLog;

    struct Lines(Vec<u8>, Vec<String>);

    impl MessageSink for Lines {
        fn buffer(&mut self) -> &mut Vec<u8> {
            &mut self.0
        }

        fn commit(&mut self, start: usize) -> std::io::Result<()> {
            self.1.push(String::from_utf8(self.0[start..].to_vec()).unwrap());
            self.0.truncate(start);
            Ok(())
        }
    }

    fn page(records: &str) -> Vec<u8> {
        let mut bytes = format!(r#"{{"data":[{records}],"hasNext":false}}"#).into_bytes();
        bytes.resize(bytes.len() + INPUT_PADDING, 0);
        bytes
    }

    /// Runs one page through the shared record loop with the agent's gate.
    fn send(
        converter: &mut RecordConverter,
        seen: &mut SeenIds,
        resend: &mut ResendWindow,
        key: TimeKey,
        records: &str,
    ) -> (Vec<String>, Option<i64>) {
        let mut bytes = page(records);
        let len = bytes.len() - INPUT_PADDING;
        let mut sink = Lines(Vec::new(), Vec::new());
        let mut rejects = RejectLog::with_messages(0, Box::new(std::io::sink()));
        let mut gate = SendOnceGate::new(seen, resend, key);
        let origin = Origin { file: "activities", line: 1, multi_line: false };
        converter.convert_page(origin, &mut bytes, len, &mut sink, &mut rejects, &mut gate, |_| Some(())).unwrap();
        (sink.1, gate.newest_sent_ms)
    }

    #[test]
    fn sends_each_id_once_and_remembers_the_cursor_time() {
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut seen = SeenIds::default();
        let mut resend = ResendWindow::new(1 << 16);
        let a = r#"{"_id":"a","timestamp":10,"created":100,"eventTypeName":"E"}"#;
        let b = r#"{"_id":7,"timestamp":20,"created":200,"eventTypeName":"E"}"#;
        let (sent, newest) = send(&mut converter, &mut seen, &mut resend, TimeKey::Created, &format!("{a},{b},{a}"));
        assert_eq!(sent.len(), 2, "the repeated id in the same page is skipped: {sent:?}");
        assert_eq!(newest, Some(20));
        assert_eq!(converter.counts.skipped, 1);
        assert!(seen.contains(id_hash(b"a")) && seen.contains(id_hash(b"7")), "integer ids by their digits");
        // The ids carry their `created` time: pruning before 150 forgets "a".
        seen.prune(150);
        assert!(!seen.contains(id_hash(b"a")) && seen.contains(id_hash(b"7")));
        let kept: Vec<&[u8]> = resend.messages().collect();
        assert_eq!(kept, sent.iter().map(|m| m.as_bytes()).collect::<Vec<_>>(), "the resend window has each message");

        let (sent, newest) = send(&mut converter, &mut seen, &mut resend, TimeKey::Created, &format!("{a},{b}"));
        assert_eq!((sent.len(), newest), (1, Some(10)), "only the forgotten id goes again");
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn rejects_carry_the_page_position_and_reach_the_rejects_file() {
        let mut converter = RecordConverter::new(&CefOptions::default());
        converter.set_kind(crate::cef::KindChoice::Alerts);
        let (messages, file) = (Shared::default(), Shared::default());
        let mut rejects = RejectLog::with_messages(10, Box::new(messages.clone()));
        rejects.keep_records_in_writer("rejects.ndjson".to_owned(), Box::new(file.clone()));
        let mut seen = SeenIds::default();
        let mut resend = ResendWindow::new(1 << 16);
        let mut bytes = page(r#"{"_id":"a","timestamp":1},{"timestamp":2, "title":"no id"}"#);
        let len = bytes.len() - INPUT_PADDING;
        let mut sink = Lines(Vec::new(), Vec::new());
        let mut gate = SendOnceGate::new(&mut seen, &mut resend, TimeKey::Date);
        let origin = Origin { file: "alerts@2026-01-01T00:00:00.000Z", line: 3, multi_line: false };
        converter.convert_page(origin, &mut bytes, len, &mut sink, &mut rejects, &mut gate, |_| Some(())).unwrap();
        rejects.flush().unwrap();
        assert_eq!(sink.1.len(), 1);
        assert_eq!(
            messages.text(),
            "alerts@2026-01-01T00:00:00.000Z:3: record 2: record has no usable \"_id\"\n",
            "stream, query start, page and record"
        );
        assert_eq!(file.text(), "{\"timestamp\":2,\"title\":\"no id\"}\n", "the record, ready to feed again");
    }

    #[test]
    fn rejected_records_are_not_remembered() {
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut seen = SeenIds::default();
        let mut resend = ResendWindow::new(1 << 16);
        let records = r#"{"_id":"x","eventTypeName":"E"},{"eventTypeName":"E","timestamp":1},5"#;
        let (sent, newest) = send(&mut converter, &mut seen, &mut resend, TimeKey::Date, records);
        assert!(sent.is_empty() && newest.is_none());
        assert_eq!(converter.counts.rejected, 3);
        assert!(seen.is_empty() && resend.is_empty());
    }
}

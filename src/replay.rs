//! The sending jobs: `cefwire replay` (NDJSON converted on the fly, or
//! already-rendered CEF/syslog lines passed through, looped, paced, over
//! several connections) and `cefwire convert --to` (convert straight into a
//! [`SyslogSender`]).
//!
//! It owns pacing (`--rate`), stopping (`--duration`, `--loop`, signals),
//! re-stamping header times (`--time-warp`) and the final report. It never
//! touches sockets: everything leaves through the sender.

use crate::cef::CefOptions;
use crate::convert::{ConvertConfig, ConvertReport, FailedInput, convert_inputs};
use crate::input::DocumentReader;
use crate::input::lines::LineError;
use crate::input::source::InputPath;
use crate::json::rounded;
use crate::parallel::{self, ParallelConverter, Parallelism};
use crate::progress::Progress;
use crate::records::{ConvertCounts, MessageBlock, MessageSink, Origin, RecordConverter};
use crate::rejects::RejectLog;
use crate::send::{SendConfig, SendReport, SyslogSender};
use crate::stop::{Stop, is_stop};
use crate::syslog::header::{CivilTime, TimestampStyle};
use serde::Serialize;
use std::io;
use std::time::{Duration, Instant};

/// Validated settings of `cefwire replay`.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub inputs: Vec<InputPath>,
    /// Used for NDJSON inputs.
    pub cef: CefOptions,
    pub send: SendConfig,
    /// Messages per second, spread evenly (`None`: as fast as possible).
    pub rate: Option<f64>,
    /// How many times to read the inputs (`None`: until `duration`).
    pub loops: Option<u64>,
    pub duration: Option<Duration>,
    /// Re-stamp header times to the send time.
    pub time_warp: bool,
    pub progress: bool,
    pub show_rejects: u64,
    /// The largest line or whole-document input held in memory.
    pub max_document_bytes: usize,
    /// Threads converting NDJSON files (stdin is read on one).
    pub parallelism: Parallelism,
    /// Pass rendered lines exactly as they are, even those without
    /// `<PRI>` (`--raw-lines`; streams then use octet counting). Otherwise
    /// a line without one gets the configured PRI in front when sent.
    pub raw_lines: bool,
    /// Set by SIGINT/SIGTERM.
    pub stop: Stop,
}

/// What a replay did.
#[derive(Clone, Debug, Default)]
pub struct ReplayReport {
    /// Records converted from NDJSON inputs.
    pub converted: ConvertCounts,
    /// Already-rendered lines passed through.
    pub passed_through: u64,
    pub loops_done: u64,
    pub failed_inputs: Vec<FailedInput>,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Lines whose header time could not be found for `--time-warp`.
    pub not_restamped: u64,
    pub send: SendReport,
    pub elapsed: Duration,
}

impl ReplayReport {
    pub fn text(&self) -> String {
        let s = &self.send;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut text = format!(
            "{} in {:.2} s: {:.0} msgs/s, {:.1} MB/s",
            s.totals(),
            secs,
            s.messages_written as f64 / secs,
            s.bytes_written as f64 / secs / 1e6,
        );
        text.push_str(&format!(
            "; {} converted, {} passed through, {} loop{}",
            self.converted.converted(),
            self.passed_through,
            self.loops_done,
            if self.loops_done == 1 { "" } else { "s" }
        ));
        if self.converted.rejected > 0 {
            text.push_str(&format!("; rejected {}", self.converted.rejected));
        }
        if self.converted.other_tables > 0 {
            text.push_str(&format!("; skipped {} streaming records of other tables", self.converted.other_tables));
        }
        s.push_problems(&mut text);
        if self.not_restamped > 0 {
            text.push_str(&format!("; {} lines without a header time to re-stamp", self.not_restamped));
        }
        if self.interrupted {
            text.push_str("; interrupted");
        }
        s.push_failure(&mut text);
        text
    }

    pub fn json(&self) -> String {
        let json = ReplayJson {
            converted: self.converted.converted(),
            rejected: self.converted.rejected,
            other_tables: self.converted.other_tables,
            passed_through: self.passed_through,
            loops: self.loops_done,
            failed_inputs: self.failed_inputs.len(),
            interrupted: self.interrupted,
            not_restamped: self.not_restamped,
            send: SendJson::new(&self.send, self.elapsed),
        };
        serde_json::to_string(&json).expect("a report serializes")
    }
}

/// `replay --report json`: its own counts, then the sender's.
#[derive(Serialize)]
struct ReplayJson<'a> {
    converted: u64,
    rejected: u64,
    other_tables: u64,
    passed_through: u64,
    loops: u64,
    failed_inputs: usize,
    interrupted: bool,
    not_restamped: u64,
    #[serde(flatten)]
    send: SendJson<'a>,
}

/// The sender's counters as JSON fields, in this order.
#[derive(Serialize)]
pub struct SendJson<'a> {
    messages_accepted: u64,
    messages_written: u64,
    messages_unsent: u64,
    bytes_written: u64,
    truncated: u64,
    oversize_dropped: u64,
    connects: u64,
    reconnects: u64,
    errors: u64,
    possibly_lost: u64,
    messages_resent: u64,
    elapsed_s: f64,
    msgs_per_s: f64,
    mb_per_s: f64,
    first_error: Option<&'a str>,
    last_error: Option<&'a str>,
    failure: Option<&'a str>,
}

impl<'a> SendJson<'a> {
    pub fn new(s: &'a SendReport, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            messages_accepted: s.messages_accepted,
            messages_written: s.messages_written,
            messages_unsent: s.messages_unsent,
            bytes_written: s.bytes_written,
            truncated: s.truncated,
            oversize_dropped: s.oversize_dropped,
            connects: s.connects,
            reconnects: s.reconnects,
            errors: s.errors,
            possibly_lost: s.possibly_lost,
            messages_resent: s.messages_resent,
            elapsed_s: rounded(secs, 6),
            msgs_per_s: rounded(s.messages_written as f64 / secs, 1),
            mb_per_s: rounded(s.bytes_written as f64 / secs / 1e6, 3),
            first_error: s.first_error.as_deref(),
            last_error: s.last_error.as_deref(),
            failure: s.failure.as_deref(),
        }
    }
}

/// Header times of "now", formatted once per millisecond.
struct NowStamp {
    ms: i64,
    rfc5424: [u8; 24],
    rfc3164: [u8; 15],
    rfc3164_year: [u8; 20],
}

impl NowStamp {
    fn new() -> Self {
        let mut stamp = Self { ms: i64::MIN, rfc5424: [0; 24], rfc3164: [0; 15], rfc3164_year: [0; 20] };
        stamp.refresh();
        stamp
    }

    fn refresh(&mut self) {
        let ms = crate::time::now_ms();
        if ms == self.ms {
            return;
        }
        self.ms = ms;
        let time = CivilTime::from_epoch_ms(ms).unwrap_or(CivilTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
        });
        let mut scratch = Vec::with_capacity(24);
        for (style, target) in [
            (TimestampStyle::Rfc5424, &mut self.rfc5424[..]),
            (TimestampStyle::Rfc3164, &mut self.rfc3164[..]),
            (TimestampStyle::Rfc3164WithYear, &mut self.rfc3164_year[..]),
        ] {
            scratch.clear();
            time.write(style, &mut scratch);
            target.copy_from_slice(&scratch[..target.len()]);
        }
    }
}

/// Replaces the header time of the message at `buf[start..]` with now, in
/// the same style. Knows `[<PRI>][1 ]TIME …` with TIME as RFC 3339
/// (any fraction or offset; written back as `…T…sss.mmmZ`) or RFC 3164
/// (with or without year). Returns false when no time was found.
fn restamp(buf: &mut Vec<u8>, start: usize, now: &mut NowStamp) -> bool {
    let mut at = start;
    if buf.get(at) == Some(&b'<')
        && let Some(close) = buf[at..buf.len().min(at + 6)].iter().position(|&b| b == b'>')
    {
        at += close + 1;
    }
    if buf[at..].starts_with(b"1 ") {
        at += 2;
    }
    let rest = &buf[at..];
    let digit = |i: usize| rest.get(i).is_some_and(u8::is_ascii_digit);
    now.refresh();
    // RFC 3339: YYYY-MM-DDTHH:MM:SS then anything up to the space.
    if rest.len() >= 20
        && (0..4).all(digit)
        && rest[4] == b'-'
        && rest[7] == b'-'
        && rest[10] == b'T'
        && rest[13] == b':'
    {
        let len = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let new = &now.rfc5424;
        if len != new.len() {
            // Different fraction/offset: make room for ours.
            let tail = at + len;
            if len < new.len() {
                let grow = new.len() - len;
                let old_len = buf.len();
                buf.resize(old_len + grow, 0);
                buf.copy_within(tail..old_len, tail + grow);
            } else {
                buf.copy_within(tail.., at + new.len());
                buf.truncate(buf.len() - (len - new.len()));
            }
        }
        buf[at..at + new.len()].copy_from_slice(new);
        return true;
    }
    // RFC 3164: "Mmm dd hh:mm:ss" or "Mmm dd yyyy hh:mm:ss", every
    // character where it belongs (a message that only looks like one in
    // places keeps its text).
    let is = |i: usize, c: u8| rest.get(i) == Some(&c);
    let clock_at =
        |i: usize| [i, i + 1, i + 3, i + 4, i + 6, i + 7].into_iter().all(digit) && is(i + 2, b':') && is(i + 5, b':');
    let month_day = rest.len() >= 16
        && rest[0].is_ascii_uppercase()
        && rest[1..3].iter().all(u8::is_ascii_lowercase)
        && is(3, b' ')
        && (digit(4) || is(4, b' '))
        && digit(5)
        && is(6, b' ');
    if month_day && clock_at(7) && is(15, b' ') {
        buf[at..at + 15].copy_from_slice(&now.rfc3164);
        return true;
    }
    if month_day && (7..11).all(digit) && is(11, b' ') && clock_at(12) && is(20, b' ') {
        buf[at..at + 20].copy_from_slice(&now.rfc3164_year);
        return true;
    }
    false
}

/// Between the converter and the sender: re-stamps, paces, stops.
struct Pacer<'a> {
    sender: &'a mut SyslogSender,
    rate: Option<f64>,
    started: Instant,
    sent: u64,
    deadline: Option<Instant>,
    stop: &'a Stop,
    now: Option<NowStamp>,
    not_restamped: u64,
    progress: &'a Progress,
    next_progress: Instant,
    /// Put in front of a rendered line that has no `<PRI>` of its own: a
    /// receiver takes the leading digit of a bare timestamp for an octet
    /// count and splits the stream (rsyslog, syslog-ng).
    pri_for_bare_lines: Option<u8>,
}

/// The pacer ends the input loop (a stop, or `--duration` reached) with
/// [`Stop::error`], which the callers tell apart from failures.
impl Pacer<'_> {
    fn show_progress(&mut self, now: Instant) {
        if self.progress.is_visible() && now >= self.next_progress {
            self.next_progress = now + Duration::from_millis(250);
            let report = self.sender.report();
            let secs = report.elapsed.as_secs_f64().max(1e-9);
            self.progress.set_position(report.messages_written);
            self.progress.set_message(&format!(
                "sending: {:.1} MB/s, {} errors, sent",
                report.bytes_written as f64 / secs / 1e6,
                report.errors
            ));
        }
    }

    /// Stop flag, deadline and progress, once per block of messages.
    fn check_stop(&mut self) -> io::Result<()> {
        if self.stop.is_requested() || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::error());
        }
        self.show_progress(Instant::now());
        Ok(())
    }

    fn pace(&mut self) -> io::Result<()> {
        if self.stop.is_requested() {
            return Err(Stop::error());
        }
        let check_clock = self.rate.is_some() || self.sent.is_multiple_of(256);
        if !check_clock {
            return Ok(());
        }
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(Stop::error());
        }
        if let Some(rate) = self.rate {
            let due = self.started + Duration::from_secs_f64(self.sent as f64 / rate);
            if due > now + Duration::from_millis(1) {
                // Ahead of schedule: let what is batched go now, then wait.
                self.sender.send_pending()?;
                let mut wait = due - Instant::now().min(due);
                if let Some(deadline) = self.deadline {
                    wait = wait.min(deadline.saturating_duration_since(Instant::now()));
                }
                // A stop ends the wait, so it is noticed at slow rates too.
                if self.stop.wait_timeout(wait) {
                    return Err(Stop::error());
                }
            }
        }
        self.show_progress(now);
        Ok(())
    }
}

impl MessageSink for Pacer<'_> {
    fn buffer(&mut self) -> &mut Vec<u8> {
        self.sender.buffer()
    }

    fn commit(&mut self, start: usize) -> io::Result<()> {
        if let Some(now) = &mut self.now
            && !restamp(self.sender.buffer(), start, now)
        {
            self.not_restamped += 1;
        }
        self.sender.commit(start)?;
        self.sent += 1;
        self.pace()
    }

    /// A block converted by a worker: when nothing is re-stamped or paced
    /// and newline framing takes lines as they are, it is copied in whole.
    fn commit_block(&mut self, block: &MessageBlock) -> io::Result<()> {
        let whole = self.rate.is_none()
            && self.now.is_none()
            && block.as_lines().len() <= self.sender.batch_bytes()
            && self.sender.append_lines(block.as_lines())?.is_some();
        if !whole {
            for message in block.messages() {
                let buffer = self.buffer();
                let start = buffer.len();
                buffer.extend_from_slice(message);
                self.commit(start)?;
            }
            return Ok(());
        }
        self.sent += block.len() as u64;
        self.check_stop()
    }
}

/// Runs `cefwire replay`.
pub fn run_replay(config: &ReplayConfig) -> io::Result<ReplayReport> {
    let mut sender = SyslogSender::start(&config.send).map_err(io::Error::other)?;
    let started = Instant::now();
    let progress = Progress::items(config.progress, None, "sending");
    let mut rejects = RejectLog::new(config.show_rejects);
    let mut converter = RecordConverter::new(&config.cef);
    let mut parallel =
        config.parallelism.is_parallel().then(|| ParallelConverter::new(config.parallelism, &config.cef, &rejects));
    let mut report = ReplayReport::default();
    let mut pacer = Pacer {
        sender: &mut sender,
        rate: config.rate.filter(|r| *r > 0.0),
        started,
        sent: 0,
        deadline: config.duration.map(|d| started + d),
        stop: &config.stop,
        now: config.time_warp.then(NowStamp::new),
        not_restamped: 0,
        progress: &progress,
        next_progress: started,
        pri_for_bare_lines: if config.raw_lines { None } else { config.cef.header.pri },
    };
    let loops = config.loops.unwrap_or(if config.duration.is_some() { u64::MAX } else { 1 });
    let mut outcome = Ok(());
    'loops: for _ in 0..loops {
        for input in &config.inputs {
            let reader = DocumentReader::open(input)
                .map(|reader| reader.with_max_document(config.max_document_bytes))
                .map_err(|e| InputError::Read(input.display_name(), format!("cannot open: {e}")));
            let replayed = reader.and_then(|mut reader| {
                let from_stdin = *input == InputPath::Stdin;
                let parallel = parallel.as_mut().filter(|_| !from_stdin);
                let converters = Converters { single: &mut converter, parallel };
                replay_input(&mut reader, from_stdin, converters, &mut pacer, &mut rejects, &mut report)
            });
            match replayed {
                Ok(()) => {}
                Err(InputError::Read(name, reason)) => {
                    progress.println(&format!("cefwire: {name}: {reason}"));
                    if !report.failed_inputs.iter().any(|f| f.name == name) {
                        report.failed_inputs.push(FailedInput { name, reason });
                    }
                }
                Err(InputError::Sink(err)) => {
                    if !is_stop(&err) {
                        outcome = Err(err);
                    }
                    report.interrupted = config.stop.is_requested();
                    break 'loops;
                }
            }
        }
        report.loops_done += 1;
        if config.inputs.iter().all(|i| *i == InputPath::Stdin) {
            break;
        }
    }
    report.not_restamped = pacer.not_restamped;
    progress.finish();
    report.converted = converter.counts;
    if let Some(parallel) = &parallel {
        report.converted.add(&parallel.counts);
    }
    report.send = sender.finish()?;
    report.elapsed = started.elapsed();
    if let Err(err) = outcome
        && report.send.failure.is_none()
    {
        report.send.failure = Some(err.to_string());
    }
    Ok(report)
}

enum InputError {
    Read(String, String),
    Sink(io::Error),
}

/// The converters of one input: the one-thread loop (rendered lines'
/// rejects, stdin, `--threads 1`) and, for NDJSON files, the parallel one.
struct Converters<'a> {
    single: &'a mut RecordConverter,
    parallel: Option<&'a mut ParallelConverter>,
}

fn replay_input(
    reader: &mut DocumentReader,
    from_stdin: bool,
    converters: Converters<'_>,
    sink: &mut Pacer<'_>,
    rejects: &mut RejectLog,
    report: &mut ReplayReport,
) -> Result<(), InputError> {
    let name = reader.name().to_owned();
    let Converters { single: converter, parallel } = converters;
    // A line over the size limit was skipped by the reader: a located
    // reject, and the input goes on. Any other read error ends it.
    let read_error = |err: LineError, converter: &mut RecordConverter, rejects: &mut RejectLog| match err {
        LineError::TooLong { line, limit } => converter
            .reject_unreadable(&name, line, &crate::input::too_long_reason(limit), rejects)
            .map_err(InputError::Sink),
        err => Err(InputError::Read(name.clone(), err.to_string())),
    };
    let is_json = match reader.holds_json() {
        Ok(None) => return Ok(()),
        Ok(Some(is_json)) => is_json,
        Err(err) => return read_error(err, converter, rejects),
    };
    if is_json && let Some(parallel) = parallel {
        let quiet = Progress::hidden();
        parallel.convert_input(reader, sink, rejects, &quiet, 0).map_err(|err| match err {
            parallel::InputError::Read(err) => InputError::Read(name.clone(), err.to_string()),
            parallel::InputError::Fatal(err) => InputError::Sink(err),
        })?;
    } else if is_json {
        loop {
            if from_stdin {
                send_before_waiting(reader, sink).map_err(InputError::Sink)?;
            }
            match reader.next_document() {
                Ok(Some(doc)) => {
                    let origin = Origin { file: &name, line: doc.line, multi_line: doc.whole_input };
                    converter.convert_document(origin, doc.bytes, doc.len, sink, rejects).map_err(InputError::Sink)?;
                }
                Ok(None) => break,
                Err(err) => read_error(err, converter, rejects)?,
            }
        }
    } else if sink.rate.is_none() && sink.now.is_none() && sink.sender.takes_line_blocks() {
        // Fast path: whole blocks of lines, copied once.
        let max = sink.sender.batch_bytes();
        loop {
            if from_stdin {
                send_before_waiting(reader, sink).map_err(InputError::Sink)?;
            }
            let block = match reader.next_line_block(max) {
                Ok(Some(block)) => block,
                Ok(None) => break,
                Err(err) => {
                    read_error(err, converter, rejects)?;
                    continue;
                }
            };
            let as_they_are = sink.pri_for_bare_lines.is_none() || every_line_has_pri(block);
            let before = sink.sender.messages_accepted();
            let appended = if as_they_are { sink.sender.append_lines(block) } else { Ok(None) };
            // Counted when the sender took them, even if the run stops
            // right after (a stop while handing the batch on).
            let taken = sink.sender.messages_accepted() - before;
            sink.sent += taken;
            report.passed_through += taken;
            if appended.map_err(InputError::Sink)?.is_none() {
                for line in block.split(|&b| b == b'\n') {
                    pass_line(line, sink, report).map_err(InputError::Sink)?;
                }
            }
            sink.check_stop().map_err(InputError::Sink)?;
        }
    } else {
        loop {
            if from_stdin {
                send_before_waiting(reader, sink).map_err(InputError::Sink)?;
            }
            match reader.next_raw_line() {
                Ok(Some(line)) => pass_line(&line.bytes[..line.len], sink, report).map_err(InputError::Sink)?,
                Ok(None) => break,
                Err(err) => read_error(err, converter, rejects)?,
            }
        }
    }
    Ok(())
}

/// One already-rendered line as one message: a trailing `\r` is dropped,
/// an empty line skipped, everything else passed through byte for byte.
fn pass_line(line: &[u8], sink: &mut Pacer<'_>, report: &mut ReplayReport) -> io::Result<()> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Ok(());
    }
    let pri = sink.pri_for_bare_lines.filter(|_| pri_len(line).is_none());
    let buffer = sink.buffer();
    let start = buffer.len();
    if let Some(pri) = pri {
        buffer.push(b'<');
        let mut digits = itoa::Buffer::new();
        buffer.extend_from_slice(digits.format(pri).as_bytes());
        buffer.push(b'>');
    }
    buffer.extend_from_slice(line);
    let before = sink.sender.messages_accepted();
    let committed = sink.commit(start);
    // Counted when the sender took it, even if the run stops right after.
    report.passed_through += sink.sender.messages_accepted() - before;
    committed
}

/// The length of the `<PRI>` (`<` 1–3 digits `>`) a line starts with.
fn pri_len(line: &[u8]) -> Option<usize> {
    let rest = line.strip_prefix(b"<")?;
    let digits = rest.iter().take(4).take_while(|b| b.is_ascii_digit()).count();
    ((1..=3).contains(&digits) && rest.get(digits) == Some(&b'>')).then_some(digits + 2)
}

/// Whether every line of a block of whole lines starts with `<PRI>`.
fn every_line_has_pri(block: &[u8]) -> bool {
    block.split(|&b| b == b'\n').filter(|line| !line.is_empty()).all(|line| pri_len(line).is_some())
}

/// A live stdin (`tail -f … | cefwire replay -`) may go quiet for a long
/// time: before the reader would block on it, hand over what is batched so
/// those messages go out now rather than when the batch fills.
fn send_before_waiting(reader: &DocumentReader, sink: &mut Pacer<'_>) -> io::Result<()> {
    if !reader.has_buffered_line() && !stdin_has_data() {
        sink.sender.send_pending()?;
    }
    Ok(())
}

#[cfg(unix)]
fn stdin_has_data() -> bool {
    let mut poll_fd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut poll_fd, 1, 0) };
    rc > 0
}

#[cfg(not(unix))]
fn stdin_has_data() -> bool {
    false
}

/// Runs `cefwire convert … --to URL`: the convert job with a sender as its
/// output. Returns the convert counts and the send report.
pub fn convert_to_syslog(
    config: &ConvertConfig,
    send: &SendConfig,
    stop: &Stop,
) -> io::Result<(ConvertReport, SendReport)> {
    let mut sender = SyslogSender::start(send).map_err(io::Error::other)?;
    let mut rejects = RejectLog::new(config.show_rejects);
    if let Some(path) = &config.rejects_file {
        rejects
            .keep_records_in(path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating rejects file {}: {e}", path.display())))?;
    }
    let progress = Progress::hidden();
    let mut sink = Pacer {
        sender: &mut sender,
        rate: None,
        started: Instant::now(),
        sent: 0,
        deadline: None,
        stop,
        now: None,
        not_restamped: 0,
        progress: &progress,
        next_progress: Instant::now(),
        pri_for_bare_lines: None,
    };
    let converted = convert_inputs(config, &mut sink, &mut rejects);
    rejects.finish()?;
    let mut send_report = sender.finish()?;
    let mut report = match converted {
        Ok(report) => report,
        Err(err) if is_stop(&err) => ConvertReport::default(),
        Err(err) => {
            send_report.failure.get_or_insert_with(|| err.to_string());
            ConvertReport::default()
        }
    };
    report.bytes_out = send_report.bytes_written;
    Ok((report, send_report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any line: no panic; when a time was found, only it changed.
        #[test]
        fn restamp_never_panics_and_keeps_the_rest(
            pri in "(<[0-9]{1,3}>)?(1 )?",
            time in "([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.+Z-]{0,20}|[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8}|[A-Za-z0-9 :-]{0,25})",
            rest in " [ -~]{0,40}",
        ) {
            let line = format!("{pri}{time}{rest}");
            let mut now = NowStamp::new();
            let mut buf = line.clone().into_bytes();
            if restamp(&mut buf, 0, &mut now) {
                let text = String::from_utf8(buf).unwrap();
                prop_assert!(text.starts_with(&pri));
                prop_assert!(text.ends_with(&rest));
            } else {
                prop_assert_eq!(buf, line.into_bytes());
            }
        }
    }

    fn stamped(line: &str) -> Option<String> {
        let mut now = NowStamp::new();
        let mut buf = b"prefix".to_vec();
        buf.extend_from_slice(line.as_bytes());
        let ok = restamp(&mut buf, 6, &mut now);
        ok.then(|| String::from_utf8(buf[6..].to_vec()).unwrap())
    }

    #[test]
    fn restamps_each_header_style() {
        let out = stamped("<134>2017-11-22T17:50:04.000Z host CEF:0|x").unwrap();
        assert!(out.starts_with("<134>") && out.ends_with("Z host CEF:0|x") && !out.contains("2017"));
        assert_eq!(out.len(), "<134>2017-11-22T17:50:04.000Z host CEF:0|x".len());
        let out = stamped("2017-11-22T17:50:04Z CEF:0|x").unwrap();
        assert_eq!(out.len(), "2017-11-22T17:50:04.000Z CEF:0|x".len());
        let out = stamped("<13>1 2017-11-22T17:50:04.123456+01:00 h app - - - m").unwrap();
        assert!(out.starts_with("<13>1 ") && out.ends_with("Z h app - - - m"));
        let out = stamped("<134>Nov  2 03:04:05 host CEF:0|x").unwrap();
        assert_eq!(out.len(), "<134>Nov  2 03:04:05 host CEF:0|x".len());
        assert!(!out.contains("Nov  2 03:04:05"));
        assert!(stamped("<134>Nov 22 2017 17:50:04 host CEF").is_some());
        assert!(stamped("CEF:0|MCAS|no header").is_none());
    }

    /// Found by the property above: colons and spaces where a 3164 time
    /// has them, letters and digits where it has others. Not a time: the
    /// line keeps its text (before, 20 bytes of it were overwritten).
    #[test]
    fn a_line_that_only_looks_like_a_3164_time_in_places_is_left_alone() {
        assert!(stamped("Aaa 00 0000000:  :A  ").is_none());
        assert!(stamped("Nov 22 2017x17:50:04 host").is_none());
        assert!(stamped("Nov 22 17:50:04x host").is_none());
        assert!(stamped("NOV 22 17:50:04 host").is_none());
    }
}

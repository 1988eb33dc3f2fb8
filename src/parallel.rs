//! The record loop on several threads, with the output in input order.
//!
//! One input at a time, shared by N worker threads: a worker takes a free
//! chunk, reads (and decompresses) the next piece of the input into it
//! under a lock — a block of whole NDJSON lines read straight into the
//! chunk's own input buffer by [`LineBlocks`] (one copy of each byte: from
//! the source into the chunk), or the whole document when the input is one
//! page or array — tagged with a sequence number and the number of its
//! first line, then converts it outside the lock, on the core that just
//! read it (its bytes still in that core's cache; no reader thread
//! competes with the workers for the cores), with its own
//! [`RecordConverter`] (own parser and buffers) into a [`MessageBlock`],
//! recording rejects with their exact `FILE:LINE` in a [`RejectBatch`]; a
//! line that came whole in a chunk but is over the size limit is rejected
//! there, one that does not fit was skipped while reading. The calling
//! thread puts finished chunks back in sequence order and hands them to
//! the real [`MessageSink`] and [`RejectLog`] (a large block goes to a
//! [`crate::output::LineWriter`]'s file without a copy), so what comes out
//! is byte for byte what the one-thread loop writes.
//!
//! Memory is bounded: a fixed pool of chunks (input bytes, messages,
//! rejects) circulates through bounded crossbeam channels — workers →
//! writer → workers — and its buffers are reused, so once warm no record
//! allocates. A worker that panics ends the input with an error naming the
//! chunk; nothing after the last chunk written in order is written.
//!
//! This module owns the threads, the chunk pool and the ordering; it does
//! not find line ends itself ([`LineBlocks`] and the [`DocumentReader`] do)
//! nor convert records (the shared loop in [`crate::records`] does).

use crate::cef::CefOptions;
use crate::input::blocks::{Block, LineBlocks};
use crate::input::lines::LineError;
use crate::input::{DocumentReader, Layout, too_long_reason};
use crate::json::INPUT_PADDING;
use crate::progress::Progress;
use crate::records::{ConvertCounts, MessageBlock, MessageSink, Origin, RecordConverter};
use crate::rejects::{RejectBatch, RejectLog};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

/// Bytes of input per chunk (at least one whole line): large enough that
/// handing chunks around costs nothing next to converting them, small
/// enough that a few per thread stay a few MiB. `replay` keeps this size:
/// a chunk's messages then fit the sender's batch (256 KiB) and are taken
/// in whole, so a stop never splits a chunk.
pub const DEFAULT_CHUNK_BYTES: usize = 256 * 1024;

/// Chunks for `convert` into a file or stdout (not `--to`): measured on 2 cores
/// (docs/benchmarks.md), 1 MiB beat 256 KiB (four times the hand-overs
/// and thread wake-ups), 64 KiB, 2 MiB and 4 MiB.
pub const CONVERT_CHUNK_BYTES: usize = 1 << 20;

/// The most threads `--threads` takes.
pub const MAX_THREADS: usize = 256;

/// The threads this process may use: the CPUs it may run on, within its
/// cgroup CPU quota (Rust's `available_parallelism` reads both on Linux).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}

/// How many threads convert, and how inputs are cut for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parallelism {
    /// Converting threads; 1 runs the one-thread loop unchanged.
    pub threads: usize,
    pub chunk_bytes: usize,
}

impl Parallelism {
    pub fn threads(threads: usize) -> Self {
        Self { threads: threads.clamp(1, MAX_THREADS), chunk_bytes: DEFAULT_CHUNK_BYTES }
    }

    /// The same threads, inputs cut into chunks of `bytes`.
    pub fn with_chunk_bytes(self, bytes: usize) -> Self {
        Self { chunk_bytes: bytes.max(1), ..self }
    }

    /// One thread: today's loop, no worker threads.
    pub fn single() -> Self {
        Self::threads(1)
    }

    pub fn is_parallel(&self) -> bool {
        self.threads > 1
    }
}

impl Default for Parallelism {
    fn default() -> Self {
        Self::threads(available_threads())
    }
}

/// Why an input ended early.
#[derive(Debug)]
pub enum InputError {
    /// The input could not be read to the end; what came before was
    /// converted and written.
    Read(LineError),
    /// The output failed, the run was stopped, or a worker failed: the run
    /// ends.
    Fatal(io::Error),
}

/// Where a chunk's documents are.
#[derive(Clone, Copy, Debug)]
enum ChunkKind {
    /// Whole lines, the first numbered so; a line longer than `max_line`
    /// is rejected as too long.
    Lines { first_line: u64, max_line: usize },
    /// One document (a page or an array) over many lines, from this one.
    Whole { line: u64 },
    /// A line over the size limit, skipped while reading: one rejected
    /// record, in its place in the order.
    TooLong { line: u64, limit: usize },
}

/// A piece of input and what became of it; circulates, buffers reused.
#[derive(Debug)]
struct Chunk {
    seq: u64,
    kind: ChunkKind,
    /// The input bytes, then [`INPUT_PADDING`] bytes.
    data: Vec<u8>,
    len: usize,
    messages: MessageBlock,
    rejects: RejectBatch,
    counts: ConvertCounts,
}

impl Chunk {
    fn new() -> Self {
        Self {
            seq: 0,
            kind: ChunkKind::Lines { first_line: 1, max_line: usize::MAX },
            data: Vec::new(),
            len: 0,
            messages: MessageBlock::default(),
            rejects: RejectBatch::default(),
            counts: ConvertCounts::default(),
        }
    }

    fn fill(&mut self, seq: u64, kind: ChunkKind, bytes: &[u8]) {
        self.seq = seq;
        self.kind = kind;
        self.data.clear();
        self.data.extend_from_slice(bytes);
        self.len = bytes.len();
        self.data.resize(self.len + INPUT_PADDING, 0);
    }
}

/// What a worker hands back. The chunk moves by value: boxing it would
/// allocate once per chunk.
#[allow(clippy::large_enum_variant)]
enum Done {
    Converted(Chunk),
    Failed(io::Error),
}

/// One worker's state, kept from input to input.
struct Worker {
    converter: RecordConverter,
    /// Records into the batch of the chunk being converted.
    rejects: RejectLog,
}

/// Converts inputs on several threads (see the module documentation).
pub struct ParallelConverter {
    plan: Parallelism,
    workers: Vec<Worker>,
    /// The chunk pool between inputs.
    chunks: Vec<Chunk>,
    /// Counts of everything written so far.
    pub counts: ConvertCounts,
}

impl ParallelConverter {
    /// Workers that format with `cef` and record rejects the way `rejects`
    /// shows and keeps them (its rejects file must be set already).
    pub fn new(plan: Parallelism, cef: &CefOptions, rejects: &RejectLog) -> Self {
        let workers = (0..plan.threads.max(1))
            .map(|_| Worker { converter: RecordConverter::new(cef), rejects: RejectLog::recording(rejects) })
            .collect();
        Self { plan, workers, chunks: Vec::new(), counts: ConvertCounts::default() }
    }

    /// Chunks in circulation: enough that every worker has one while the
    /// writer empties the last ones.
    fn pool_size(&self) -> usize {
        self.workers.len() * 2 + 2
    }

    /// Converts every document of `reader` into `sink`, in input order.
    /// `progress` is moved to `progress_base` plus the input's raw bytes
    /// read as chunks go out.
    pub fn convert_input(
        &mut self,
        reader: &mut DocumentReader,
        sink: &mut dyn MessageSink,
        rejects: &mut RejectLog,
        progress: &Progress,
        progress_base: u64,
    ) -> Result<(), InputError> {
        let layout = reader.detect().map_err(InputError::Read)?;
        let pool = self.pool_size();
        while self.chunks.len() < pool {
            self.chunks.push(Chunk::new());
        }
        let (free_tx, free_rx) = bounded::<Chunk>(pool);
        for chunk in self.chunks.drain(..) {
            free_tx.send(chunk).expect("the pool fits its channel");
        }
        let (done_tx, done_rx) = bounded::<Done>(pool + self.workers.len());
        let name = reader.name().to_owned();
        let blocks = LineBlocks::new(reader);
        let input = Mutex::new(SharedInput {
            reader,
            layout,
            blocks,
            chunk_bytes: self.plan.chunk_bytes,
            next_seq: 0,
            finished: false,
            result: Ok(()),
            unused: &mut self.chunks,
            progress,
            progress_base,
        });
        let counts = &mut self.counts;
        let written = std::thread::scope(|scope| {
            for worker in &mut self.workers {
                let (free_rx, done_tx, name, input) = (free_rx.clone(), done_tx.clone(), name.as_str(), &input);
                std::thread::Builder::new()
                    .name("cefwire-convert".into())
                    .spawn_scoped(scope, move || worker.run(name, free_rx, input, done_tx))
                    .map_err(InputError::Fatal)?;
            }
            drop(done_tx);
            Ok::<_, InputError>(write_in_order(done_rx, free_tx, pool, sink, rejects, counts))
        })?;
        let input = input.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let read = input.result;
        // Chunks the writer gave back, and those taken last with nothing
        // left to read (already in `unused`), serve the next input.
        self.chunks.extend(free_rx.try_iter());
        written.map_err(InputError::Fatal)?;
        read.map_err(InputError::Read)
    }
}

/// The input, read by whichever worker needs a chunk next, one at a time
/// (under a lock): the chunk is then converted on the core that just read
/// it, while its bytes are still in that core's cache, and no thread of
/// its own competes with the workers for the cores.
struct SharedInput<'a> {
    reader: &'a mut DocumentReader,
    layout: Layout,
    blocks: LineBlocks,
    chunk_bytes: usize,
    /// The sequence number of the next chunk filled.
    next_seq: u64,
    /// The input is read to its end, or could not be: nothing more is read.
    finished: bool,
    /// A read error that ended the input.
    result: Result<(), LineError>,
    /// Chunks taken from the pool once nothing was left to read.
    unused: &'a mut Vec<Chunk>,
    progress: &'a Progress,
    progress_base: u64,
}

impl SharedInput<'_> {
    /// Fills `chunk` with the next piece of the input, in order; `None`
    /// (the chunk kept for the next input) at the end or at a read error.
    fn fill(&mut self, mut chunk: Chunk) -> Option<Chunk> {
        if self.finished {
            self.unused.push(chunk);
            return None;
        }
        let seq = self.next_seq;
        let filled = match self.layout {
            Layout::Lines => fill_lines(self.reader, &mut self.blocks, &mut chunk, seq, self.chunk_bytes),
            Layout::Whole => match self.reader.next_document() {
                Ok(Some(doc)) => {
                    chunk.fill(seq, ChunkKind::Whole { line: doc.line }, &doc.bytes[..doc.len]);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(err) => Err(err),
            },
        };
        match filled {
            Ok(true) => {
                self.next_seq += 1;
                if self.progress.is_visible() {
                    self.progress.set_position(self.progress_base + self.reader.raw_bytes_read());
                }
                Some(chunk)
            }
            ended => {
                self.finished = true;
                self.result = ended.map(|_| ());
                self.unused.push(chunk);
                None
            }
        }
    }
}

/// Reads the next block of whole lines straight into `chunk`'s input
/// buffer (or notes the line over the size limit skipped while reading);
/// `false` at the end of the input.
fn fill_lines(
    reader: &mut DocumentReader,
    blocks: &mut LineBlocks,
    chunk: &mut Chunk,
    seq: u64,
    chunk_bytes: usize,
) -> Result<bool, LineError> {
    chunk.seq = seq;
    match blocks.next_block(reader, &mut chunk.data, chunk_bytes)? {
        Some(Block::Lines { first_line, len }) => {
            chunk.kind = ChunkKind::Lines { first_line, max_line: blocks.max_line() };
            chunk.len = len;
            Ok(true)
        }
        Some(Block::TooLong { line, limit }) => {
            chunk.kind = ChunkKind::TooLong { line, limit };
            chunk.len = 0;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The calling thread: takes finished chunks, writes them in sequence
/// order, sends them back to the free pool. Ends when every worker is done,
/// or at the first failure.
fn write_in_order(
    done: Receiver<Done>,
    free: Sender<Chunk>,
    pool: usize,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
    counts: &mut ConvertCounts,
) -> io::Result<()> {
    // At most `pool` chunks exist, so those waiting have distinct slots.
    let mut waiting: Vec<Option<Chunk>> = (0..pool).map(|_| None).collect();
    let mut next = 0u64;
    for finished in done.iter() {
        let chunk = match finished {
            Done::Converted(chunk) => chunk,
            Done::Failed(err) => return Err(err),
        };
        let slot = (chunk.seq % pool as u64) as usize;
        waiting[slot] = Some(chunk);
        while let Some(chunk) = waiting[(next % pool as u64) as usize].take() {
            // Counted before the sink takes them: a sink that stops half
            // way (a signal while replaying) has still taken this chunk's
            // records in, as the one-thread loop counts them.
            counts.add(&chunk.counts);
            sink.commit_block(&chunk.messages)?;
            rejects.append(&chunk.rejects)?;
            next += 1;
            // Never blocks: the channel holds the whole pool.
            let _ = free.send(chunk);
        }
    }
    Ok(())
}

impl Worker {
    /// Takes a free chunk, fills it from the shared input, converts it
    /// and hands it to the writer, until the input is finished or the
    /// writer stops.
    fn run(&mut self, name: &str, free: Receiver<Chunk>, input: &Mutex<SharedInput<'_>>, done: Sender<Done>) {
        for chunk in free.iter() {
            // A worker that panicked never holds the lock (conversion runs
            // outside it): a poisoned lock only ends this worker too.
            let Some(mut chunk) = input.lock().ok().and_then(|mut input| input.fill(chunk)) else { return };
            let converted = catch_unwind(AssertUnwindSafe(|| self.convert(name, &mut chunk)));
            let finished = match converted {
                Ok(Ok(())) => Done::Converted(chunk),
                Ok(Err(err)) => Done::Failed(worker_failed(name, &chunk, &err)),
                Err(panic) => {
                    let reason = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".to_owned());
                    // The run ends here: this worker converts nothing more.
                    Done::Failed(worker_failed(name, &chunk, &reason))
                }
            };
            let failed = matches!(finished, Done::Failed(_));
            if done.send(finished).is_err() || failed {
                return;
            }
        }
    }

    /// Converts one chunk with the shared record loop: each non-blank
    /// line (a trailing `\r` dropped, as the line reader does) is one
    /// document, or the chunk is one whole document.
    fn convert(&mut self, name: &str, chunk: &mut Chunk) -> io::Result<()> {
        chunk.messages.clear();
        chunk.rejects.clear();
        let before = self.converter.counts;
        // The log records into the chunk's batch, then gets its own back.
        self.rejects.swap_recording(&mut chunk.rejects);
        let converted = self.convert_documents(name, chunk);
        self.rejects.swap_recording(&mut chunk.rejects);
        chunk.counts = self.converter.counts.since(&before);
        converted
    }

    fn convert_documents(&mut self, name: &str, chunk: &mut Chunk) -> io::Result<()> {
        let Chunk { kind, data, len, messages, .. } = chunk;
        let len = *len;
        match *kind {
            ChunkKind::Whole { line } => {
                let origin = Origin { file: name, line, multi_line: true };
                self.converter.convert_document(origin, data, len, messages, &mut self.rejects)
            }
            ChunkKind::TooLong { line, limit } => {
                self.converter.reject_unreadable(name, line, &too_long_reason(limit), &mut self.rejects)
            }
            ChunkKind::Lines { first_line, max_line } => {
                let mut line = first_line;
                let mut at = 0;
                while at < len {
                    let end = memchr::memchr(b'\n', &data[at..len]).map_or(len, |p| at + p);
                    let text = &data[at..end];
                    if text.len() > max_line {
                        // Whole in the chunk, but over the limit all the same.
                        let reason = too_long_reason(max_line);
                        self.converter.reject_unreadable(name, line, &reason, &mut self.rejects)?;
                    } else if !text.iter().all(u8::is_ascii_whitespace) {
                        let text_len = text.len() - usize::from(text.last() == Some(&b'\r'));
                        let origin = Origin { file: name, line, multi_line: false };
                        self.converter.convert_document(
                            origin,
                            &mut data[at..],
                            text_len,
                            messages,
                            &mut self.rejects,
                        )?;
                    }
                    line += 1;
                    at = end + 1;
                }
                crate::fault_hooks::injected_worker_panic(first_line, line);
                Ok(())
            }
        }
    }
}

#[cold]
fn worker_failed(name: &str, chunk: &Chunk, reason: &dyn std::fmt::Display) -> io::Error {
    let line = match chunk.kind {
        ChunkKind::Lines { first_line, .. } => first_line,
        ChunkKind::Whole { line } | ChunkKind::TooLong { line, .. } => line,
    };
    io::Error::other(format!(
        "{name}: a conversion thread failed on the chunk from line {line} ({reason}); \
         the output stops before that chunk"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::SharedBuffer as Shared;
    use crate::records::MessageBlock;
    use std::io::Write;

    /// Output, reject messages, kept rejects, counts and read error of one run.
    type Run = (String, String, String, ConvertCounts, Option<String>);

    fn reject_log(show: u64) -> (RejectLog, Shared, Shared) {
        let (messages, kept) = (Shared::default(), Shared::default());
        let mut log = RejectLog::with_messages(show, Box::new(messages.clone()));
        log.keep_records_in_writer("kept".into(), Box::new(kept.clone()));
        (log, messages, kept)
    }

    fn reader(input: &[u8], max_document: usize) -> DocumentReader {
        DocumentReader::from_reader("in", Box::new(io::Cursor::new(input.to_vec()))).with_max_document(max_document)
    }

    /// What a run left: output, messages, kept rejects, counts, the read error.
    fn finished(
        read: Result<(), InputError>,
        mut rejects: RejectLog,
        sink: &MessageBlock,
        messages: &Shared,
        kept: &Shared,
        counts: ConvertCounts,
    ) -> Run {
        let error = match read {
            Ok(()) => None,
            Err(InputError::Read(err)) => Some(err.to_string()),
            Err(InputError::Fatal(err)) => panic!("{err}"),
        };
        rejects.finish().unwrap();
        let output = String::from_utf8(sink.as_lines().to_vec()).unwrap();
        (output, messages.text(), kept.text(), counts, error)
    }

    /// The one-thread loop of `convert`, the reference.
    fn single(input: &[u8], max_document: usize, show: u64) -> Run {
        let (mut rejects, messages, kept) = reject_log(show);
        let mut converter = RecordConverter::new(&CefOptions::default());
        let mut sink = MessageBlock::default();
        let mut reader = reader(input, max_document);
        let read =
            crate::convert::convert_one(&mut reader, &mut converter, &mut sink, &mut rejects, &Progress::hidden(), 0);
        finished(read, rejects, &sink, &messages, &kept, converter.counts)
    }

    fn parallel(input: &[u8], max_document: usize, show: u64, threads: usize, chunk_bytes: usize) -> Run {
        parallel_over(reader(input, max_document), show, threads, chunk_bytes)
    }

    fn parallel_over(mut reader: DocumentReader, show: u64, threads: usize, chunk_bytes: usize) -> Run {
        let (mut rejects, messages, kept) = reject_log(show);
        let plan = Parallelism { threads, chunk_bytes };
        let mut converter = ParallelConverter::new(plan, &CefOptions::default(), &rejects);
        let mut sink = MessageBlock::default();
        let read = converter.convert_input(&mut reader, &mut sink, &mut rejects, &Progress::hidden(), 0);
        finished(read, rejects, &sink, &messages, &kept, converter.counts)
    }

    /// `input` on 1, 2 and 3 threads with chunks of every size from 1 to
    /// `max_chunk` bytes (so a chunk ends at every byte of it), against the
    /// one-thread loop; returns the one-thread run.
    fn same_at_every_chunk_boundary(what: &str, input: &[u8], max_document: usize, max_chunk: usize) -> Run {
        let expected = single(input, max_document, 1000);
        for chunk_bytes in 1..=max_chunk {
            for threads in [1, 2, 3] {
                let got = parallel(input, max_document, 1000, threads, chunk_bytes);
                assert_eq!(got, expected, "{what}: {threads} threads, chunks of {chunk_bytes}");
            }
        }
        expected
    }

    const GOOD: &str =
        r#"{"_id":"a1","timestamp":1511373004000,"eventTypeName":"EVENT_CATEGORY_LOGIN","description":"ok"}"#;
    const ALERT: &str = r#"{"_id":"b2","timestamp":1500151350531,"title":"T","severityValue":2}"#;

    /// Inputs with every edge the chunking must keep: a byte order mark,
    /// blank and whitespace lines, CRLF, pages on one line with bad
    /// records, lines over the limit (first, middle, last), a last line
    /// without `\n`, a pretty page, nothing at all.
    fn awkward_inputs() -> Vec<Vec<u8>> {
        let long = format!(r#"{{"_id":"long","timestamp":1,"eventType":1,"x":"{}"}}"#, "y".repeat(300));
        let page = format!(r#"{{"data":[{GOOD},{{"_id":"p","eventType":1}},3,{ALERT}]}}"#);
        let mut many = String::new();
        for n in 0..300 {
            let line = match n % 11 {
                0 => "not json {".to_owned(),
                3 => String::new(),
                5 => " \t".to_owned(),
                7 => long.clone(),
                8 => page.clone(),
                9 => format!("{ALERT}\r"),
                _ => GOOD.replace("a1", &format!("a{n}")),
            };
            many.push_str(&line);
            many.push('\n');
        }
        vec![
            many.clone().into_bytes(),
            format!("\u{feff}\n\n{long}\n{GOOD}\n{ALERT}").into_bytes(),
            format!("{GOOD}\n{long}").into_bytes(),
            format!("\n{{\n  \"data\": [\n    {GOOD},\n    {{\"_id\": \"x\", \"eventType\": 1}}\n  ]\n}}\n")
                .into_bytes(),
            format!("[{GOOD},\n{ALERT}]").into_bytes(),
            b"".to_vec(),
            b"\n \n".to_vec(),
            format!("{many}{GOOD}").into_bytes(),
        ]
    }

    #[test]
    fn every_thread_count_and_chunk_size_gives_the_one_thread_result() {
        for (i, input) in awkward_inputs().iter().enumerate() {
            for show in [0, 3, 1000] {
                let expected = single(input, 200, show);
                for threads in [2, 3, 4] {
                    for chunk_bytes in [1, 57, 200, 4096, DEFAULT_CHUNK_BYTES] {
                        let got = parallel(input, 200, show, threads, chunk_bytes);
                        assert_eq!(got, expected, "input {i}, show {show}, {threads} threads, chunks of {chunk_bytes}");
                    }
                }
            }
        }
    }

    #[test]
    fn lines_ending_exactly_at_a_chunk_end_are_neither_lost_nor_doubled() {
        // Chunks of one line's length, and of two, end right after a `\n`.
        let line = format!("{GOOD}\n");
        let input = format!("{line}{line}not json\n{line}{line}");
        for chunk_bytes in [line.len(), 2 * line.len(), line.len() + 1, line.len() - 1] {
            let expected = single(input.as_bytes(), 1 << 20, 1000);
            let got = parallel(input.as_bytes(), 1 << 20, 1000, 2, chunk_bytes);
            assert_eq!(got, expected, "chunks of {chunk_bytes}");
            assert_eq!(got.0.lines().count(), 4, "chunks of {chunk_bytes}: {}", got.0);
            assert!(got.1.contains("in:3"), "the bad line keeps its number: {}", got.1);
        }
    }

    #[test]
    fn crlf_split_across_a_chunk_boundary_is_one_line_end() {
        let input = format!("{GOOD}\r\n{ALERT}\r\nbad\r\n\r\n{GOOD}\r\n");
        let run = same_at_every_chunk_boundary("CRLF", input.as_bytes(), 1 << 20, GOOD.len() + 4);
        assert_eq!(run.0.lines().count(), 3, "{}", run.0);
        assert!(!run.0.contains('\r'), "no \\r left in a record: {}", run.0);
        assert!(run.1.contains("in:3"), "{}", run.1);
    }

    #[test]
    fn a_last_line_without_newline_is_converted_at_every_boundary() {
        let input = format!("{GOOD}\n\n{ALERT}");
        let run = same_at_every_chunk_boundary("no final newline", input.as_bytes(), 1 << 20, input.len() + 1);
        assert_eq!(run.0.lines().count(), 2, "{}", run.0);
    }

    #[test]
    fn a_too_long_line_over_many_chunks_is_rejected_and_the_next_lines_keep_their_numbers() {
        let long = format!(r#"{{"_id":"long","x":"{}"}}"#, "y".repeat(5000));
        let input = format!("{GOOD}\n{long}\r\n{GOOD}\nbad\n{long}\n{ALERT}\n{long}");
        let expected = single(input.as_bytes(), 1000, 1000);
        for chunk_bytes in [1, 7, 64, 999, 1000, 1001, 4096] {
            for threads in [1, 2, 3] {
                let got = parallel(input.as_bytes(), 1000, 1000, threads, chunk_bytes);
                assert_eq!(got, expected, "{threads} threads, chunks of {chunk_bytes}");
            }
        }
        let (output, messages, _, _, error) = expected;
        assert_eq!(error, None);
        assert_eq!(output.lines().count(), 3, "{output}");
        for line in ["in:2", "in:4", "in:5", "in:7"] {
            assert!(messages.contains(line), "{line} reported: {messages}");
        }
        assert_eq!(messages.matches("longer than the limit").count(), 3, "{messages}");
    }

    #[test]
    fn gzip_and_zstd_inputs_convert_the_same_as_plain_text() {
        use crate::input::source::InputPath;
        // More than the line reader's first read, so that most of it is
        // read through the decompressor straight into chunks.
        let input = awkward_inputs().remove(0).repeat(40);
        let expected = single(&input, 200, 1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&input).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&input[..], 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("in.gz", gz), ("in.zst", zst)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            for threads in [1, 2, 3] {
                for chunk_bytes in [1, 57, 4096] {
                    let reader = DocumentReader::open(&InputPath::File(path.clone())).unwrap().with_max_document(200);
                    let got = parallel_over(reader, 1000, threads, chunk_bytes);
                    // Rejects name the file: compare them with the name swapped.
                    let got = (got.0, got.1.replace(path.to_str().unwrap(), "in"), got.2, got.3, got.4);
                    assert_eq!(got, expected, "{name}, {threads} threads, chunks of {chunk_bytes}");
                }
            }
        }
    }

    /// Returns `steps[i % len]` bytes on the i-th read: the short reads of
    /// a pipe or a decompressor.
    struct ShortReads {
        data: Vec<u8>,
        at: usize,
        steps: &'static [usize],
        reads: usize,
    }

    impl io::Read for ShortReads {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let step = self.steps[self.reads % self.steps.len()];
            self.reads += 1;
            let n = (self.data.len() - self.at).min(step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn short_reads_cut_no_line_in_two() {
        let input = awkward_inputs().remove(0).repeat(20);
        let expected = single(&input, 200, 1000);
        for steps in [&[1usize, 2, 3][..], &[100, 7, 1000, 33], &[4093, 5000, 1 << 20]] {
            for chunk_bytes in [64, 4096, 65536] {
                let reads = ShortReads { data: input.clone(), at: 0, steps, reads: 0 };
                let reader = DocumentReader::from_reader("in", Box::new(reads)).with_max_document(200);
                let got = parallel_over(reader, 1000, 2, chunk_bytes);
                assert_eq!(got, expected, "reads of {steps:?}, chunks of {chunk_bytes}");
            }
        }
    }

    #[test]
    fn the_chunk_pool_is_reused_from_input_to_input() {
        let (mut rejects, _, _) = reject_log(0);
        let mut converter = ParallelConverter::new(Parallelism::threads(2), &CefOptions::default(), &rejects);
        let input = awkward_inputs().remove(0);
        let mut sink = MessageBlock::default();
        for _ in 0..3 {
            let mut reader = reader(&input, 200);
            converter.convert_input(&mut reader, &mut sink, &mut rejects, &Progress::hidden(), 0).unwrap();
            assert_eq!(converter.chunks.len(), converter.pool_size(), "every chunk came back");
        }
    }
}

//! The `convert` job: API pages and NDJSON files (plain, gzip, zstd or
//! stdin) to CEF lines in a file or on stdout.
//!
//! It owns the loop over inputs: opening each, feeding its documents to the
//! [`RecordConverter`], reporting an input that cannot be read (and going on
//! with the next), progress, and the final [`ConvertReport`].

use crate::cef::CefOptions;
use crate::input::DocumentReader;
use crate::input::lines::LineError;
use crate::input::source::InputPath;
use crate::output::{LineWriter, OutputPath};
use crate::parallel::{InputError, ParallelConverter, Parallelism};
use crate::progress::Progress;
use crate::records::{ConvertCounts, MessageSink, Origin, RecordConverter};
use crate::rejects::RejectLog;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Validated settings of `cefwire convert`.
#[derive(Clone, Debug)]
pub struct ConvertConfig {
    pub inputs: Vec<InputPath>,
    pub output: OutputPath,
    pub cef: CefOptions,
    pub rejects_file: Option<PathBuf>,
    /// How many rejected records are described on stderr.
    pub show_rejects: u64,
    pub progress: bool,
    /// The largest line or whole-document input held in memory.
    pub max_document_bytes: usize,
    /// Converting threads (`--threads`); 1 is the one-thread loop.
    pub parallelism: Parallelism,
}

/// An input that could not be read to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedInput {
    pub name: String,
    pub reason: String,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct ConvertReport {
    pub counts: ConvertCounts,
    pub inputs: usize,
    pub failed_inputs: Vec<FailedInput>,
    /// Decompressed bytes read.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

impl ConvertReport {
    /// One human line for stderr.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let c = &self.counts;
        let mut text = format!(
            "converted {} of {} records ({}) from {} input{} in {:.2} s: {:.0} records/s, {:.1} MB/s in",
            c.converted(),
            c.records,
            c.kinds_text(),
            self.inputs,
            if self.inputs == 1 { "" } else { "s" },
            secs,
            c.records as f64 / secs,
            self.bytes_in as f64 / secs / 1e6,
        );
        if c.rejected > 0 {
            text.push_str(&format!("; rejected {}", c.rejected));
        }
        if !self.failed_inputs.is_empty() {
            text.push_str(&format!("; {} input(s) could not be read completely", self.failed_inputs.len()));
        }
        text
    }
}

/// Runs `cefwire convert`.
pub fn run(config: &ConvertConfig) -> io::Result<ConvertReport> {
    let mut rejects = RejectLog::new(config.show_rejects);
    if let Some(path) = &config.rejects_file {
        rejects
            .keep_records_in(path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating rejects file {}: {e}", path.display())))?;
    }
    let mut writer = LineWriter::create(&config.output)?;
    let mut report = convert_inputs(config, &mut writer, &mut rejects)?;
    writer.finish()?;
    rejects.finish()?;
    report.bytes_out = writer.bytes_written();
    Ok(report)
}

/// Converts every input into `sink`. An input that cannot be opened or read
/// to the end is reported and skipped; an error of the sink stops the run.
pub fn convert_inputs(
    config: &ConvertConfig,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
) -> io::Result<ConvertReport> {
    let (inputs, cef, show_progress) = (&config.inputs, &config.cef, config.progress);
    let started = Instant::now();
    let total_size = inputs
        .iter()
        .map(|input| match input {
            InputPath::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
            InputPath::Stdin => None,
        })
        .sum::<Option<u64>>();
    let progress = Progress::bytes(show_progress, total_size, "converting");
    let mut converter = Converter::new(config.parallelism, cef, rejects);
    let mut report = ConvertReport { inputs: inputs.len(), ..ConvertReport::default() };
    let mut done_before = 0;
    for input in inputs {
        let mut reader = match DocumentReader::open(input) {
            Ok(reader) => reader.with_max_document(config.max_document_bytes),
            Err(err) => {
                fail(&progress, &mut report, input.display_name(), format!("cannot open: {err}"));
                continue;
            }
        };
        let outcome = match &mut converter {
            Converter::Single(converter) => convert_one(&mut reader, converter, sink, rejects, &progress, done_before),
            Converter::Parallel(converter) => {
                converter.convert_input(&mut reader, sink, rejects, &progress, done_before)
            }
        };
        done_before += reader.raw_bytes_read();
        report.bytes_in += reader.bytes_read();
        match outcome {
            Ok(()) => {}
            Err(InputError::Read(err)) => {
                let reason = match err {
                    LineError::Io(e) => format!("read failed after {} bytes: {e}", reader.bytes_read()),
                    other => other.to_string(),
                };
                fail(&progress, &mut report, reader.name().to_owned(), reason);
            }
            Err(InputError::Fatal(err)) => {
                progress.finish();
                return Err(err);
            }
        }
    }
    progress.finish();
    report.counts = match &converter {
        Converter::Single(converter) => converter.counts,
        Converter::Parallel(converter) => converter.counts,
    };
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The one-thread loop (`--threads 1`, exactly as it always was) or the
/// parallel one.
/// One per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Converter {
    Single(RecordConverter),
    Parallel(ParallelConverter),
}

impl Converter {
    fn new(parallelism: Parallelism, cef: &CefOptions, rejects: &RejectLog) -> Self {
        if parallelism.is_parallel() {
            Self::Parallel(ParallelConverter::new(parallelism, cef, rejects))
        } else {
            Self::Single(RecordConverter::new(cef))
        }
    }
}

/// The one-thread loop over one input's documents.
pub(crate) fn convert_one(
    reader: &mut DocumentReader,
    converter: &mut RecordConverter,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
    progress: &Progress,
    done_before: u64,
) -> Result<(), InputError> {
    let name = reader.name().to_owned();
    let mut documents = 0u64;
    loop {
        let doc = match reader.next_document() {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok(()),
            Err(LineError::TooLong { line, limit }) => {
                let reason = crate::input::too_long_reason(limit);
                converter.reject_unreadable(&name, line, &reason, rejects).map_err(InputError::Fatal)?;
                continue;
            }
            Err(err) => return Err(InputError::Read(err)),
        };
        let origin = Origin { file: &name, line: doc.line, multi_line: doc.whole_input };
        converter.convert_document(origin, doc.bytes, doc.len, sink, rejects).map_err(InputError::Fatal)?;
        documents += 1;
        if documents.is_multiple_of(4096) && progress.is_visible() {
            progress.set_position(done_before + reader.raw_bytes_read());
        }
    }
}

#[cold]
fn fail(progress: &Progress, report: &mut ConvertReport, name: String, reason: String) {
    progress.println(&format!("cefwire: {name}: {reason}"));
    report.failed_inputs.push(FailedInput { name, reason });
}

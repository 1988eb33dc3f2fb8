//! `cefwire replay`: flags → [`ReplayConfig`] → run → report and exit status.

use super::common::CefArgs;
use super::send_args::SendArgs;
use super::usage;
use crate::exit::Status;
use crate::input::source::InputPath;
use crate::replay::{ReplayConfig, ReplayReport, run_replay};
use crate::stop::Stop;
use crate::time::HumanDuration;
use clap::{Args, ValueEnum};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeWarpArg {
    /// Keep the times in the header as they are.
    Keep,
    /// Re-stamp each header time with the send time.
    Now,
}

/// The slowest and fastest `--rate` (messages per second): the interval
/// between two messages must be a duration the pacer can hold.
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1e9;

#[derive(Args, Debug)]
#[command(
    about = "Send NDJSON records or CEF/syslog lines to syslog, paced, looped, measured",
    long_about = "Send records to syslog receivers for load tests and SIEM ingest benchmarks.\n\n\
Each input (plain, gzip, zstd or stdin `-`) is NDJSON/API pages, converted to CEF on the fly, or \
already-rendered CEF/syslog lines, passed through as they are; the kind is detected per input from \
its first line. A live progress line shows on a terminal; the final report goes to stdout (text or \
JSON).\n\n\
Exit codes: 0 all sent, 1 a destination failed or messages were left unsent, 2 bad usage, \
3 some records rejected, 4 an input could not be read.",
    after_help = "Examples:\n  cefwire replay activities.ndjson.zst --to tcp://127.0.0.1:514\n  \
cefwire replay lines.cef --to udp://siem:514 --rate 5000 --duration 60s\n  \
cefwire replay lines.cef --to tls://siem:6514 --ca ca.pem --loop 10 --connections 4 --report json"
)]
pub struct ReplayArgs {
    /// Input files (`-` for stdin; default stdin).
    #[arg(value_name = "FILE")]
    pub inputs: Vec<String>,

    #[command(flatten)]
    pub send: SendArgs,

    /// Send this many messages per second, evenly spread (default: as fast as possible).
    #[arg(long, value_name = "EPS")]
    pub rate: Option<f64>,

    /// Read the inputs this many times (default 1, or until --duration).
    #[arg(long = "loop", value_name = "N")]
    pub loops: Option<u64>,

    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<HumanDuration>,

    /// Header times: keep the originals or re-stamp them to the send time.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = TimeWarpArg::Keep, num_args = 0..=1, default_missing_value = "now")]
    pub time_warp: TimeWarpArg,

    /// Final report format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub report: ReportFormat,

    /// Describe at most N rejected records on stderr (all are counted).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub show_rejects: u64,

    /// No progress line.
    #[arg(long)]
    pub no_progress: bool,

    /// Send already-rendered lines exactly as they are, even those that
    /// do not start with <PRI> (by default such a line gets one, from
    /// --facility/--severity); streams then use octet counting.
    #[arg(long)]
    pub raw_lines: bool,

    #[command(flatten)]
    pub input: super::common::InputArgs,

    #[command(flatten)]
    pub cef: CefArgs,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<Status> {
    let inputs: Vec<InputPath> = if args.inputs.is_empty() {
        vec![InputPath::Stdin]
    } else {
        args.inputs.iter().map(|s| InputPath::parse(s)).collect()
    };
    if inputs.iter().filter(|i| **i == InputPath::Stdin).count() > 1 {
        usage!("stdin (-) can be given only once");
    }
    if inputs.contains(&InputPath::Stdin) && args.loops.is_some_and(|n| n > 1) {
        usage!("--loop cannot re-read stdin");
    }
    if args.rate.is_some_and(|r| !(MIN_RATE..=MAX_RATE).contains(&r)) {
        usage!("--rate must be a number of messages per second from {MIN_RATE} (one every 1000 s) to {MAX_RATE:e}");
    }
    if args.loops == Some(0) {
        usage!("--loop must be at least 1");
    }
    let duration = args.duration.map(|d| super::positive("--duration", d)).transpose()?;
    let stop = Stop::on_signals()?;
    let cef = args.cef.to_options(true)?;
    let send = args.send.to_config(stop.clone(), cef.header.pri.is_some() && !args.raw_lines)?;
    let config = ReplayConfig {
        inputs,
        cef,
        send,
        raw_lines: args.raw_lines,
        rate: args.rate,
        loops: args.loops,
        duration,
        time_warp: args.time_warp == TimeWarpArg::Now,
        progress: !args.no_progress,
        show_rejects: args.show_rejects,
        max_document_bytes: args.input.max_document_bytes(),
        parallelism: args.input.parallelism(),
        stop,
    };
    let report = run_replay(&config)?;
    match args.report {
        ReportFormat::Text => println!("cefwire replay: {}", report.text()),
        ReportFormat::Json => println!("{}", report.json()),
    }
    Ok(status_of(&report))
}

fn status_of(report: &ReplayReport) -> Status {
    if report.send.failure.is_some() || report.send.messages_unsent > 0 {
        Status::Failure
    } else if !report.failed_inputs.is_empty() {
        Status::InputFailed
    } else if report.converted.rejected > 0 {
        Status::Rejected
    } else {
        Status::Success
    }
}

//! `cefwire convert`: flags → [`ConvertConfig`] → run → exit status.

use super::common::{CefArgs, ReportArgs};
use super::send_args::SendArgs;
use super::usage;
use crate::convert::{self, ConvertConfig, ConvertReport};
use crate::exit::Status;
use crate::input::source::InputPath;
use crate::output::OutputPath;
use crate::stop::Stop;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    about = "Convert API pages or NDJSON (plain, gzip, zstd, stdin) to CEF lines",
    long_about = "Convert Defender for Cloud Apps records to CEF lines.\n\n\
Inputs are API JSON pages ({\"data\":[…]} or a bare array, compact or pretty-printed) or NDJSON \
(one record or one page per line), plain, gzip or zstd (detected from the content), or stdin (`-`, \
the default). Each record becomes one line; records that cannot be converted are reported as \
FILE:LINE: reason and the run goes on.\n\n\
Exit codes: 0 all converted, 3 some records rejected, 4 an input could not be read completely, \
1 output failed, 2 bad usage.",
    after_help = "Examples:\n  cefwire convert testdata/sample/alerts-page.json testdata/sample/activities-page.json.gz\n  \
cefwire convert activities.ndjson.zst -o activities.cef --portal-url https://contoso.portal.cloudappsecurity.com\n  \
zcat alerts.ndjson.gz | cefwire convert --kind alerts --rejects bad.ndjson > alerts.cef"
)]
pub struct ConvertArgs {
    /// Input files (`-` for stdin; default stdin).
    #[arg(value_name = "FILE")]
    pub inputs: Vec<String>,

    /// Write lines here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub report: ReportArgs,

    #[command(flatten)]
    pub input: super::common::InputArgs,

    #[command(flatten)]
    pub cef: CefArgs,

    #[command(flatten)]
    pub send: SendArgs,
}

impl ConvertArgs {
    fn to_config(&self) -> anyhow::Result<ConvertConfig> {
        let inputs = if self.inputs.is_empty() {
            vec![InputPath::Stdin]
        } else {
            self.inputs.iter().map(|s| InputPath::parse(s)).collect()
        };
        if inputs.iter().filter(|i| **i == InputPath::Stdin).count() > 1 {
            usage!("stdin (-) can be given only once");
        }
        let output = match self.output.clone() {
            Some(path) if path.as_os_str() != "-" => OutputPath::File(path),
            _ => OutputPath::Stdout,
        };
        let written = [
            (
                "output (-o)",
                match &output {
                    OutputPath::File(path) => Some(path.as_path()),
                    // Redirected to a file with `>>`: that file is written too.
                    OutputPath::Stdout => Some(std::path::Path::new("/proc/self/fd/1")),
                },
            ),
            ("rejects file (--rejects)", self.report.rejects.as_deref()),
        ];
        for (what, target) in written {
            let Some(target) = target else { continue };
            if let Some(input) = inputs.iter().find(|input| input.is_written_by(target)) {
                super::usage!(
                    "the {what} is the input {}: writing it would destroy the records being read",
                    input.display_name()
                );
            }
        }
        Ok(ConvertConfig {
            inputs,
            output,
            cef: self.cef.to_options(self.send.is_sending())?,
            rejects_file: self.report.rejects.clone(),
            show_rejects: self.report.show_rejects,
            max_document_bytes: self.input.max_document_bytes(),
            // Into a file, larger chunks pay; into a sender (`--to`), a
            // chunk's messages must fit its batch (the default size).
            parallelism: if self.send.is_sending() {
                self.input.parallelism()
            } else {
                self.input.parallelism().with_chunk_bytes(crate::parallel::CONVERT_CHUNK_BYTES)
            },
            progress: !self.report.no_progress && !self.report.quiet,
        })
    }
}

pub fn run(args: ConvertArgs) -> anyhow::Result<Status> {
    let quiet = args.report.quiet;
    let config = args.to_config()?;
    if args.send.is_sending() {
        return run_to_syslog(&args.send, &config, quiet);
    }
    let report = convert::run(&config)?;
    if !quiet {
        eprintln!("cefwire: {}", report.summary());
    }
    Ok(status_of(&report))
}

/// `cefwire convert … --to URL`: convert into a sender instead of a file.
fn run_to_syslog(send: &SendArgs, config: &ConvertConfig, quiet: bool) -> anyhow::Result<Status> {
    if config.output != OutputPath::Stdout {
        usage!("-o/--output and --to exclude each other");
    }
    let stop = Stop::on_signals()?;
    let send_config = send.to_config(stop.clone(), config.cef.header.pri.is_some())?;
    let (report, sent) = crate::replay::convert_to_syslog(config, &send_config, &stop)?;
    if !quiet {
        eprintln!("cefwire: {}; {}", report.summary(), sent.summary());
    }
    Ok(if sent.failure.is_some() || sent.messages_unsent > 0 { Status::Failure } else { status_of(&report) })
}

/// Failed inputs outrank rejected records; both outrank success.
pub fn status_of(report: &ConvertReport) -> Status {
    if !report.failed_inputs.is_empty() {
        Status::InputFailed
    } else if report.counts.rejected > 0 {
        Status::Rejected
    } else {
        Status::Success
    }
}

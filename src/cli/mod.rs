//! The command line: clap definitions and their conversion into validated
//! configs. This is the only module that uses clap; everything else takes a
//! config. Each subcommand has its own file here; [`run`] dispatches.

mod agent;
mod api;
mod backfill;
mod common;
mod convert;
mod emulate;
mod generate;
mod replay;
mod send_args;
mod sink;
mod status;

use crate::exit::Status;
use clap::{Parser, Subcommand};
use std::ffi::OsString;

/// Moves Microsoft Defender for Cloud Apps events into any SIEM as CEF over
/// syslog.
#[derive(Parser, Debug)]
#[command(name = "cefwire", version, about, propagate_version = true)]
#[command(long_about = "cefwire moves Microsoft Defender for Cloud Apps alerts and activities into any SIEM \
as CEF over syslog (TCP, UDP, TLS). It replaces the vendor's Java SIEM agent and also converts, replays \
and measures CEF streams.\n\nRun `cefwire <command> --help` for the options of each command.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert API pages or NDJSON (plain, gzip, zstd, stdin) to CEF lines.
    Convert(convert::ConvertArgs),
    /// Write synthetic activity/alert records as NDJSON (for tests and benchmarks).
    Generate(generate::GenerateArgs),
    /// Run the SIEM agent: last two days first, then everything new, resumable.
    Agent(Box<agent::AgentArgs>),
    /// Fetch a time window from the API and write or send it as CEF.
    Backfill(Box<backfill::BackfillArgs>),
    /// Run a local emulator of the Defender for Cloud Apps API, Graph alerts_v2 and the streaming archive.
    Emulate(emulate::EmulateArgs),
    /// Send NDJSON records or CEF/syslog lines to syslog, paced, looped, measured.
    Replay(replay::ReplayArgs),
    /// A measuring syslog receiver: counts messages, bytes, rate and framing errors.
    Sink(sink::SinkArgs),
    /// Show the agent's health (Connected / Connection error / Disconnected).
    Status(status::StatusArgs),
}

/// Parses `args`, runs the command and says how it ended. Usage errors are
/// printed by clap and become [`Status::Usage`].
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<Status> {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return Ok(match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Status::Success,
                _ => Status::Usage,
            });
        }
    };
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Agent(args) => agent::run(*args),
        Command::Backfill(args) => backfill::run(*args),
        Command::Emulate(args) => emulate::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Sink(args) => sink::run(args),
        Command::Status(args) => status::run(args),
    }
}

/// A configuration problem, reported before any work starts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns early with a [`UsageError`].
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cli::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

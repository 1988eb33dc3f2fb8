//! The command line: clap definitions and their conversion into validated
//! configs. This is the only module that uses clap; everything else takes a
//! config. Each subcommand has its own file here; [`run`] dispatches.
//!
//! Flags fill the raw settings of [`crate::settings`], the same the agent's
//! TOML file fills, and are validated there; each value is read by its
//! type's one parser (`FromStr`: durations, rates, facilities, …), which
//! clap uses as the flag's value parser ([`choice`] adds the names to
//! `--help`).

mod agent;
mod api;
mod backfill;
mod common;
mod convert;
mod emulate;
mod generate;
mod reference;
mod replay;
mod send_args;
mod sink;
mod status;
mod storage_args;

use crate::exit::Status;
use crate::settings::SettingError;
use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::{Parser, Subcommand};
use std::ffi::{OsStr, OsString};
use std::marker::PhantomData;
use std::str::FromStr;

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
    /// Fetch a time window from the API (or a span of an event hub) and write or send it as CEF.
    Backfill(Box<backfill::BackfillArgs>),
    /// Run a local emulator of the Defender for Cloud Apps API, Graph alerts_v2 and the streaming archive.
    Emulate(emulate::EmulateArgs),
    /// Send NDJSON records or CEF/syslog lines to syslog, paced, looped, measured.
    Replay(replay::ReplayArgs),
    /// A measuring syslog receiver: counts messages, bytes, rate and framing errors.
    Sink(sink::SinkArgs),
    /// Show the agent's health (Connected / Connection error / Disconnected).
    Status(status::StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(reference::CompletionsArgs),
    /// Write the man pages (cefwire.1, cefwire-COMMAND.1) into a directory.
    #[command(hide = true)]
    Manpages(reference::ManpagesArgs),
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
        Command::Completions(args) => reference::completions(args),
        Command::Manpages(args) => reference::manpages(args),
    }
}

/// A configuration problem, reported before any work starts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<SettingError> for UsageError {
    fn from(err: SettingError) -> Self {
        UsageError(err.to_string())
    }
}

/// A duration flag that must not be zero.
pub(crate) fn positive(flag: &str, duration: crate::time::HumanDuration) -> Result<std::time::Duration, UsageError> {
    if duration.0.is_zero() {
        return Err(UsageError(format!("{flag}: must be longer than zero")));
    }
    Ok(duration.0)
}

/// A value parser that reads a flag's value with its type's one parser
/// (the agent's file uses the same) and lists `choices` (name, help) in
/// `--help`.
pub(crate) fn choice<T>(choices: &'static [(&'static str, &'static str)]) -> ChoiceParser<T> {
    ChoiceParser { choices, value: PhantomData }
}

#[derive(Clone)]
pub(crate) struct ChoiceParser<T> {
    choices: &'static [(&'static str, &'static str)],
    value: PhantomData<fn() -> T>,
}

impl<T> TypedValueParser for ChoiceParser<T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        StringValueParser::new().try_map(|text| text.parse::<T>()).parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.choices.iter().map(|(name, help)| PossibleValue::new(*name).help(*help))))
    }
}

/// Returns early with a [`UsageError`].
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cli::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config_file::ConfigFile;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("cefwire").chain(args.iter().copied())).unwrap().command
    }

    fn file(text: &str) -> crate::agent::config::AgentSettings {
        ConfigFile::parse(text).unwrap().into_settings().unwrap()
    }

    /// The same text gives the same value through the flag and the file:
    /// each value type has one parser, and both paths use it.
    #[test]
    fn flags_and_the_file_read_a_value_alike() {
        for rate in ["30/min", "20", "5/2s", "100/s", "2/1h"] {
            let Command::Backfill(args) = parse(&["backfill", "--rate-limit", rate]) else { unreachable!() };
            let text = format!("rate_limit = \"{rate}\"");
            assert_eq!(Some(args.api.rate_limit), file(&text).api.rate_limit, "{rate}");
        }
        for duration in ["90s", "1.5m", "2d", "250ms", "48h", "60"] {
            let Command::Replay(args) = parse(&["replay", "--duration", duration]) else { unreachable!() };
            let text = format!("window = \"{duration}\"");
            assert_eq!(args.duration.map(|d| d.0), file(&text).window, "{duration}");
        }
        for (facility, severity) in [("local3", "warn"), ("LOCAL3", "4"), ("19", "warning"), ("daemon", "Error")] {
            let Command::Convert(args) = parse(&["convert", "--facility", facility, "--severity", severity]) else {
                unreachable!()
            };
            let cef = file(&format!("[cef]\nfacility = \"{facility}\"\nseverity = \"{severity}\"")).cef;
            assert_eq!((Some(args.cef.facility), Some(args.cef.severity)), (cef.facility, cef.severity));
        }
        for (format, framing) in [("rfc3164", "lf"), ("rfc3164-year", "octet-counting"), ("rfc5424", "auto")] {
            let Command::Replay(args) = parse(&["replay", "--time-format", format, "--framing", framing]) else {
                unreachable!()
            };
            let settings = file(&format!("[cef]\ntime_format = \"{format}\"\n[syslog]\nframing = \"{framing}\""));
            assert_eq!(Some(args.cef.time_format), settings.cef.time_format);
            assert_eq!(Some(args.send.framing), settings.send.framing);
        }
        // A bare number in the file reads as the same text on the command line.
        assert_eq!(file("rate_limit = 20").api.rate_limit, file("rate_limit = \"20\"").api.rate_limit);
        assert_eq!(file("window = 90").window, file("window = \"90\"").window);
        assert_eq!(file("[cef]\nfacility = 19").cef.facility, file("[cef]\nfacility = \"19\"").cef.facility);
    }
}

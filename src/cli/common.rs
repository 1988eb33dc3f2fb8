//! Options shared by several commands: the CEF mapping and the syslog
//! header, filled into [`CefSettings`] and validated there.

use super::{UsageError, choice};
use crate::cef::{CefOptions, KindChoice};
use crate::parallel::Parallelism;
use crate::settings::{CefSettings, HostnameSetting, Source};
use crate::syslog::header::{Facility, HeaderLayout, Severity, TimestampStyle};
use clap::{Args, ValueEnum};
use std::path::Path;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    Auto,
    Activities,
    Alerts,
    /// Defender XDR streaming records ({"records":[…]} or one per line), or bare CloudAppEvents rows
    #[value(name = "cloudappevents")]
    CloudAppEvents,
    /// Microsoft Graph alerts_v2 alerts (one per line, or a {"value":[…]} page)
    GraphAlerts,
}

/// What a run reports and keeps besides its output: rejected records,
/// the summary and the progress bar.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Also write every rejected record here, one per line.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<std::path::PathBuf>,

    /// Describe at most N rejected records on stderr (all are counted).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub show_rejects: u64,

    /// No summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// No progress bar (it is shown only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// How inputs are read.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// The largest line, or pretty-printed page, held in memory (MiB). A
    /// longer line is reported as FILE:LINE and skipped; a larger page ends
    /// that input with an error. Memory use stays about this size.
    #[arg(long, value_name = "MIB", default_value_t = (crate::input::DEFAULT_MAX_DOCUMENT_BYTES >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_document_mb: u64,

    /// Converting threads for NDJSON (default: the cores this process may
    /// use, within its cgroup CPU quota). The output is the same for any number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=crate::parallel::MAX_THREADS as i64),
          long_help = "Converting threads for NDJSON (default: the cores this process may use, within its \
cgroup CPU quota). NDJSON inputs are cut into blocks of whole lines, converted on N threads and put back in \
input order: output, rejects (FILE:LINE) and counts are byte for byte those of --threads 1, which runs the \
one-thread loop. Decompression and reading run on a thread of their own. A pretty-printed page is one \
document and converts on one thread; stdin is read on one thread.")]
    pub threads: Option<u16>,
}

impl InputArgs {
    pub fn max_document_bytes(&self) -> usize {
        (self.max_document_mb as usize) << 20
    }

    /// `--threads`, or every core this process may use.
    pub fn parallelism(&self) -> Parallelism {
        match self.threads {
            Some(threads) => Parallelism::threads(usize::from(threads)),
            None => Parallelism::default(),
        }
    }
}

/// How records become CEF lines.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "CEF and syslog header")]
pub struct CefArgs {
    /// Which mapping to use; `auto` decides per record (activity, alert,
    /// streaming CloudAppEvents record, Graph alert).
    #[arg(long, value_enum, default_value_t = KindArg::Auto)]
    pub kind: KindArg,

    /// Device version in the CEF header (CEF:0|MCAS|SIEM_Agent|<VERSION>|…).
    #[arg(long, value_name = "VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    pub device_version: String,

    /// Portal URL used for activity links (cs1), e.g. https://contoso.portal.cloudappsecurity.com
    #[arg(long, value_name = "URL", default_value = "https://portal.cloudappsecurity.com")]
    pub portal_url: String,

    /// Header timestamp format (the record's own time, UTC).
    #[arg(long, value_name = "FORMAT", value_parser = choice::<TimestampStyle>(TimestampStyle::CHOICES), default_value = "rfc5424")]
    pub time_format: TimestampStyle,

    /// Syslog header layout.
    #[arg(long, value_name = "LAYOUT", value_parser = choice::<HeaderLayout>(HeaderLayout::CHOICES), default_value = "legacy")]
    pub header: HeaderLayout,

    /// Start each line with <PRI> (default when sending to syslog).
    #[arg(long, overrides_with = "no_pri")]
    pub pri: bool,

    /// Leave <PRI> out (default when writing a file).
    #[arg(long)]
    pub no_pri: bool,

    /// Syslog facility for PRI: a name (local0 … local7, user, daemon, auth, …) or 0-23.
    #[arg(long, value_name = "FACILITY", default_value = "local0")]
    pub facility: Facility,

    /// Syslog severity for PRI: a name (emerg … debug) or 0-7.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub severity: Severity,

    /// Put a hostname in the header: the given NAME, or this machine's name
    /// when NAME is left out (default when sending to syslog).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", overrides_with = "no_hostname")]
    pub hostname: Option<String>,

    /// Leave the hostname out (default when writing a file).
    #[arg(long)]
    pub no_hostname: bool,
}

impl CefArgs {
    /// The flags as raw settings.
    pub fn settings(&self) -> CefSettings {
        CefSettings {
            kind: match self.kind {
                KindArg::Auto => KindChoice::Auto,
                KindArg::Activities => KindChoice::Activities,
                KindArg::Alerts => KindChoice::Alerts,
                KindArg::CloudAppEvents => KindChoice::CloudAppEvents,
                KindArg::GraphAlerts => KindChoice::GraphAlerts,
            },
            device_version: Some(self.device_version.clone()),
            portal_url: Some(self.portal_url.clone()),
            time_format: Some(self.time_format),
            header: Some(self.header),
            pri: if self.pri {
                Some(true)
            } else if self.no_pri {
                Some(false)
            } else {
                None
            },
            facility: Some(self.facility),
            severity: Some(self.severity),
            hostname: match (&self.hostname, self.no_hostname) {
                (Some(name), _) if !name.is_empty() => Some(HostnameSetting::Named(name.clone())),
                (Some(_), _) => Some(HostnameSetting::ThisMachine),
                (None, true) => Some(HostnameSetting::Omitted),
                (None, false) => None,
            },
        }
    }

    /// The validated options. `sending` selects the defaults for syslog
    /// (PRI and hostname on) rather than for files (both off).
    pub fn to_options(&self, sending: bool) -> anyhow::Result<CefOptions> {
        if let Some(name) = self.hostname.as_deref().filter(|name| !name.is_empty() && Path::new(name).exists()) {
            // `--hostname FILE` took the input for a name and would read stdin.
            return Err(UsageError(format!(
                "--hostname {name:?} is a file, not a name: write --hostname=NAME, or put the inputs first"
            ))
            .into());
        }
        Ok(self.settings().validate(Source::Flags, sending).map_err(UsageError::from)?)
    }
}

/// Where the agent keeps its state when no directory is given:
/// `$STATE_DIRECTORY` (systemd), `$XDG_STATE_HOME/cefwire`,
/// `~/.local/state/cefwire`, else `./cefwire-state`.
pub fn default_state_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("cefwire");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/cefwire");
    }
    PathBuf::from("cefwire-state")
}

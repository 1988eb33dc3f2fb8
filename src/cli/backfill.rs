//! `cefwire backfill`: flags → [`BackfillConfig`] → one pass over the
//! window into a file or to syslog (`--to URL`).

use super::api::ApiArgs;
use super::common::{CefArgs, ReportArgs};
use super::send_args::SendArgs;
use super::usage;
use crate::api::{Endpoint, TimeKey, TimeWindow, paging};
use crate::backfill::{self, BackfillConfig};
use crate::exit::Status;
use crate::graph_backfill::{self, GraphBackfillConfig};
use crate::output::{LineWriter, OutputPath};
use crate::send::{SendConfig, SyslogSender};
use crate::settings::{GraphSettings, Source, extra_filters, names};
use crate::stop::Stop;
use crate::time::{HumanDuration, now_ms, parse_time_ms};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeArg {
    Activities,
    Alerts,
}

/// Where the records come from.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceArg {
    /// The Defender for Cloud Apps API (activities and alerts).
    #[default]
    Mda,
    /// Microsoft Graph security alerts_v2 (alerts only).
    Graph,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivityTimeArg {
    /// When the activity happened (`timestamp`).
    Date,
    /// When the service stored it (`created`; catches late arrivals).
    Created,
}

#[derive(Args, Debug)]
#[command(
    about = "Fetch a time window of activities and alerts from the API and send it as CEF",
    long_about = "Fetch a time window of activities and alerts from the Defender for Cloud Apps API, \
convert each record to CEF and write or send it as it goes.\n\n\
Activities are read in scan mode (pages of up to 5000), alerts in pages of 100 whose time bound moves \
forward before the 5000 offset cap. Requests stay under --rate-limit (30/min by default, as the service \
allows); 429, 5xx and network errors are retried with backoff; 401/403 stop at once. The next request is \
in flight while a page is converted.\n\n\
Exit codes: 0 done, 3 some records rejected, 1 an API or output error or a signal (SIGINT/SIGTERM) \
stopped the run (what was fetched is still written, the outputs are finished, and the summary says \
INCOMPLETE), 2 bad usage. A second signal exits at once (130).",
    after_help = "Examples:\n  cefwire backfill --since 48h --portal-url https://contoso.us3.portal.cloudappsecurity.com --token $TOKEN -o window.cef\n  \
cefwire backfill --from 2026-01-01 --until 2026-01-02 --types alerts --portal-url URL --tenant-id T --client-id C --client-secret S -o alerts.cef --archive raw/\n  \
cefwire backfill --since 48h --portal-url URL --token $TOKEN --dry-run"
)]
pub struct BackfillArgs {
    /// Window ending now, e.g. 48h, 2d, 90m.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<HumanDuration>,

    /// Window start (RFC 3339, date, epoch ms).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// Window end, exclusive (default now).
    #[arg(long, value_name = "TIME", requires = "from")]
    pub until: Option<String>,

    /// Where the records come from: the Defender for Cloud Apps API, or
    /// Microsoft Graph alerts_v2 (alerts only; see the Graph access flags).
    #[arg(long, value_enum, default_value_t = SourceArg::Mda)]
    pub source: SourceArg,

    /// Record types to fetch (default: activities,alerts; alerts with --source graph).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub types: Vec<TypeArg>,

    /// Extra API filters as a JSON object, e.g. '{"service":{"eq":[11161]}}';
    /// with --source graph an OData $filter replacing the default
    /// "serviceSource eq 'microsoftDefenderForCloudApps'" ("" for every alert).
    #[arg(long, value_name = "JSON|ODATA")]
    pub filter: Option<String>,

    /// Which activity time the window applies to.
    #[arg(long, value_enum, default_value_t = ActivityTimeArg::Date)]
    pub activity_time: ActivityTimeArg,

    /// Activities per scan page (the API allows up to 5000).
    #[arg(long, value_name = "N", default_value_t = paging::SCAN_PAGE)]
    pub scan_limit: u64,

    /// Write CEF lines to this file (`-` for stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the raw records here as zstd NDJSON (readable by `convert`).
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,

    /// Show what would be fetched and sent (counts, a sample line), then stop.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub report: ReportArgs,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub graph: GraphArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub cef: CefArgs,
}

/// How to reach Microsoft Graph (`--source graph`). The application's
/// secret is never a flag value: a file, or the environment variable.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Graph access (--source graph)")]
pub struct GraphArgs {
    /// Entra ID tenant (directory) id of the application reading alerts_v2.
    #[arg(long, value_name = "ID")]
    pub graph_tenant_id: Option<String>,

    /// The application (client) id (needs SecurityAlert.Read.All).
    #[arg(long, value_name = "ID")]
    pub graph_client_id: Option<String>,

    /// A file holding the application's secret (its first line); else the
    /// environment variable CEFWIRE_GRAPH_CLIENT_SECRET.
    #[arg(long, value_name = "FILE")]
    pub graph_client_secret_file: Option<PathBuf>,

    /// Graph's base URL (a national cloud, or the emulator).
    #[arg(long, value_name = "URL", default_value = crate::graph::GRAPH_URL)]
    pub graph_url: String,

    /// Token endpoint of the client-credentials flow (`{tenant}` is replaced).
    #[arg(long, value_name = "URL", default_value = crate::api::DEFAULT_TOKEN_URL)]
    pub graph_token_url: String,

    /// Alerts per page (Graph allows up to 1000).
    #[arg(long, value_name = "N", default_value_t = crate::graph::MAX_TOP)]
    pub graph_top: u32,
}

/// What the run reads.
enum Job {
    Mda(Box<BackfillConfig>),
    Graph(Box<GraphBackfillConfig>),
}

impl Job {
    /// `--dry-run`'s lines.
    fn preview(&self) -> Result<Vec<String>, backfill::BackfillError> {
        match self {
            Job::Mda(config) => backfill::preview(config).map(|p| p.lines),
            Job::Graph(config) => graph_backfill::preview(config),
        }
    }

    fn run_to_end(&self, sink: &mut dyn crate::records::MessageSink) -> backfill::BackfillOutcome {
        match self {
            Job::Mda(config) => backfill::run_to_end(config, sink),
            Job::Graph(config) => graph_backfill::run_to_end(config, sink),
        }
    }
}

/// Where the lines go.
enum Destination {
    File(OutputPath),
    /// The syslog sender (`--to` and its companions).
    Syslog(Box<SendConfig>),
}

impl BackfillArgs {
    fn into_config(self, stop: &Stop) -> anyhow::Result<(Job, Option<Destination>)> {
        let now = now_ms();
        let window = match (&self.since, &self.from) {
            (Some(HumanDuration(since)), None) => {
                if since.is_zero() {
                    usage!("--since: must be longer than zero");
                }
                TimeWindow { from: now - since.as_millis() as i64, until: now }
            }
            (None, Some(from)) => {
                let from = parse_time_ms(from).map_err(|e| super::UsageError(format!("--from: {e}")))?;
                let until = match &self.until {
                    Some(until) => parse_time_ms(until).map_err(|e| super::UsageError(format!("--until: {e}")))?,
                    None => now,
                };
                if until <= from {
                    usage!("--until must be after --from");
                }
                TimeWindow { from, until }
            }
            _ => usage!("give the window: --since DURATION, or --from TIME [--until TIME]"),
        };
        let asked = match (self.source, self.types.is_empty()) {
            (_, false) => self.types.clone(),
            (SourceArg::Mda, true) => vec![TypeArg::Activities, TypeArg::Alerts],
            (SourceArg::Graph, true) => vec![TypeArg::Alerts],
        };
        let mut types = Vec::new();
        // Alerts first: they are few, so both totals (and the ETA) are known early.
        for (arg, endpoint) in [(TypeArg::Alerts, Endpoint::Alerts), (TypeArg::Activities, Endpoint::Activities)] {
            if asked.contains(&arg) {
                types.push(endpoint);
            }
        }
        let graph = self.source == SourceArg::Graph;
        if graph && types != [Endpoint::Alerts] {
            usage!("--source graph reads alerts only: drop --types or use --types alerts");
        }
        if graph && self.archive.is_some() {
            usage!("--archive works with --source mda only");
        }
        let extra_filters = match &self.filter {
            None => Vec::new(),
            Some(_) if graph => Vec::new(),
            Some(json) => extra_filters(json, names::FILTER, Source::Flags).map_err(super::UsageError::from)?,
        };
        if !(1..=paging::SCAN_PAGE).contains(&self.scan_limit) {
            usage!("--scan-limit must be between 1 and {}", paging::SCAN_PAGE);
        }
        let destination = match (self.send.is_sending(), &self.output) {
            (true, Some(_)) => usage!("-o/--output and --to exclude each other"),
            (true, None) => {
                let with_pri = self.cef.to_options(true)?.header.pri.is_some();
                Some(Destination::Syslog(Box::new(self.send.to_config(stop.clone(), with_pri)?)))
            }
            (false, Some(path)) if path.as_os_str() == "-" => Some(Destination::File(OutputPath::Stdout)),
            (false, Some(path)) => Some(Destination::File(OutputPath::File(path.clone()))),
            (false, None) if self.dry_run => None,
            (false, None) => usage!("say where the lines go: --to URL (syslog) or -o FILE"),
        };
        let sending = matches!(destination, Some(Destination::Syslog(_)));
        let cef = self.cef.to_options(sending)?;
        if graph {
            let settings = GraphSettings {
                tenant_id: self.graph.graph_tenant_id.clone(),
                client_id: self.graph.graph_client_id.clone(),
                client_secret_file: self.graph.graph_client_secret_file.clone(),
                url: Some(self.graph.graph_url.clone()),
                token_url: Some(self.graph.graph_token_url.clone()),
                filter: self.filter.clone(),
                top: Some(self.graph.graph_top),
                ca_file: self.api.api_ca.clone(),
                proxy: self.api.proxy.clone(),
                allow_http: self.api.allow_http,
            };
            let config = GraphBackfillConfig {
                graph: settings.validate(Source::Flags).map_err(super::UsageError::from)?,
                window,
                cef,
                rejects_file: self.report.rejects,
                show_rejects: self.report.show_rejects,
                progress: !self.report.no_progress && !self.report.quiet,
                stop: Some(stop.clone()),
            };
            return Ok((Job::Graph(Box::new(config)), destination));
        }
        let api = self.api.to_config(&self.cef.portal_url)?;
        let config = BackfillConfig {
            api,
            window,
            types,
            activity_key: match self.activity_time {
                ActivityTimeArg::Date => TimeKey::Date,
                ActivityTimeArg::Created => TimeKey::Created,
            },
            extra_filters,
            scan_limit: self.scan_limit,
            cef,
            archive_dir: self.archive,
            rejects_file: self.report.rejects,
            show_rejects: self.report.show_rejects,
            progress: !self.report.no_progress && !self.report.quiet,
            stop: Some(stop.clone()),
        };
        Ok((Job::Mda(Box::new(config)), destination))
    }
}

pub fn run(args: BackfillArgs) -> anyhow::Result<Status> {
    let quiet = args.report.quiet;
    let dry_run = args.dry_run;
    let stop = Stop::on_signals()?;
    let (config, destination) = args.into_config(&stop)?;
    if dry_run {
        for line in &config.preview()? {
            println!("{line}");
        }
        match &destination {
            Some(Destination::File(path)) => println!("would write CEF lines to {}", path.display_name()),
            Some(Destination::Syslog(send)) => {
                let urls: Vec<String> = send.destinations.iter().map(ToString::to_string).collect();
                println!("would send CEF lines to {}", urls.join(", "));
            }
            None => println!("(no output given: add -o FILE or --to URL to run it)"),
        }
        return Ok(Status::Success);
    }
    let (outcome, sent) = match destination {
        Some(Destination::File(path)) => {
            let created = match &path {
                OutputPath::File(file) => (!file.exists()).then(|| file.clone()),
                OutputPath::Stdout => None,
            };
            let mut writer = LineWriter::create(&path)?;
            let outcome = config.run_to_end(&mut writer);
            // What was converted is written out and the file ended
            // cleanly (a zstd end frame), whatever stopped the run.
            writer.finish()?;
            // A run that failed before it fetched a record (a refused
            // token, an unreachable portal) leaves no empty file behind.
            if let Some(file) = created
                && outcome.error.is_some()
                && outcome.report.counts.records == 0
            {
                let _ = std::fs::remove_file(&file);
            }
            (outcome, None)
        }
        Some(Destination::Syslog(send_config)) => {
            let mut sender = SyslogSender::start(&send_config)?;
            let outcome = config.run_to_end(&mut sender);
            // Whatever happened upstream, send out what was fetched.
            let sent = sender.finish()?;
            (outcome, Some(sent))
        }
        None => unreachable!("a destination is required unless --dry-run"),
    };
    let report = &outcome.report;
    if !quiet {
        if outcome.error.is_some() {
            eprintln!("cefwire: backfill INCOMPLETE, the window was not finished; what was done:");
        }
        eprintln!("cefwire: {}", report.summary());
        if let Some(sent) = &sent {
            eprintln!("cefwire: {}", sent.summary());
        }
    }
    if let Some(err) = outcome.error {
        // main prints it, and the exit status says the run failed.
        return Err(err.into());
    }
    if sent.is_some_and(|sent| sent.failure.is_some() || sent.messages_unsent > 0) {
        return Ok(Status::Failure);
    }
    Ok(if report.counts.rejected > 0 { Status::Rejected } else { Status::Success })
}

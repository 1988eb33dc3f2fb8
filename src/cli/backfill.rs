//! `cefwire backfill`: flags → [`BackfillConfig`] → one pass over the
//! window into a file or to syslog (`--to URL`).

use super::api::ApiArgs;
use super::common::{CefArgs, ReportArgs};
use super::send_args::SendArgs;
use super::storage_args::StorageArgs;
use super::usage;
use crate::api::{Endpoint, TimeKey, TimeWindow, paging};
use crate::backfill::{self, BackfillConfig};
use crate::exit::Status;
use crate::graph_backfill::{self, GraphBackfillConfig};
use crate::output::{LineWriter, OutputPath};
use crate::records::MessageSink;
use crate::send::{SendConfig, SendReport, SyslogSender};
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
    /// The event hub Defender XDR streams CloudAppEvents into (with --config).
    Eventhubs,
    /// The Defender XDR streaming archive (CloudAppEvents) in an Azure Storage account.
    Storage,
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
    about = "Fetch a time window of activities and alerts from the API (or a span of an event hub) and send it as CEF",
    long_about = "Fetch a time window of activities and alerts from the Defender for Cloud Apps API, \
convert each record to CEF and write or send it as it goes.\n\n\
Activities are read in scan mode (pages of up to 5000), alerts in pages of 100 whose time bound moves \
forward before the 5000 offset cap. Requests stay under --rate-limit (30/min by default, as the service \
allows); 429, 5xx and network errors are retried with backoff; 401/403 stop at once. The next request is \
in flight while a page is converted.\n\n\
With --source eventhubs the records come from the event hub Defender XDR streams CloudAppEvents into, \
as the agent's file (--config, its [eventhubs] section; secrets stay in their files) describes it. Each \
partition is read from the start you give (--from-beginning, --offsets P:O,… or --at TIME) to its high \
watermark when the run starts (or its first event enqueued at or after --until), then the run ends. \
Partitions are assigned to the reader: it never joins the agent's consumer group and commits no offset. \
Records of other tables are counted and skipped; a ReportId seen before in the run is sent once.\n\n\
Exit codes: 0 done, 3 some records rejected, 1 an API, broker or output error or a signal (SIGINT/SIGTERM) \
stopped the run (what was fetched is still written, the outputs are finished, and the summary says \
INCOMPLETE), 2 bad usage. A second signal exits at once (130).",
    after_help = "Examples:\n  cefwire backfill --since 48h --portal-url https://contoso.us3.portal.cloudappsecurity.com --token-file token.txt -o window.cef\n  \
cefwire backfill --from 2026-01-01 --until 2026-01-02 --types alerts --portal-url URL --tenant-id T --client-id C --client-secret-file secret.txt -o alerts.cef --archive raw/\n  \
cefwire backfill --since 48h --portal-url URL --token-file token.txt --dry-run\n  \
cefwire backfill --source eventhubs --config /etc/cefwire/cefwire.toml --at 2026-11-01T00:00:00Z --until 2026-11-02 --to tcp://siem.example.com:514\n  \
cefwire backfill --source eventhubs --config cefwire.toml --offsets 0:1200,1:980 -o hub.cef"
)]
pub struct BackfillArgs {
    /// The agent's TOML file: its [eventhubs] section says where the event
    /// hub is and how to sign in (--source eventhubs).
    #[arg(long, value_name = "FILE", help_heading = "Event Hubs (--source eventhubs)")]
    pub config: Option<PathBuf>,

    /// Start each partition at its first event enqueued at or after TIME
    /// (RFC 3339, date, epoch ms).
    #[arg(long, value_name = "TIME", help_heading = "Event Hubs (--source eventhubs)")]
    pub at: Option<String>,

    /// Read only these partitions, each from its offset: PARTITION:OFFSET,…
    #[arg(long, value_name = "P:O", value_delimiter = ',', help_heading = "Event Hubs (--source eventhubs)")]
    pub offsets: Vec<String>,

    /// Start each partition at the oldest event the hub keeps.
    #[arg(long, help_heading = "Event Hubs (--source eventhubs)")]
    pub from_beginning: bool,

    /// Window ending now, e.g. 48h, 2d, 90m.
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<HumanDuration>,

    /// Window start (RFC 3339, date, epoch ms).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// Window end, exclusive (default now). With --source eventhubs: a
    /// partition ends at its first event enqueued at or after TIME.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Where the records come from: the Defender for Cloud Apps API,
    /// Microsoft Graph alerts_v2 (alerts only; see the Graph access flags),
    /// the event hub of Defender XDR streaming (with --config), or the
    /// streaming archive in Azure Storage (activities only: the blobs of
    /// the window's hours; see the Storage source flags).
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

    /// Also write the raw records here as zstd NDJSON, one file per type
    /// (`--source mda` or `graph`; readable by `convert`).
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

    #[command(flatten)]
    pub storage: StorageArgs,
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

    fn run_to_end(&self, sink: &mut dyn MessageSink) -> backfill::BackfillOutcome {
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
    /// `-o FILE` or `--to URL` (with its companions), or neither.
    fn destination(&self, stop: &Stop) -> anyhow::Result<Option<Destination>> {
        Ok(match (self.send.is_sending(), &self.output) {
            (true, Some(_)) => usage!("-o/--output and --to exclude each other"),
            (true, None) => {
                let with_pri = self.cef.to_options(true)?.header.pri.is_some();
                Some(Destination::Syslog(Box::new(self.send.to_config(stop.clone(), with_pri)?)))
            }
            (false, Some(path)) if path.as_os_str() == "-" => Some(Destination::File(OutputPath::Stdout)),
            (false, Some(path)) => Some(Destination::File(OutputPath::File(path.clone()))),
            (false, None) => None,
        })
    }

    /// The window asked for, checked (and the flags only Event Hubs takes refused).
    fn window(&self) -> anyhow::Result<TimeWindow> {
        let eventhubs_only = [
            (self.config.is_some(), "--config"),
            (self.at.is_some(), "--at"),
            (!self.offsets.is_empty(), "--offsets"),
            (self.from_beginning, "--from-beginning"),
        ];
        if let Some((_, flag)) = eventhubs_only.iter().find(|(given, _)| *given) {
            usage!("{flag} is for --source eventhubs");
        }
        if self.until.is_some() && self.from.is_none() {
            usage!("--until needs --from (or --source eventhubs)");
        }
        let now = now_ms();
        Ok(match (&self.since, &self.from) {
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
        })
    }

    fn into_config(self, stop: &Stop) -> anyhow::Result<(Job, Option<Destination>)> {
        let window = self.window()?;
        if let Some(flag) = self.storage.first_given() {
            usage!("{flag} is for --source storage");
        }
        let asked = match (self.source, self.types.is_empty()) {
            (_, false) => self.types.clone(),
            (SourceArg::Mda, true) => vec![TypeArg::Activities, TypeArg::Alerts],
            (SourceArg::Graph, true) => vec![TypeArg::Alerts],
            (SourceArg::Eventhubs, true) => unreachable!("--source eventhubs has its own config"),
            (SourceArg::Storage, true) => unreachable!("--source storage has its own config"),
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
        let extra_filters = match &self.filter {
            None => Vec::new(),
            Some(_) if graph => Vec::new(),
            Some(json) => extra_filters(json, names::FILTER, Source::Flags).map_err(super::UsageError::from)?,
        };
        if !(1..=paging::SCAN_PAGE).contains(&self.scan_limit) {
            usage!("--scan-limit must be between 1 and {}", paging::SCAN_PAGE);
        }
        let destination = match self.destination(stop)? {
            None if !self.dry_run => usage!("say where the lines go: --to URL (syslog) or -o FILE"),
            destination => destination,
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
                archive_dir: self.archive,
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
    if args.source == SourceArg::Eventhubs {
        return eventhubs::run(args);
    }
    if args.source == SourceArg::Storage {
        let window = args.window()?;
        return super::storage_args::run(args, window, Stop::on_signals()?);
    }
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
    let destination = destination.expect("a destination is required unless --dry-run");
    let (outcome, sent) = deliver(
        destination,
        |sink| config.run_to_end(sink),
        |outcome| outcome.error.is_some() && outcome.report.counts.records == 0,
    )?;
    let report = &outcome.report;
    finish(quiet, report.summary(), outcome.error, sent.as_ref(), report.counts.rejected)
}

/// Runs `job` into the destination. Whatever ended the job, what it
/// converted is written out and a file ended cleanly (a zstd end frame),
/// or sent and the sender drained. A file the run created is removed when
/// `empty_failure` says the job failed before it had a record (a refused
/// token, an unreachable portal or broker).
fn deliver<T>(
    destination: Destination,
    job: impl FnOnce(&mut dyn MessageSink) -> T,
    empty_failure: impl FnOnce(&T) -> bool,
) -> anyhow::Result<(T, Option<SendReport>)> {
    match destination {
        Destination::File(path) => {
            let created = match &path {
                OutputPath::File(file) => (!file.exists()).then(|| file.clone()),
                OutputPath::Stdout => None,
            };
            let mut writer = LineWriter::create(&path)?;
            let outcome = job(&mut writer);
            writer.finish()?;
            if let Some(file) = created
                && empty_failure(&outcome)
            {
                let _ = std::fs::remove_file(&file);
            }
            Ok((outcome, None))
        }
        Destination::Syslog(send_config) => {
            let mut sender = SyslogSender::start(&send_config)?;
            let outcome = job(&mut sender);
            // Whatever happened upstream, send out what was fetched.
            let sent = sender.finish()?;
            Ok((outcome, Some(sent)))
        }
    }
}

/// Prints the summary (INCOMPLETE first when `error` ended the run early)
/// and says how the run ended: the error (main prints it, exit 1), a
/// delivery failure, rejects, or success.
fn finish(
    quiet: bool,
    summary: String,
    error: Option<impl Into<anyhow::Error>>,
    sent: Option<&SendReport>,
    rejected: u64,
) -> anyhow::Result<Status> {
    if !quiet {
        if error.is_some() {
            eprintln!("cefwire: backfill INCOMPLETE, the window was not finished; what was done:");
        }
        eprintln!("cefwire: {summary}");
        if let Some(sent) = sent {
            eprintln!("cefwire: {}", sent.summary());
        }
    }
    if let Some(err) = error {
        return Err(err.into());
    }
    if sent.is_some_and(|sent| sent.failure.is_some() || sent.messages_unsent > 0) {
        return Ok(Status::Failure);
    }
    Ok(if rejected > 0 { Status::Rejected } else { Status::Success })
}

/// `--source eventhubs`: flags and the agent's `[eventhubs]` section →
/// [`EventHubsBackfillConfig`](crate::eventhubs_backfill::EventHubsBackfillConfig).
#[cfg(feature = "eventhubs")]
mod eventhubs {
    use super::{BackfillArgs, Destination, deliver, finish};
    use crate::agent::config::eventhubs_settings;
    use crate::agent::config_file::ConfigFile;
    use crate::cli::{UsageError, usage};
    use crate::eventhubs::backfill::ReadFrom;
    use crate::eventhubs_backfill::{self as job, EventHubsBackfillConfig};
    use crate::exit::Status;
    use crate::stop::Stop;
    use crate::time::parse_time_ms;
    use std::time::Duration;

    /// How long the broker gets to answer each first question.
    const CONNECT_WAIT: Duration = Duration::from_secs(30);

    fn into_config(args: &BackfillArgs, stop: &Stop) -> anyhow::Result<(EventHubsBackfillConfig, Destination)> {
        if let Some(flag) = args.storage.first_given() {
            usage!("{flag} is for --source storage");
        }
        let api_only = [
            (args.since.is_some(), "--since"),
            (args.from.is_some(), "--from"),
            (args.filter.is_some(), "--filter"),
            (args.archive.is_some(), "--archive"),
            (args.dry_run, "--dry-run"),
            (!args.types.is_empty(), "--types"),
        ];
        if let Some((_, flag)) = api_only.iter().find(|(given, _)| *given) {
            usage!(
                "{flag} is for --source mda or graph; an event hub is read from --from-beginning, --offsets or --at"
            );
        }
        let Some(path) = &args.config else {
            usage!("--source eventhubs needs --config FILE: the agent's file with its [eventhubs] section")
        };
        let file = ConfigFile::load(path).map_err(|e| UsageError(e.to_string()))?;
        let settings = eventhubs_settings(&file.eventhubs).map_err(UsageError::from)?;
        let time = |flag: &str, text: &str| parse_time_ms(text).map_err(|e| UsageError(format!("{flag}: {e}")));
        let from = match (&args.at, args.offsets.is_empty(), args.from_beginning) {
            (Some(at), true, false) => ReadFrom::Time(time("--at", at)?),
            (None, false, false) => ReadFrom::Offsets(parse_offsets(&args.offsets)?),
            (None, true, true) => ReadFrom::Beginning,
            (None, true, false) => usage!("say where to start: --from-beginning, --offsets P:O,… or --at TIME"),
            _ => usage!("--from-beginning, --offsets and --at exclude each other"),
        };
        let until_ms = args.until.as_deref().map(|until| time("--until", until)).transpose()?;
        if let (ReadFrom::Time(at), Some(until)) = (&from, until_ms)
            && until <= *at
        {
            usage!("--until must be after --at");
        }
        let Some(destination) = args.destination(stop)? else {
            usage!("say where the lines go: --to URL (syslog) or -o FILE")
        };
        let sending = matches!(destination, Destination::Syslog(_));
        let config = EventHubsBackfillConfig {
            settings,
            from,
            until_ms,
            cef: args.cef.to_options(sending)?,
            rejects_file: args.report.rejects.clone(),
            show_rejects: args.report.show_rejects,
            progress: !args.report.no_progress && !args.report.quiet,
            stop: Some(stop.clone()),
            connect_wait: CONNECT_WAIT,
        };
        Ok((config, destination))
    }

    /// `0:1200,1:980` (clap split it at the commas).
    fn parse_offsets(items: &[String]) -> Result<Vec<(i32, i64)>, UsageError> {
        let mut offsets: Vec<(i32, i64)> = Vec::with_capacity(items.len());
        for item in items {
            let parsed = item
                .split_once(':')
                .and_then(|(p, o)| Some((p.trim().parse::<i32>().ok()?, o.trim().parse::<i64>().ok()?)));
            let Some((partition, offset)) = parsed.filter(|&(p, o)| p >= 0 && o >= 0) else {
                return Err(UsageError(format!(
                    "--offsets: {item:?} is not PARTITION:OFFSET (two numbers, e.g. 0:1200)"
                )));
            };
            if offsets.iter().any(|&(p, _)| p == partition) {
                return Err(UsageError(format!("--offsets: partition {partition} is given twice")));
            }
            offsets.push((partition, offset));
        }
        Ok(offsets)
    }

    pub fn run(args: BackfillArgs) -> anyhow::Result<Status> {
        let stop = Stop::on_signals()?;
        let (config, destination) = into_config(&args, &stop)?;
        if !args.report.quiet {
            let s = &config.settings;
            eprintln!(
                "cefwire: reading event hub {} at {} (assigned its partitions: consumer group {} is left alone)",
                s.event_hub, s.bootstrap_servers, s.consumer_group
            );
        }
        let (outcome, sent) = deliver(
            destination,
            |sink| job::run_to_end(&config, sink),
            |outcome| outcome.error.is_some() && outcome.report.counts.records == 0,
        )?;
        let report = &outcome.report;
        let error = outcome.error.map(|err| match err {
            // Known only once the broker answered, but a flag to fix.
            job::EventHubsBackfillError::Reader(
                err @ crate::eventhubs::backfill::ReaderError::NoSuchPartition { .. },
            ) => anyhow::Error::new(UsageError(err.to_string())),
            err => anyhow::Error::new(err),
        });
        finish(args.report.quiet, report.summary(), error, sent.as_ref(), report.counts.rejected)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn offsets_are_partition_colon_offset_each_partition_once() {
            let items = |text: &str| text.split(',').map(str::to_owned).collect::<Vec<_>>();
            assert_eq!(parse_offsets(&items("0:1200, 3:0")).unwrap(), [(0, 1200), (3, 0)]);
            for bad in ["0", "0:x", "-1:5", "0:-2", "0:1,0:2", ":4"] {
                let err = parse_offsets(&items(bad)).unwrap_err().to_string();
                assert!(err.starts_with("--offsets: "), "{bad}: {err}");
            }
        }
    }
}

/// Without the Event Hubs client built in.
#[cfg(not(feature = "eventhubs"))]
mod eventhubs {
    pub fn run(_: super::BackfillArgs) -> anyhow::Result<crate::exit::Status> {
        super::usage!("--source eventhubs: this cefwire was built without the eventhubs feature")
    }
}

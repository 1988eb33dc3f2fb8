//! `cefwire emulate`: flags → [`EmulatorConfig`] and a loaded
//! [`RecordStore`] → serve until SIGINT/SIGTERM → summary.

use super::usage;
use crate::api::RateLimit;
use crate::azure::blob::{BlobConfig, StorageAuth};
use crate::azure::shared_key::AZURITE_KEY;
use crate::emulate::archive::{self, ArchiveConfig};
use crate::emulate::{self, DataKind, EmulatorAuth, EmulatorConfig, FaultConfig, StoreBuilder};
use crate::exit::Status;
use crate::generate::{GenerateConfig, GenerateKind};
use crate::input::source::InputPath;
use crate::time::{HumanDuration, now_ms};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Args, Debug)]
#[command(
    about = "Run a local emulator of the Defender for Cloud Apps API, Graph alerts_v2 and the streaming archive (for trying and testing)",
    long_about = "Run a local emulator of the Defender for Cloud Apps REST API: POST /api/v1/activities/ and \
/api/v1/alerts/ with filters (date, created: gt/gte/lt/lte/range/gte_ndays/lte_ndays; service: eq/neq), \
sortField/sortDirection, skip/limit (100 cap, skip+limit <= 5000), scan mode for activities (isScan, \
limit up to 5000, nextQueryFilters), the token check (401/403), the 30 requests/minute throttle (429), \
and injected faults. An Entra ID token endpoint stand-in (POST /<tenant>/oauth2/v2.0/token or /oauth2/token) \
issues bearer tokens to --client-id/--client-secret. GET /stats returns the counters as JSON.\n\n\
Microsoft Graph: GET /v1.0/security/alerts_v2 serves --graph-alerts/--generate-graph-alerts with $filter \
(serviceSource eq/ne, createdDateTime ge/gt/le/lt), $orderby=createdDateTime, $top <= 1000, $skip <= 500 and \
@odata.nextLink, bearer tokens only, and Graph's own throttle (150/min, 429 with Retry-After).\n\n\
Streaming archive: with --archive-to it writes generated CloudAppEvents records into a storage account \
(Azurite) as hourly append blobs that grow over --archive-duration, with late appends to earlier hours, \
duplicates and records of other tables; GET /stats shows archiveRecords and archiveDone.\n\n\
Activities whose `created` lies in the future are not served until then, like records the service has \
not stored yet.\n\nThe base URL is printed on stdout; a summary is printed on SIGINT/SIGTERM.",
    after_help = "Examples:\n  cefwire emulate --generate 200000 --token secret\n  \
cefwire emulate --listen 127.0.0.1:8443 --tls --cert-out emulator.pem --token secret --activities acts.ndjson.zst --alerts alerts.ndjson\n  \
cefwire emulate --generate 50000 --token secret --fault 5xx:0.05 --fault drop:0.02 --fault late:0.1\n  \
cefwire emulate --generate-graph-alerts 20000 --client-id app --client-secret s --fault 429:0.05\n  \
cefwire emulate --archive-to http://127.0.0.1:10000/devstoreaccount1 --archive-records 200000 --archive-duration 10m"
)]
pub struct EmulateArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Serve HTTPS with a self-signed certificate.
    #[arg(long)]
    pub tls: bool,

    /// Where to write the certificate (PEM) with --tls.
    #[arg(long, value_name = "FILE", default_value = "cefwire-emulator.pem", requires = "tls")]
    pub cert_out: PathBuf,

    /// Accepted legacy API token (`Authorization: Token …`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Accepted Entra ID application id (for the token endpoint).
    #[arg(long, value_name = "ID", requires = "client_secret")]
    pub client_id: Option<String>,

    /// Its secret.
    #[arg(long, value_name = "SECRET", requires = "client_id")]
    pub client_secret: Option<String>,

    /// Lifetime of issued bearer tokens.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub token_lifetime: HumanDuration,

    /// NDJSON / page files of activities (plain, gzip, zstd).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub activities: Vec<PathBuf>,

    /// NDJSON / page files of alerts.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub alerts: Vec<PathBuf>,

    /// Generate N records (one alert per 20) over --span ending now.
    #[arg(long, value_name = "N")]
    pub generate: Option<u64>,

    /// NDJSON / page files of Microsoft Graph alerts_v2 alerts (served on
    /// GET /v1.0/security/alerts_v2).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub graph_alerts: Vec<PathBuf>,

    /// Generate N Graph alerts_v2 alerts (9 in 10 from Defender for Cloud
    /// Apps) over --span ending now.
    #[arg(long, value_name = "N")]
    pub generate_graph_alerts: Option<u64>,

    /// Graph's throttle: requests per window, answered 429 with Retry-After beyond it.
    #[arg(long, value_name = "N/WINDOW", default_value = "150/min", conflicts_with = "no_rate_limit")]
    pub graph_rate_limit: RateLimit,

    /// Time span of generated records, ending now.
    #[arg(long, value_name = "DURATION", default_value = "48h")]
    pub span: HumanDuration,

    /// Seed of the generator and of the fault dice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Throttle: requests per window, answered 429 beyond it.
    #[arg(long, value_name = "N/WINDOW", default_value = "30/min", conflicts_with = "no_rate_limit")]
    pub rate_limit: RateLimit,

    /// No throttle at all (neither the API's nor Graph's).
    #[arg(long)]
    pub no_rate_limit: bool,

    /// Inject faults: 5xx:P, 429:P (throttled though under the limit; Retry-After: 1),
    /// drop:P (dropped connections), slow:P (see --slow-delay), short:P (short scan pages),
    /// late:P (generated activities stored 5-60 minutes late).
    #[arg(long, value_name = "KIND:P")]
    pub fault: Vec<String>,

    /// Delay of slow responses.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub slow_delay: HumanDuration,

    /// A scan page stops growing at this many MB.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    pub max_page_mb: usize,

    /// Write a Defender XDR streaming archive of generated CloudAppEvents
    /// records into this storage account's Blob endpoint, e.g. Azurite's
    /// http://127.0.0.1:10000/devstoreaccount1. The account key is taken
    /// from $CEFWIRE_STORAGE_KEY, else Azurite's published key.
    #[arg(long, value_name = "URL", help_heading = "Streaming archive")]
    pub archive_to: Option<String>,

    /// Storage account name (the endpoint's last path segment by default).
    #[arg(long, value_name = "NAME", requires = "archive_to", help_heading = "Streaming archive")]
    pub archive_account: Option<String>,

    /// Container of the archive.
    #[arg(long, value_name = "NAME", default_value = archive::CONTAINER, requires = "archive_to", help_heading = "Streaming archive")]
    pub archive_container: String,

    /// Number of CloudAppEvents records to write.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        requires = "archive_to",
        help_heading = "Streaming archive"
    )]
    pub archive_records: u64,

    /// The records' time span (its hours become blobs), ending now.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "6h",
        requires = "archive_to",
        help_heading = "Streaming archive"
    )]
    pub archive_span: HumanDuration,

    /// Spread the appends over this long, so readers see blobs grow.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        requires = "archive_to",
        help_heading = "Streaming archive"
    )]
    pub archive_duration: HumanDuration,

    /// Fraction of records appended to their hour's blob 1-3 hours later.
    #[arg(long, value_name = "P", default_value_t = 0.05, requires = "archive_to", help_heading = "Streaming archive")]
    pub archive_late: f64,

    /// Fraction of records written twice (the streaming API is at-least-once).
    #[arg(long, value_name = "P", default_value_t = 0.01, requires = "archive_to", help_heading = "Streaming archive")]
    pub archive_duplicates: f64,

    /// Every N-th record is followed by a record of another table (0: none).
    #[arg(long, value_name = "N", default_value_t = 50, requires = "archive_to", help_heading = "Streaming archive")]
    pub archive_other_tables: u64,

    /// Records per append.
    #[arg(long, value_name = "N", default_value_t = 500, requires = "archive_to", help_heading = "Streaming archive")]
    pub archive_block: usize,

    /// No summary on exit.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The archive settings, checked.
fn archive_config(args: &EmulateArgs, endpoint: &str) -> anyhow::Result<ArchiveConfig> {
    let account = match &args.archive_account {
        Some(account) => account.clone(),
        None => endpoint.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned(),
    };
    if account.is_empty() || !endpoint.contains("://") {
        usage!(
            "--archive-to {endpoint:?}: give the Blob endpoint URL (and --archive-account when it does not end with the account)"
        );
    }
    for (flag, p) in [("--archive-late", args.archive_late), ("--archive-duplicates", args.archive_duplicates)] {
        if !(0.0..=1.0).contains(&p) {
            usage!("{flag} {p} must be between 0 and 1");
        }
    }
    let key = std::env::var("CEFWIRE_STORAGE_KEY").unwrap_or_else(|_| AZURITE_KEY.to_owned());
    let span_ms = super::positive("--archive-span", args.archive_span)?.as_millis() as i64;
    Ok(ArchiveConfig {
        blob: BlobConfig::new(endpoint, &account, StorageAuth::AccountKey(key)),
        container: args.archive_container.clone(),
        records: GenerateConfig {
            kind: GenerateKind::CloudAppEvents,
            count: args.archive_records,
            seed: args.seed,
            late_ratio: 0.0,
            start_ms: now_ms() - span_ms,
            span_ms,
        },
        late_ratio: args.archive_late,
        duplicate_ratio: args.archive_duplicates,
        other_table_every: args.archive_other_tables,
        block_records: args.archive_block.max(1),
        duration: args.archive_duration.0,
    })
}

pub fn run(args: EmulateArgs) -> anyhow::Result<Status> {
    let mut faults =
        FaultConfig { slow_delay: super::positive("--slow-delay", args.slow_delay)?, ..Default::default() };
    let mut late_ratio = 0.0;
    for spec in &args.fault {
        let Some((kind, p)) = spec.split_once(':') else { usage!("--fault {spec:?}: use KIND:P, e.g. 5xx:0.05") };
        let Ok(p) = p.parse::<f64>() else { usage!("--fault {spec:?}: {p:?} is not a number") };
        if !(0.0..=1.0).contains(&p) {
            usage!("--fault {spec:?}: the probability must be between 0 and 1");
        }
        match kind {
            "5xx" => faults.error_5xx = p,
            "429" => faults.error_429 = p,
            "drop" => faults.drop = p,
            "slow" => faults.slow = p,
            "short" => faults.short_pages = p,
            "late" => late_ratio = p,
            _ => usage!("--fault {spec:?}: unknown kind {kind:?} (5xx, 429, drop, slow, short, late)"),
        }
    }
    if faults.error_5xx + faults.drop > 1.0 {
        usage!("--fault 5xx and drop together must not exceed 1");
    }
    let (rate_limit, graph_rate_limit) = match args.no_rate_limit {
        true => (None, None),
        false => (Some(args.rate_limit), Some(args.graph_rate_limit)),
    };
    let span_ms = super::positive("--span", args.span)?.as_millis() as i64;
    if args.generate.is_none()
        && args.activities.is_empty()
        && args.alerts.is_empty()
        && args.graph_alerts.is_empty()
        && args.generate_graph_alerts.is_none()
        && args.archive_to.is_none()
    {
        usage!(
            "no data: give --generate N, --generate-graph-alerts N, --activities/--alerts/--graph-alerts FILE or --archive-to URL"
        );
    }
    if args.token.is_none() && args.client_id.is_none() && args.archive_to.is_none() {
        usage!("give --token TOKEN (and/or --client-id/--client-secret) so the token check has something to check");
    }
    let archive = args.archive_to.as_deref().map(|url| archive_config(&args, url)).transpose()?;
    if args.max_page_mb == 0 {
        usage!("--max-page-mb must be at least 1");
    }
    let config = EmulatorConfig {
        listen: args.listen,
        tls_cert_out: args.tls.then(|| args.cert_out.clone()),
        tls: args.tls,
        auth: EmulatorAuth {
            api_token: args.token.clone(),
            client: args.client_id.clone().zip(args.client_secret.clone()),
            token_lifetime: super::positive("--token-lifetime", args.token_lifetime)?,
        },
        rate_limit,
        graph_rate_limit,
        faults,
        seed: args.seed,
        max_page_bytes: args.max_page_mb << 20,
        max_connections: 256,
    };

    let mut builder = StoreBuilder::new();
    for (files, kind) in [(&args.activities, DataKind::Activities), (&args.alerts, DataKind::Alerts)] {
        for file in files {
            builder.add_file(&InputPath::File(file.clone()), kind)?;
        }
    }
    if let Some(count) = args.generate {
        let now = now_ms();
        builder.add_generated(GenerateConfig {
            kind: GenerateKind::Mixed,
            count,
            seed: args.seed,
            late_ratio,
            start_ms: now - span_ms,
            span_ms,
        });
    }
    for file in &args.graph_alerts {
        builder.graph_alerts.add_file(&InputPath::File(file.clone()))?;
    }
    if let Some(count) = args.generate_graph_alerts {
        let now = now_ms();
        builder.graph_alerts.add_generated(GenerateConfig {
            kind: GenerateKind::GraphAlerts,
            count,
            seed: args.seed,
            late_ratio: 0.0,
            start_ms: now - span_ms,
            span_ms,
        });
    }
    let counts = builder.counts;
    let graph_alerts = builder.graph_alerts.stored;
    let store = Arc::new(builder.build());

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let handle = emulate::start(config, store)?;
    if !args.quiet {
        eprintln!(
            "cefwire emulate: serving {} activities, {} alerts and {} Graph alerts{} on {}{}",
            counts.activities,
            counts.alerts,
            graph_alerts,
            if counts.skipped > 0 {
                format!(" ({} records skipped: no timestamp)", counts.skipped)
            } else {
                String::new()
            },
            handle.base_url(),
            if args.tls { format!(" (certificate in {})", args.cert_out.display()) } else { String::new() }
        );
    }
    println!("{}", handle.base_url());
    let handle = Arc::new(handle);
    let writer = archive.map(|config| {
        let (handle, stop, quiet) = (Arc::clone(&handle), Arc::clone(&stop), args.quiet);
        std::thread::spawn(move || {
            let written = archive::write_archive(&config, &stop, |stats| handle.set_archive_progress(stats, false));
            match written {
                Ok(stats) => {
                    handle.set_archive_progress(&stats, true);
                    if !quiet {
                        eprintln!("cefwire emulate: archive written: {}", stats.summary());
                    }
                    true
                }
                Err(err) => {
                    eprintln!("cefwire emulate: writing the archive to {}: {err}", config.blob.endpoint);
                    stop.store(true, Ordering::Relaxed);
                    false
                }
            }
        })
    });
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let archive_ok = writer.is_none_or(|w| w.join().unwrap_or(false));
    let Ok(handle) = Arc::try_unwrap(handle) else { unreachable!("the archive thread has ended") };
    let stats = handle.shutdown();
    if !args.quiet {
        eprintln!("cefwire emulate: {}", stats.summary());
    }
    Ok(if archive_ok { Status::Success } else { Status::Failure })
}

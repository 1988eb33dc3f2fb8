//! `cefwire emulate`: flags → [`EmulatorConfig`] and a loaded
//! [`RecordStore`] → serve until SIGINT/SIGTERM → summary.

use super::usage;
use crate::api::RateLimit;
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
    about = "Run a local emulator of the Defender for Cloud Apps API (for trying and testing)",
    long_about = "Run a local emulator of the Defender for Cloud Apps REST API: POST /api/v1/activities/ and \
/api/v1/alerts/ with filters (date, created: gt/gte/lt/lte/range/gte_ndays/lte_ndays; service: eq/neq), \
sortField/sortDirection, skip/limit (100 cap, skip+limit <= 5000), scan mode for activities (isScan, \
limit up to 5000, nextQueryFilters), the token check (401/403), the 30 requests/minute throttle (429), \
and injected faults. An Entra ID token endpoint stand-in (POST /<tenant>/oauth2/v2.0/token or /oauth2/token) \
issues bearer tokens to --client-id/--client-secret. GET /stats returns the counters as JSON.\n\n\
Activities whose `created` lies in the future are not served until then, like records the service has \
not stored yet.\n\nThe base URL is printed on stdout; a summary is printed on SIGINT/SIGTERM.",
    after_help = "Examples:\n  cefwire emulate --generate 200000 --token secret\n  \
cefwire emulate --listen 127.0.0.1:8443 --tls --cert-out emulator.pem --token secret --activities acts.ndjson.zst --alerts alerts.ndjson\n  \
cefwire emulate --generate 50000 --token secret --fault 5xx:0.05 --fault drop:0.02 --fault late:0.1"
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

    /// Time span of generated records, ending now.
    #[arg(long, value_name = "DURATION", default_value = "48h")]
    pub span: HumanDuration,

    /// Seed of the generator and of the fault dice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Throttle: requests per window, answered 429 beyond it.
    #[arg(long, value_name = "N/WINDOW", default_value = "30/min", conflicts_with = "no_rate_limit")]
    pub rate_limit: RateLimit,

    /// No throttle at all.
    #[arg(long)]
    pub no_rate_limit: bool,

    /// Inject faults: 5xx:P, drop:P (dropped connections), slow:P (see --slow-delay),
    /// short:P (short scan pages), late:P (generated activities stored 5-60 minutes late).
    #[arg(long, value_name = "KIND:P")]
    pub fault: Vec<String>,

    /// Delay of slow responses.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub slow_delay: HumanDuration,

    /// A scan page stops growing at this many MB.
    #[arg(long, value_name = "MB", default_value_t = 64)]
    pub max_page_mb: usize,

    /// No summary on exit.
    #[arg(short, long)]
    pub quiet: bool,
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
            "drop" => faults.drop = p,
            "slow" => faults.slow = p,
            "short" => faults.short_pages = p,
            "late" => late_ratio = p,
            _ => usage!("--fault {spec:?}: unknown kind {kind:?} (5xx, drop, slow, short, late)"),
        }
    }
    if faults.error_5xx + faults.drop > 1.0 {
        usage!("--fault 5xx and drop together must not exceed 1");
    }
    let rate_limit = (!args.no_rate_limit).then_some(args.rate_limit);
    let span_ms = super::positive("--span", args.span)?.as_millis() as i64;
    if args.generate.is_none() && args.activities.is_empty() && args.alerts.is_empty() {
        usage!("no data: give --generate N, or --activities/--alerts FILE");
    }
    if args.token.is_none() && args.client_id.is_none() {
        usage!("give --token TOKEN (and/or --client-id/--client-secret) so the token check has something to check");
    }
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
    let counts = builder.counts;
    let store = Arc::new(builder.build());

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let handle = emulate::start(config, store)?;
    if !args.quiet {
        eprintln!(
            "cefwire emulate: serving {} activities and {} alerts{} on {}{}",
            counts.activities,
            counts.alerts,
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
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = handle.shutdown();
    if !args.quiet {
        eprintln!("cefwire emulate: {}", stats.summary());
    }
    Ok(Status::Success)
}

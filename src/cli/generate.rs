//! `cefwire generate`: flags → [`GenerateConfig`] → NDJSON on stdout or in
//! a file (gzip/zstd when its name ends in `.gz`/`.zst`).

use crate::exit::Status;
use crate::generate::{GenerateConfig, GenerateKind};
use crate::time::{HumanDuration, parse_time_ms};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum GenerateKindArg {
    Activities,
    Alerts,
    /// Activities with an alert every 20 records.
    Mixed,
    /// Defender XDR streaming CloudAppEvents records, one envelope record per line.
    #[value(name = "cloudappevents")]
    CloudAppEvents,
    /// Microsoft Graph alerts_v2 alerts, one per line.
    GraphAlerts,
}

#[derive(Args, Debug)]
#[command(
    about = "Write synthetic activity/alert records as NDJSON (for tests and benchmarks)",
    after_help = "Examples:\n  cefwire generate --count 1000 > sample.ndjson\n  \
cefwire generate --kind alerts --count 1000000 --seed 7 -o alerts.ndjson.zst\n  \
cefwire generate --kind cloudappevents --count 100000 --late-ratio 0.05 -o PT1H.json\n  \
cefwire generate --kind graph-alerts --count 20000 -o alerts_v2.ndjson"
)]
pub struct GenerateArgs {
    /// What to generate.
    #[arg(long, value_enum, default_value_t = GenerateKindArg::Activities)]
    pub kind: GenerateKindArg,

    /// Number of records.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub count: u64,

    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Fraction of activities stored (streaming records: published) 5-60
    /// minutes after they happened.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub late_ratio: f64,

    /// Time of the first record (RFC 3339, epoch ms or `now`).
    #[arg(long, value_name = "TIME", default_value = "2026-01-01T00:00:00Z")]
    pub from: String,

    /// Records are spread evenly over this span.
    #[arg(long, value_name = "DURATION", default_value = "48h")]
    pub span: HumanDuration,

    /// Write here instead of stdout (`.gz` / `.zst` compress).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<Status> {
    if !(0.0..=1.0).contains(&args.late_ratio) {
        super::usage!("--late-ratio {} must be between 0 and 1", args.late_ratio);
    }
    let start_ms = parse_time_ms(&args.from).map_err(|e| super::UsageError(format!("--from: {e}")))?;
    let span_ms = args.span.0.as_millis() as i64;
    let config = GenerateConfig {
        kind: match args.kind {
            GenerateKindArg::Activities => GenerateKind::Activities,
            GenerateKindArg::Alerts => GenerateKind::Alerts,
            GenerateKindArg::Mixed => GenerateKind::Mixed,
            GenerateKindArg::CloudAppEvents => GenerateKind::CloudAppEvents,
            GenerateKindArg::GraphAlerts => GenerateKind::GraphAlerts,
        },
        count: args.count,
        seed: args.seed,
        late_ratio: args.late_ratio,
        start_ms,
        span_ms,
    };
    crate::generate::write_ndjson(config, args.output.as_deref())?;
    Ok(Status::Success)
}

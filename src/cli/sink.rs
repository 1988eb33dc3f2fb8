//! `cefwire sink`: flags → [`SinkConfig`] → receive → report and exit status.

use super::replay::ReportFormat;
use super::usage;
use crate::exit::Status;
use crate::sink::{Sink, SinkConfig};
use crate::stop::Stop;
use crate::syslog::destination::{Destination, Transport};
use crate::syslog::frame::Framing;
use crate::time::HumanDuration;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkFramingArg {
    /// Per frame: a leading digit means octet counting, else newline (as rsyslog does).
    Auto,
    Lf,
    Octet,
}

#[derive(Args, Debug)]
#[command(
    about = "A measuring syslog receiver: counts messages, bytes, rate and framing errors",
    long_about = "Listen for syslog over TCP, UDP or TLS and measure what arrives: messages, bytes, \
per-second rate, framing errors, and an order-independent content hash. Optionally store every \
message as one line. Stops on Ctrl-C, after --expect N messages, or after --timeout; the report \
goes to stdout. The bound address is printed on stderr first (useful with port 0).\n\n\
Exit codes: 0 done (expected count met), 5 --expect not met before --timeout, 2 bad usage.",
    after_help = "Examples:\n  cefwire sink --listen tcp://127.0.0.1:5140\n  \
cefwire sink --listen udp://0.0.0.0:514 --expect 1000000 --timeout 60s --report json\n  \
cefwire sink --listen tls://127.0.0.1:6514 --cert server.pem --key server.key --out received.log"
)]
pub struct SinkArgs {
    /// Where to listen: tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT (port 0: any free one).
    #[arg(long, value_name = "URL", default_value = "tcp://127.0.0.1:5140")]
    pub listen: String,

    /// PEM certificate chain for tls://.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// PEM private key for tls://.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Require client certificates signed by the CA(s) in this PEM file (tls://).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,

    /// Stream framing.
    #[arg(long, value_enum, default_value_t = SinkFramingArg::Auto)]
    pub framing: SinkFramingArg,

    /// Write every message received here, one per line.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Stop once N messages arrived.
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,

    /// Stop after this long (with --expect: fail if not reached by then).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<HumanDuration>,

    /// Longest frame accepted.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_message_bytes: usize,

    /// Stream connections served at once (default 256); more are closed
    /// at once and counted as refused. Connections share one event loop:
    /// an idle one costs a file descriptor, no thread and no buffer.
    #[arg(long, value_name = "N", default_value_t = crate::sink::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub max_connections: usize,

    /// UDP receive buffer to ask for, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub receive_buffer_mib: usize,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub report: ReportFormat,

    /// No progress line.
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(args: SinkArgs) -> anyhow::Result<Status> {
    let listen = match Destination::parse_listen(&args.listen) {
        Ok(d) => d,
        Err(e) => usage!("--listen {e}"),
    };
    if listen.transport.is_relp() {
        usage!(
            "--listen: sink receives syslog (tcp://, udp://, tls://), not RELP; use rsyslog's imrelp as a RELP receiver"
        );
    }
    if listen.transport == Transport::Tls && (args.cert.is_none() || args.key.is_none()) {
        usage!("--listen tls:// needs --cert and --key");
    }
    if listen.transport != Transport::Tls && args.client_ca.is_some() {
        usage!("--client-ca is for --listen tls:// only");
    }
    let timeout = args.timeout.map(|t| super::positive("--timeout", t)).transpose()?;
    let config = SinkConfig {
        listen,
        tls_cert: args.cert,
        tls_key: args.key,
        tls_client_ca: args.client_ca,
        framing: match args.framing {
            SinkFramingArg::Auto => None,
            SinkFramingArg::Lf => Some(Framing::NewLine),
            SinkFramingArg::Octet => Some(Framing::OctetCounting),
        },
        out: args.out,
        expect: args.expect,
        timeout,
        max_message_bytes: args.max_message_bytes.max(1),
        receive_buffer: args.receive_buffer_mib.max(1) << 20,
        max_connections: args.max_connections,
        progress: !args.no_progress,
    };
    let stop = Stop::on_signals()?;
    let sink = Sink::bind(config)?;
    eprintln!("cefwire sink: listening on {}", sink.local_url());
    let report = sink.run(&stop)?;
    match args.report {
        ReportFormat::Text => println!("cefwire sink: {}", report.text()),
        ReportFormat::Json => println!("{}", report.json()),
    }
    Ok(if report.complete() { Status::Success } else { Status::Incomplete })
}

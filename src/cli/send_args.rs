//! Flags shared by every command that sends to syslog (`convert --to`,
//! `replay`), their conversion into a [`SendConfig`], and the signal flag.

use super::usage;
use crate::send::{Backoff, DeliveryMode, Destination, SendConfig, TlsClientOptions, Transport};
use crate::stop::Stop;
use crate::syslog::frame::Framing;
use crate::time::parse_duration_ms;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingArg {
    /// Octet counting with any tls:// destination, newline otherwise.
    Auto,
    /// Each message followed by a newline.
    Lf,
    /// RFC 6587 octet counting: `LEN SP MSG` (required for TLS).
    Octet,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Send to this syslog receiver: tcp://HOST:PORT, udp://HOST:PORT or
    /// tls://HOST:PORT. Repeat for fan-out (each gets every message).
    #[arg(long = "to", value_name = "URL")]
    pub to: Vec<String>,

    /// With several --to: send to the first that is up, in order, instead
    /// of to all of them.
    #[arg(long)]
    pub failover: bool,

    /// Connections per destination (messages are spread over them).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub connections: usize,

    /// Stream framing.
    #[arg(long, value_enum, default_value_t = FramingArg::Auto)]
    pub framing: FramingArg,

    /// Cut longer messages (at a UTF-8 boundary, outside escapes) and count
    /// them. Default 65507 when sending over UDP (1472 avoids IP
    /// fragmentation), no limit otherwise.
    #[arg(long, value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,

    /// PEM file with the CA certificate(s) for tls:// (default: the system's).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// PEM client certificate chain for tls:// (with --client-key).
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Send UDP datagrams one system call each instead of with sendmmsg.
    #[arg(long)]
    pub no_sendmmsg: bool,

    /// Stop with an error when a destination stays down this long
    /// (`never` keeps retrying).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub give_up_after: String,

    /// At the end (or on Ctrl-C), wait at most this long for the rest to be written.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub drain_timeout: String,

    /// Batch size in KiB handed to the writer thread.
    #[arg(long, value_name = "KIB", default_value_t = 256, hide_short_help = true)]
    pub batch_kib: usize,

    /// Batches in the pool (memory is about batches x batch size).
    #[arg(long, value_name = "N", default_value_t = 32, hide_short_help = true)]
    pub batches: usize,
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    match parse_duration_ms(text) {
        Ok(ms) if ms >= 0 => Ok(Duration::from_millis(ms as u64)),
        Ok(_) => usage!("{flag} {text:?} must not be negative"),
        Err(e) => usage!("{flag}: {e}"),
    }
}

impl SendArgs {
    pub fn is_sending(&self) -> bool {
        !self.to.is_empty()
    }

    /// The validated sender settings. Messages that do not start with
    /// `<PRI>` (`--no-pri`, `--raw-lines`) go over streams octet-counted:
    /// newline framing would have a receiver take a leading digit (a bare
    /// timestamp) for an octet count and split the stream.
    pub fn to_config(&self, stop: Stop, messages_start_with_pri: bool) -> anyhow::Result<SendConfig> {
        let mut destinations = Vec::new();
        for url in &self.to {
            match Destination::parse(url) {
                Ok(d) => destinations.push(d),
                Err(e) => usage!("--to {e}"),
            }
        }
        if destinations.is_empty() {
            usage!("--to URL is required (tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT)");
        }
        if self.failover && destinations.len() < 2 {
            usage!("--failover needs at least two --to destinations");
        }
        if self.connections == 0 || self.connections > 1024 {
            usage!("--connections {} must be between 1 and 1024", self.connections);
        }
        let has_tls = destinations.iter().any(|d| d.transport == Transport::Tls);
        let has_udp = destinations.iter().any(|d| d.transport == Transport::Udp);
        let has_stream = destinations.iter().any(|d| d.transport != Transport::Udp);
        let framing = match self.framing {
            FramingArg::Auto if !messages_start_with_pri && has_stream => Some(Framing::OctetCounting),
            FramingArg::Auto => None,
            FramingArg::Lf if !messages_start_with_pri && has_stream => usage!(
                "--framing lf with messages that do not start with <PRI> (--no-pri, --raw-lines): a receiver \
                 takes their leading digit for an octet count and splits them; leave --framing out (octet counting)"
            ),
            FramingArg::Lf if has_tls => {
                usage!("--framing lf cannot be used with tls:// (RFC 5425 needs octet counting)")
            }
            FramingArg::Lf => Some(Framing::NewLine),
            FramingArg::Octet => Some(Framing::OctetCounting),
        };
        if !has_tls && (self.ca.is_some() || self.client_cert.is_some()) {
            usage!("--ca/--client-cert are for tls:// destinations only");
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            usage!("--client-cert and --client-key go together");
        }
        let max_message_bytes = match self.max_message_bytes {
            Some(0) => usage!("--max-message-bytes must be at least 1"),
            Some(n) => Some(n),
            None => has_udp.then_some(65_507),
        };
        let give_up_after =
            if self.give_up_after == "never" { None } else { Some(duration("--give-up-after", &self.give_up_after)?) };
        let mut config = SendConfig::new(destinations);
        config.mode = if self.failover { DeliveryMode::Failover } else { DeliveryMode::FanOut };
        config.connections = self.connections;
        config.framing = framing;
        config.max_message_bytes = max_message_bytes;
        config.tls = TlsClientOptions {
            ca: self.ca.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        config.batch_bytes = self.batch_kib.clamp(1, 64 * 1024) * 1024;
        config.batches = self.batches.clamp(2, 4096);
        config.use_sendmmsg = !self.no_sendmmsg;
        config.backoff = Backoff::default();
        config.give_up_after = give_up_after;
        config.drain_timeout = duration("--drain-timeout", &self.drain_timeout)?;
        config.stop = Some(stop);
        config.print_errors = true;
        Ok(config)
    }
}

/// `cefwire convert … --to URL`: convert into a sender instead of a file.
pub fn run_convert_to_syslog(
    send: &SendArgs,
    config: &crate::convert::ConvertConfig,
    quiet: bool,
) -> anyhow::Result<crate::exit::Status> {
    use crate::exit::Status;
    if config.output != crate::output::OutputPath::Stdout {
        usage!("-o/--output and --to exclude each other");
    }
    let stop = Stop::on_signals()?;
    let send_config = send.to_config(stop.clone(), config.cef.header.pri.is_some())?;
    let (report, sent) = crate::replay::convert_to_syslog(config, &send_config, &stop)?;
    if !quiet {
        eprintln!("cefwire: {}; {}", report.summary(), sent.summary());
    }
    Ok(if sent.failure.is_some() || sent.messages_unsent > 0 {
        Status::Failure
    } else {
        super::convert::status_of(&report)
    })
}

//! Flags shared by every command that sends to syslog (`convert --to`,
//! `replay`, `backfill --to`), filled into [`SendSettings`] and validated
//! there into a [`SendConfig`].

use super::{UsageError, choice};
use crate::send::SendConfig;
use crate::settings::{FramingSetting, SendDefaults, SendSettings, Source};
use crate::stop::Stop;
use crate::time::{DurationOrNever, HumanDuration};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Send to this syslog receiver: tcp://HOST:PORT, udp://HOST:PORT,
    /// tls://HOST:PORT, relp://HOST:PORT or relp+tls://HOST:PORT. Repeat for
    /// fan-out (each gets every message).
    #[arg(
        long = "to",
        value_name = "URL",
        long_help = "Send to this receiver. tcp:// and tls:// (RFC 5425) are syslog over a stream; after a \
                     break, what the receiver's TCP did not acknowledge is sent again. relp:// and \
                     relp+tls:// (rsyslog's imrelp) acknowledge every message: after a break exactly the \
                     unacknowledged ones are sent again. udp:// is fire and forget. Repeat for fan-out \
                     (each gets every message)."
    )]
    pub to: Vec<String>,

    /// With several --to: send to the first that is up, in order, instead
    /// of to all of them.
    #[arg(long)]
    pub failover: bool,

    /// Connections per destination (messages are spread over them).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub connections: usize,

    /// Stream framing.
    #[arg(long, value_name = "FRAMING", value_parser = choice::<FramingSetting>(FramingSetting::CHOICES), default_value = "auto")]
    pub framing: FramingSetting,

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
    pub give_up_after: DurationOrNever,

    /// At the end (or on Ctrl-C), wait at most this long for the rest to be written.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub drain_timeout: HumanDuration,

    /// Batch size in KiB handed to the writer thread.
    #[arg(long, value_name = "KIB", default_value_t = 256, hide_short_help = true)]
    pub batch_kib: usize,

    /// Batches in the pool (memory is about batches x batch size).
    #[arg(long, value_name = "N", default_value_t = 32, hide_short_help = true)]
    pub batches: usize,

    /// relp://: messages sent and not yet acknowledged, at most, per
    /// connection (the most a receiver that dies unanswering can get twice).
    #[arg(long, value_name = "N", default_value_t = crate::send::relp::DEFAULT_WINDOW)]
    pub relp_window: usize,
}

/// What the command line uses for settings only the agent's file leaves
/// out (every flag here has its own default).
const DEFAULTS: SendDefaults =
    SendDefaults { give_up_after: Some(Duration::from_secs(30)), drain_timeout: Duration::from_secs(10), batches: 32 };

impl SendArgs {
    pub fn is_sending(&self) -> bool {
        !self.to.is_empty()
    }

    /// The flags as raw settings.
    pub fn settings(&self) -> SendSettings {
        SendSettings {
            to: self.to.clone(),
            failover: self.failover,
            connections: Some(self.connections),
            framing: Some(self.framing),
            max_message_bytes: self.max_message_bytes,
            ca_file: self.ca.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            use_sendmmsg: Some(!self.no_sendmmsg),
            give_up_after: Some(self.give_up_after.0),
            drain_timeout: Some(self.drain_timeout.0),
            batch_kib: Some(self.batch_kib),
            batches: Some(self.batches),
            relp_window: Some(self.relp_window),
        }
    }

    /// The validated sender settings; `stop` ends a wait for the network.
    /// `messages_start_with_pri`: false for `--no-pri` and `--raw-lines`
    /// (see [`SendSettings::validate`]).
    pub fn to_config(&self, stop: Stop, messages_start_with_pri: bool) -> anyhow::Result<SendConfig> {
        let mut config =
            self.settings().validate(Source::Flags, &DEFAULTS, messages_start_with_pri).map_err(UsageError::from)?;
        config.stop = Some(stop);
        config.print_errors = true;
        Ok(config)
    }
}

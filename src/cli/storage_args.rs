//! `backfill --source storage`: where the streaming archive is and how to
//! read it (the flags fill [`StorageSettings`], validated there, the same
//! the agent's `[storage]` section fills), and the run itself. An Entra
//! application is given with the API's flags (`--tenant-id`,
//! `--client-id`, `--client-secret-file`, `--token-url`, `--api-ca`);
//! the SAS token and the account key only by file or environment.

use super::api::ApiArgs;
use super::backfill::{BackfillArgs, TypeArg};
use super::usage;
use crate::api::TimeWindow;
use crate::exit::Status;
use crate::output::{LineWriter, OutputPath};
use crate::send::SyslogSender;
use crate::settings::{Source, StorageSettings};
use crate::stop::Stop;
use crate::storage::backfill::{self, StorageBackfillConfig, StorageBackfillOutcome};
use clap::Args;
use std::path::PathBuf;

/// The streaming archive in an Azure Storage account.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Storage source (--source storage)")]
pub struct StorageArgs {
    /// Blob endpoint of the storage account: https://ACCOUNT.blob.core.windows.net
    /// (or Azurite's http://127.0.0.1:10000/devstoreaccount1).
    #[arg(long, value_name = "URL")]
    pub storage_url: Option<String>,

    /// Storage account name (default: from --storage-url).
    #[arg(long, value_name = "NAME")]
    pub storage_account: Option<String>,

    /// Container the CloudAppEvents table is streamed into (default
    /// insights-logs-advancedhunting-cloudappevents).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,

    /// Only blobs whose names start with this, e.g. tenantId=<guid>/ (default: every tenant).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// How to authenticate: sas, key or entra (default: the one whose secret is given).
    #[arg(long, value_name = "AUTH")]
    pub storage_auth: Option<String>,

    /// A file holding a SAS token with read and list permissions (first
    /// line); or the environment variable CEFWIRE_STORAGE_SAS.
    #[arg(long, value_name = "FILE")]
    pub sas_file: Option<PathBuf>,

    /// A file holding the account key (first line); or the environment
    /// variable CEFWIRE_STORAGE_KEY.
    #[arg(long, value_name = "FILE")]
    pub account_key_file: Option<PathBuf>,

    /// The longest archive line read (bytes); a longer one is skipped and rejected.
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<u64>,
}

impl StorageArgs {
    /// The first of these flags given, for refusing them with another source.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.storage_url.is_some(), "--storage-url"),
            (self.storage_account.is_some(), "--storage-account"),
            (self.container.is_some(), "--container"),
            (self.prefix.is_some(), "--prefix"),
            (self.storage_auth.is_some(), "--storage-auth"),
            (self.sas_file.is_some(), "--sas-file"),
            (self.account_key_file.is_some(), "--account-key-file"),
            (self.max_line_bytes.is_some(), "--max-line-bytes"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The flags (and the API flags for an Entra application) as raw settings.
    pub fn settings(&self, api: &ApiArgs) -> StorageSettings {
        StorageSettings {
            account_url: self.storage_url.clone(),
            account: self.storage_account.clone(),
            container: self.container.clone(),
            prefix: self.prefix.clone(),
            auth: self.storage_auth.clone(),
            sas_file: self.sas_file.clone(),
            account_key_file: self.account_key_file.clone(),
            tenant_id: api.tenant_id.clone(),
            client_id: api.client_id.clone(),
            client_secret_file: api.client_secret_file.clone(),
            client_secret: api.client_secret.clone(),
            token_url: Some(api.token_url.clone()),
            ca_file: api.api_ca.clone(),
            allow_http: api.allow_http,
            look_back: None,
            max_line_bytes: self.max_line_bytes,
            retries: Some(api.retries),
            retry_delay: Some(api.retry_delay.0),
        }
    }
}

/// `backfill --source storage`, with the window already checked.
pub fn run(args: BackfillArgs, window: TimeWindow, stop: Stop) -> anyhow::Result<Status> {
    if args.dry_run {
        usage!("--dry-run is not available with --source storage");
    }
    if args.types.contains(&TypeArg::Alerts) {
        usage!("--source storage reads activities (CloudAppEvents) only: drop --types or use --types activities");
    }
    if args.archive.is_some() {
        usage!("--archive is not available with --source storage (the records are in the archive already)");
    }
    let archive = args.storage.settings(&args.api).validate(Source::Flags).map_err(super::UsageError::from)?;
    let quiet = args.report.quiet;
    let sending = args.send.is_sending();
    let config = StorageBackfillConfig {
        archive,
        window,
        cef: args.cef.to_options(sending)?,
        rejects_file: args.report.rejects.clone(),
        show_rejects: args.report.show_rejects,
        progress: !args.report.no_progress && !quiet,
        stop: Some(stop.clone()),
    };
    let (outcome, sent): (StorageBackfillOutcome, _) = match (sending, &args.output) {
        (true, Some(_)) => usage!("-o/--output and --to exclude each other"),
        (true, None) => {
            let with_pri = args.cef.to_options(true)?.header.pri.is_some();
            let mut sender = SyslogSender::start(&args.send.to_config(stop, with_pri)?)?;
            let outcome = backfill::run_to_end(&config, &mut sender);
            (outcome, Some(sender.finish()?))
        }
        (false, Some(path)) => {
            let path = if path.as_os_str() == "-" { OutputPath::Stdout } else { OutputPath::File(path.clone()) };
            let mut writer = LineWriter::create(&path)?;
            let outcome = backfill::run_to_end(&config, &mut writer);
            writer.finish()?;
            (outcome, None)
        }
        (false, None) => usage!("say where the lines go: --to URL (syslog) or -o FILE"),
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
        return Err(err.into());
    }
    if sent.is_some_and(|sent| sent.failure.is_some() || sent.messages_unsent > 0) {
        return Ok(Status::Failure);
    }
    Ok(if report.counts.rejected > 0 { Status::Rejected } else { Status::Success })
}

//! The command line's reference, generated from its clap definitions so it
//! cannot drift from them: shell completion scripts (`cefwire completions
//! SHELL`) and man pages (`cefwire manpages DIR`, used by the package
//! build). It owns nothing but the generation.

use super::Cli;
use crate::exit::Status;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    cefwire completions bash > /usr/share/bash-completion/completions/cefwire\n  \
    cefwire completions zsh > ~/.zfunc/_cefwire\n  \
    cefwire completions fish > ~/.config/fish/completions/cefwire.fish")]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManpagesArgs {
    /// Directory to write cefwire.1 and one cefwire-COMMAND.1 per command into
    /// (created if missing).
    #[arg(value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<Status> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "cefwire", &mut std::io::stdout());
    Ok(Status::Success)
}

/// Writes the man pages into `args.out_dir`.
pub fn manpages(args: ManpagesArgs) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&args.out_dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", args.out_dir.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.out_dir)
        .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", args.out_dir.display()))?;
    Ok(Status::Success)
}

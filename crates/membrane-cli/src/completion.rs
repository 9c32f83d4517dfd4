//! `membrane completion`: shell completion scripts.

use crate::cli::Cli;
use crate::error::CliError;
use clap::{CommandFactory, ValueEnum};
use clap_complete::Shell as Generator;

/// Print a completion script for a shell.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane completion bash > /etc/bash_completion.d/membrane\n  membrane completion zsh > \"${fpath[1]}/_membrane\"\n  membrane completion fish > ~/.config/fish/completions/membrane.fish"
)]
pub struct Args {
    /// The shell.
    shell: Shell,
}

/// Shells we generate completions for.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the script to stdout.
pub fn run(args: Args) -> Result<(), CliError> {
    let generator = match args.shell {
        Shell::Bash => Generator::Bash,
        Shell::Zsh => Generator::Zsh,
        Shell::Fish => Generator::Fish,
    };
    let mut command = Cli::command();
    clap_complete::generate(generator, &mut command, "membrane", &mut std::io::stdout());
    Ok(())
}

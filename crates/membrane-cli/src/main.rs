//! The `membrane` command: applies and deletes manifests, lists what the agent knows and
//! shows its status, over the agent's local API.
#![forbid(unsafe_code)]

mod apply;
mod bpf;
mod cli;
mod completion;
mod connectivity;
mod delete;
mod error;
mod get;
mod manifests;
mod observe;
mod output;
mod pin_dir;
mod policy;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            for line in err.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

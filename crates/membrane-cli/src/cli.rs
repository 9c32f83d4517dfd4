//! The command line: global options and one subcommand per module.

use crate::error::CliError;
use crate::{apply, bpf, completion, connectivity, delete, get, observe, policy, status};
use clap::{Parser, Subcommand};
use membrane_api::Client;
use std::path::PathBuf;

/// Membrane: eBPF networking, security and observability for Kubernetes.
///
/// Talks to the node's membrane-agent over its unix socket.
#[derive(Debug, Parser)]
#[command(
    name = "membrane",
    version,
    after_help = "Examples:\n  membrane apply -f examples/shop/\n  membrane get services -n shop\n  membrane status\n  membrane --socket /run/membrane/node-2.sock get endpoints"
)]
pub struct Cli {
    /// Path of the agent's unix socket.
    #[arg(long, global = true, env = "MEMBRANE_SOCKET", default_value = membrane_api::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update objects from manifests (files, directories or stdin).
    Apply(apply::Args),
    /// Delete the objects named in manifests (files, directories or stdin).
    Delete(delete::Args),
    /// List nodes, pods, endpoints, services, identities, policies or namespaces.
    Get(get::Args),
    /// Show the agent's health and what it manages.
    Status(status::Args),
    /// Print a shell completion script.
    Completion(completion::Args),
    /// Show flows seen by a node's datapath (like hubble observe).
    Observe(Box<observe::Args>),
    /// Dump the node's eBPF maps (services, backends, conntrack, nat, ipcache, policy, endpoints).
    Bpf(bpf::Args),
    /// Check connectivity between the cluster's probe pods (connectivity test).
    Connectivity(connectivity::Args),
    /// Explain network policy: `policy trace` shows the verdict for a packet and the
    /// rules that decided it.
    Policy(policy::Args),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> Result<(), CliError> {
        let client = Client::new(&self.socket);
        match self.command {
            Command::Apply(args) => apply::run(&client, args).await,
            Command::Delete(args) => delete::run(&client, args).await,
            Command::Get(args) => get::run(&client, args).await,
            Command::Status(args) => status::run(&client, args).await,
            Command::Completion(args) => completion::run(args),
            Command::Bpf(args) => bpf::run(&client, args).await,
            Command::Connectivity(args) => connectivity::run(&client, args).await,
            Command::Policy(args) => policy::run(&client, args).await,
            Command::Observe(args) => {
                // Filters are order-sensitive (--not applies to the next one), which
                // only the raw matches record.
                let matches = <Cli as clap::CommandFactory>::command().get_matches();
                let observe = matches
                    .subcommand_matches("observe")
                    .expect("the command line just parsed as the observe subcommand");
                Ok(observe::run(*args, observe, client.socket()).await?)
            }
        }
    }
}

//! `membrane status`: each component's health and what the node runs, like
//! `cilium status`: gathered from the agent's API, its Observer and the pinned maps.

mod gather;
mod render;

use crate::error::CliError;
use crate::output::{self, Format};
use membrane_api::Client;
use std::io::Write;
use std::path::PathBuf;

/// Show the health of each component of the node and what it runs.
///
/// Components: the agent, the cluster state backend (kvstore), the eBPF datapath
/// (programs and maps pinned under the node's pin directory, routing mode,
/// masquerading), the kube-proxy replacement (Service frontends by kind, socket-level
/// and per-packet load balancing, Maglev), the Observer (flow store), and counts of
/// endpoints, nodes, identities and policies, IPAM pools and map pressure. The datapath
/// lines read the pinned maps, which needs root. Exits non-zero when a component is not
/// healthy, and says which.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane status\n  membrane status -o json\n  membrane --socket /run/membrane/node-2.sock status --bpffs-dir /sys/fs/bpf/membrane/node-2"
)]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,

    /// The node's pin directory (default: /sys/fs/bpf/membrane/<node>).
    #[arg(long, env = "MEMBRANE_BPFFS_DIR", value_name = "DIR")]
    bpffs_dir: Option<PathBuf>,

    /// The Observer's socket (default: observer.sock beside --socket).
    #[arg(long, value_name = "PATH")]
    observer: Option<PathBuf>,
}

/// Gathers the status and prints it.
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    let observer = args
        .observer
        .unwrap_or_else(|| client.socket().with_file_name("observer.sock"));
    let report = gather::gather(client, args.bpffs_dir.as_deref(), &observer).await?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Table => render::summary(&mut out, &report)?,
        Format::Json => output::json(&mut out, &report)?,
        Format::Yaml => output::yaml(&mut out, &report)?,
    }
    out.flush()?;
    let failing = report.failing();
    if failing.is_empty() {
        Ok(())
    } else {
        Err(CliError::Unhealthy {
            node: report.agent.node.clone(),
            components: failing.join(", "),
        })
    }
}

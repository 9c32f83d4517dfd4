//! `membrane bpf`: dumps of the node's pinned datapath maps, read straight from bpffs
//! (as root), so they work while the agent is stopped.

mod rows;

use crate::error::CliError;
use crate::output::{self, Format};
use crate::pin_dir;
use clap::ValueEnum;
use membrane_api::Client;
use membrane_datapath::PinnedMaps;
use std::io::Write;
use std::path::PathBuf;

/// Dump one of the node's eBPF maps, read from its bpffs pins.
///
/// Reads the maps the agent pinned (needs root), not the agent's API: the dumps work
/// while the agent is stopped, and show what the kernel really holds. The pin directory
/// is --bpffs-dir if given, else the one of the node whose agent answers on --socket,
/// else the only node pinned under /sys/fs/bpf/membrane.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane bpf services\n  membrane bpf conntrack -o json\n  membrane bpf policy --bpffs-dir /sys/fs/bpf/membrane/node-1\n  membrane bpf ipcache"
)]
pub struct Args {
    /// Which map.
    map: MapKind,

    /// The node's pin directory (the agent's --bpffs-dir).
    #[arg(long, env = "MEMBRANE_BPFFS_DIR", value_name = "DIR")]
    bpffs_dir: Option<PathBuf>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// The maps `bpf` dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MapKind {
    /// Service frontends and their backend slots (MEMBRANE_SERVICES).
    #[value(alias = "lb", alias = "service")]
    Services,
    /// Backends by id (MEMBRANE_BACKENDS).
    #[value(alias = "backend")]
    Backends,
    /// Connections (MEMBRANE_CT).
    #[value(alias = "ct")]
    Conntrack,
    /// Masquerade translations (MEMBRANE_NAT).
    Nat,
    /// Addresses and prefixes with their identity and node (MEMBRANE_IPCACHE).
    Ipcache,
    /// Policy rules per endpoint (MEMBRANE_POLICY).
    Policy,
    /// Local endpoint addresses (MEMBRANE_ENDPOINTS).
    #[value(alias = "endpoint", alias = "ep")]
    Endpoints,
}

/// Reads the map and prints it.
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    let dir = pin_dir::resolve(client, args.bpffs_dir.as_deref()).await?;
    let read = |source| CliError::Pinned {
        dir: dir.clone(),
        source: Box::new(source),
    };
    let maps = PinnedMaps::open(&dir).map_err(read)?;
    let dump = match args.map {
        MapKind::Services => rows::services(&maps.services().map_err(read)?),
        MapKind::Backends => rows::backends(&maps.backends().map_err(read)?),
        MapKind::Conntrack => rows::conntrack(&maps.conntrack().map_err(read)?),
        MapKind::Nat => rows::nat(&maps.nat().map_err(read)?),
        MapKind::Ipcache => rows::ipcache(&maps.ipcache().map_err(read)?),
        MapKind::Policy => rows::policy(&maps.policy().map_err(read)?),
        MapKind::Endpoints => rows::endpoints(&maps.endpoints().map_err(read)?),
    };
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Json => output::json(&mut out, &dump.records)?,
        Format::Yaml => output::yaml(&mut out, &dump.records)?,
        Format::Table if dump.table.is_empty() => {
            eprintln!("the map is empty ({})", dir.display());
        }
        Format::Table => dump.table.write(&mut out)?,
    }
    out.flush()?;
    Ok(())
}

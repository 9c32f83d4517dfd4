//! Which node's pinned maps to read: `--bpffs-dir`, else the running agent's node, else
//! the only node pinned on this machine.

use crate::error::CliError;
use membrane_api::{AgentStatus, Client, ClientError, paths};
use std::path::{Path, PathBuf};

/// Where agents pin their maps by default: `<root>/<node name>`.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/membrane";

/// The pin directory to read: `explicit` if given; else the one of the node whose agent
/// answers on `client`; else, with no agent running, the only node directory under
/// [`DEFAULT_ROOT`] that holds a datapath.
pub async fn resolve(client: &Client, explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    match client.get::<AgentStatus>(paths::STATUS).await {
        Ok(status) => Ok(Path::new(DEFAULT_ROOT).join(status.node)),
        Err(ClientError::AgentNotRunning { path, .. }) => only_pinned_node(&path),
        Err(other) => Err(other.into()),
    }
}

fn only_pinned_node(socket: &Path) -> Result<PathBuf, CliError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(DEFAULT_ROOT)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join(membrane_common::map_names::CONFIG).exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        _ => Err(CliError::NoPinDir {
            socket: socket.to_path_buf(),
            root: PathBuf::from(DEFAULT_ROOT),
            candidates: found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        }),
    }
}

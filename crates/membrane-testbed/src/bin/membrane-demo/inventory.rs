//! What the demo creates, written as JSON for a check that everything is gone after it
//! ends (`--inventory FILE`).

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Names and paths of everything the demo created.
#[derive(Debug, Default, Serialize)]
pub struct Inventory {
    /// Network namespaces (`/run/netns/<name>`).
    pub netns: Vec<PathBuf>,
    /// cgroup directories.
    pub cgroups: Vec<PathBuf>,
    /// bpffs pin directories.
    pub pin_dirs: Vec<PathBuf>,
    /// State directories (agents, etcd); no process may mention them once it ended.
    pub state_dirs: Vec<PathBuf>,
}

impl Inventory {
    /// Writes it to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

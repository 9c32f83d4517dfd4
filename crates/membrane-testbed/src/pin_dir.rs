//! A node's own bpffs pin directory, `/sys/fs/bpf/membrane/<node>`; removed on drop.

use crate::host::{self, BPFFS_ROOT, HostError};
use std::path::{Path, PathBuf};

/// Errors of preparing a pin directory.
#[derive(Debug, thiserror::Error)]
pub enum PinDirError {
    /// bpffs could not be mounted.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The directory could not be created.
    #[error("cannot create the pin directory {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A directory on bpffs where one node's agent pins its maps and links.
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
}

impl PinDir {
    /// Mounts bpffs if needed and creates `/sys/fs/bpf/membrane/<node>`.
    pub fn create(node: &str) -> Result<PinDir, PinDirError> {
        host::ensure_bpffs()?;
        let path = Path::new(BPFFS_ROOT).join("membrane").join(node);
        std::fs::create_dir_all(&path).map_err(|source| PinDirError::Create {
            path: path.clone(),
            source,
        })?;
        Ok(PinDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of what is pinned directly in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Unpinning drops the maps and detaches pinned links along with them.
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "testbed: cannot remove pin directory {}: {e}",
                self.path.display()
            );
        }
    }
}

//! cgroup v2 directories for nodes and pods; their processes are killed and the
//! directories removed on drop.

use crate::host::{self, HostError};
use crate::names;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many random names to try before giving up on creating a cgroup.
const NAME_ATTEMPTS: usize = 8;

/// How long removal waits for killed processes to leave the cgroup.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of cgroup handling.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup v2 hierarchy is available.
    #[error("cannot find the cgroup v2 hierarchy")]
    Host(#[from] HostError),
    /// A cgroup directory or control file could not be used.
    #[error("cannot {what} {path}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A cgroup v2 directory this test bed created.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `<prefix>-<random>` directly under the cgroup v2 root.
    pub fn create(prefix: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(&host::cgroup2_root()?, prefix)
    }

    /// Creates a child cgroup `<prefix>-<random>` of this one.
    pub fn child(&self, prefix: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(&self.path, prefix)
    }

    fn create_in(parent: &Path, prefix: &str) -> Result<Cgroup, CgroupError> {
        let mut last = None;
        for _ in 0..NAME_ATTEMPTS {
            let path = parent.join(names::unique(prefix));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Cgroup { path }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some((path, e)),
                Err(source) => {
                    return Err(CgroupError::Io {
                        what: "create",
                        path,
                        source,
                    });
                }
            }
        }
        let (path, source) = last.expect("at least one attempt was made");
        Err(CgroupError::Io {
            what: "find an unused name next to",
            path,
            source,
        })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its `cgroup.procs` file: writing a pid moves that process here.
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// The processes directly in this cgroup.
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        let path = self.procs_file();
        let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
            what: "read",
            path,
            source,
        })?;
        Ok(parse_pids(&text))
    }

    /// True while this cgroup or one of its descendants holds a process.
    pub fn populated(&self) -> Result<bool, CgroupError> {
        let path = self.path.join("cgroup.events");
        let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
            what: "read",
            path,
            source,
        })?;
        Ok(parse_populated(&text))
    }

    /// Sends SIGKILL to every process in this cgroup and its descendants, and waits
    /// (bounded) until they are gone.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let path = self.path.join("cgroup.kill");
        std::fs::write(&path, "1").map_err(|source| CgroupError::Io {
            what: "write",
            path,
            source,
        })?;
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        while self.populated()? && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// Removes `dir` and every cgroup below it, deepest first.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    // A killed process can take a moment to leave; rmdir says EBUSY until then.
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    loop {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            other => return other,
        }
    }
}

fn parse_pids(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

fn parse_populated(events: &str) -> bool {
    events
        .lines()
        .filter_map(|line| line.split_once(' '))
        .any(|(key, value)| key == "populated" && value.trim() != "0")
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(e) = self.kill_all() {
            eprintln!(
                "testbed: cannot kill the processes of cgroup {}: {e}",
                self.path.display()
            );
        }
        if let Err(e) = remove_tree(&self.path) {
            eprintln!("testbed: cannot remove cgroup {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_read_one_per_line() {
        assert_eq!(parse_pids("12\n345\n\n"), vec![12, 345]);
        assert!(parse_pids("").is_empty());
    }

    #[test]
    fn populated_is_read_from_cgroup_events() {
        assert!(parse_populated("populated 1\nfrozen 0\n"));
        assert!(!parse_populated("populated 0\nfrozen 0\n"));
    }
}

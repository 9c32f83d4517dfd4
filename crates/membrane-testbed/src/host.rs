//! One-time preparation of the machine the test bed runs on: the directory of named
//! network namespaces, the bpffs mount and the cgroup v2 hierarchy.
//!
//! Several test processes may prepare the machine at the same moment, so every change
//! happens under an exclusive lock on [`LOCK_FILE`].

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MsFlags, mount};
use nix::sys::statfs::{BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, FsType, statfs};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Where named network namespaces are bind-mounted, as iproute2 does.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Where bpffs is mounted.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// The cgroup v2 hierarchy on a hybrid machine.
pub const CGROUP2_HYBRID_ROOT: &str = "/sys/fs/cgroup/unified";

/// The cgroup v2 hierarchy on a machine that uses only cgroup v2.
pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup";

/// The lock that serializes host preparation between test processes.
pub const LOCK_FILE: &str = "/run/lock/membrane-testbed.lock";

/// Errors while preparing the machine.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The preparation lock could not be taken.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be created.
    #[error("cannot create {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A mount or mount-propagation change failed.
    #[error("cannot {what} at {path}")]
    Mount {
        /// What was attempted.
        what: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No cgroup v2 hierarchy is mounted.
    #[error(
        "no cgroup v2 hierarchy at {CGROUP2_HYBRID_ROOT} or {CGROUP2_ROOT}: mount cgroup2 first"
    )]
    NoCgroup2,
}

/// Holds the host preparation lock until dropped.
struct HostLock {
    _lock: Flock<File>,
}

fn lock() -> Result<HostLock, HostError> {
    let path = Path::new(LOCK_FILE);
    let err = |source| HostError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(err)?;
    let lock =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| err(errno.into()))?;
    Ok(HostLock { _lock: lock })
}

/// True when `path` exists and is the root or a directory of a file system of `kind`.
fn is_fs(path: &str, kind: FsType) -> bool {
    statfs(path)
        .map(|s| s.filesystem_type() == kind)
        .unwrap_or(false)
}

/// Makes [`NETNS_RUN_DIR`] exist and be a shared mount point, exactly as `ip netns add`
/// does, so that namespace bind mounts made there propagate to every mount namespace.
pub fn prepare_netns_dir() -> Result<(), HostError> {
    let _lock = lock()?;
    let dir = Path::new(NETNS_RUN_DIR);
    fs::create_dir_all(dir).map_err(|source| HostError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mount_err = |what, source: nix::Error| HostError::Mount {
        what,
        path: dir.to_path_buf(),
        source: source.into(),
    };
    let make_shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself, then it can be made shared.
        Err(nix::Error::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| mount_err("bind-mount the directory onto itself", e))?;
            make_shared().map_err(|e| mount_err("make the mount shared", e))
        }
        Err(e) => Err(mount_err("make the mount shared", e)),
    }
}

/// Mounts bpffs at [`BPFFS_ROOT`] unless it is mounted already.
pub fn ensure_bpffs() -> Result<(), HostError> {
    if is_fs(BPFFS_ROOT, BPF_FS_MAGIC) {
        return Ok(());
    }
    let _lock = lock()?;
    if is_fs(BPFFS_ROOT, BPF_FS_MAGIC) {
        return Ok(());
    }
    mount(
        Some("bpf"),
        BPFFS_ROOT,
        Some("bpf"),
        MsFlags::empty(),
        Some("mode=0700"),
    )
    .map_err(|source| HostError::Mount {
        what: "mount bpffs",
        path: PathBuf::from(BPFFS_ROOT),
        source: source.into(),
    })
}

/// The root of the cgroup v2 hierarchy: [`CGROUP2_HYBRID_ROOT`] on a hybrid machine,
/// else [`CGROUP2_ROOT`] when that is cgroup v2 itself.
pub fn cgroup2_root() -> Result<PathBuf, HostError> {
    [CGROUP2_HYBRID_ROOT, CGROUP2_ROOT]
        .into_iter()
        .find(|path| is_fs(path, CGROUP2_SUPER_MAGIC))
        .map(PathBuf::from)
        .ok_or(HostError::NoCgroup2)
}

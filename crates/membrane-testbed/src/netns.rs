//! Named network namespaces, created and deleted the way `ip netns` does it.

use crate::host::{self, HostError, NETNS_RUN_DIR};
use crate::names;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How many random names to try before giving up on creating a namespace.
const NAME_ATTEMPTS: usize = 8;

/// Errors of network namespace handling.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The machine could not be prepared for named namespaces.
    #[error("cannot prepare the machine for named network namespaces")]
    Host(#[from] HostError),
    /// The namespace could not be created.
    #[error("cannot create network namespace {name}: {step}")]
    Create {
        /// The namespace name.
        name: String,
        /// The step that failed.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The namespace file could not be opened.
    #[error("cannot open network namespace {path}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A thread could not enter the namespace.
    #[error("cannot enter network namespace {name}")]
    Enter {
        /// The namespace name.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A runtime for async work inside the namespace could not be built.
    #[error("cannot start an async runtime inside network namespace {name}")]
    Runtime {
        /// The namespace name.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A sysctl inside the namespace could not be written.
    #[error("cannot set {key} = {value} in network namespace {name}")]
    Sysctl {
        /// The namespace name.
        name: String,
        /// The sysctl, as a path under `/proc/sys`.
        key: String,
        /// The value.
        value: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A network namespace bind-mounted at `/run/netns/<name>`; unmounted and removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates a new, empty network namespace named `<prefix>-<random>`.
    ///
    /// Like `ip netns add`: the namespace file is created in `/run/netns` (made a shared
    /// mount point first if needed), a dedicated thread unshares its network namespace
    /// and its `/proc/thread-self/ns/net` is bind-mounted onto the file, which keeps the
    /// namespace alive after the thread ends.
    pub fn create(prefix: &str) -> Result<Netns, NetnsError> {
        host::prepare_netns_dir()?;
        let (name, path) = reserve_name(prefix)?;
        let netns = Netns { name, path };
        let target = netns.path.clone();
        let made = std::thread::spawn(move || -> Result<(), (&'static str, nix::Error)> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ("unshare", e))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| ("bind-mount the namespace", e))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // On failure `netns` is dropped here, which removes the reserved file.
        made.map_err(|(step, e)| NetnsError::Create {
            name: netns.name.clone(),
            step,
            source: e.into(),
        })?;
        Ok(netns)
    }

    /// The namespace's name (the file name under `/run/netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's path, `/run/netns/<name>`, as given in `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the namespace, for `setns` or to move a link into it.
    pub fn open(&self) -> Result<File, NetnsError> {
        File::open(&self.path).map_err(|source| NetnsError::Open {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and returns its
    /// result. A panic inside `f` is resumed on the calling thread.
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = self.open()?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
                        name: self.name.clone(),
                        source: e.into(),
                    })?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs the future made by `f` to completion on a single-threaded tokio runtime, on a
    /// fresh thread that has entered this namespace. Sockets the future opens (netlink,
    /// TCP, UDP) belong to this namespace.
    pub fn block_on<F, Fut>(&self, f: F) -> Result<Fut::Output, NetnsError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future,
        Fut::Output: Send,
    {
        self.run(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| NetnsError::Runtime {
                    name: self.name.clone(),
                    source,
                })?;
            Ok(runtime.block_on(f()))
        })?
    }

    /// Writes a sysctl of this namespace; `key` is the path under `/proc/sys`, such as
    /// `net/ipv4/ip_forward`.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        let path = Path::new("/proc/sys").join(key);
        self.run(|| std::fs::write(&path, value))?
            .map_err(|source| NetnsError::Sysctl {
                name: self.name.clone(),
                key: key.to_string(),
                value: value.to_string(),
                source,
            })
    }
}

/// Creates an empty, unused file for a new namespace under a fresh random name.
fn reserve_name(prefix: &str) -> Result<(String, PathBuf), NetnsError> {
    let mut last = None;
    for _ in 0..NAME_ATTEMPTS {
        let name = names::unique(prefix);
        let path = Path::new(NETNS_RUN_DIR).join(&name);
        match File::options()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
        {
            Ok(_) => return Ok((name, path)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some((name, e)),
            Err(source) => {
                return Err(NetnsError::Create {
                    name,
                    step: "create the namespace file",
                    source,
                });
            }
        }
    }
    let (name, source) = last.expect("at least one attempt was made");
    Err(NetnsError::Create {
        name,
        step: "find an unused name",
        source,
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Best effort: the file may not be a mount point if creation failed half-way.
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != ErrorKind::NotFound
        {
            eprintln!("testbed: cannot remove {}: {e}", self.path.display());
        }
    }
}

//! Running netlink work inside a pod's network namespace.
//!
//! `setns(2)` moves only the calling thread, and a netlink socket talks to the namespace
//! of the thread that created it. So the work runs on a dedicated thread that enters the
//! namespace first, then builds its own single-threaded tokio runtime and rtnetlink
//! connection; the plugin's main thread never leaves the node's namespace.

use crate::error::CniError;
use crate::link;
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;
use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// An open handle on a pod's network namespace.
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
    file: File,
}

impl Netns {
    /// Opens the namespace at `path` (`CNI_NETNS`). A missing path is
    /// "container unknown" (code 3).
    pub fn open(path: &Path) -> Result<Self, CniError> {
        match File::open(path) {
            Ok(file) => Ok(Netns {
                path: path.to_path_buf(),
                file,
            }),
            Err(source) if source.kind() == ErrorKind::NotFound => Err(CniError::NetnsMissing {
                path: path.to_path_buf(),
                source,
            }),
            Err(source) => Err(CniError::Io {
                what: format!("opening {}", path.display()),
                source,
            }),
        }
    }

    /// The namespace's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's file descriptor, e.g. to create a link directly inside it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `work` with a netlink handle bound inside this namespace, on a thread of its
    /// own, and returns its result.
    pub async fn run<T, F, Fut>(&self, work: F) -> Result<T, CniError>
    where
        T: Send + 'static,
        F: FnOnce(Handle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CniError>>,
    {
        let file = self.file.try_clone().map_err(|source| CniError::Io {
            what: format!("duplicating the descriptor of {}", self.path.display()),
            source,
        })?;
        let path = self.path.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("membrane-netns".into())
            .spawn(move || {
                // The receiver only goes away if the plugin is already exiting.
                let _ = answer.send(enter_and_run(&file, &path, work));
            })
            .map_err(|source| CniError::Io {
                what: "starting the network namespace worker thread".into(),
                source,
            })?;
        answered.await.map_err(|_| CniError::NetnsWorker {
            reason: "it ended without an answer (it panicked)".into(),
        })?
    }
}

fn enter_and_run<T, F, Fut>(file: &File, path: &Path, work: F) -> Result<T, CniError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, CniError>>,
{
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|source| match source {
        Errno::EINVAL => CniError::InvalidEnv {
            name: "CNI_NETNS",
            value: path.display().to_string(),
            reason: "is not a network namespace".into(),
        },
        source => CniError::EnterNetns {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CniError::Io {
            what: "building the namespace worker's runtime".into(),
            source,
        })?;
    runtime.block_on(async move { work(link::connect()?).await })
}

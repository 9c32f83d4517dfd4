//! Attaching the socket-level load balancer (cgroup sock_addr programs) to a cgroup v2
//! subtree, through pinned links that outlive the agent.

use crate::error::DatapathError;
use aya::Ebpf;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use std::path::{Path, PathBuf};

/// The socket hooks: program names in the object.
pub const PROGRAMS: [&str; 8] = [
    "sock_connect4",
    "sock_connect6",
    "sock_sendmsg4",
    "sock_sendmsg6",
    "sock_recvmsg4",
    "sock_recvmsg6",
    "sock_getpeername4",
    "sock_getpeername6",
];

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut CgroupSockAddr, DatapathError> {
    ebpf.program_mut(name)
        .and_then(|p| <&mut CgroupSockAddr>::try_from(p).ok())
        .ok_or(DatapathError::Missing {
            kind: "program",
            name,
        })
}

/// Loads every socket hook into the kernel.
pub fn load(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    for name in PROGRAMS {
        program(ebpf, name)?
            .load()
            .map_err(|source| DatapathError::Program {
                program: name,
                source,
            })?;
    }
    Ok(())
}

fn link_path(pin_dir: &Path, name: &str) -> PathBuf {
    pin_dir.join("links").join(format!("cgroup-{name}"))
}

/// Attaches every socket hook to `cgroup` and pins the links. A link pinned by a previous
/// agent is replaced after the new one is in place (cgroup links always allow several
/// programs; for a moment both run, and the second finds nothing left to translate).
pub fn attach(ebpf: &mut Ebpf, pin_dir: &Path, cgroup: &Path) -> Result<(), DatapathError> {
    let dir = std::fs::File::open(cgroup).map_err(|e| DatapathError::Link {
        action: "attached to (cannot open the cgroup)",
        path: cgroup.to_path_buf(),
        source: Box::new(e),
    })?;
    for name in PROGRAMS {
        let path = link_path(pin_dir, name);
        let link_err =
            |action, source: Box<dyn std::error::Error + Send + Sync>| DatapathError::Link {
                action,
                path: path.clone(),
                source,
            };
        let prog = program(ebpf, name)?;
        let id = prog
            .attach(&dir, CgroupAttachMode::Single)
            .map_err(|source| DatapathError::Attach {
                program: name,
                interface: cgroup.display().to_string(),
                source,
            })?;
        let link = prog.take_link(id).map_err(|source| DatapathError::Attach {
            program: name,
            interface: cgroup.display().to_string(),
            source,
        })?;
        let fd_link = FdLink::try_from(link)
            .map_err(|e| link_err("converted to a file-descriptor link", Box::new(e)))?;
        if let Ok(old) = PinnedLink::from_pin(&path) {
            drop(old.unpin().map_err(|e| link_err("unpinned", Box::new(e)))?);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| link_err("given a directory", Box::new(e)))?;
        }
        fd_link
            .pin(&path)
            .map_err(|e| link_err("pinned", Box::new(e)))?;
    }
    Ok(())
}

//! Attaching tc programs through pinned tcx links, so they outlive the agent and can
//! be replaced atomically by a restarted one.

use crate::error::DatapathError;
use aya::Ebpf;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachOptions};
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType};
use membrane_common::program_names;
use std::path::{Path, PathBuf};

/// Where a program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// tc ingress of a pod's host-side veth.
    Endpoint,
    /// tc ingress of the node's uplink.
    Uplink,
    /// tc ingress of the tunnel device.
    Overlay,
    /// tc egress of the tunnel device.
    HostToOverlay,
}

impl Hook {
    /// The program attached at this hook.
    pub fn program(self) -> &'static str {
        match self {
            Hook::Endpoint => program_names::FROM_CONTAINER,
            Hook::Uplink => program_names::FROM_NETDEV,
            Hook::Overlay => program_names::FROM_OVERLAY,
            Hook::HostToOverlay => program_names::HOST_TO_OVERLAY,
        }
    }

    /// Which side of the interface the program sees.
    fn attach_type(self) -> TcAttachType {
        match self {
            Hook::HostToOverlay => TcAttachType::Egress,
            Hook::Endpoint | Hook::Uplink | Hook::Overlay => TcAttachType::Ingress,
        }
    }

    fn pin_name(self, interface: &str) -> String {
        match self {
            Hook::Endpoint => format!("endpoint-{interface}"),
            Hook::Uplink => format!("uplink-{interface}"),
            Hook::Overlay => format!("overlay-{interface}"),
            Hook::HostToOverlay => format!("overlay-egress-{interface}"),
        }
    }
}

/// The loaded classifier called `name`.
pub fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    ebpf.program_mut(name)
        .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
        .ok_or(DatapathError::Missing {
            kind: "program",
            name,
        })
}

fn link_path(pin_dir: &Path, hook: Hook, interface: &str) -> PathBuf {
    pin_dir.join("links").join(hook.pin_name(interface))
}

/// Attaches `program` at `hook` of `interface`, or atomically swaps it into the link a
/// previous agent pinned there; pins the resulting link.
pub fn attach_pinned(
    program: &mut SchedClassifier,
    pin_dir: &Path,
    hook: Hook,
    interface: &str,
) -> Result<(), DatapathError> {
    let path = link_path(pin_dir, hook, interface);
    let attach_err = |source| DatapathError::Attach {
        program: hook.program(),
        interface: interface.to_string(),
        source,
    };
    let link_err = |action, source: Box<dyn std::error::Error + Send + Sync>| DatapathError::Link {
        action,
        path: path.clone(),
        source,
    };

    let adopted = match PinnedLink::from_pin(&path) {
        Ok(pinned) => {
            // Swap the program inside the existing link: no instant without a program.
            let fd_link = FdLink::from(pinned);
            match SchedClassifierLink::try_from(fd_link) {
                Ok(link) => program.attach_to_link(link).ok(),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    let link_id = match adopted {
        Some(id) => id,
        None => {
            // No usable pinned link (first start, or the interface was recreated).
            unpin(&path)?;
            program
                .attach_with_options(
                    interface,
                    hook.attach_type(),
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
                .map_err(attach_err)?
        }
    };
    let link = program.take_link(link_id).map_err(attach_err)?;
    let fd_link = FdLink::try_from(link)
        .map_err(|e| link_err("converted to a file-descriptor link", Box::new(e)))?;
    pin(fd_link, &path)
}

/// Pins `link` at `path`, unless it is the adopted link already pinned there (dropping
/// our handle then keeps the pin).
pub(crate) fn pin(link: FdLink, path: &Path) -> Result<(), DatapathError> {
    let link_err = |action, source: Box<dyn std::error::Error + Send + Sync>| DatapathError::Link {
        action,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| link_err("given a directory", Box::new(e)))?;
    }
    if path.exists() {
        return Ok(());
    }
    link.pin(path)
        .map_err(|e| link_err("pinned", Box::new(e)))?;
    Ok(())
}

/// Drops the link pinned at `path`, detaching its program unless something else holds
/// the link. Succeeds when nothing is pinned.
pub(crate) fn unpin(path: &Path) -> Result<(), DatapathError> {
    if !path.exists() {
        return Ok(());
    }
    std::fs::remove_file(path).map_err(|source| DatapathError::Link {
        action: "removed",
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Detaches the program at `hook` of `interface` by dropping its pinned link.
/// Succeeds when nothing is pinned.
pub fn remove(pin_dir: &Path, hook: Hook, interface: &str) -> Result<(), DatapathError> {
    let path = link_path(pin_dir, hook, interface);
    if !path.exists() {
        return Ok(());
    }
    match PinnedLink::from_pin(&path) {
        Ok(pinned) => {
            let link = pinned.unpin().map_err(|e| DatapathError::Link {
                action: "unpinned",
                path: path.clone(),
                source: Box::new(e),
            })?;
            drop(link);
        }
        Err(_) => {
            std::fs::remove_file(&path).map_err(|e| DatapathError::Link {
                action: "removed",
                path,
                source: Box::new(e),
            })?;
        }
    }
    Ok(())
}

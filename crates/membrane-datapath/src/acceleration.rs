//! XDP acceleration of Services reached from outside (`--bpf-lb-acceleration`): the
//! uplink's XDP program, attached through a pinned bpf link like the tc programs, so it
//! outlives the agent and a restarted agent swaps its program in without a gap.

use crate::attach;
use crate::error::DatapathError;
use aya::Ebpf;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpMode};
use membrane_common::program_names;
use std::path::{Path, PathBuf};

/// How Services reached from outside are accelerated with XDP on the uplink (Cilium's
/// `loadBalancer.acceleration`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acceleration {
    /// No XDP program: the tc programs do everything.
    #[default]
    Disabled,
    /// XDP run by the driver; refused when the driver cannot run XDP.
    Native,
    /// XDP run by the driver where it can, otherwise none (and said so).
    BestEffort,
    /// Generic XDP, run by the stack for any device: slower than native, for testing
    /// and for devices whose driver has no XDP (Cilium's `testing-only`).
    Generic,
}

/// The mode an XDP program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// Run by the driver.
    Native,
    /// Run by the stack.
    Generic,
}

impl Attached {
    fn mode(self) -> XdpMode {
        match self {
            Attached::Native => XdpMode::Driver,
            Attached::Generic => XdpMode::Skb,
        }
    }

    fn pin_name(self, interface: &str) -> String {
        match self {
            Attached::Native => format!("xdp-native-{interface}"),
            Attached::Generic => format!("xdp-generic-{interface}"),
        }
    }
}

/// Loads the uplink's XDP program into `ebpf`.
pub fn load(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    program(ebpf)?
        .load()
        .map_err(|source| DatapathError::Program {
            program: program_names::XDP_FROM_NETDEV,
            source,
        })
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, DatapathError> {
    ebpf.program_mut(program_names::XDP_FROM_NETDEV)
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
        .ok_or(DatapathError::Missing {
            kind: "program",
            name: program_names::XDP_FROM_NETDEV,
        })
}

fn link_path(pin_dir: &Path, attached: Attached, interface: &str) -> PathBuf {
    pin_dir.join("links").join(attached.pin_name(interface))
}

/// Makes `interface` carry the XDP program as `acceleration` asks, adopting a link a
/// previous agent pinned in the same mode and removing one of another mode. Returns
/// the mode attached, `None` when disabled or (best effort) not supported.
pub fn apply(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
    interface: &str,
    acceleration: Acceleration,
) -> Result<Option<Attached>, DatapathError> {
    let wanted = match acceleration {
        Acceleration::Disabled => None,
        Acceleration::Native | Acceleration::BestEffort => Some(Attached::Native),
        Acceleration::Generic => Some(Attached::Generic),
    };
    for mode in [Attached::Native, Attached::Generic] {
        if Some(mode) != wanted {
            attach::unpin(&link_path(pin_dir, mode, interface))?;
        }
    }
    let Some(mode) = wanted else { return Ok(None) };
    match attach_pinned(program(ebpf)?, pin_dir, mode, interface) {
        Ok(()) => Ok(Some(mode)),
        Err(error) if acceleration == Acceleration::BestEffort => {
            tracing::warn!(%interface, ?error, "the uplink's driver cannot run XDP: Services from outside are balanced at tc only");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn attach_pinned(
    program: &mut Xdp,
    pin_dir: &Path,
    mode: Attached,
    interface: &str,
) -> Result<(), DatapathError> {
    let path = link_path(pin_dir, mode, interface);
    let attach_err = |source| DatapathError::Attach {
        program: program_names::XDP_FROM_NETDEV,
        interface: interface.to_string(),
        source,
    };
    // Swap the program inside a link a previous agent pinned: no instant without one.
    let adopted = PinnedLink::from_pin(&path)
        .ok()
        .and_then(|pinned| XdpLink::try_from(FdLink::from(pinned)).ok())
        .and_then(|link| program.attach_to_link(link).ok());
    let link_id = match adopted {
        Some(id) => id,
        None => {
            attach::unpin(&path)?;
            program.attach(interface, mode.mode()).map_err(attach_err)?
        }
    };
    let link = program.take_link(link_id).map_err(attach_err)?;
    let fd_link = FdLink::try_from(link).map_err(|e| DatapathError::Link {
        action: "converted to a file-descriptor link",
        path: path.clone(),
        source: Box::new(e),
    })?;
    attach::pin(fd_link, &path)
}

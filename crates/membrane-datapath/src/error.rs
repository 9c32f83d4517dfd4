//! Errors of the datapath.

use std::path::PathBuf;

/// Everything that can go wrong loading or programming the datapath.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The pin directory could not be created.
    #[error("cannot create the pin directory {path} (is bpffs mounted at /sys/fs/bpf?)")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded eBPF object could not be parsed (a build problem).
    #[error("the embedded eBPF object cannot be parsed")]
    Object(#[source] Box<aya_obj::ParseError>),
    /// A map pinned in the pin directory could not be opened or inspected.
    #[error("cannot {operation} the map pinned at {path}")]
    PinnedMap {
        /// The pin path.
        path: PathBuf,
        /// What was attempted ("open", "read the info of"...).
        operation: &'static str,
        /// The aya error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The pin of a map of an outdated layout could not be removed.
    #[error("cannot remove the outdated pin {path}")]
    Unpin {
        /// The pin path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The object could not be loaded (maps created or adopted, relocations).
    #[error("loading the eBPF object failed")]
    Load(#[source] aya::EbpfError),
    /// A program or map the object should contain is missing.
    #[error("the eBPF object has no {kind} named {name}")]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// The kernel rejected a program (the verifier log is in the source).
    #[error("the kernel refused program {program}")]
    Program {
        /// The program name.
        program: &'static str,
        /// The aya error, with the verifier log.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Attaching or replacing a program on an interface failed.
    #[error("attaching {program} to {interface} failed")]
    Attach {
        /// The program name.
        program: &'static str,
        /// The interface name.
        interface: String,
        /// The aya error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Pinning, adopting or removing a pinned link failed.
    #[error("pinned link {path} could not be {action}")]
    Link {
        /// What was attempted ("pinned", "removed"...).
        action: &'static str,
        /// The pin path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map the pin directory should hold is not pinned there.
    #[error(
        "no map pinned at {path} (is the agent's --bpffs-dir this directory, and has it started once?)"
    )]
    NotPinned {
        /// The expected pin path.
        path: PathBuf,
    },
    /// A map operation failed.
    #[error("{operation} on map {map} failed")]
    Map {
        /// The map name.
        map: &'static str,
        /// What was attempted.
        operation: &'static str,
        /// The aya error.
        #[source]
        source: aya::maps::MapError,
    },
    /// A setting cannot be expressed in the datapath.
    #[error("invalid datapath option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Waiting on the events ring buffer failed.
    #[error("reading the events ring buffer failed")]
    Events {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The uplink interface does not exist.
    #[error("interface {interface} not found")]
    NoInterface {
        /// The interface name.
        interface: String,
    },
    /// A map's fdinfo (its kernel memory) could not be read.
    #[error("cannot read the fdinfo of map {map}")]
    Fdinfo {
        /// The map name.
        map: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

//! Builds real topologies in the running kernel for tests and demos: nodes (network
//! namespace, cgroup, bpffs pins, agent) joined to an outside namespace, pods created
//! through the real CNI plugin, and a workload binary that makes and measures traffic.
//!
//! Every name is unique per test and everything is removed on drop, including while a
//! test panics, so tests run in parallel. Nothing is created in the machine's own
//! network namespace.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod addressing;
pub mod agent;
pub mod app;
pub mod bench;
pub mod binaries;
pub mod cgroup;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod etcd;
pub mod host;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod node;
pub mod outside;
pub mod panic_note;
pub mod pin_dir;
pub mod pinned;
pub mod pod;
#[allow(unsafe_code)]
pub mod process;
pub mod report;
pub mod wiring;
pub mod workload;

pub use addressing::NodeAddressing;
pub use cgroup::Cgroup;
pub use etcd::Etcd;
pub use netns::Netns;
pub use node::Node;
pub use outside::Outside;
pub use pod::Pod;
pub use process::{Place, Process};

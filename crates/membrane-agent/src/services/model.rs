//! The node's desired load-balancing state as plain values: frontends (address, port,
//! protocol) with their backends, and each backend's state. Computed from objects by
//! [`super::desired`], written by [`super::reconciler`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A transport protocol Services are load-balanced for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// Kubernetes' spelling of a protocol (`None` means TCP); `None` for protocols the
    /// datapath does not balance (SCTP).
    pub fn from_k8s(protocol: Option<&str>) -> Option<Protocol> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// Where clients connect: one datapath frontend, both of its scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FrontendAddr {
    /// Address; the unspecified address of the family for NodePorts.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: Protocol,
}

impl fmt::Display for FrontendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            SocketAddr::new(self.addr, self.port),
            self.proto.as_str()
        )
    }
}

/// One backend: a pod's (or any endpoint's) address, port and protocol. The same
/// backend serving several Services is one datapath backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackendAddr {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: Protocol,
}

impl BackendAddr {
    /// The stable name Maglev tables are computed from (`ip:port`).
    pub fn maglev_name(&self) -> Vec<u8> {
        SocketAddr::new(self.addr, self.port)
            .to_string()
            .into_bytes()
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            SocketAddr::new(self.addr, self.port),
            self.proto.as_str()
        )
    }
}

/// What a backend is to the datapath.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendState {
    /// Serving but terminating: keeps its connections, takes no new ones.
    pub terminating: bool,
    /// Runs on this node.
    pub local: bool,
}

/// Which kind of Service address a frontend is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FrontendKind {
    /// A cluster IP: reachable from pods and the node only.
    ClusterIp,
    /// A NodePort: every node address.
    NodePort,
    /// A LoadBalancer ingress address.
    LoadBalancer,
    /// An external IP.
    ExternalIp,
    /// A pod's hostPort on the node's address.
    HostPort,
}

impl FrontendKind {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontendKind::ClusterIp => "ClusterIP",
            FrontendKind::NodePort => "NodePort",
            FrontendKind::LoadBalancer => "LoadBalancer",
            FrontendKind::ExternalIp => "ExternalIP",
            FrontendKind::HostPort => "HostPort",
        }
    }
}

/// The backends of one scope of a frontend, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backends {
    /// Taking new connections.
    pub active: Vec<BackendAddr>,
    /// Keeping their connections only.
    pub terminating: Vec<BackendAddr>,
}

impl Backends {
    /// Only the backends `keep` accepts.
    pub fn filtered(&self, keep: impl Fn(&BackendAddr) -> bool) -> Backends {
        Backends {
            active: self.active.iter().copied().filter(|b| keep(b)).collect(),
            terminating: self
                .terminating
                .iter()
                .copied()
                .filter(|b| keep(b))
                .collect(),
        }
    }

    /// Every backend of both lists.
    pub fn all(&self) -> impl Iterator<Item = &BackendAddr> {
        self.active.iter().chain(&self.terminating)
    }
}

/// Who a frontend belongs to: a Service, or a pod for a hostPort.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// `Service` or `Pod`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Everything the datapath needs to know about one frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredFrontend {
    /// Its Service (or pod).
    pub owner: Owner,
    /// What kind of address it is.
    pub kind: FrontendKind,
    /// `membrane_common::lb::service_flags` bits of the (external-scope) entry.
    pub flags: u16,
    /// Session affinity timeout, with the AFFINITY flag.
    pub affinity_timeout_s: u32,
    /// The backends of the entry traffic from outside uses (the only entry unless
    /// `internal` is set).
    pub backends: Backends,
    /// With TWO_SCOPES: the backends of the entry traffic from pods and the node uses.
    pub internal: Option<Backends>,
}

impl DesiredFrontend {
    /// Every backend either scope names.
    pub fn all_backends(&self) -> impl Iterator<Item = &BackendAddr> {
        self.backends
            .all()
            .chain(self.internal.iter().flat_map(Backends::all))
    }
}

/// Something in the objects that could not be programmed as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Whose.
    pub owner: Owner,
    /// What and why.
    pub reason: String,
}

/// The node's whole desired load-balancing state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Every frontend.
    pub frontends: BTreeMap<FrontendAddr, DesiredFrontend>,
    /// Every backend some frontend names.
    pub backends: BTreeMap<BackendAddr, BackendState>,
    /// What was left out, and why.
    pub skipped: Vec<Skipped>,
}

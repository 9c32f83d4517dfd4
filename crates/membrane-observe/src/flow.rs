//! The decoded, enriched flow: Membrane's own model of one datapath event, independent
//! of the wire format. Numbers that Hubble clients rely on (event types, observation
//! points, drop reasons) are derived here, next to the variants they describe.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// What the datapath did with the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Passed on to the next hop.
    Forwarded,
    /// Dropped; the flow's drop reason says why.
    Dropped,
    /// An error occurred while processing.
    Error,
    /// Would have been dropped by policy, but the policy is in audit mode.
    Audit,
    /// Redirected to a proxy.
    Redirected,
    /// Seen at a trace point without a verdict.
    Traced,
    /// A socket's destination was translated (socket-level load balancing).
    Translated,
}

impl Verdict {
    /// Every verdict, in Hubble's numbering order.
    pub const ALL: [Verdict; 7] = [
        Verdict::Forwarded,
        Verdict::Dropped,
        Verdict::Error,
        Verdict::Audit,
        Verdict::Redirected,
        Verdict::Traced,
        Verdict::Translated,
    ];

    /// Hubble's `flow.Verdict` number.
    pub const fn hubble(self) -> i32 {
        match self {
            Verdict::Forwarded => 1,
            Verdict::Dropped => 2,
            Verdict::Error => 3,
            Verdict::Audit => 4,
            Verdict::Redirected => 5,
            Verdict::Traced => 6,
            Verdict::Translated => 7,
        }
    }

    /// The verdict with Hubble's number `n`.
    pub fn from_hubble(n: i32) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.hubble() == n)
    }

    /// Hubble's name (`FORWARDED`), as the CLI accepts and prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Forwarded => "FORWARDED",
            Verdict::Dropped => "DROPPED",
            Verdict::Error => "ERROR",
            Verdict::Audit => "AUDIT",
            Verdict::Redirected => "REDIRECTED",
            Verdict::Traced => "TRACED",
            Verdict::Translated => "TRANSLATED",
        }
    }
}

/// Where a traced packet was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObservationPoint {
    /// Not reported by the datapath.
    Unknown,
    /// Leaving a local endpoint.
    FromEndpoint,
    /// Delivered into a local endpoint.
    ToEndpoint,
    /// Handed to the node's network stack.
    ToStack,
    /// Sent to the network.
    ToNetwork,
    /// Sent through the tunnel.
    ToOverlay,
    /// Arrived from the network.
    FromNetwork,
    /// Arrived through the tunnel.
    FromOverlay,
}

impl ObservationPoint {
    /// Hubble's `flow.TraceObservationPoint` number.
    pub const fn hubble(self) -> i32 {
        match self {
            ObservationPoint::Unknown => 0,
            ObservationPoint::ToStack => 3,
            ObservationPoint::ToOverlay => 4,
            ObservationPoint::FromEndpoint => 5,
            ObservationPoint::FromOverlay => 9,
            ObservationPoint::FromNetwork => 10,
            ObservationPoint::ToNetwork => 11,
            ObservationPoint::ToEndpoint => 101,
        }
    }

    /// The Cilium monitor trace sub-type (`trace:to-endpoint` is 0), which Hubble's
    /// event-type filters match; `None` when unknown.
    pub const fn monitor_subtype(self) -> Option<i32> {
        match self {
            ObservationPoint::Unknown => None,
            ObservationPoint::ToEndpoint => Some(0),
            ObservationPoint::ToStack => Some(3),
            ObservationPoint::ToOverlay => Some(4),
            ObservationPoint::FromEndpoint => Some(5),
            ObservationPoint::FromOverlay => Some(9),
            ObservationPoint::FromNetwork => Some(10),
            ObservationPoint::ToNetwork => Some(11),
        }
    }

    /// The point with Hubble's `TraceObservationPoint` number `n`.
    pub fn from_hubble(n: i32) -> ObservationPoint {
        use ObservationPoint::*;
        [
            FromEndpoint,
            ToEndpoint,
            ToStack,
            ToNetwork,
            ToOverlay,
            FromNetwork,
            FromOverlay,
        ]
        .into_iter()
        .find(|p| p.hubble() == n)
        .unwrap_or(Unknown)
    }

    /// Hubble's spelling (`to-endpoint`), as `--type trace:NAME` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            ObservationPoint::Unknown => "unknown",
            ObservationPoint::FromEndpoint => "from-endpoint",
            ObservationPoint::ToEndpoint => "to-endpoint",
            ObservationPoint::ToStack => "to-stack",
            ObservationPoint::ToNetwork => "to-network",
            ObservationPoint::ToOverlay => "to-overlay",
            ObservationPoint::FromNetwork => "from-network",
            ObservationPoint::FromOverlay => "from-overlay",
        }
    }

    /// The Cilium monitor trace sub-type for a name such as `to-stack`, including the
    /// points Membrane never reports (`to-proxy`), so that filters on them parse.
    pub fn monitor_subtype_of(name: &str) -> Option<i32> {
        const NAMES: [&str; 12] = [
            "to-endpoint",
            "to-proxy",
            "to-host",
            "to-stack",
            "to-overlay",
            "from-endpoint",
            "from-proxy",
            "from-host",
            "from-stack",
            "from-overlay",
            "from-network",
            "to-network",
        ];
        NAMES.iter().position(|n| *n == name).map(|i| i as i32)
    }
}

/// Cilium monitor message types, the `type` of Hubble's `CiliumEventType` and
/// `EventTypeFilter`.
pub mod monitor_type {
    /// A drop notification.
    pub const DROP: i32 = 1;
    /// A debug message.
    pub const DEBUG: i32 = 2;
    /// A debug packet capture.
    pub const CAPTURE: i32 = 3;
    /// A trace notification.
    pub const TRACE: i32 = 4;
    /// A policy verdict notification.
    pub const POLICY_VERDICT: i32 = 5;
    /// A recorder capture.
    pub const RECORDER: i32 = 6;
    /// A socket-level translation trace.
    pub const TRACE_SOCK: i32 = 7;
    /// An L7 access log record.
    pub const L7: i32 = 129;
    /// An agent notification.
    pub const AGENT: i32 = 130;

    /// The type for a name as `hubble observe --type` takes it.
    pub fn from_name(name: &str) -> Option<i32> {
        Some(match name {
            "drop" => DROP,
            "debug" => DEBUG,
            "capture" => CAPTURE,
            "trace" => TRACE,
            "policy-verdict" => POLICY_VERDICT,
            "recorder" => RECORDER,
            "trace-sock" => TRACE_SOCK,
            "l7" => L7,
            "agent" => AGENT,
            _ => return None,
        })
    }
}

/// What kind of datapath event produced the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A forwarded packet, seen at a point.
    Trace(ObservationPoint),
    /// A dropped packet.
    Drop,
    /// A policy decision.
    PolicyVerdict,
    /// A socket's destination translated by socket-level load balancing.
    SockTranslate,
}

/// A drop reason: the datapath's code and its nearest Hubble equivalent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropReason {
    /// Membrane's reason code (`membrane_common::metrics::reason`).
    pub code: u8,
}

impl DropReason {
    /// Hubble's `flow.DropReason` number for this code, 0 (`DROP_REASON_UNKNOWN`) when
    /// Hubble has no equivalent.
    pub const fn hubble(self) -> i32 {
        use membrane_common::metrics::reason::*;
        match self.code {
            DROP_INVALID_SOURCE => 132,  // INVALID_SOURCE_IP
            DROP_INVALID_PACKET => 134,  // INVALID_PACKET_DROPPED
            DROP_UNSUPPORTED_L3 => 139,  // UNSUPPORTED_L3_PROTOCOL
            DROP_REWRITE_FAILED => 141,  // ERROR_WRITING_TO_PACKET
            DROP_TUNNEL => 147,          // ERROR_RETRIEVING_TUNNEL_KEY
            DROP_MAP_FULL => 155,        // CT_MAP_INSERTION_FAILED
            DROP_FRAGMENT => 157,        // IP_FRAGMENTATION_NOT_SUPPORTED
            DROP_NO_BACKEND => 158,      // SERVICE_BACKEND_NOT_FOUND
            DROP_BACKEND_MISSING => 158, // SERVICE_BACKEND_NOT_FOUND
            DROP_NAT_NO_PORT => 167,     // NO_MAPPING_FOR_NAT_MASQUERADE
            DROP_NAT_UNSUPPORTED => 168, // UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE
            DROP_NO_ROUTE => 169,        // FIB_LOOKUP_FAILED
            DROP_TTL_EXCEEDED => 196,    // TTL_EXCEEDED
            DROP_POLICY => 133,          // POLICY_DENIED
            DROP_POLICY_DENY => 181,     // POLICY_DENY
            _ => 0,
        }
    }

    /// Membrane's description (`invalid_source_address`).
    pub const fn description(self) -> &'static str {
        membrane_common::metrics::reason::name(self.code)
    }
}

/// Direction of the traffic relative to the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrafficDirection {
    /// Into the endpoint (or node).
    Ingress,
    /// Out of the endpoint.
    Egress,
}

impl TrafficDirection {
    /// Hubble's `flow.TrafficDirection` number.
    pub const fn hubble(self) -> i32 {
        match self {
            TrafficDirection::Ingress => 1,
            TrafficDirection::Egress => 2,
        }
    }

    /// Lower-case name, as metrics label it.
    pub const fn name(self) -> &'static str {
        match self {
            TrafficDirection::Ingress => "ingress",
            TrafficDirection::Egress => "egress",
        }
    }
}

/// TCP flags as the header carries them (FIN is bit 0, CWR bit 7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
    /// Bits and names, in the order Hubble prints them.
    pub const NAMES: [(u8, &'static str); 8] = [
        (Self::SYN, "SYN"),
        (Self::FIN, "FIN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the set flags (`["SYN", "ACK"]`).
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| *name)
            .collect()
    }
}

/// The transport layer of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP with ports and the packet's flags.
    Tcp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
        /// Flags of the packet.
        flags: TcpFlags,
    },
    /// UDP with ports.
    Udp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
    },
    /// ICMP over IPv4.
    Icmpv4 {
        /// Message type.
        kind: u8,
        /// Message code.
        code: u8,
    },
    /// ICMPv6.
    Icmpv6 {
        /// Message type.
        kind: u8,
        /// Message code.
        code: u8,
    },
}

impl L4 {
    /// Source and destination ports, for TCP and UDP.
    pub const fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            L4::Tcp {
                source_port,
                destination_port,
                ..
            }
            | L4::Udp {
                source_port,
                destination_port,
            } => Some((source_port, destination_port)),
            L4::Icmpv4 { .. } | L4::Icmpv6 { .. } => None,
        }
    }

    /// Lower-case protocol name as filters and metrics spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            L4::Tcp { .. } => "tcp",
            L4::Udp { .. } => "udp",
            L4::Icmpv4 { .. } => "icmpv4",
            L4::Icmpv6 { .. } => "icmpv6",
        }
    }
}

/// A workload (Deployment, DaemonSet, ...) owning a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    /// Name of the workload.
    pub name: String,
    /// Kind of the workload (`Deployment`).
    pub kind: String,
}

/// One side of a flow, as far as the agent knows it. Everything is empty or zero when
/// the address belongs to nothing Membrane knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Local endpoint id, 0 if not a local endpoint.
    pub id: u16,
    /// Security identity, 0 if unknown.
    pub identity: u32,
    /// Cluster name, empty if unknown.
    pub cluster: String,
    /// Kubernetes namespace, empty if not a pod.
    pub namespace: String,
    /// Pod name, empty if not a pod.
    pub pod_name: String,
    /// Labels as `source:key=value` (`k8s:app=web`, `reserved:world`).
    pub labels: Vec<String>,
    /// Workloads owning the pod.
    pub workloads: Vec<Workload>,
}

/// A Kubernetes Service, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One decoded and enriched datapath event.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// When the packet was seen (wall clock).
    pub time: SystemTime,
    /// What the datapath did.
    pub verdict: Verdict,
    /// Which event reported it.
    pub kind: EventKind,
    /// Membrane's reason code: what happened (forwarded locally, masqueraded, a drop
    /// reason, ...).
    pub reason: u8,
    /// Why it was dropped, for drops.
    pub drop_reason: Option<DropReason>,
    /// Source address.
    pub source_ip: IpAddr,
    /// Destination address (before any Service translation).
    pub destination_ip: IpAddr,
    /// Transport layer, if the datapath understood it.
    pub l4: Option<L4>,
    /// The sending side.
    pub source: Endpoint,
    /// The receiving side.
    pub destination: Endpoint,
    /// The Service the destination was translated from, if any.
    pub destination_service: Option<ServiceName>,
    /// Where the destination was translated to (backend address and port), if it was.
    pub translated_to: Option<(IpAddr, u16)>,
    /// Direction relative to the endpoint, when known.
    pub direction: Option<TrafficDirection>,
    /// Whether the packet is a reply within its connection, when known.
    pub is_reply: Option<bool>,
    /// The node that saw it.
    pub node_name: Arc<str>,
    /// Interface index the program ran on.
    pub ifindex: u32,
    /// Packet length in bytes.
    pub length: u32,
    /// For policy verdicts, how the deciding rule matched: Cilium's and Hubble's
    /// `policy_match_type` numbering (`membrane_common::policy::match_kind`: none 0,
    /// L3-only 1, L3+L4 2, L4-only 3, all 4).
    pub policy_match: u8,
}

impl Flow {
    /// Hubble's event type: the Cilium monitor type and sub-type.
    pub fn event_type(&self) -> (i32, i32) {
        match self.kind {
            EventKind::Trace(point) => (
                monitor_type::TRACE,
                point.monitor_subtype().unwrap_or_default(),
            ),
            EventKind::Drop => (
                monitor_type::DROP,
                self.drop_reason.map_or(0, DropReason::hubble),
            ),
            EventKind::PolicyVerdict => (monitor_type::POLICY_VERDICT, 0),
            EventKind::SockTranslate => (monitor_type::TRACE_SOCK, 0),
        }
    }

    /// The observation point, for trace events.
    pub fn observation_point(&self) -> ObservationPoint {
        match self.kind {
            EventKind::Trace(point) => point,
            _ => ObservationPoint::Unknown,
        }
    }

    /// Whether the addresses are IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.source_ip.is_ipv6()
    }
}

/// Where events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LostSource {
    /// The kernel's ring buffer was full (the datapath counted it).
    KernelRingBuffer,
    /// The queue between the event reader and the observer was full.
    EventsQueue,
    /// A follower fell behind and the events it missed were overwritten.
    SlowFollower,
}

impl LostSource {
    /// Hubble's `flow.LostEventSource` number.
    pub const fn hubble(self) -> i32 {
        match self {
            LostSource::KernelRingBuffer => 1,
            LostSource::EventsQueue => 2,
            LostSource::SlowFollower => 3,
        }
    }

    /// Name as metrics label it.
    pub const fn name(self) -> &'static str {
        match self {
            LostSource::KernelRingBuffer => "kernel_ring_buffer",
            LostSource::EventsQueue => "events_queue",
            LostSource::SlowFollower => "slow_follower",
        }
    }
}

/// A record of lost events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    /// Where they were lost.
    pub source: LostSource,
    /// How many.
    pub count: u64,
    /// When the loss was noticed.
    pub time: SystemTime,
}

/// What the observer keeps and streams: a flow, or a record of lost events.
#[derive(Clone, Debug)]
pub enum Event {
    /// A flow.
    Flow(Arc<Flow>),
    /// Lost events.
    Lost(Lost),
}

impl Event {
    /// When the event happened.
    pub fn time(&self) -> SystemTime {
        match self {
            Event::Flow(flow) => flow.time,
            Event::Lost(lost) => lost.time,
        }
    }
}

//! Flow filters with Hubble's semantics: within one filter every field that is set must
//! match (AND) and the values of one field are alternatives (OR); a flow is returned
//! when it matches any allow-list filter (or the allow-list is empty) and no deny-list
//! filter. Records of lost events are never filtered out.

mod labels;
mod pattern;

pub use labels::Selector;
pub use pattern::{FqdnPattern, NodeNamePattern};

use crate::flow::{Flow, L4, TcpFlags, Verdict, Workload};
use ipnet::IpNet;
use std::net::IpAddr;

/// `namespace/name-prefix`, as pod and Service filters take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePrefix {
    /// The namespace that must match exactly.
    pub namespace: String,
    /// The prefix of the name; empty matches every name in the namespace.
    pub prefix: String,
}

impl NamePrefix {
    /// Parses `ns/prefix`, `ns/`, or `prefix` (in namespace `default`), as Hubble does.
    pub fn parse(text: &str) -> Result<NamePrefix, String> {
        let (namespace, prefix) = match text.split_once('/') {
            Some((ns, rest)) => (ns, rest.split('/').next().unwrap_or_default()),
            None if text.is_empty() => return Err("must be [namespace/][name]".to_string()),
            None => ("default", text),
        };
        if namespace.is_empty() && prefix.is_empty() {
            return Err("must be [namespace/][name]".to_string());
        }
        Ok(NamePrefix {
            namespace: namespace.to_string(),
            prefix: prefix.to_string(),
        })
    }

    fn matches(&self, namespace: &str, name: &str) -> bool {
        if namespace.is_empty() && name.is_empty() {
            return false;
        }
        self.namespace == namespace && name.starts_with(&self.prefix)
    }
}

/// Protocols a filter can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (never produced by Membrane's datapath).
    Sctp,
    /// ICMP of either version.
    Icmp,
    /// ICMP over IPv4.
    Icmpv4,
    /// ICMPv6.
    Icmpv6,
    /// An L7 protocol (`http`, `dns`, `kafka`): Membrane reports no L7 flows yet.
    L7,
}

impl Protocol {
    /// Parses a protocol name, case-insensitively.
    pub fn parse(name: &str) -> Result<Protocol, String> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            "icmp" => Protocol::Icmp,
            "icmpv4" => Protocol::Icmpv4,
            "icmpv6" => Protocol::Icmpv6,
            "http" | "dns" | "kafka" => Protocol::L7,
            _ => return Err("unknown protocol".to_string()),
        })
    }

    fn matches(self, l4: Option<&L4>) -> bool {
        matches!(
            (self, l4),
            (Protocol::Tcp, Some(L4::Tcp { .. }))
                | (Protocol::Udp, Some(L4::Udp { .. }))
                | (Protocol::Icmp | Protocol::Icmpv4, Some(L4::Icmpv4 { .. }))
                | (Protocol::Icmp | Protocol::Icmpv6, Some(L4::Icmpv6 { .. }))
        )
    }
}

/// An event-type filter: a Cilium monitor type (0 matches any) and optionally a
/// sub-type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTypeMatch {
    /// The monitor type, 0 for any.
    pub kind: i32,
    /// The sub-type, when it must match.
    pub sub_type: Option<i32>,
}

/// One filter. Every non-empty field must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowFilter {
    /// Source address or CIDR.
    pub source_ip: Vec<IpNet>,
    /// Destination address or CIDR.
    pub destination_ip: Vec<IpNet>,
    /// Source pod.
    pub source_pod: Vec<NamePrefix>,
    /// Destination pod.
    pub destination_pod: Vec<NamePrefix>,
    /// Source Service.
    pub source_service: Vec<NamePrefix>,
    /// Destination Service.
    pub destination_service: Vec<NamePrefix>,
    /// Source label selectors.
    pub source_label: Vec<Selector>,
    /// Destination label selectors.
    pub destination_label: Vec<Selector>,
    /// Source workloads (an empty name or kind matches any).
    pub source_workload: Vec<Workload>,
    /// Destination workloads.
    pub destination_workload: Vec<Workload>,
    /// Source security identities.
    pub source_identity: Vec<u32>,
    /// Destination security identities.
    pub destination_identity: Vec<u32>,
    /// Source FQDN patterns: Membrane learns no DNS names yet, so these match nothing.
    pub source_fqdn: Vec<FqdnPattern>,
    /// Destination FQDN patterns (match nothing, like `source_fqdn`).
    pub destination_fqdn: Vec<FqdnPattern>,
    /// Verdicts, by Hubble number (unknown numbers match nothing).
    pub verdict: Vec<i32>,
    /// Hubble drop reasons, by number.
    pub drop_reason: Vec<i32>,
    /// Event types.
    pub event_type: Vec<EventTypeMatch>,
    /// Protocols.
    pub protocol: Vec<Protocol>,
    /// Source ports.
    pub source_port: Vec<u16>,
    /// Destination ports.
    pub destination_port: Vec<u16>,
    /// Reply direction.
    pub reply: Vec<bool>,
    /// TCP flag sets: a flow matches one when it has all of its flags.
    pub tcp_flags: Vec<TcpFlags>,
    /// Node-name patterns.
    pub node_name: Vec<NodeNamePattern>,
    /// IP versions (4 or 6).
    pub ip_version: Vec<u8>,
    /// Traffic directions, by Hubble number.
    pub traffic_direction: Vec<i32>,
    /// Interfaces, by index.
    pub interface: Vec<u32>,
    /// Encrypted or not: Membrane encrypts nothing yet, so only `false` matches.
    pub encrypted: Vec<bool>,
    /// Fields about things Membrane's flows never carry (L7 records, flow UUIDs,
    /// translated sources, cluster names, node labels, trace ids): when any is set, the
    /// filter matches no flow, exactly as it matches no L3/L4 flow in Hubble.
    pub absent_fields: Vec<&'static str>,
}

fn any_or_empty<T>(values: &[T], matches: impl Fn(&T) -> bool) -> bool {
    values.is_empty() || values.iter().any(matches)
}

fn ip_matches(nets: &[IpNet], ip: IpAddr) -> bool {
    any_or_empty(nets, |net| net.contains(&ip))
}

fn workload_matches(wanted: &[Workload], have: &[Workload]) -> bool {
    any_or_empty(wanted, |w| {
        have.iter().any(|h| {
            (w.name.is_empty() || w.name == h.name) && (w.kind.is_empty() || w.kind == h.kind)
        })
    })
}

impl FlowFilter {
    /// Whether the flow matches every field that is set.
    pub fn matches(&self, flow: &Flow) -> bool {
        let (src, dst) = (&flow.source, &flow.destination);
        let ports = flow.l4.as_ref().and_then(L4::ports);
        let (event_kind, event_sub) = flow.event_type();
        self.absent_fields.is_empty()
            && self.source_fqdn.is_empty()
            && self.destination_fqdn.is_empty()
            && ip_matches(&self.source_ip, flow.source_ip)
            && ip_matches(&self.destination_ip, flow.destination_ip)
            && any_or_empty(&self.source_pod, |p| p.matches(&src.namespace, &src.pod_name))
            && any_or_empty(&self.destination_pod, |p| {
                p.matches(&dst.namespace, &dst.pod_name)
            })
            // Membrane's flows never name a source Service.
            && self.source_service.is_empty()
            && any_or_empty(&self.destination_service, |p| {
                flow.destination_service
                    .as_ref()
                    .is_some_and(|s| p.matches(&s.namespace, &s.name))
            })
            && any_or_empty(&self.source_label, |s| s.matches(&src.labels))
            && any_or_empty(&self.destination_label, |s| s.matches(&dst.labels))
            && workload_matches(&self.source_workload, &src.workloads)
            && workload_matches(&self.destination_workload, &dst.workloads)
            && any_or_empty(&self.source_identity, |i| *i == src.identity)
            && any_or_empty(&self.destination_identity, |i| *i == dst.identity)
            && any_or_empty(&self.verdict, |v| *v == flow.verdict.hubble())
            && any_or_empty(&self.drop_reason, |r| {
                flow.drop_reason.is_some_and(|d| d.hubble() == *r)
            })
            && any_or_empty(&self.event_type, |t| {
                (t.kind == 0 || t.kind == event_kind) && t.sub_type.is_none_or(|s| s == event_sub)
            })
            && any_or_empty(&self.protocol, |p| p.matches(flow.l4.as_ref()))
            && any_or_empty(&self.source_port, |p| ports.is_some_and(|(s, _)| s == *p))
            && any_or_empty(&self.destination_port, |p| ports.is_some_and(|(_, d)| d == *p))
            && any_or_empty(&self.reply, |r| {
                // Like Hubble: a drop of unknown direction counts as not a reply.
                match flow.is_reply {
                    Some(reply) => reply == *r,
                    None => flow.verdict == Verdict::Dropped && !*r,
                }
            })
            && any_or_empty(&self.tcp_flags, |wanted| match flow.l4 {
                Some(L4::Tcp { flags, .. }) => flags.contains(*wanted),
                _ => false,
            })
            && any_or_empty(&self.node_name, |p| p.matches(&flow.node_name))
            && any_or_empty(&self.ip_version, |v| {
                *v == if flow.is_ipv6() { 6 } else { 4 }
            })
            && any_or_empty(&self.traffic_direction, |d| {
                flow.direction.is_some_and(|fd| fd.hubble() == *d)
            })
            && any_or_empty(&self.interface, |i| *i == flow.ifindex)
            && any_or_empty(&self.encrypted, |e| !*e)
    }
}

/// An allow-list and a deny-list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterSet {
    /// A flow must match one of these (if any are given).
    pub allow: Vec<FlowFilter>,
    /// A flow must match none of these.
    pub deny: Vec<FlowFilter>,
}

impl FilterSet {
    /// Whether the flow passes: `allow - deny`.
    pub fn matches(&self, flow: &Flow) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|f| f.matches(flow)))
            && !self.deny.iter().any(|f| f.matches(flow))
    }
}

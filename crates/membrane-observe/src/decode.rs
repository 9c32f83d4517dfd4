//! Decoding: a raw `FlowEvent` from the datapath becomes an enriched [`Flow`], with
//! endpoints, identities, labels, workloads and Services looked up in the agent's
//! directories.

use crate::directory::{EndpointDirectory, EndpointMeta, ServiceDirectory};
use crate::error::DecodeError;
use crate::flow::{
    DropReason, Endpoint, EventKind, Flow, L4, ObservationPoint, ServiceName, TcpFlags,
    TrafficDirection, Verdict,
};
use membrane_common::events::{ct_state, event_kind, observation_point, policy_verdict};
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::proto;
use membrane_common::{Family, FlowEvent, identity};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Turns the datapath's monotonic timestamps (`bpf_ktime_get_ns`) into wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// Wall-clock time at monotonic zero.
    epoch: SystemTime,
}

impl BootClock {
    /// The running system's clock: wall-clock now minus monotonic now.
    pub fn system() -> Result<BootClock, DecodeError> {
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_err(|source| DecodeError::Clock { source })?;
        let since_boot = Duration::from(monotonic);
        let epoch = SystemTime::now()
            .checked_sub(since_boot)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(BootClock { epoch })
    }

    /// A clock whose monotonic zero is `epoch` (tests, replays).
    pub fn with_epoch(epoch: SystemTime) -> BootClock {
        BootClock { epoch }
    }

    /// The wall-clock time of a monotonic timestamp.
    pub fn wall(&self, monotonic_ns: u64) -> SystemTime {
        self.epoch + Duration::from_nanos(monotonic_ns)
    }
}

/// Decodes and enriches events for one node.
pub struct Decoder {
    node_name: Arc<str>,
    endpoints: Arc<dyn EndpointDirectory>,
    services: Arc<dyn ServiceDirectory>,
    clock: BootClock,
}

impl Decoder {
    /// A decoder for events of `node_name`.
    pub fn new(
        node_name: &str,
        endpoints: Arc<dyn EndpointDirectory>,
        services: Arc<dyn ServiceDirectory>,
        clock: BootClock,
    ) -> Decoder {
        Decoder {
            node_name: Arc::from(node_name),
            endpoints,
            services,
            clock,
        }
    }

    /// The node this decoder names in its flows.
    pub fn node_name(&self) -> &Arc<str> {
        &self.node_name
    }

    /// Decodes one event.
    pub fn decode(&self, event: &FlowEvent) -> Result<Flow, DecodeError> {
        let tuple = &event.tuple;
        let (source_ip, destination_ip) = addresses(tuple.family, &tuple.saddr, &tuple.daddr)?;
        let kind = kind(event)?;
        let verdict = match kind {
            // Let through only because the endpoint audits policy: what Hubble reports
            // as an AUDIT verdict.
            EventKind::Trace(_) if event.policy_verdict == policy_verdict::AUDIT => Verdict::Audit,
            EventKind::Trace(_) => Verdict::Forwarded,
            EventKind::Drop => Verdict::Dropped,
            EventKind::PolicyVerdict => match event.policy_verdict {
                policy_verdict::AUDIT => Verdict::Audit,
                policy_verdict::DENIED => Verdict::Dropped,
                policy_verdict::ALLOWED => Verdict::Forwarded,
                _ if event.reason >= reason::DROP_FIRST => Verdict::Dropped,
                _ => Verdict::Forwarded,
            },
            EventKind::SockTranslate => Verdict::Translated,
        };
        let drop_reason =
            (verdict == Verdict::Dropped).then_some(DropReason { code: event.reason });
        let translated_to = (event.xlated_daddr != [0; 16])
            .then(|| addresses(tuple.family, &event.xlated_daddr, &event.xlated_daddr))
            .transpose()?
            .map(|(ip, _)| (ip, u16::from_be(event.xlated_dport)));
        Ok(Flow {
            time: self.clock.wall(event.timestamp_ns),
            verdict,
            kind,
            reason: event.reason,
            drop_reason,
            source_ip,
            destination_ip,
            l4: l4(event),
            source: self.source(event, source_ip),
            destination: self.endpoint(event.dst_endpoint, destination_ip, event.dst_identity),
            destination_service: self.service(event, destination_ip),
            translated_to,
            direction: match event.direction {
                direction::EGRESS => Some(TrafficDirection::Egress),
                direction::INGRESS => Some(TrafficDirection::Ingress),
                _ => None,
            },
            is_reply: match event.ct_state {
                ct_state::NEW | ct_state::ESTABLISHED => Some(false),
                ct_state::REPLY => Some(true),
                _ => None,
            },
            node_name: self.node_name.clone(),
            ifindex: event.ifindex,
            length: event.len,
            policy_match: event.policy_match,
        })
    }

    /// The Service the packet was for: by the reverse-NAT index of its translation, or,
    /// untranslated, by the frontend it was addressed to.
    fn service(&self, event: &FlowEvent, destination: IpAddr) -> Option<ServiceName> {
        if event.rev_nat_index != 0 {
            return self.services.by_rev_nat(event.rev_nat_index);
        }
        let port = u16::from_be(event.tuple.dport);
        self.services
            .by_frontend((destination, port, event.tuple.proto))
    }

    /// The source of the flow: as [`Decoder::endpoint`] finds it, except that a packet
    /// leaving a pod without a source endpoint (its address is not the pod's: dropped as
    /// spoofed) comes from the pod whose host-side interface it left through.
    fn source(&self, event: &FlowEvent, ip: IpAddr) -> Endpoint {
        if event.src_endpoint == 0
            && event.direction == direction::EGRESS
            && let Some(meta) = self.endpoints.by_interface(event.ifindex)
        {
            return endpoint_of(meta, event.src_identity);
        }
        self.endpoint(event.src_endpoint, ip, event.src_identity)
    }

    /// One side of the flow: the local endpoint by id, else whoever owns the address,
    /// else only the identity the datapath reported.
    fn endpoint(&self, id: u16, ip: IpAddr, identity: u32) -> Endpoint {
        let meta = (id != 0)
            .then(|| self.endpoints.by_id(id))
            .flatten()
            .or_else(|| self.endpoints.by_ip(ip));
        match meta {
            Some(meta) => endpoint_of(meta, identity),
            None => Endpoint {
                id,
                identity,
                labels: reserved_labels(identity),
                ..Endpoint::default()
            },
        }
    }
}

/// The flow endpoint for a known pod; the identity the datapath saw wins over the
/// directory's when both are set.
fn endpoint_of(meta: EndpointMeta, seen_identity: u32) -> Endpoint {
    let mut labels: Vec<String> = meta
        .labels
        .iter()
        .map(|(key, value)| format!("k8s:{key}={value}"))
        .collect();
    if !meta.namespace.is_empty() {
        labels.push(format!(
            "k8s:io.kubernetes.pod.namespace={}",
            meta.namespace
        ));
    }
    labels.sort();
    Endpoint {
        id: meta.id,
        identity: if seen_identity != 0 {
            seen_identity
        } else {
            meta.identity
        },
        cluster: String::new(),
        namespace: meta.namespace,
        pod_name: meta.pod_name,
        labels,
        workloads: meta.workloads,
    }
}

/// Cilium's `reserved:` label of a reserved identity.
fn reserved_labels(id: u32) -> Vec<String> {
    identity::reserved_name(id)
        .map(|name| vec![format!("reserved:{name}")])
        .unwrap_or_default()
}

fn addresses(family: u8, s: &[u8; 16], d: &[u8; 16]) -> Result<(IpAddr, IpAddr), DecodeError> {
    match family {
        Family::V4 => Ok((
            IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3])),
            IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3])),
        )),
        Family::V6 => Ok((
            IpAddr::V6(Ipv6Addr::from(*s)),
            IpAddr::V6(Ipv6Addr::from(*d)),
        )),
        other => Err(DecodeError::Family { family: other }),
    }
}

fn kind(event: &FlowEvent) -> Result<EventKind, DecodeError> {
    Ok(match event.kind {
        event_kind::TRACE => EventKind::Trace(match event.observation_point {
            observation_point::FROM_ENDPOINT => ObservationPoint::FromEndpoint,
            observation_point::TO_ENDPOINT => ObservationPoint::ToEndpoint,
            observation_point::TO_STACK => ObservationPoint::ToStack,
            observation_point::TO_NETWORK => ObservationPoint::ToNetwork,
            observation_point::TO_OVERLAY => ObservationPoint::ToOverlay,
            observation_point::FROM_NETWORK => ObservationPoint::FromNetwork,
            observation_point::FROM_OVERLAY => ObservationPoint::FromOverlay,
            _ => ObservationPoint::Unknown,
        }),
        event_kind::DROP => EventKind::Drop,
        event_kind::POLICY_VERDICT => EventKind::PolicyVerdict,
        event_kind::SOCK_TRANSLATE => EventKind::SockTranslate,
        other => return Err(DecodeError::Kind { kind: other }),
    })
}

/// The transport layer, with the ICMP type and code the datapath read from the packet.
fn l4(event: &FlowEvent) -> Option<L4> {
    let tuple = &event.tuple;
    let (sport, dport) = (u16::from_be(tuple.sport), u16::from_be(tuple.dport));
    match tuple.proto {
        proto::TCP => Some(L4::Tcp {
            source_port: sport,
            destination_port: dport,
            flags: TcpFlags(event.tcp_flags),
        }),
        proto::UDP => Some(L4::Udp {
            source_port: sport,
            destination_port: dport,
        }),
        proto::ICMP => Some(L4::Icmpv4 {
            kind: event.icmp_type,
            code: event.icmp_code,
        }),
        proto::ICMPV6 => Some(L4::Icmpv6 {
            kind: event.icmp_type,
            code: event.icmp_code,
        }),
        _ => None,
    }
}

//! Conversions at the wire boundary: our flows and lost-event records into Hubble's
//! messages, Hubble's filters into ours (`TryFrom`, refusing what does not parse), and
//! timestamps both ways.

use super::flow as pb;
use crate::error::{FilterError, RequestError};
use crate::filter::{
    EventTypeMatch, FilterSet, FlowFilter, FqdnPattern, NamePrefix, NodeNamePattern, Protocol,
    Selector,
};
use crate::flow::{self, EventKind, Flow, L4, Lost, TcpFlags};
use crate::query::FlowQuery;
use ipnet::IpNet;
use pbjson_types::Timestamp;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall-clock time as a protobuf timestamp.
pub fn timestamp(time: SystemTime) -> Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or_default(),
    }
}

/// A protobuf timestamp as a wall-clock time; `None` when out of range.
pub fn system_time(ts: &Timestamp) -> Option<SystemTime> {
    let seconds = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

fn endpoint(e: &flow::Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        id: u32::from(e.id),
        identity: e.identity,
        cluster_name: e.cluster.clone(),
        namespace: e.namespace.clone(),
        labels: e.labels.clone(),
        pod_name: e.pod_name.clone(),
        workloads: e
            .workloads
            .iter()
            .map(|w| pb::Workload {
                name: w.name.clone(),
                kind: w.kind.clone(),
            })
            .collect(),
    }
}

fn tcp_flags(flags: TcpFlags) -> pb::TcpFlags {
    let has = |bit| flags.0 & bit != 0;
    pb::TcpFlags {
        fin: has(TcpFlags::FIN),
        syn: has(TcpFlags::SYN),
        rst: has(TcpFlags::RST),
        psh: has(TcpFlags::PSH),
        ack: has(TcpFlags::ACK),
        urg: has(TcpFlags::URG),
        ece: has(TcpFlags::ECE),
        cwr: has(TcpFlags::CWR),
        ns: false,
    }
}

fn layer4(l4: &L4) -> pb::Layer4 {
    use pb::layer4::Protocol as P;
    let protocol = match *l4 {
        L4::Tcp {
            source_port,
            destination_port,
            flags,
        } => P::Tcp(pb::Tcp {
            source_port: source_port.into(),
            destination_port: destination_port.into(),
            flags: Some(tcp_flags(flags)),
        }),
        L4::Udp {
            source_port,
            destination_port,
        } => P::Udp(pb::Udp {
            source_port: source_port.into(),
            destination_port: destination_port.into(),
        }),
        L4::Icmpv4 { kind, code } => P::IcmPv4(pb::IcmPv4 {
            r#type: kind.into(),
            code: code.into(),
        }),
        L4::Icmpv6 { kind, code } => P::IcmPv6(pb::IcmPv6 {
            r#type: kind.into(),
            code: code.into(),
        }),
    };
    pb::Layer4 {
        protocol: Some(protocol),
    }
}

impl From<&Flow> for pb::Flow {
    fn from(f: &Flow) -> pb::Flow {
        let (kind, sub_type) = f.event_type();
        let drop_reason = f.drop_reason.map_or(0, |d| d.hubble());
        pb::Flow {
            time: Some(timestamp(f.time)),
            verdict: f.verdict.hubble(),
            drop_reason: u32::try_from(drop_reason).unwrap_or_default(),
            drop_reason_desc: drop_reason,
            ip: Some(pb::Ip {
                source: f.source_ip.to_string(),
                destination: f.destination_ip.to_string(),
                ip_version: if f.is_ipv6() {
                    pb::IpVersion::IPv6
                } else {
                    pb::IpVersion::IPv4
                } as i32,
                encrypted: false,
            }),
            l4: f.l4.as_ref().map(layer4),
            source: Some(endpoint(&f.source)),
            destination: Some(endpoint(&f.destination)),
            r#type: if f.kind == EventKind::SockTranslate {
                pb::FlowType::Sock
            } else {
                pb::FlowType::L3L4
            } as i32,
            node_name: f.node_name.to_string(),
            reply: f.is_reply == Some(true),
            is_reply: f.is_reply.map(|value| pbjson_types::BoolValue { value }),
            event_type: Some(pb::CiliumEventType {
                r#type: kind,
                sub_type,
            }),
            destination_service: f.destination_service.as_ref().map(|s| pb::Service {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
            }),
            traffic_direction: f.direction.map_or(0, |d| d.hubble()),
            policy_match_type: u32::from(f.policy_match),
            trace_observation_point: f.observation_point().hubble(),
            interface: (f.ifindex != 0).then_some(pb::NetworkInterface {
                index: f.ifindex,
                name: String::new(),
            }),
            sock_xlate_point: if f.kind == EventKind::SockTranslate {
                pb::SocketTranslationPoint::SockXlatePointPostDirectionFwd as i32
            } else {
                0
            },
            summary: membrane_common::metrics::reason::name(f.reason).to_string(),
            ..pb::Flow::default()
        }
    }
}

impl From<&Lost> for pb::LostEvent {
    fn from(lost: &Lost) -> pb::LostEvent {
        pb::LostEvent {
            source: lost.source.hubble(),
            num_events_lost: lost.count,
            cpu: None,
            first: Some(timestamp(lost.time)),
            last: Some(timestamp(lost.time)),
        }
    }
}

fn invalid(field: &'static str, value: &str, reason: impl ToString) -> FilterError {
    FilterError::Invalid {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn each<T>(
    field: &'static str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, FilterError> {
    values
        .iter()
        .map(|v| parse(v).map_err(|reason| invalid(field, v, reason)))
        .collect()
}

fn ip_or_cidr(text: &str) -> Result<IpNet, String> {
    if text.contains('/') {
        text.parse::<IpNet>().map_err(|e| e.to_string())
    } else {
        text.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|e| e.to_string())
    }
}

fn port(text: &str) -> Result<u16, String> {
    text.parse::<u16>().map_err(|e| e.to_string())
}

fn workloads(ws: &[pb::Workload]) -> Vec<flow::Workload> {
    ws.iter()
        .map(|w| flow::Workload {
            name: w.name.clone(),
            kind: w.kind.clone(),
        })
        .collect()
}

fn flags(f: &pb::TcpFlags) -> TcpFlags {
    let bits = [
        (f.fin, TcpFlags::FIN),
        (f.syn, TcpFlags::SYN),
        (f.rst, TcpFlags::RST),
        (f.psh, TcpFlags::PSH),
        (f.ack, TcpFlags::ACK),
        (f.urg, TcpFlags::URG),
        (f.ece, TcpFlags::ECE),
        (f.cwr, TcpFlags::CWR),
    ];
    TcpFlags(
        bits.iter()
            .filter(|(set, _)| *set)
            .fold(0, |acc, (_, bit)| acc | bit),
    )
}

impl TryFrom<&pb::FlowFilter> for FlowFilter {
    type Error = FilterError;

    fn try_from(f: &pb::FlowFilter) -> Result<FlowFilter, FilterError> {
        if f.experimental
            .as_ref()
            .is_some_and(|e| !e.cel_expression.is_empty())
        {
            return Err(FilterError::Unsupported {
                field: "experimental.cel_expression",
            });
        }
        // A TCPFlags message with only NS set asks for a flag the datapath never
        // reports; it stays an impossible set rather than matching everything.
        let tcp_flags = f
            .tcp_flags
            .iter()
            .map(|t| {
                if t.ns && flags(t).0 == 0 {
                    Err(invalid("tcp_flags", "NS", "the NS flag is not reported"))
                } else {
                    Ok(flags(t))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let absent: [(&'static str, bool); 12] = [
            ("uuid", !f.uuid.is_empty()),
            ("source_ip_xlated", !f.source_ip_xlated.is_empty()),
            ("source_cluster_name", !f.source_cluster_name.is_empty()),
            (
                "destination_cluster_name",
                !f.destination_cluster_name.is_empty(),
            ),
            ("http_status_code", !f.http_status_code.is_empty()),
            ("http_method", !f.http_method.is_empty()),
            ("http_path", !f.http_path.is_empty()),
            ("http_url", !f.http_url.is_empty()),
            ("http_header", !f.http_header.is_empty()),
            ("dns_query", !f.dns_query.is_empty()),
            ("node_labels", !f.node_labels.is_empty()),
            ("trace_id", !f.trace_id.is_empty()),
        ];
        Ok(FlowFilter {
            source_ip: each("source_ip", &f.source_ip, ip_or_cidr)?,
            destination_ip: each("destination_ip", &f.destination_ip, ip_or_cidr)?,
            source_pod: each("source_pod", &f.source_pod, NamePrefix::parse)?,
            destination_pod: each("destination_pod", &f.destination_pod, NamePrefix::parse)?,
            source_service: each("source_service", &f.source_service, NamePrefix::parse)?,
            destination_service: each(
                "destination_service",
                &f.destination_service,
                NamePrefix::parse,
            )?,
            source_label: each("source_label", &f.source_label, Selector::parse)?,
            destination_label: each("destination_label", &f.destination_label, Selector::parse)?,
            source_workload: workloads(&f.source_workload),
            destination_workload: workloads(&f.destination_workload),
            source_identity: f.source_identity.clone(),
            destination_identity: f.destination_identity.clone(),
            source_fqdn: each("source_fqdn", &f.source_fqdn, FqdnPattern::parse)?,
            destination_fqdn: each("destination_fqdn", &f.destination_fqdn, FqdnPattern::parse)?,
            verdict: f.verdict.clone(),
            drop_reason: f.drop_reason_desc.clone(),
            event_type: f
                .event_type
                .iter()
                .map(|t| EventTypeMatch {
                    kind: t.r#type,
                    sub_type: t.match_sub_type.then_some(t.sub_type),
                })
                .collect(),
            protocol: each("protocol", &f.protocol, Protocol::parse)?,
            source_port: each("source_port", &f.source_port, port)?,
            destination_port: each("destination_port", &f.destination_port, port)?,
            reply: f.reply.clone(),
            tcp_flags,
            node_name: each("node_name", &f.node_name, NodeNamePattern::parse)?,
            ip_version: f
                .ip_version
                .iter()
                .map(|v| match pb::IpVersion::try_from(*v) {
                    Ok(pb::IpVersion::IPv4) => Ok(4),
                    Ok(pb::IpVersion::IPv6) => Ok(6),
                    _ => Err(invalid("ip_version", &v.to_string(), "not IPv4 or IPv6")),
                })
                .collect::<Result<_, _>>()?,
            traffic_direction: f.traffic_direction.clone(),
            interface: f.interface.iter().map(|i| i.index).collect(),
            encrypted: f.encrypted.clone(),
            absent_fields: absent
                .into_iter()
                .filter(|(_, set)| *set)
                .map(|(name, _)| name)
                .collect(),
        })
    }
}

impl TryFrom<&super::observer::GetFlowsRequest> for FlowQuery {
    type Error = RequestError;

    /// The field mask (top-level or experimental) and extensions are accepted and
    /// ignored: whole flows are always sent.
    fn try_from(r: &super::observer::GetFlowsRequest) -> Result<FlowQuery, RequestError> {
        if r.first && r.follow {
            return Err(RequestError::FirstWithFollow);
        }
        let time = |field, ts: &Option<Timestamp>| {
            ts.as_ref()
                .map(|ts| system_time(ts).ok_or(RequestError::Timestamp { field }))
                .transpose()
        };
        let filters = |list: &[pb::FlowFilter]| {
            list.iter()
                .map(FlowFilter::try_from)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(FlowQuery {
            number: (r.number != 0).then(|| usize::try_from(r.number).unwrap_or(usize::MAX)),
            first: r.first,
            follow: r.follow,
            filters: FilterSet {
                allow: filters(&r.whitelist)?,
                deny: filters(&r.blacklist)?,
            },
            since: time("since", &r.since)?,
            until: time("until", &r.until)?,
        })
    }
}

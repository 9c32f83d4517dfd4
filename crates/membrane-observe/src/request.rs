//! Building a GetFlows request from the flags Hubble users type (`--pod`, `--from-ip`,
//! `--not --verdict DROPPED`, ...), with Hubble CLI's rules: an undirected flag
//! (`--pod x`) becomes two filters, one on the source and one on the destination, that
//! are alternatives; directed and other flags apply to both; `--namespace` qualifies
//! pod and Service names; `--not` sends the next flag to the deny-list.

use crate::api::flow::{
    EventTypeFilter, FlowFilter, IpVersion, TcpFlags, TrafficDirection, Workload,
};
use crate::flow::{ObservationPoint, Verdict, monitor_type};

/// A flag that cannot be turned into a filter.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The value does not parse.
    #[error("invalid --{flag} value {value:?}: {reason}")]
    Value {
        /// The flag.
        flag: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// `--not` twice in a row, or last.
    #[error("--not must be followed by exactly one filter flag")]
    DanglingNot,
    /// Not a filter flag.
    #[error("--{flag} is not a filter flag")]
    Unknown {
        /// The flag.
        flag: String,
    },
}

/// One side (allow or deny) being built.
#[derive(Default)]
struct Tracker {
    left: Option<FlowFilter>,
    right: Option<FlowFilter>,
    namespaces: Vec<String>,
    from_namespaces: Vec<String>,
    to_namespaces: Vec<String>,
}

impl Tracker {
    fn both(&mut self, update: impl Fn(&mut FlowFilter)) {
        update(self.left.get_or_insert_with(FlowFilter::default));
        update(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn split(&mut self, left: impl FnOnce(&mut FlowFilter), right: impl FnOnce(&mut FlowFilter)) {
        left(self.left.get_or_insert_with(FlowFilter::default));
        right(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn filters(mut self) -> Vec<FlowFilter> {
        let no_namespaces = self.namespaces.is_empty()
            && self.from_namespaces.is_empty()
            && self.to_namespaces.is_empty();
        if self.left.is_none() && self.right.is_none() && no_namespaces {
            return Vec::new();
        }
        let mut left = self.left.take().unwrap_or_default();
        let mut right = self.right.take().unwrap_or_default();
        for f in [&mut left, &mut right] {
            qualify_destination(f, &self.to_namespaces);
            qualify_source(f, &self.from_namespaces);
        }
        qualify_source(&mut left, &self.namespaces);
        qualify_destination(&mut right, &self.namespaces);
        if left == right {
            vec![left]
        } else {
            vec![left, right]
        }
    }
}

fn with_namespaces(names: &[String], namespaces: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|name| {
            if name.contains('/') {
                vec![name.clone()]
            } else {
                namespaces.iter().map(|ns| format!("{ns}/{name}")).collect()
            }
        })
        .collect()
}

fn qualify_source(f: &mut FlowFilter, namespaces: &[String]) {
    if namespaces.is_empty() {
        return;
    }
    if f.source_pod.is_empty() && f.source_service.is_empty() {
        f.source_pod = vec![String::new()];
    }
    f.source_pod = with_namespaces(&f.source_pod, namespaces);
    f.source_service = with_namespaces(&f.source_service, namespaces);
}

fn qualify_destination(f: &mut FlowFilter, namespaces: &[String]) {
    if namespaces.is_empty() {
        return;
    }
    if f.destination_pod.is_empty() && f.destination_service.is_empty() {
        f.destination_pod = vec![String::new()];
    }
    f.destination_pod = with_namespaces(&f.destination_pod, namespaces);
    f.destination_service = with_namespaces(&f.destination_service, namespaces);
}

/// Accumulates filter flags in the order they were given.
#[derive(Default)]
pub struct FilterFlags {
    allow: Tracker,
    deny: Tracker,
    negate_next: bool,
}

fn value_error(flag: &str, value: &str, reason: impl ToString) -> FlagError {
    FlagError::Value {
        flag: flag.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn tcp_flags(flag: &str, value: &str) -> Result<TcpFlags, FlagError> {
    let mut flags = TcpFlags::default();
    for name in value.split(',') {
        match name.to_ascii_uppercase().as_str() {
            "SYN" => flags.syn = true,
            "FIN" => flags.fin = true,
            "RST" => flags.rst = true,
            "PSH" => flags.psh = true,
            "ACK" => flags.ack = true,
            "URG" => flags.urg = true,
            "ECE" => flags.ece = true,
            "CWR" => flags.cwr = true,
            "NS" => flags.ns = true,
            _ => return Err(value_error(flag, value, format!("unknown TCP flag {name}"))),
        }
    }
    Ok(flags)
}

fn event_type(flag: &str, value: &str) -> Result<EventTypeFilter, FlagError> {
    let (kind, sub) = match value.split_once(':') {
        Some((kind, sub)) => (kind, Some(sub)),
        None => (value, None),
    };
    let kind = monitor_type::from_name(kind)
        .or_else(|| kind.parse().ok())
        .ok_or_else(|| value_error(flag, value, "not a known type name or number"))?;
    let sub_type = match sub {
        None => None,
        Some(sub) => Some(
            (kind == monitor_type::TRACE)
                .then(|| ObservationPoint::monitor_subtype_of(sub))
                .flatten()
                .or_else(|| sub.parse().ok())
                .ok_or_else(|| value_error(flag, value, "not a known sub-type name or number"))?,
        ),
    };
    Ok(EventTypeFilter {
        r#type: kind,
        match_sub_type: sub_type.is_some(),
        sub_type: sub_type.unwrap_or_default(),
    })
}

fn identity(flag: &str, value: &str) -> Result<u32, FlagError> {
    use membrane_common::identity::*;
    Ok(match value {
        "host" => HOST,
        "world" => WORLD,
        "unmanaged" => UNMANAGED,
        "health" => HEALTH,
        "init" => INIT,
        "remote-node" => REMOTE_NODE,
        "kube-apiserver" => KUBE_APISERVER,
        "ingress" => INGRESS,
        _ => value
            .parse()
            .map_err(|_| value_error(flag, value, "not a reserved identity name or a number"))?,
    })
}

fn workload(value: &str) -> Workload {
    match value.split_once('/') {
        Some((kind, name)) => Workload {
            kind: kind.to_string(),
            name: name.to_string(),
        },
        None => Workload {
            kind: String::new(),
            name: value.to_string(),
        },
    }
}

impl FilterFlags {
    /// Empty: every flow passes.
    pub fn new() -> FilterFlags {
        FilterFlags::default()
    }

    /// `--not`: the next flag goes to the deny-list.
    pub fn not(&mut self) -> Result<(), FlagError> {
        if self.negate_next {
            return Err(FlagError::DanglingNot);
        }
        self.negate_next = true;
        Ok(())
    }

    /// Adds one filter flag (`flag` without dashes, as `from-pod`).
    pub fn add(&mut self, flag: &str, value: &str) -> Result<(), FlagError> {
        let t = if std::mem::take(&mut self.negate_next) {
            &mut self.deny
        } else {
            &mut self.allow
        };
        let v = value.to_string();
        match flag {
            "pod" => t.split(
                |f| f.source_pod.push(v.clone()),
                |f| f.destination_pod.push(v.clone()),
            ),
            "from-pod" => t.both(|f| f.source_pod.push(v.clone())),
            "to-pod" => t.both(|f| f.destination_pod.push(v.clone())),
            "namespace" => t.namespaces.push(v),
            "from-namespace" => t.from_namespaces.push(v),
            "to-namespace" => t.to_namespaces.push(v),
            "ip" => t.split(
                |f| f.source_ip.push(v.clone()),
                |f| f.destination_ip.push(v.clone()),
            ),
            "from-ip" => t.both(|f| f.source_ip.push(v.clone())),
            "to-ip" => t.both(|f| f.destination_ip.push(v.clone())),
            "label" => t.split(
                |f| f.source_label.push(v.clone()),
                |f| f.destination_label.push(v.clone()),
            ),
            "from-label" => t.both(|f| f.source_label.push(v.clone())),
            "to-label" => t.both(|f| f.destination_label.push(v.clone())),
            "service" => t.split(
                |f| f.source_service.push(v.clone()),
                |f| f.destination_service.push(v.clone()),
            ),
            "from-service" => t.both(|f| f.source_service.push(v.clone())),
            "to-service" => t.both(|f| f.destination_service.push(v.clone())),
            "fqdn" => t.split(
                |f| f.source_fqdn.push(v.clone()),
                |f| f.destination_fqdn.push(v.clone()),
            ),
            "from-fqdn" => t.both(|f| f.source_fqdn.push(v.clone())),
            "to-fqdn" => t.both(|f| f.destination_fqdn.push(v.clone())),
            "port" => t.split(
                |f| f.source_port.push(v.clone()),
                |f| f.destination_port.push(v.clone()),
            ),
            "from-port" => t.both(|f| f.source_port.push(v.clone())),
            "to-port" => t.both(|f| f.destination_port.push(v.clone())),
            "identity" => {
                let id = identity(flag, value)?;
                t.split(
                    |f| f.source_identity.push(id),
                    |f| f.destination_identity.push(id),
                );
            }
            "from-identity" => {
                let id = identity(flag, value)?;
                t.both(|f| f.source_identity.push(id));
            }
            "to-identity" => {
                let id = identity(flag, value)?;
                t.both(|f| f.destination_identity.push(id));
            }
            "workload" => t.split(
                |f| f.source_workload.push(workload(value)),
                |f| f.destination_workload.push(workload(value)),
            ),
            "from-workload" => t.both(|f| f.source_workload.push(workload(value))),
            "to-workload" => t.both(|f| f.destination_workload.push(workload(value))),
            "verdict" => {
                let verdict = Verdict::ALL
                    .into_iter()
                    .find(|v| v.name() == value)
                    .ok_or_else(|| {
                        value_error(flag, value, "not a verdict (FORWARDED, DROPPED, ...)")
                    })?;
                t.both(|f| f.verdict.push(verdict.hubble()));
            }
            "type" => {
                let filter = event_type(flag, value)?;
                t.both(|f| f.event_type.push(filter));
            }
            "protocol" => t.both(|f| f.protocol.push(v.clone())),
            "tcp-flags" => {
                let flags = tcp_flags(flag, value)?;
                t.both(|f| f.tcp_flags.push(flags));
            }
            "node-name" => t.both(|f| f.node_name.push(v.clone())),
            "ip-version" => {
                let version = match value.to_ascii_lowercase().as_str() {
                    "4" | "v4" | "ipv4" | "ip4" => IpVersion::IPv4,
                    "6" | "v6" | "ipv6" | "ip6" => IpVersion::IPv6,
                    _ => return Err(value_error(flag, value, "expected 4 or 6")),
                };
                t.both(|f| f.ip_version.push(version as i32));
            }
            "traffic-direction" => {
                let direction = match value.to_ascii_lowercase().as_str() {
                    "ingress" => TrafficDirection::Ingress,
                    "egress" => TrafficDirection::Egress,
                    _ => return Err(value_error(flag, value, "expected ingress or egress")),
                };
                t.both(|f| f.traffic_direction.push(direction as i32));
            }
            _ => {
                return Err(FlagError::Unknown {
                    flag: flag.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The allow-list and the deny-list.
    pub fn finish(self) -> Result<(Vec<FlowFilter>, Vec<FlowFilter>), FlagError> {
        if self.negate_next {
            return Err(FlagError::DanglingNot);
        }
        Ok((self.allow.filters(), self.deny.filters()))
    }
}

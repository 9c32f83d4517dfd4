//! One table and one list of records per map.

use crate::output::Table;
use membrane_common::ct::{CtEntry, ct_flags};
use membrane_common::lb::{backend_flags, scope, service_flags};
use membrane_common::metrics::direction;
use membrane_common::policy::policy_action;
use membrane_common::{endpoint::endpoint_flags, tuple::proto};
use membrane_datapath::{
    BackendEntry, EndpointRow, IpcacheRow, NatMapping, PolicyRow, ServiceSlot, Tuple,
};
use serde_json::{Value, json};

/// A map's rows, as a table for people and records for JSON and YAML.
pub struct Dump {
    /// The table.
    pub table: Table,
    /// The same rows as records.
    pub records: Vec<Value>,
}

impl Dump {
    fn new(headers: &[&'static str]) -> Dump {
        Dump {
            table: Table::new(headers),
            records: Vec::new(),
        }
    }

    fn push(&mut self, cells: Vec<String>, record: Value) {
        self.table.push(cells);
        self.records.push(record);
    }
}

/// `TCP`, `UDP`, `ICMP`, `ICMPv6`, `any` or the number.
pub fn protocol(number: u8) -> String {
    match number {
        0 => "any".into(),
        proto::TCP => "TCP".into(),
        proto::UDP => "UDP".into(),
        proto::ICMP => "ICMP".into(),
        proto::ICMPV6 => "ICMPv6".into(),
        other => other.to_string(),
    }
}

fn flag_names(bits: u32, names: &[(u32, &'static str)]) -> Vec<&'static str> {
    names
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

fn joined(names: &[&str]) -> String {
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

fn endpoint(address: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

/// The services map: one row per slot.
pub fn services(slots: &[ServiceSlot]) -> Dump {
    let mut dump = Dump::new(&[
        "FRONTEND", "PROTO", "SCOPE", "SLOT", "BACKEND", "COUNT", "REV-NAT", "FLAGS",
    ]);
    for s in slots {
        let v = &s.value;
        let flags = flag_names(
            u32::from(v.flags),
            &[
                (u32::from(service_flags::AFFINITY), "affinity"),
                (u32::from(service_flags::MAGLEV), "maglev"),
                (u32::from(service_flags::EXTERNAL), "external"),
                (u32::from(service_flags::TWO_SCOPES), "two-scopes"),
                (u32::from(service_flags::NODEPORT), "nodeport"),
            ],
        );
        let scope = if s.scope == scope::INTERNAL {
            "internal"
        } else {
            "external"
        };
        let frontend = endpoint(s.address, s.port);
        let (backend, count) = if s.slot == 0 {
            (
                "-".to_string(),
                format!("{} (+{} terminating)", v.count, v.terminating),
            )
        } else {
            (v.backend_id.to_string(), "-".to_string())
        };
        dump.push(
            vec![
                frontend.clone(),
                protocol(s.proto),
                scope.into(),
                s.slot.to_string(),
                backend,
                count,
                v.rev_nat_index.to_string(),
                joined(&flags),
            ],
            json!({
                "frontend": frontend, "protocol": protocol(s.proto), "scope": scope,
                "slot": s.slot, "backendId": v.backend_id, "count": v.count,
                "terminating": v.terminating, "revNatIndex": v.rev_nat_index,
                "affinityTimeoutSeconds": v.affinity_timeout_s, "flags": flags,
            }),
        );
    }
    dump
}

/// The backends map.
pub fn backends(backends: &[BackendEntry]) -> Dump {
    let mut dump = Dump::new(&["ID", "ADDRESS", "PROTO", "FLAGS"]);
    for b in backends {
        let flags = flag_names(
            u32::from(b.flags),
            &[
                (u32::from(backend_flags::TERMINATING), "terminating"),
                (u32::from(backend_flags::LOCAL), "local"),
            ],
        );
        let address = endpoint(b.address, b.port);
        dump.push(
            vec![
                b.id.to_string(),
                address.clone(),
                protocol(b.proto),
                joined(&flags),
            ],
            json!({"id": b.id, "address": address, "protocol": protocol(b.proto), "flags": flags}),
        );
    }
    dump
}

fn tuple_record(t: &Tuple) -> Value {
    json!({
        "source": endpoint(t.src, t.sport), "destination": endpoint(t.dst, t.dport),
        "protocol": protocol(t.proto),
    })
}

/// The conntrack map.
pub fn conntrack(entries: &[(Tuple, CtEntry)]) -> Dump {
    let mut dump = Dump::new(&[
        "PROTO",
        "SOURCE",
        "DESTINATION",
        "STATE",
        "PACKETS",
        "BYTES",
        "IDENTITY",
        "REV-NAT",
    ]);
    for (t, e) in entries {
        let state = flag_names(
            e.flags,
            &[
                (ct_flags::SYN_FWD, "syn"),
                (ct_flags::SYN_REV, "syn-ack"),
                (ct_flags::ESTABLISHED, "established"),
                (ct_flags::FIN_FWD, "fin"),
                (ct_flags::FIN_REV, "fin-reply"),
                (ct_flags::RST, "rst"),
                (ct_flags::SNAT, "snat"),
                (ct_flags::SERVICE, "service"),
            ],
        );
        let mut record = tuple_record(t);
        record["state"] = json!(state);
        record["packets"] = json!({"forward": e.packets_fwd, "reply": e.packets_rev});
        record["bytes"] = json!({"forward": e.bytes_fwd, "reply": e.bytes_rev});
        record["sourceIdentity"] = json!(e.src_identity);
        record["revNatIndex"] = json!(e.rev_nat_index);
        record["backendId"] = json!(e.backend_id);
        dump.push(
            vec![
                protocol(t.proto),
                endpoint(t.src, t.sport),
                endpoint(t.dst, t.dport),
                joined(&state),
                format!("{}/{}", e.packets_fwd, e.packets_rev),
                format!("{}/{}", e.bytes_fwd, e.bytes_rev),
                e.src_identity.to_string(),
                e.rev_nat_index.to_string(),
            ],
            record,
        );
    }
    dump
}

/// The NAT map.
pub fn nat(mappings: &[NatMapping]) -> Dump {
    let mut dump = Dump::new(&["PROTO", "SOURCE", "DESTINATION", "TRANSLATED-TO"]);
    for m in mappings {
        let to = endpoint(m.to, m.to_port);
        let mut record = tuple_record(&m.tuple);
        record["translatedTo"] = json!(to);
        dump.push(
            vec![
                protocol(m.tuple.proto),
                endpoint(m.tuple.src, m.tuple.sport),
                endpoint(m.tuple.dst, m.tuple.dport),
                to,
            ],
            record,
        );
    }
    dump
}

/// The ipcache.
pub fn ipcache(rows: &[IpcacheRow]) -> Dump {
    let mut dump = Dump::new(&["PREFIX", "IDENTITY", "NODE"]);
    for r in rows {
        let node = r
            .node
            .map_or_else(|| "local".to_string(), |n| n.to_string());
        dump.push(
            vec![r.prefix.to_string(), r.identity.to_string(), node],
            json!({"prefix": r.prefix.to_string(), "identity": r.identity, "node": r.node.map(|n| n.to_string())}),
        );
    }
    dump
}

/// The policy map.
pub fn policy(rows: &[PolicyRow]) -> Dump {
    let mut dump = Dump::new(&[
        "ENDPOINT",
        "DIRECTION",
        "IDENTITY",
        "PROTO",
        "PORTS",
        "ACTION",
        "RULE",
    ]);
    for r in rows {
        let direction = if r.direction == direction::EGRESS {
            "egress"
        } else {
            "ingress"
        };
        let action = match r.entry.action {
            policy_action::ALLOW => "allow".to_string(),
            policy_action::DENY => "deny".to_string(),
            other => other.to_string(),
        };
        let identity = if r.identity == 0 {
            "any".to_string()
        } else {
            r.identity.to_string()
        };
        let ports = match (*r.ports.start(), *r.ports.end()) {
            (0, u16::MAX) => "any".to_string(),
            (a, b) if a == b => a.to_string(),
            (a, b) => format!("{a}-{b}"),
        };
        dump.push(
            vec![
                r.endpoint_id.to_string(),
                direction.into(),
                identity.clone(),
                protocol(r.proto),
                ports.clone(),
                action.clone(),
                r.entry.rule_id.to_string(),
            ],
            json!({
                "endpointId": r.endpoint_id, "direction": direction, "identity": identity,
                "protocol": protocol(r.proto), "ports": ports, "action": action,
                "ruleId": r.entry.rule_id, "proxyPort": r.entry.proxy_port,
            }),
        );
    }
    dump
}

/// The endpoints map.
pub fn endpoints(rows: &[EndpointRow]) -> Dump {
    let mut dump = Dump::new(&["ADDRESS", "ID", "IDENTITY", "IFINDEX", "FLAGS"]);
    for r in rows {
        let i = &r.info;
        let flags = flag_names(
            u32::from(i.flags),
            &[
                (u32::from(endpoint_flags::TERMINATING), "terminating"),
                (
                    u32::from(endpoint_flags::INGRESS_ENFORCED),
                    "ingress-enforced",
                ),
                (
                    u32::from(endpoint_flags::EGRESS_ENFORCED),
                    "egress-enforced",
                ),
                (u32::from(endpoint_flags::POLICY_AUDIT), "audit"),
            ],
        );
        dump.push(
            vec![
                r.address.to_string(),
                i.endpoint_id.to_string(),
                i.identity.to_string(),
                i.ifindex.to_string(),
                joined(&flags),
            ],
            json!({
                "address": r.address.to_string(), "endpointId": i.endpoint_id,
                "identity": i.identity, "ifindex": i.ifindex, "flags": flags,
            }),
        );
    }
    dump
}

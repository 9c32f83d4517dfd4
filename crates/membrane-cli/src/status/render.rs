//! The status as aligned lines for people, one per component, `Ok` or what is wrong.

use super::gather::{Part, Report};
use membrane_api::PoolStatus;
use std::io::{self, Write};

const WIDTH: usize = 23;

fn line(out: &mut impl Write, label: &str, text: &str) -> io::Result<()> {
    writeln!(out, "{:<WIDTH$}{text}", format!("{label}:"))
}

fn part<T>(part: &Part<T>, show: impl FnOnce(&T) -> String) -> String {
    match (&part.found, &part.error) {
        (Some(found), _) => show(found),
        (None, Some(error)) => format!("Error: {error}"),
        (None, None) => "unknown".into(),
    }
}

fn pool(pool: Option<&PoolStatus>) -> String {
    match pool {
        Some(p) => format!("{}, {} used, {} free", p.cidr, p.used, p.free),
        None => "not configured".to_string(),
    }
}

/// Writes the status, one line per component and a map pressure table.
pub fn summary(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let agent = &report.agent;
    line(out, "Node", &agent.node)?;
    let health = if agent.healthy {
        format!("Ok (socket {})", report.socket)
    } else {
        "Not healthy: datapath not loaded or not serving (its log says why)".into()
    };
    line(out, "Agent", &health)?;
    line(
        out,
        "KVStore",
        &part(&report.kvstore, |k| match (&k.reachable, &k.error) {
            (true, _) => format!("Ok {}", k.backend),
            (false, error) => format!(
                "Unreachable {}: {}",
                k.backend,
                error.as_deref().unwrap_or("no answer")
            ),
        }),
    )?;
    line(
        out,
        "Datapath",
        &part(&report.datapath, |d| {
            format!("Ok eBPF, {} pinned links in {}", d.links.len(), d.pin_dir)
        }),
    )?;
    line(
        out,
        "Routing",
        &part(&report.datapath, |d| match d.routing_mode {
            "tunnel" => "Tunnel (VXLAN, sender identity in the VNI)".to_string(),
            _ => "Native (routes per node pod CIDR)".to_string(),
        }),
    )?;
    line(
        out,
        "Masquerading",
        &part(&report.datapath, |d| {
            if d.masquerade.is_empty() {
                "Disabled".to_string()
            } else {
                format!(
                    "eBPF [{}], NAT ports {}",
                    d.masquerade.join(", "),
                    d.nat_ports
                )
            }
        }),
    )?;
    line(
        out,
        "KubeProxyReplacement",
        &part(&report.services, |s| {
            let kinds: Vec<String> = s
                .frontends
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            let algorithms: Vec<String> = s
                .algorithms
                .iter()
                .map(|(a, n)| format!("{a} {n}"))
                .collect();
            let total: usize = s.frontends.values().sum();
            format!(
                "True: socket LB {}, per-packet LB on, XDP acceleration {}, frontends {total} ({}), programmed {}/{total}, backend selection [{}]{}",
                if s.socket_lb { "on" } else { "off" },
                s.xdp.as_deref().unwrap_or("off"),
                if kinds.is_empty() {
                    "none".into()
                } else {
                    kinds.join(", ")
                },
                s.programmed,
                if algorithms.is_empty() {
                    "none".into()
                } else {
                    algorithms.join(", ")
                },
                if s.failed.is_empty() {
                    String::new()
                } else {
                    format!("; NOT programmed: {}", s.failed.join("; "))
                }
            )
        }),
    )?;
    line(
        out,
        "Observer",
        &part(&report.observer, |o| {
            format!(
                "Ok {}/{} flows held, {} seen ({})",
                o.flows, o.max_flows, o.seen_flows, o.socket
            )
        }),
    )?;
    line(out, "Endpoints", &agent.endpoints.to_string())?;
    line(
        out,
        "Nodes",
        &part(&report.nodes, |n| format!("{} ({})", n.len(), n.join(", "))),
    )?;
    line(
        out,
        "Identities",
        &part(&report.identities, |n| match n {
            Some(n) => n.to_string(),
            None => "not listed by this agent".into(),
        }),
    )?;
    line(
        out,
        "Policies",
        &part(&report.policies, |p| {
            let total: usize = p.values().sum();
            let kinds: Vec<String> = p.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("{total} ({})", kinds.join(", "))
        }),
    )?;
    line(out, "IPAM IPv4", &pool(agent.ipv4_pool.as_ref()))?;
    line(out, "IPAM IPv6", &pool(agent.ipv6_pool.as_ref()))?;
    if let Some(datapath) = &report.datapath.found {
        writeln!(out, "Map pressure:")?;
        for p in &datapath.map_pressure {
            let percent = if p.capacity == 0 {
                0.0
            } else {
                p.entries as f64 * 100.0 / p.capacity as f64
            };
            writeln!(
                out,
                "  {:<12}{:>9} / {:<9} {percent:>5.1}%",
                p.map, p.entries, p.capacity
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::gather::{Datapath, Pressure, Services};
    use membrane_api::{AgentStatus, KvstoreStatus};
    use std::collections::BTreeMap;

    fn found<T>(value: T) -> Part<T> {
        Part {
            found: Some(value),
            error: None,
        }
    }

    fn failed<T>(error: &str) -> Part<T> {
        Part {
            found: None,
            error: Some(error.into()),
        }
    }

    #[test]
    fn each_component_gets_a_line_saying_ok_or_why_not_and_maps_their_pressure() {
        let report = Report {
            socket: "/run/a.sock".into(),
            agent: AgentStatus {
                node: "node-1".into(),
                healthy: true,
                endpoints: 3,
                ipv4_pool: Some(PoolStatus {
                    cidr: "10.200.1.0/24".into(),
                    used: 3,
                    free: 251,
                }),
                ipv6_pool: None,
            },
            kvstore: found(KvstoreStatus {
                backend: "etcd at http://e:2379".into(),
                reachable: false,
                error: Some("etcd is unavailable".into()),
            }),
            datapath: found(Datapath {
                pin_dir: "/sys/fs/bpf/membrane/node-1".into(),
                routing_mode: "native",
                masquerade: vec!["IPv4"],
                nat_ports: "49152-65535".into(),
                maglev_table_size: 16381,
                links: vec!["a".into(), "b".into()],
                map_pressure: vec![Pressure {
                    map: "conntrack",
                    entries: 1000,
                    capacity: 4000,
                }],
            }),
            services: found(Services {
                frontends: BTreeMap::from([("ClusterIP".into(), 2), ("NodePort".into(), 1)]),
                programmed: 2,
                failed: vec!["shop/web 10.96.0.1:80: map full".into()],
                algorithms: BTreeMap::from([("random".into(), 3)]),
                socket_lb: false,
                xdp: Some("generic on uplink0".into()),
            }),
            observer: failed("cannot reach the Observer at /run/o.sock"),
            nodes: found(vec!["node-1".into(), "node-2".into()]),
            identities: found(None),
            policies: found(BTreeMap::from([("NetworkPolicy".into(), 1)])),
        };
        let mut out = Vec::new();
        summary(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        for expected in [
            "Agent:                 Ok (socket /run/a.sock)\n",
            "KVStore:               Unreachable etcd at http://e:2379: etcd is unavailable\n",
            "Datapath:              Ok eBPF, 2 pinned links in /sys/fs/bpf/membrane/node-1\n",
            "Routing:               Native (routes per node pod CIDR)\n",
            "Masquerading:          eBPF [IPv4], NAT ports 49152-65535\n",
            "KubeProxyReplacement:  True: socket LB off, per-packet LB on, XDP acceleration generic on uplink0, frontends 3 (ClusterIP 2, NodePort 1), programmed 2/3, backend selection [random 3]; NOT programmed: shop/web 10.96.0.1:80: map full\n",
            "Observer:              Error: cannot reach the Observer at /run/o.sock\n",
            "Nodes:                 2 (node-1, node-2)\n",
            "Identities:            not listed by this agent\n",
            "IPAM IPv6:             not configured\n",
            "  conntrack        1000 / 4000       25.0%\n",
        ] {
            assert!(text.contains(expected), "no {expected:?} in:\n{text}");
        }
        assert_eq!(report.failing(), ["kvstore", "observer", "services"]);
    }
}

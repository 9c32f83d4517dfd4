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
                "True: socket LB {}, per-packet LB on, frontends {total} ({}), programmed {}/{total}, backend selection [{}]{}",
                if s.socket_lb { "on" } else { "off" },
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

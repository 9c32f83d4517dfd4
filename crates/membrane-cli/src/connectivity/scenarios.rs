//! The probes each scenario makes, built from the probe pods found; a scenario with
//! nothing to probe in this cluster is skipped with the reason.

use super::cluster::{ProbeClient, Probes};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Scenario names, in the order they run.
pub const SAME_NODE: &str = "pod-to-pod/same-node";
/// Pod to pod on different nodes.
pub const CROSS_NODE: &str = "pod-to-pod/cross-node";
/// Pod to a Service's cluster IP.
pub const CLUSTER_IP: &str = "pod-to-service/cluster-ip";
/// Pod to a Service's NodePort on a node address.
pub const NODE_PORT: &str = "pod-to-service/node-port";
/// Pod to an address outside the cluster.
pub const WORLD: &str = "pod-to-world";
/// A port a policy allows.
pub const POLICY_ALLOW: &str = "policy/allow";
/// A port a policy leaves out, refused.
pub const POLICY_REFUSE: &str = "policy/refuse";

/// One connection to try.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The scenario it belongs to.
    pub scenario: &'static str,
    /// `client -> what` for the report.
    pub description: String,
    /// The client's network namespace.
    pub netns: PathBuf,
    /// Where to connect.
    pub target: SocketAddr,
}

/// A scenario with nothing to probe, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// The scenario.
    pub scenario: &'static str,
    /// Why.
    pub reason: String,
}

fn probe(scenario: &'static str, client: &ProbeClient, what: String, target: SocketAddr) -> Probe {
    Probe {
        scenario,
        description: format!("{} -> {what} {target}", client.name),
        netns: client.netns.clone(),
        target,
    }
}

/// The probes of every scenario but the policy ones, and the scenarios skipped.
pub fn plan(probes: &Probes, external: Option<SocketAddr>) -> (Vec<Probe>, Vec<Skipped>) {
    let mut planned = Vec::new();
    for client in &probes.clients {
        for server in &probes.servers {
            let Some(&port) = server.tcp_ports.first() else {
                continue;
            };
            let scenario = match &server.node {
                Some(node) if *node == client.node => SAME_NODE,
                _ => CROSS_NODE,
            };
            for &address in &server.addresses {
                planned.push(probe(
                    scenario,
                    client,
                    server.name.clone(),
                    SocketAddr::new(address, port),
                ));
            }
        }
        for frontend in &probes.frontends {
            for &ip in &frontend.cluster_ips {
                planned.push(probe(
                    CLUSTER_IP,
                    client,
                    format!("Service {}", frontend.service),
                    SocketAddr::new(ip, frontend.port),
                ));
            }
            let Some(node_port) = frontend.node_port else {
                continue;
            };
            // A NodePort answers on the node addresses of the Service's families.
            let families: Vec<bool> = frontend.cluster_ips.iter().map(IpAddr::is_ipv4).collect();
            for node in &probes.nodes {
                for &address in node
                    .addresses
                    .iter()
                    .filter(|a| families.contains(&a.is_ipv4()))
                {
                    planned.push(probe(
                        NODE_PORT,
                        client,
                        format!(
                            "Service {} NodePort on node {}",
                            frontend.service, node.name
                        ),
                        SocketAddr::new(address, node_port),
                    ));
                }
            }
        }
        if let Some(target) = external {
            planned.push(probe(WORLD, client, "outside".into(), target));
        }
    }
    let mut skipped = Vec::new();
    let has = |scenario| planned.iter().any(|p: &Probe| p.scenario == scenario);
    let reasons = [
        (SAME_NODE, "no server runs on a client's node".to_string()),
        (
            CROSS_NODE,
            "no server runs on another node than a client".to_string(),
        ),
        (CLUSTER_IP, "no Service selects a server".to_string()),
        (
            NODE_PORT,
            "no NodePort Service selects a server".to_string(),
        ),
        (WORLD, "no --external-target given".to_string()),
    ];
    for (scenario, reason) in reasons {
        if !has(scenario) {
            skipped.push(Skipped { scenario, reason });
        }
    }
    (planned, skipped)
}

/// The client and server of the policy scenarios: a server with two TCP ports (the
/// first allowed, the second refused) on an address of the client's family.
pub fn policy_pair(probes: &Probes) -> Option<(ProbeClient, String, IpAddr, u16, u16)> {
    let client = probes.clients.first()?;
    probes.servers.iter().find_map(|server| {
        let (&allowed, &refused) = (server.tcp_ports.first()?, server.tcp_ports.get(1)?);
        let address = *server.addresses.first()?;
        Some((
            client.clone(),
            server.name.clone(),
            address,
            allowed,
            refused,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectivity::cluster::{Frontend, Server};
    use membrane_api::NodeInfo;

    fn node(name: &str, addresses: &[&str]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            ipv4_pod_cidr: None,
            ipv6_pod_cidr: None,
        }
    }

    #[test]
    fn servers_split_by_node_nodeports_follow_the_service_families_and_gaps_are_skipped() {
        let probes = Probes {
            clients: vec![ProbeClient {
                name: "p/client".into(),
                node: "a".into(),
                netns: "/run/netns/x".into(),
            }],
            unreachable_clients: vec![],
            servers: vec![
                Server {
                    name: "p/near".into(),
                    node: Some("a".into()),
                    addresses: vec!["10.0.1.2".parse().unwrap()],
                    tcp_ports: vec![7000, 8080],
                },
                Server {
                    name: "p/far".into(),
                    node: Some("b".into()),
                    addresses: vec!["10.0.2.2".parse().unwrap()],
                    tcp_ports: vec![7000],
                },
            ],
            frontends: vec![Frontend {
                service: "p/echo".into(),
                cluster_ips: vec!["10.96.0.1".parse().unwrap()],
                port: 7000,
                node_port: Some(30700),
            }],
            nodes: vec![
                node("a", &["192.0.2.1", "fd00::1"]),
                node("b", &["192.0.2.2"]),
            ],
        };
        let (planned, skipped) = plan(&probes, None);
        let seen: Vec<(&str, String)> = planned
            .iter()
            .map(|p| (p.scenario, p.target.to_string()))
            .collect();
        assert_eq!(
            seen,
            [
                (SAME_NODE, "10.0.1.2:7000".to_string()),
                (CROSS_NODE, "10.0.2.2:7000".to_string()),
                (CLUSTER_IP, "10.96.0.1:7000".to_string()),
                (NODE_PORT, "192.0.2.1:30700".to_string()),
                (NODE_PORT, "192.0.2.2:30700".to_string()),
            ]
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].scenario, WORLD);
        let (_, server, _, allowed, refused) = policy_pair(&probes).unwrap();
        assert_eq!((server.as_str(), allowed, refused), ("p/near", 7000, 8080));
    }
}

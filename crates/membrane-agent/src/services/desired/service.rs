//! The frontends of one Service: every cluster IP, NodePort, LoadBalancer ingress
//! address and external IP, for every port, with the backends each scope may use.
//!
//! Traffic policies follow Cilium: a cluster IP uses the internal policy only; an
//! external frontend (NodePort, LoadBalancer, external IP) lists the backends the
//! external policy allows, and when the two policies differ it gets a second,
//! internal-scope entry (TWO_SCOPES) that pods and the node use instead.

use super::endpoints::{self, PortBackends};
use super::{Builder, NodeContext, Policy};
use crate::services::config::LbAlgorithm;
use crate::services::model::{
    Backends, DesiredFrontend, FrontendAddr, FrontendKind, Owner, Protocol,
};
use membrane_common::lb::service_flags;
use membrane_model::k8s::api::core::v1::{Service, ServicePort, ServiceSpec};
use membrane_model::k8s::api::discovery::v1::EndpointSlice;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Cilium's annotation choosing a Service's backend selection.
pub const LB_ALGORITHM_ANNOTATION: &str = "service.cilium.io/lb-algorithm";

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10800;

/// What every frontend of one Service shares.
struct Shape {
    owner: Owner,
    /// AFFINITY and MAGLEV bits.
    flags: u16,
    affinity_timeout_s: u32,
    internal_local: bool,
    external_local: bool,
}

impl Shape {
    /// The frontend of `kind` at `addr`, with the backends of `found` of its family
    /// that each scope's traffic policy allows.
    fn frontend(&self, kind: FrontendKind, addr: IpAddr, found: &PortBackends) -> DesiredFrontend {
        let scope = |local_only: bool| -> Backends {
            found.backends.filtered(|b| {
                b.addr.is_ipv4() == addr.is_ipv4() && (!local_only || found.is_local(b))
            })
        };
        let mut flags = self.flags;
        let (backends, internal) = if kind == FrontendKind::ClusterIp {
            (scope(self.internal_local), None)
        } else {
            flags |= service_flags::EXTERNAL;
            if kind == FrontendKind::NodePort {
                flags |= service_flags::NODEPORT;
            }
            let internal = (self.internal_local != self.external_local).then(|| {
                flags |= service_flags::TWO_SCOPES;
                scope(self.internal_local)
            });
            (scope(self.external_local), internal)
        };
        DesiredFrontend {
            owner: self.owner.clone(),
            kind,
            flags,
            affinity_timeout_s: self.affinity_timeout_s,
            backends,
            internal,
        }
    }
}

/// Adds the frontends of `service` (whose EndpointSlices are `slices`) to `out`.
pub(super) fn frontends(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &NodeContext,
    policy: &Policy,
    out: &mut Builder,
) {
    let owner = Owner {
        kind: "Service",
        namespace: service
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: service.metadata.name.clone().unwrap_or_default(),
    };
    let Some(spec) = &service.spec else { return };
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if service_type == "ExternalName" {
        return;
    }
    let mut problems = Vec::new();
    let shape = Shape {
        flags: affinity_flag(spec) | algorithm_flag(service, policy, &mut problems),
        affinity_timeout_s: affinity_timeout(spec),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
        owner: owner.clone(),
    };
    let cluster_ips = cluster_ips(spec);
    let families = families(spec, &cluster_ips, slices);
    let external = external_addresses(service, &mut problems);
    for port in spec.ports.iter().flatten() {
        let Some(proto) = Protocol::from_k8s(port.protocol.as_deref()) else {
            problems.push(format!(
                "port {}: protocol {} is not load-balanced",
                port.port,
                port.protocol.as_deref().unwrap_or_default()
            ));
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let found = endpoints::for_port(slices, port.name.as_deref().unwrap_or(""), proto, node);
        let mut addresses: Vec<(IpAddr, u16, FrontendKind)> = cluster_ips
            .iter()
            .map(|ip| (*ip, number, FrontendKind::ClusterIp))
            .collect();
        if let Some(node_port) = node_port(service_type, port, policy, &mut problems) {
            addresses.extend(
                families
                    .iter()
                    .map(|f| (*f, node_port, FrontendKind::NodePort)),
            );
        }
        addresses.extend(external.iter().map(|(ip, kind)| (*ip, number, *kind)));
        for (addr, port, kind) in addresses {
            let frontend = shape.frontend(kind, addr, &found);
            out.add(FrontendAddr { addr, port, proto }, frontend, &found.states);
        }
    }
    for reason in problems {
        out.skip(owner.clone(), reason);
    }
}

/// AFFINITY for `sessionAffinity: ClientIP`.
fn affinity_flag(spec: &ServiceSpec) -> u16 {
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        service_flags::AFFINITY
    } else {
        0
    }
}

/// The affinity timeout: `sessionAffinityConfig.clientIP.timeoutSeconds` or
/// Kubernetes' default; 0 without affinity.
fn affinity_timeout(spec: &ServiceSpec) -> u32 {
    if affinity_flag(spec) == 0 {
        return 0;
    }
    spec.session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S)
}

/// MAGLEV when the Service's annotation (or else the default) says maglev; an
/// annotation that names no algorithm is reported and the default used.
fn algorithm_flag(service: &Service, policy: &Policy, problems: &mut Vec<String>) -> u16 {
    let annotation = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LB_ALGORITHM_ANNOTATION));
    let algorithm = match annotation.map(|a| a.parse::<LbAlgorithm>()) {
        None => policy.algorithm,
        Some(Ok(algorithm)) => algorithm,
        Some(Err(error)) => {
            problems.push(format!(
                "{LB_ALGORITHM_ANNOTATION}: {error}; using {}",
                policy.algorithm.as_str()
            ));
            policy.algorithm
        }
    };
    match algorithm {
        LbAlgorithm::Maglev => service_flags::MAGLEV,
        LbAlgorithm::Random => 0,
    }
}

/// The Service's cluster IPs: `clusterIPs`, else `clusterIP`; none when headless.
fn cluster_ips(spec: &ServiceSpec) -> Vec<IpAddr> {
    let listed = spec.cluster_ips.as_deref().unwrap_or_default();
    let texts: Vec<&str> = if listed.is_empty() {
        spec.cluster_ip.as_deref().into_iter().collect()
    } else {
        listed.iter().map(String::as_str).collect()
    };
    texts.iter().filter_map(|t| t.parse().ok()).collect()
}

/// The unspecified address of each family the Service has (NodePort frontends): the
/// families of its cluster IPs, else its `ipFamilies`, else those of its slices.
fn families(spec: &ServiceSpec, cluster_ips: &[IpAddr], slices: &[&EndpointSlice]) -> Vec<IpAddr> {
    let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let of = |family: &str| match family {
        "IPv4" => Some(v4),
        "IPv6" => Some(v6),
        _ => None,
    };
    let mut found: BTreeSet<IpAddr> = cluster_ips
        .iter()
        .map(|ip| if ip.is_ipv4() { v4 } else { v6 })
        .collect();
    if found.is_empty() {
        found = spec
            .ip_families
            .iter()
            .flatten()
            .filter_map(|f| of(f))
            .collect();
    }
    if found.is_empty() {
        found = slices.iter().filter_map(|s| of(&s.address_type)).collect();
    }
    found.into_iter().collect()
}

/// The port's NodePort when the Service type has one and it lies in the range.
fn node_port(
    service_type: &str,
    port: &ServicePort,
    policy: &Policy,
    problems: &mut Vec<String>,
) -> Option<u16> {
    if !matches!(service_type, "NodePort" | "LoadBalancer") {
        return None;
    }
    let Some(node_port) = port.node_port else {
        // The API server allocates missing NodePorts; objects applied without one get
        // none here rather than one another node might choose differently.
        problems.push(format!(
            "port {}: a {service_type} Service port without nodePort has no NodePort",
            port.port
        ));
        return None;
    };
    match u16::try_from(node_port) {
        Ok(p) if policy.node_ports.contains(&p) => Some(p),
        _ => {
            problems.push(format!(
                "nodePort {node_port} lies outside the NodePort range {}-{}",
                policy.node_ports.start(),
                policy.node_ports.end()
            ));
            None
        }
    }
}

/// The LoadBalancer ingress addresses (for type LoadBalancer) and the external IPs.
fn external_addresses(
    service: &Service,
    problems: &mut Vec<String>,
) -> Vec<(IpAddr, FrontendKind)> {
    let mut found = Vec::new();
    let spec = service.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer") {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for entry in ingress.into_iter().flatten() {
            match entry.ip.as_deref().map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => found.push((ip, FrontendKind::LoadBalancer)),
                Some(Err(_)) => problems.push(format!(
                    "load balancer ingress {:?} is not an address",
                    entry.ip.as_deref().unwrap_or_default()
                )),
                None => problems.push(format!(
                    "load balancer ingress {:?} has no ip (hostnames are not resolved)",
                    entry.hostname.as_deref().unwrap_or_default()
                )),
            }
        }
    }
    for ip in spec
        .and_then(|s| s.external_ips.as_ref())
        .into_iter()
        .flatten()
    {
        if let Ok(ip) = ip.parse() {
            found.push((ip, FrontendKind::ExternalIp));
        }
    }
    found
}

//! Services: type, ports, cluster IPs, families and affinity.

use super::meta::check_labels;
use super::names::NameRule;
use super::net::{
    K8S_PROTOCOLS, check_cidr, check_int_or_name, check_ip, check_one_of, check_port,
};
use super::{FieldPath, Findings, Violation};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use std::collections::BTreeSet;
use std::net::IpAddr;

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const AFFINITIES: &[&str] = &["None", "ClientIP"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const FAMILIES: &[&str] = &["IPv4", "IPv6"];
const FAMILY_POLICIES: &[&str] = &["SingleStack", "PreferDualStack", "RequireDualStack"];

/// Checks a service's spec.
pub fn check(f: &mut Findings, root: &FieldPath, service: &Service) {
    let at = root.field("spec");
    let Some(spec) = &service.spec else {
        f.add(&at, Violation::Required);
        return;
    };
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    check_one_of(f, &at.field("type"), service_type, TYPES);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if service_type == "ExternalName" {
        match spec.external_name.as_deref() {
            None | Some("") => f.add(&at.field("externalName"), Violation::Required),
            Some(name) if !NameRule::Dns1123Subdomain.allows(name) => f.add(
                &at.field("externalName"),
                Violation::InvalidName {
                    value: name.to_string(),
                    rule: NameRule::Dns1123Subdomain,
                },
            ),
            Some(_) => {}
        }
    } else if spec.ports.as_deref().unwrap_or_default().is_empty() && !headless {
        f.add(&at.field("ports"), Violation::Required);
    }
    check_ports(f, &at, spec, service_type);
    check_cluster_ips(f, &at, spec);
    if let Some(affinity) = &spec.session_affinity {
        check_one_of(f, &at.field("sessionAffinity"), affinity, AFFINITIES);
    }
    if let Some(policy) = &spec.external_traffic_policy {
        check_one_of(
            f,
            &at.field("externalTrafficPolicy"),
            policy,
            TRAFFIC_POLICIES,
        );
    }
    if let Some(policy) = &spec.internal_traffic_policy {
        check_one_of(
            f,
            &at.field("internalTrafficPolicy"),
            policy,
            TRAFFIC_POLICIES,
        );
    }
    let families = spec.ip_families.as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, family) in families.iter().enumerate() {
        let at = at.field("ipFamilies").index(i);
        check_one_of(f, &at, family, FAMILIES);
        if !seen.insert(family) {
            f.add(
                &at,
                Violation::Duplicate {
                    value: family.clone(),
                },
            );
        }
    }
    if let Some(policy) = &spec.ip_family_policy {
        check_one_of(f, &at.field("ipFamilyPolicy"), policy, FAMILY_POLICIES);
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        check_ip(f, &at.field("externalIPs").index(i), ip);
    }
    for (i, cidr) in spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
    {
        check_cidr(
            f,
            &at.field("loadBalancerSourceRanges").index(i),
            cidr,
            false,
        );
    }
    if let Some(selector) = &spec.selector {
        check_labels(f, &at.field("selector"), selector);
    }
}

fn check_ports(f: &mut Findings, at: &FieldPath, spec: &ServiceSpec, service_type: &str) {
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = at.field("ports").index(i);
        check_port(f, &at.field("port"), i64::from(port.port));
        if let Some(protocol) = &port.protocol {
            check_one_of(f, &at.field("protocol"), protocol, K8S_PROTOCOLS);
        }
        if let Some(target) = &port.target_port {
            check_int_or_name(f, &at.field("targetPort"), target);
        }
        if let Some(node_port) = port.node_port {
            check_port(f, &at.field("nodePort"), i64::from(node_port));
            if !matches!(service_type, "NodePort" | "LoadBalancer") {
                f.add(
                    &at.field("nodePort"),
                    Violation::OnlyWhen {
                        condition: "type is NodePort or LoadBalancer",
                    },
                );
            }
        }
        match port.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => f.add(&at.field("name"), Violation::Required),
            None => {}
            Some(name) => {
                if !NameRule::Dns1123Label.allows(name) {
                    f.add(
                        &at.field("name"),
                        Violation::InvalidName {
                            value: name.to_string(),
                            rule: NameRule::Dns1123Label,
                        },
                    );
                }
                if !names.insert(name) {
                    f.add(
                        &at.field("name"),
                        Violation::Duplicate {
                            value: name.to_string(),
                        },
                    );
                }
            }
        }
    }
}

/// `clusterIP` is empty, `None` or an address; `clusterIPs` holds at most one address
/// per family and starts with `clusterIP`.
fn check_cluster_ips(f: &mut Findings, at: &FieldPath, spec: &ServiceSpec) {
    let single = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
    if let Some(ip) = single
        && ip != "None"
    {
        check_ip(f, &at.field("clusterIP"), ip);
    }
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if ips.len() > 2 {
        f.add(&at.field("clusterIPs"), Violation::TooMany { max: 2 });
    }
    let parsed: Vec<Option<IpAddr>> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            if ip == "None" && ips.len() == 1 {
                None
            } else {
                check_ip(f, &at.field("clusterIPs").index(i), ip)
            }
        })
        .collect();
    if let [Some(a), Some(b)] = parsed.as_slice()
        && a.is_ipv4() == b.is_ipv4()
    {
        f.add(
            &at.field("clusterIPs").index(1),
            Violation::WrongAddressFamily {
                address: ips[1].clone(),
                expected: if a.is_ipv4() { "IPv6" } else { "IPv4" },
            },
        );
    }
    if let (Some(single), Some(first)) = (single, ips.first())
        && single != first
    {
        f.add(
            &at.field("clusterIP"),
            Violation::Conflicts {
                other: "clusterIPs[0]",
            },
        );
    }
}

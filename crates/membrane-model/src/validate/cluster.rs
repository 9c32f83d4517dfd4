//! Nodes: pod CIDRs and addresses.

use super::net::{check_cidr, check_ip, check_one_of};
use super::{FieldPath, Findings, Violation};
use k8s_openapi::api::core::v1::Node;

const ADDRESS_TYPES: &[&str] = &[
    "Hostname",
    "InternalIP",
    "ExternalIP",
    "InternalDNS",
    "ExternalDNS",
];

/// Checks a node's pod CIDRs (at most one per family, `podCIDR` first of `podCIDRs`)
/// and its IP addresses.
pub fn check_node(f: &mut Findings, root: &FieldPath, node: &Node) {
    if let Some(spec) = &node.spec {
        let at = root.field("spec");
        if let Some(cidr) = &spec.pod_cidr {
            check_cidr(f, &at.field("podCIDR"), cidr, false);
        }
        let cidrs = spec.pod_cidrs.as_deref().unwrap_or_default();
        let parsed: Vec<_> = cidrs
            .iter()
            .enumerate()
            .map(|(i, c)| check_cidr(f, &at.field("podCIDRs").index(i), c, false))
            .collect();
        if cidrs.len() > 2 {
            f.add(&at.field("podCIDRs"), Violation::TooMany { max: 2 });
        }
        if let [Some(a), Some(b)] = parsed.as_slice()
            && matches!(
                (a, b),
                (ipnet::IpNet::V4(_), ipnet::IpNet::V4(_))
                    | (ipnet::IpNet::V6(_), ipnet::IpNet::V6(_))
            )
        {
            f.add(
                &at.field("podCIDRs").index(1),
                Violation::WrongAddressFamily {
                    address: cidrs[1].clone(),
                    expected: if a.addr().is_ipv4() { "IPv6" } else { "IPv4" },
                },
            );
        }
        if let (Some(single), Some(first)) = (&spec.pod_cidr, cidrs.first())
            && single != first
        {
            f.add(
                &at.field("podCIDR"),
                Violation::Conflicts {
                    other: "podCIDRs[0]",
                },
            );
        }
    }
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_deref());
    for (i, address) in addresses.unwrap_or_default().iter().enumerate() {
        let at = root.field("status").field("addresses").index(i);
        check_one_of(f, &at.field("type"), &address.type_, ADDRESS_TYPES);
        if matches!(address.type_.as_str(), "InternalIP" | "ExternalIP") {
            check_ip(f, &at.field("address"), &address.address);
        }
    }
}

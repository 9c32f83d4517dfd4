//! EndpointSlices: address type, endpoint addresses and ports.

use super::names::{NameRule, is_dns_name};
use super::net::{K8S_PROTOCOLS, check_ip, check_one_of, check_port};
use super::{FieldPath, Findings, Violation};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeSet;

const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;

/// Checks the address type, that each endpoint has addresses of that type, and the
/// ports.
pub fn check(f: &mut Findings, root: &FieldPath, slice: &EndpointSlice) {
    let address_type = slice.address_type.as_str();
    if address_type.is_empty() {
        f.add(&root.field("addressType"), Violation::Required);
    } else {
        check_one_of(f, &root.field("addressType"), address_type, ADDRESS_TYPES);
    }
    if slice.endpoints.len() > MAX_ENDPOINTS {
        f.add(
            &root.field("endpoints"),
            Violation::TooMany { max: MAX_ENDPOINTS },
        );
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        let at = root.field("endpoints").index(i);
        if endpoint.addresses.is_empty() {
            f.add(&at.field("addresses"), Violation::Empty);
        }
        if endpoint.addresses.len() > MAX_ADDRESSES {
            f.add(
                &at.field("addresses"),
                Violation::TooMany { max: MAX_ADDRESSES },
            );
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            check_address(f, &at.field("addresses").index(j), address_type, address);
        }
        if let Some(node) = &endpoint.node_name
            && !NameRule::Dns1123Subdomain.allows(node)
        {
            f.add(
                &at.field("nodeName"),
                Violation::InvalidName {
                    value: node.clone(),
                    rule: NameRule::Dns1123Subdomain,
                },
            );
        }
        if let Some(hostname) = &endpoint.hostname
            && !NameRule::Dns1123Label.allows(hostname)
        {
            f.add(
                &at.field("hostname"),
                Violation::InvalidName {
                    value: hostname.clone(),
                    rule: NameRule::Dns1123Label,
                },
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in slice.ports.iter().flatten().enumerate() {
        let at = root.field("ports").index(i);
        if let Some(number) = port.port {
            check_port(f, &at.field("port"), i64::from(number));
        }
        if let Some(protocol) = &port.protocol {
            check_one_of(f, &at.field("protocol"), protocol, K8S_PROTOCOLS);
        }
        let name = port.name.clone().unwrap_or_default();
        if !name.is_empty() && !NameRule::Dns1123Label.allows(&name) {
            f.add(
                &at.field("name"),
                Violation::InvalidName {
                    value: name.clone(),
                    rule: NameRule::Dns1123Label,
                },
            );
        }
        if !names.insert(name.clone()) {
            f.add(&at.field("name"), Violation::Duplicate { value: name });
        }
    }
}

fn check_address(f: &mut Findings, at: &FieldPath, address_type: &str, address: &str) {
    match address_type {
        "IPv4" | "IPv6" => {
            let Some(ip) = check_ip(f, at, address) else {
                return;
            };
            if ip.is_ipv4() != (address_type == "IPv4") {
                f.add(
                    at,
                    Violation::WrongAddressFamily {
                        address: address.to_string(),
                        expected: if address_type == "IPv4" {
                            "IPv4"
                        } else {
                            "IPv6"
                        },
                    },
                );
            }
        }
        "FQDN" if !is_dns_name(address, false) => f.add(
            at,
            Violation::InvalidDnsName {
                value: address.to_string(),
                what: "name",
            },
        ),
        _ => {}
    }
}

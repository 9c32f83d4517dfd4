//! Addresses, prefixes, ports and protocols.

use super::names::is_port_name;
use super::{FieldPath, Findings, Violation};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::IpAddr;

/// Kubernetes' L4 protocols.
pub const K8S_PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// Parses a prefix; with `bare_ip`, a plain address stands for its host prefix (Cilium's
/// `fromCIDR: [10.0.0.1]`).
pub fn check_cidr(f: &mut Findings, at: &FieldPath, value: &str, bare_ip: bool) -> Option<IpNet> {
    match value.parse::<IpNet>() {
        Ok(net) => Some(net),
        Err(err) => match value.parse::<IpAddr>() {
            Ok(ip) if bare_ip => Some(IpNet::from(ip)),
            _ => {
                f.add(
                    at,
                    Violation::InvalidCidr {
                        value: value.to_string(),
                        reason: err.to_string(),
                    },
                );
                None
            }
        },
    }
}

/// Checks a prefix and its exceptions: each must parse and lie strictly inside it.
pub fn check_cidr_except(
    f: &mut Findings,
    at: &FieldPath,
    cidr: &str,
    except: Option<&[String]>,
    bare_ip: bool,
) {
    let outer = check_cidr(f, &at.field("cidr"), cidr, bare_ip);
    for (i, text) in except.unwrap_or_default().iter().enumerate() {
        let at = at.field("except").index(i);
        let (Some(inner), Some(outer)) = (check_cidr(f, &at, text, bare_ip), outer) else {
            continue;
        };
        let outer = outer.trunc();
        if !(outer.contains(&inner.trunc()) && inner.prefix_len() > outer.prefix_len()) {
            f.add(
                &at,
                Violation::ExceptOutsideCidr {
                    except: text.clone(),
                    cidr: cidr.to_string(),
                },
            );
        }
    }
}

/// Parses an address.
pub fn check_ip(f: &mut Findings, at: &FieldPath, value: &str) -> Option<IpAddr> {
    let ip = value.parse::<IpAddr>().ok();
    if ip.is_none() {
        f.add(
            at,
            Violation::InvalidIp {
                value: value.to_string(),
            },
        );
    }
    ip
}

/// Checks a port number is within 1-65535.
pub fn check_port(f: &mut Findings, at: &FieldPath, port: i64) -> bool {
    let ok = (1..=65535).contains(&port);
    if !ok {
        f.add(at, Violation::PortOutOfRange { port });
    }
    ok
}

/// Checks a port given as a number or a port name; returns the number, if numeric.
pub fn check_int_or_name(f: &mut Findings, at: &FieldPath, port: &IntOrString) -> Option<i64> {
    match port {
        IntOrString::Int(n) => check_port(f, at, i64::from(*n)).then_some(i64::from(*n)),
        IntOrString::String(name) => {
            if !is_port_name(name) {
                f.add(at, Violation::InvalidPortName { name: name.clone() });
            }
            None
        }
    }
}

/// Checks a port range's `endPort` against its start.
pub fn check_end_port(f: &mut Findings, at: &FieldPath, port: Option<i64>, end_port: i64) {
    match port {
        None => f.add(at, Violation::EndPortNeedsNumericPort),
        Some(port) => {
            if check_port(f, at, end_port) && end_port < port {
                f.add(at, Violation::EndPortBelowPort { port, end_port });
            }
        }
    }
}

/// Checks a value is one of a closed set.
pub fn check_one_of(
    f: &mut Findings,
    at: &FieldPath,
    value: &str,
    allowed: &'static [&'static str],
) {
    if !allowed.contains(&value) {
        f.add(
            at,
            Violation::UnknownValue {
                value: value.to_string(),
                allowed,
            },
        );
    }
}

//! Turning a registration into what the datapath is told: MACs parsed, addresses checked.

use super::EndpointError;
use membrane_api::{Endpoint, EndpointRegistration};
use membrane_datapath::{EndpointSpec, PolicyEnforcement};
use std::net::IpAddr;

/// The datapath's view of `endpoint`, with its network namespace cookie read from
/// the pod's namespace; fails on a malformed MAC.
pub fn spec_of(endpoint: &Endpoint) -> Result<EndpointSpec, EndpointError> {
    let netns = &endpoint.registration.netns;
    Ok(EndpointSpec {
        netns_cookie: membrane_datapath::netns_cookie(netns)
            .inspect_err(|error| {
                tracing::debug!(%error, %netns, "no network namespace cookie: socket events will not name this pod");
            })
            .ok(),
        ..entry_spec(endpoint)?
    })
}

/// The datapath's view of `endpoint` without its network namespace cookie, for
/// rewriting its endpoint entry alone (the entry by cookie stays as written); fails on
/// a malformed MAC.
pub fn entry_spec(endpoint: &Endpoint) -> Result<EndpointSpec, EndpointError> {
    let registration = &endpoint.registration;
    Ok(EndpointSpec {
        id: endpoint.id,
        host_ifname: registration.host_ifname.clone(),
        host_ifindex: registration.host_ifindex,
        host_mac: parse_mac("host_mac", &registration.host_mac)?,
        pod_mac: parse_mac("pod_mac", &registration.pod_mac)?,
        ipv4: registration.ipv4,
        ipv6: registration.ipv6,
        // The manager fills in the identity it resolves; 0 is the datapath's "unknown".
        identity: 0,
        // The manager fills in what its policy hook compiles; without one, none enforces.
        policy: PolicyEnforcement::default(),
        netns_cookie: None,
    })
}

/// The pod's addresses, IPv4 first.
pub fn addresses(registration: &EndpointRegistration) -> Vec<IpAddr> {
    registration
        .ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(registration.ipv6.map(IpAddr::V6))
        .collect()
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case).
pub fn parse_mac(field: &'static str, value: &str) -> Result<[u8; 6], EndpointError> {
    let bad = || EndpointError::BadMac {
        field,
        value: value.to_string(),
    };
    let mut mac = [0u8; 6];
    let mut parts = value.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_in_either_case_and_reject_malformed_text() {
        assert_eq!(
            parse_mac("pod_mac", "0a:1B:2c:3D:4e:5F").unwrap(),
            [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]
        );
        for bad in [
            "",
            "0a:1b:2c:3d:4e",
            "0a:1b:2c:3d:4e:5f:60",
            "0a-1b-2c-3d-4e-5f",
            "a:1b:2c:3d:4e:5f0",
            "zz:1b:2c:3d:4e:5f",
            "+a:1b:2c:3d:4e:5f",
        ] {
            assert!(parse_mac("pod_mac", bad).is_err(), "{bad:?} parsed");
        }
    }
}

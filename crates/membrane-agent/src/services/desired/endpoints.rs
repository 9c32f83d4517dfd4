//! The backends of one Service port, read from the Service's EndpointSlices: the slice
//! port with the Service port's name and protocol gives the backend port (this is how a
//! named `targetPort` is resolved), each endpoint's first address the backend address.

use super::NodeContext;
use crate::services::model::{BackendAddr, BackendState, Backends, Protocol};
use membrane_model::k8s::api::discovery::v1::{Endpoint, EndpointSlice};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How an endpoint takes part in load balancing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Ready: takes new connections.
    Active,
    /// Serving but terminating: keeps its connections only.
    Terminating,
}

/// The role of an endpoint from its conditions; `None` when it takes no traffic at all.
/// Unset conditions mean ready and serving, and not terminating (as Kubernetes says).
fn role(endpoint: &Endpoint) -> Option<Role> {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    if terminating {
        serving.then_some(Role::Terminating)
    } else {
        ready.then_some(Role::Active)
    }
}

/// The backends of one Service port and what each is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortBackends {
    /// Active and terminating backends, sorted.
    pub backends: Backends,
    /// Every backend's state.
    pub states: BTreeMap<BackendAddr, BackendState>,
}

impl PortBackends {
    /// True when `backend` runs on this node.
    pub fn is_local(&self, backend: &BackendAddr) -> bool {
        self.states.get(backend).is_some_and(|s| s.local)
    }
}

/// The backends of the Service port named `port_name` (empty for an unnamed port) with
/// `proto`, from `slices`. An endpoint listed twice (two slices during an update) counts
/// once, as active if either says so.
pub fn for_port(
    slices: &[&EndpointSlice],
    port_name: &str,
    proto: Protocol,
    node: &NodeContext,
) -> PortBackends {
    let mut found: BTreeMap<BackendAddr, (Role, bool)> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && Protocol::from_k8s(p.protocol.as_deref()) == Some(proto)
        });
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let Some(role) = role(endpoint) else { continue };
            let Some(addr) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let local = node.is_local(addr, endpoint.node_name.as_deref());
            let backend = BackendAddr { addr, port, proto };
            let entry = found.entry(backend).or_insert((role, local));
            if role == Role::Active {
                entry.0 = Role::Active;
            }
            entry.1 |= local;
        }
    }
    let mut result = PortBackends::default();
    for (backend, (role, local)) in found {
        match role {
            Role::Active => result.backends.active.push(backend),
            Role::Terminating => result.backends.terminating.push(backend),
        }
        result.states.insert(
            backend,
            BackendState {
                terminating: role == Role::Terminating,
                local,
            },
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            name: "node-a".into(),
            ipv4: None,
            ipv6: None,
            local_endpoints: ["10.0.0.9".parse().unwrap()].into(),
        }
    }

    fn backend(text: &str) -> BackendAddr {
        let socket: std::net::SocketAddr = text.parse().unwrap();
        BackendAddr {
            addr: socket.ip(),
            port: socket.port(),
            proto: Protocol::Tcp,
        }
    }

    #[test]
    fn ready_endpoints_are_active_and_serving_terminating_ones_drain() {
        let s = slice(json!({
            "addressType": "IPv4",
            "metadata": {"name": "web-1"},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.1"]},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": false, "terminating": true}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.5"], "conditions": {"ready": true}}
            ]
        }));
        let found = for_port(&[&s], "http", Protocol::Tcp, &node());
        assert_eq!(
            found.backends.active,
            [backend("10.0.0.1:8080"), backend("10.0.0.5:8080")]
        );
        assert_eq!(found.backends.terminating, [backend("10.0.0.2:8080")]);
        assert!(found.states[&backend("10.0.0.2:8080")].terminating);
    }

    #[test]
    fn the_slice_port_is_matched_by_the_service_port_name_and_protocol() {
        let s = slice(json!({
            "addressType": "IPv4",
            "metadata": {"name": "web-1"},
            "ports": [
                {"name": "http", "port": 8080},
                {"name": "metrics", "port": 9090},
                {"name": "dns", "port": 5353, "protocol": "UDP"}
            ],
            "endpoints": [{"addresses": ["10.0.0.1"]}]
        }));
        let node = node();
        let port = |name, proto| {
            for_port(&[&s], name, proto, &node)
                .backends
                .active
                .iter()
                .map(|b| b.port)
                .collect::<Vec<_>>()
        };
        assert_eq!(port("metrics", Protocol::Tcp), [9090]);
        assert_eq!(port("dns", Protocol::Udp), [5353]);
        assert!(port("dns", Protocol::Tcp).is_empty(), "protocol must match");
        assert!(
            port("", Protocol::Tcp).is_empty(),
            "an unnamed port is another port"
        );
    }

    #[test]
    fn an_endpoint_is_local_by_address_or_by_node_name() {
        let s = slice(json!({
            "addressType": "IPv4",
            "metadata": {"name": "web-1"},
            "ports": [{"port": 80}],
            "endpoints": [
                {"addresses": ["10.0.0.9"]},
                {"addresses": ["10.0.1.1"], "nodeName": "node-a"},
                {"addresses": ["10.0.2.1"], "nodeName": "node-b"}
            ]
        }));
        let found = for_port(&[&s], "", Protocol::Tcp, &node());
        let local: Vec<bool> = found
            .backends
            .active
            .iter()
            .map(|b| found.is_local(b))
            .collect();
        assert_eq!(local, [true, true, false]);
    }

    #[test]
    fn an_endpoint_in_two_slices_counts_once_and_active_wins() {
        let a = slice(json!({
            "addressType": "IPv6",
            "metadata": {"name": "web-1"},
            "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["fd00::1"], "conditions": {"ready": false, "serving": true, "terminating": true}}]
        }));
        let b = slice(json!({
            "addressType": "IPv6",
            "metadata": {"name": "web-2"},
            "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["fd00::1"]}]
        }));
        let found = for_port(&[&a, &b], "", Protocol::Tcp, &node());
        assert_eq!(found.backends.active, [backend("[fd00::1]:80")]);
        assert!(found.backends.terminating.is_empty());
    }

    #[test]
    fn fqdn_slices_and_portless_slices_give_no_backends() {
        let fqdn = slice(json!({
            "addressType": "FQDN",
            "metadata": {"name": "web-1"},
            "ports": [{"port": 80}],
            "endpoints": [{"addresses": ["example.com"]}]
        }));
        let portless = slice(json!({
            "addressType": "IPv4",
            "metadata": {"name": "web-2"},
            "endpoints": [{"addresses": ["10.0.0.1"]}]
        }));
        assert_eq!(
            for_port(&[&fqdn, &portless], "", Protocol::Tcp, &node()),
            PortBackends::default()
        );
    }
}

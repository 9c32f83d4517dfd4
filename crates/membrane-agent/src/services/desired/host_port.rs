//! hostPorts: a container port with a `hostPort`, of a pod on this node, becomes a
//! frontend on the node's address of each of the pod's families (or on its `hostIP`)
//! whose only backend is the pod.

use super::{Builder, NodeContext};
use crate::services::model::{
    BackendAddr, BackendState, Backends, DesiredFrontend, FrontendAddr, FrontendKind, Owner,
    Protocol,
};
use membrane_common::lb::service_flags;
use membrane_model::k8s::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Adds the hostPort frontends of `pod` to `out`, if it runs on this node.
pub(super) fn frontends(pod: &Pod, node: &NodeContext, out: &mut Builder) {
    let owner = Owner {
        kind: "Pod",
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
    };
    let (Some(spec), Some(status)) = (&pod.spec, &pod.status) else {
        return;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return;
    }
    let mut pod_ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if pod_ips.is_empty() {
        pod_ips.extend(
            status
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    let here = pod_ips
        .iter()
        .any(|ip| node.is_local(*ip, spec.node_name.as_deref()));
    if !here {
        return;
    }
    let mut problems = Vec::new();
    for port in spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
    {
        let Some(host_port) = port.host_port.filter(|p| *p > 0) else {
            continue;
        };
        let (Ok(host_port), Ok(container_port)) =
            (u16::try_from(host_port), u16::try_from(port.container_port))
        else {
            continue;
        };
        let Some(proto) = Protocol::from_k8s(port.protocol.as_deref()) else {
            problems.push(format!(
                "hostPort {host_port}: protocol {} is not load-balanced",
                port.protocol.as_deref().unwrap_or_default()
            ));
            continue;
        };
        let host_ip: Option<IpAddr> = port
            .host_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .filter(|ip: &IpAddr| !ip.is_unspecified());
        for pod_ip in &pod_ips {
            let frontend_ip = match host_ip {
                Some(ip) if ip.is_ipv4() == pod_ip.is_ipv4() => Some(ip),
                Some(_) => None,
                None => node.address_like(*pod_ip),
            };
            let Some(frontend_ip) = frontend_ip else {
                continue;
            };
            let backend = BackendAddr {
                addr: *pod_ip,
                port: container_port,
                proto,
            };
            let frontend = DesiredFrontend {
                owner: owner.clone(),
                kind: FrontendKind::HostPort,
                flags: service_flags::EXTERNAL,
                affinity_timeout_s: 0,
                backends: Backends {
                    active: vec![backend],
                    terminating: Vec::new(),
                },
                internal: None,
            };
            let states = BTreeMap::from([(
                backend,
                BackendState {
                    terminating: false,
                    local: true,
                },
            )]);
            let addr = FrontendAddr {
                addr: frontend_ip,
                port: host_port,
                proto,
            };
            out.add(addr, frontend, &states);
        }
    }
    for reason in problems {
        out.skip(owner.clone(), reason);
    }
}

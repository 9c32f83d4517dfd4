//! Pods: node, container ports (the source of named ports) and addresses.

use super::names::{NameRule, is_port_name};
use super::net::{K8S_PROTOCOLS, check_ip, check_one_of, check_port};
use super::{FieldPath, Findings, Violation};
use k8s_openapi::api::core::v1::Pod;

/// Checks a pod's node name, container names and ports, and status addresses.
pub fn check(f: &mut Findings, root: &FieldPath, pod: &Pod) {
    if let Some(spec) = &pod.spec {
        let at = root.field("spec");
        if let Some(node) = &spec.node_name
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
        for (i, container) in spec.containers.iter().enumerate() {
            let at = at.field("containers").index(i);
            if !NameRule::Dns1123Label.allows(&container.name) {
                f.add(
                    &at.field("name"),
                    Violation::InvalidName {
                        value: container.name.clone(),
                        rule: NameRule::Dns1123Label,
                    },
                );
            }
            for (j, port) in container.ports.iter().flatten().enumerate() {
                let at = at.field("ports").index(j);
                check_port(
                    f,
                    &at.field("containerPort"),
                    i64::from(port.container_port),
                );
                if let Some(host_port) = port.host_port {
                    check_port(f, &at.field("hostPort"), i64::from(host_port));
                }
                if let Some(protocol) = &port.protocol {
                    check_one_of(f, &at.field("protocol"), protocol, K8S_PROTOCOLS);
                }
                if let Some(name) = &port.name
                    && !is_port_name(name)
                {
                    f.add(
                        &at.field("name"),
                        Violation::InvalidPortName { name: name.clone() },
                    );
                }
            }
        }
    }
    if let Some(status) = &pod.status {
        let at = root.field("status");
        if let Some(ip) = &status.pod_ip {
            check_ip(f, &at.field("podIP"), ip);
        }
        if let Some(ip) = &status.host_ip {
            check_ip(f, &at.field("hostIP"), ip);
        }
        for (i, ip) in status.pod_ips.iter().flatten().enumerate() {
            check_ip(f, &at.field("podIPs").index(i).field("ip"), &ip.ip);
        }
    }
}

//! One table per resource, one row per object.

use super::Resource;
use crate::output::Table;
use membrane_api::{Endpoint, Identity, NodeInfo, ServiceBackend, ServiceFrontend};
use membrane_model::cilium::Rule;
use membrane_model::k8s::api::core::v1::{Pod, Service};
use membrane_model::k8s::api::networking::v1::NetworkPolicy;
use membrane_model::{LabelSelector, Object};
use std::collections::BTreeMap;

const NONE: &str = "<none>";

/// The table of stored objects of `resource`.
pub fn objects(resource: Resource, objects: &[Object]) -> Table {
    let mut table = match resource {
        Resource::Namespaces => Table::new(&["NAME", "LABELS"]),
        Resource::Pods => Table::new(&["NAMESPACE", "NAME", "NODE", "IPS", "LABELS"]),
        Resource::Services => Table::new(&[
            "NAMESPACE",
            "NAME",
            "TYPE",
            "CLUSTER-IPS",
            "PORTS",
            "SELECTOR",
        ]),
        Resource::Policies => Table::new(&["KIND", "NAMESPACE", "NAME", "SELECTS", "RULES"]),
        Resource::Nodes | Resource::Endpoints | Resource::Identities | Resource::Frontends => {
            unreachable!("nodes, endpoints, frontends and identities are not stored objects")
        }
    };
    for object in objects {
        let meta = object.metadata();
        let name = meta.name.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_else(|| NONE.to_string());
        let row = match object {
            Object::Namespace(_) => vec![name, labels(object.labels())],
            Object::Pod(pod) => vec![
                namespace,
                name,
                pod_node(pod),
                pod_ips(pod),
                labels(object.labels()),
            ],
            Object::Service(service) => service_row(namespace, name, service),
            Object::NetworkPolicy(policy) => {
                let (selects, rules) = network_policy(policy);
                vec![object.kind().to_string(), namespace, name, selects, rules]
            }
            Object::CiliumNetworkPolicy(policy) => {
                let (selects, rules) = cilium_rules(policy.rules());
                vec![object.kind().to_string(), namespace, name, selects, rules]
            }
            Object::CiliumClusterwideNetworkPolicy(policy) => {
                let (selects, rules) = cilium_rules(policy.rules());
                vec![object.kind().to_string(), namespace, name, selects, rules]
            }
            Object::Node(_) | Object::EndpointSlice(_) => continue,
        };
        table.push(row);
    }
    table
}

/// The agent's endpoints.
pub fn endpoints(endpoints: &[Endpoint]) -> Table {
    let mut table = Table::new(&["ID", "NAMESPACE", "POD", "IPV4", "IPV6", "INTERFACE"]);
    for e in endpoints {
        let r = &e.registration;
        table.push(vec![
            e.id.to_string(),
            or_none(r.pod_namespace.clone()),
            or_none(r.pod_name.clone()),
            or_none(r.ipv4.map(|ip| ip.to_string())),
            or_none(r.ipv6.map(|ip| ip.to_string())),
            r.host_ifname.clone(),
        ]);
    }
    table
}

/// The nodes registered in the cluster state.
pub fn nodes(nodes: &[NodeInfo]) -> Table {
    let mut table = Table::new(&["NAME", "ADDRESSES", "IPV4-POD-CIDR", "IPV6-POD-CIDR"]);
    for n in nodes {
        let addresses: Vec<String> = n.addresses.iter().map(ToString::to_string).collect();
        table.push(vec![
            n.name.clone(),
            joined(&addresses),
            or_none(n.ipv4_pod_cidr.map(|c| c.to_string())),
            or_none(n.ipv6_pod_cidr.map(|c| c.to_string())),
        ]);
    }
    table
}

/// Security identities.
pub fn identities(identities: &[Identity]) -> Table {
    let mut table = Table::new(&["ID", "LABELS"]);
    for identity in identities {
        table.push(vec![identity.id.to_string(), joined(&identity.labels)]);
    }
    table
}

/// Service frontends with their backends (`t` marks a terminating backend).
pub fn frontends(frontends: &[ServiceFrontend]) -> Table {
    let mut table = Table::new(&["NAMESPACE", "NAME", "TYPE", "FRONTEND", "BACKENDS", "STATE"]);
    let backends = |list: &[ServiceBackend]| {
        let named: Vec<String> = list
            .iter()
            .map(|b| {
                let at = std::net::SocketAddr::new(b.address, b.port);
                if b.terminating {
                    format!("{at}(t)")
                } else {
                    at.to_string()
                }
            })
            .collect();
        joined(&named)
    };
    for f in frontends {
        let mut listed = backends(&f.backends);
        if let Some(internal) = &f.internal_backends {
            listed = format!("{listed} inside:{}", backends(internal));
        }
        let state = match (&f.error, f.programmed) {
            (_, true) => "programmed".to_string(),
            (Some(error), false) => format!("failed: {error}"),
            (None, false) => "pending".to_string(),
        };
        table.push(vec![
            f.namespace.clone(),
            f.name.clone(),
            f.kind.clone(),
            format!(
                "{}/{}",
                std::net::SocketAddr::new(f.address, f.port),
                f.protocol
            ),
            listed,
            state,
        ]);
    }
    table
}

fn or_none(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| NONE.to_string())
}

fn joined(values: &[String]) -> String {
    or_none(Some(values.join(",")))
}

fn labels(labels: &BTreeMap<String, String>) -> String {
    joined(
        &labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
    )
}

fn pod_node(pod: &Pod) -> String {
    or_none(pod.spec.as_ref().and_then(|s| s.node_name.clone()))
}

fn pod_ips(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let ips: Vec<String> = status
        .and_then(|s| s.pod_ips.as_ref())
        .map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect())
        .filter(|ips: &Vec<String>| !ips.is_empty())
        .unwrap_or_else(|| status.and_then(|s| s.pod_ip.clone()).into_iter().collect());
    joined(&ips)
}

fn service_row(namespace: String, name: String, service: &Service) -> Vec<String> {
    let Some(spec) = &service.spec else {
        return vec![
            namespace,
            name,
            NONE.into(),
            NONE.into(),
            NONE.into(),
            NONE.into(),
        ];
    };
    let cluster_ips = spec
        .cluster_ips
        .clone()
        .filter(|ips| !ips.is_empty())
        .unwrap_or_else(|| spec.cluster_ip.clone().into_iter().collect());
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    vec![
        namespace,
        name,
        spec.type_
            .clone()
            .unwrap_or_else(|| "ClusterIP".to_string()),
        joined(&cluster_ips),
        joined(&ports),
        labels(spec.selector.as_ref().unwrap_or(&BTreeMap::new())),
    ]
}

/// A Kubernetes selector as kubectl prints it.
fn selector(
    selector: Option<&membrane_model::k8s::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    match selector.map(LabelSelector::try_from) {
        None => LabelSelector::default().to_string(),
        Some(Ok(s)) => s.to_string(),
        Some(Err(err)) => format!("<{err}>"),
    }
}

/// What a NetworkPolicy selects, and its directions with their rule counts.
fn network_policy(policy: &NetworkPolicy) -> (String, String) {
    let Some(spec) = &policy.spec else {
        return (selector(None), "Ingress(0)".to_string());
    };
    let ingress = spec.ingress.as_ref().map_or(0, Vec::len);
    let egress = spec.egress.as_ref().map_or(0, Vec::len);
    let types = spec.policy_types.clone().unwrap_or_else(|| {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.is_some() {
            types.push("Egress".to_string());
        }
        types
    });
    let rules = types
        .iter()
        .map(|t| format!("{t}({})", if t == "Egress" { egress } else { ingress }))
        .collect::<Vec<_>>()
        .join(" ");
    (selector(spec.pod_selector.as_ref()), rules)
}

/// What a Cilium policy's rules select, and how many rules of each list they have.
fn cilium_rules<'a>(rules: impl Iterator<Item = &'a Rule>) -> (String, String) {
    let mut selects = Vec::new();
    let mut counts = [0usize; 4];
    for rule in rules {
        selects.push(match (&rule.endpoint_selector, &rule.node_selector) {
            (_, Some(nodes)) => format!("nodes: {}", selector(Some(nodes))),
            (endpoints, None) => selector(endpoints.as_ref()),
        });
        counts[0] += rule.ingress.as_ref().map_or(0, Vec::len);
        counts[1] += rule.ingress_deny.as_ref().map_or(0, Vec::len);
        counts[2] += rule.egress.as_ref().map_or(0, Vec::len);
        counts[3] += rule.egress_deny.as_ref().map_or(0, Vec::len);
    }
    let names = ["ingress", "ingressDeny", "egress", "egressDeny"];
    let rules: Vec<String> = names
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}({n})"))
        .collect();
    (selects.join("; "), joined(&[rules.join(" ")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(table: &Table) -> String {
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn frontends_show_their_backends_and_whether_they_are_programmed() {
        let backend = |address: &str, terminating| ServiceBackend {
            id: Some(1),
            address: address.parse().unwrap(),
            port: 7000,
            terminating,
            local: true,
        };
        let frontend = ServiceFrontend {
            owner_kind: "Service".into(),
            namespace: "shop".into(),
            name: "web".into(),
            kind: "ClusterIP".into(),
            address: "10.96.0.10".parse().unwrap(),
            port: 80,
            protocol: "TCP".into(),
            rev_nat_index: Some(3),
            algorithm: "random".into(),
            affinity_timeout_secs: None,
            backends: vec![backend("10.200.1.5", false), backend("10.200.1.6", true)],
            internal_backends: None,
            programmed: true,
            error: None,
        };
        let full = ServiceFrontend {
            kind: "NodePort".into(),
            address: "::".parse().unwrap(),
            port: 30080,
            backends: Vec::new(),
            programmed: false,
            error: Some("map full".into()),
            ..frontend.clone()
        };
        assert_eq!(
            render(&super::frontends(&[frontend, full])),
            "NAMESPACE   NAME   TYPE        FRONTEND            BACKENDS                             STATE\n\
             shop        web    ClusterIP   10.96.0.10:80/TCP   10.200.1.5:7000,10.200.1.6:7000(t)   programmed\n\
             shop        web    NodePort    [::]:30080/TCP      <none>                               failed: map full\n"
        );
    }

    #[test]
    fn services_show_type_ips_ports_and_selector() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  type: NodePort\n  clusterIP: 10.96.0.10\n  selector: {app: web}\n  ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]\n";
        let objects = membrane_model::parse_manifests(text, "t").unwrap();
        assert_eq!(
            render(&super::objects(Resource::Services, &objects)),
            "NAMESPACE   NAME   TYPE       CLUSTER-IPS   PORTS                 SELECTOR\n\
             shop        web    NodePort   10.96.0.10    80:30080/TCP,53/UDP   app=web\n"
        );
    }

    #[test]
    fn policies_of_every_kind_show_what_they_select_and_their_rules() {
        let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  podSelector: {matchLabels: {app: api}}\n  ingress: [{}, {}]\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp}\nspec:\n  endpointSelector: {matchLabels: {\"k8s:app\": web}}\n  ingress: [{}]\n  egressDeny: [{}]\n---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: host}\nspec:\n  nodeSelector: {}\n";
        let objects = membrane_model::parse_manifests(text, "t").unwrap();
        let rendered = render(&super::objects(Resource::Policies, &objects));
        let rows: Vec<Vec<&str>> = rendered
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[1],
            ["NetworkPolicy", "default", "np", "app=api", "Ingress(2)"]
        );
        assert_eq!(
            rows[2],
            [
                "CiliumNetworkPolicy",
                "default",
                "cnp",
                "app=web",
                "ingress(1)",
                "egressDeny(1)"
            ]
        );
        assert_eq!(
            rows[3],
            [
                "CiliumClusterwideNetworkPolicy",
                "<none>",
                "host",
                "nodes:",
                "<all>",
                "<none>"
            ]
        );
    }
}

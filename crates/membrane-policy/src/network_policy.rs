//! `networking.k8s.io/v1` NetworkPolicy as sections: the pods selected in the policy's
//! namespace, `policyTypes` (defaulted as Kubernetes does), peers by pod and namespace
//! selectors or `ipBlock` (which also matches pods addressed inside it), ports with
//! `endPort`, named ports and TCP/UDP/SCTP.

use crate::clause::{Clause, PortNumber, Ports, Section, proto};
use crate::output::{Direction, PolicyKind, RuleRef, Warning};
use crate::parse::{cidr, selector};
use crate::universe::Selection;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use membrane_model::LabelSelector;

/// The sections of `policy`; problems are added to `warnings` and the part they affect
/// allows nothing.
pub fn sections(policy: &NetworkPolicy, warnings: &mut Vec<Warning>) -> Vec<Section> {
    let namespace = policy
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let name = policy.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &policy.spec else {
        return Vec::new();
    };
    let context = Context {
        namespace: &namespace,
        name: &name,
    };
    let Some(subject) = selector(
        spec.pod_selector.as_ref(),
        || context.rule_name("spec"),
        "podSelector",
        warnings,
    ) else {
        return Vec::new();
    };
    let has_egress = spec.egress.as_ref().is_some_and(|rules| !rules.is_empty());
    let (ingress, egress) = match &spec.policy_types {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (true, has_egress),
    };
    let mut clauses = Vec::new();
    if ingress {
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let path = format!("spec.ingress[{i}]");
            clauses.extend(context.clauses(
                Direction::Ingress,
                &path,
                "from",
                rule.from.as_deref(),
                rule.ports.as_deref(),
                warnings,
            ));
        }
    }
    if egress {
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let path = format!("spec.egress[{i}]");
            clauses.extend(context.clauses(
                Direction::Egress,
                &path,
                "to",
                rule.to.as_deref(),
                rule.ports.as_deref(),
                warnings,
            ));
        }
    }
    vec![Section {
        subject: Selection {
            labels: subject,
            namespace: Some(namespace.clone()),
            namespace_labels: None,
        },
        ingress_default_deny: ingress,
        egress_default_deny: egress,
        clauses,
    }]
}

/// The policy being translated.
struct Context<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl Context<'_> {
    fn rule_name(&self, path: &str) -> String {
        format!("NetworkPolicy {}/{} {path}", self.namespace, self.name)
    }

    fn rule(&self, path: &str, peer: String, port: String) -> RuleRef {
        RuleRef {
            kind: PolicyKind::NetworkPolicy,
            namespace: Some(self.namespace.to_string()),
            name: self.name.to_string(),
            path: path.to_string(),
            peer,
            port,
            deny: false,
        }
    }

    /// One clause per peer and port of an ingress (`from`) or egress (`to`) rule.
    fn clauses(
        &self,
        direction: Direction,
        path: &str,
        peer_field: &str,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: Option<&[NetworkPolicyPort]>,
        warnings: &mut Vec<Warning>,
    ) -> Vec<Clause> {
        let peers: Vec<(crate::clause::Peers, String)> = match peers {
            None | Some([]) => vec![(crate::clause::Peers::Any, "any peer".to_string())],
            Some(peers) => peers
                .iter()
                .enumerate()
                .map(|(j, peer)| self.peer(path, &format!("{peer_field}[{j}]"), peer, warnings))
                .collect(),
        };
        let ports: Vec<(Ports, String)> = match ports {
            None | Some([]) => vec![(Ports::Any, "any port".to_string())],
            Some(ports) => ports
                .iter()
                .enumerate()
                .map(|(k, port)| port_selection(k, port))
                .collect(),
        };
        let mut clauses = Vec::new();
        for (peer, peer_text) in &peers {
            for (port, port_text) in &ports {
                clauses.push(Clause {
                    direction,
                    deny: false,
                    peers: peer.clone(),
                    requires: Vec::new(),
                    ports: port.clone(),
                    rule: self.rule(path, peer_text.clone(), port_text.clone()),
                });
            }
        }
        clauses
    }

    /// One peer: pods by selector in this or selected namespaces, or an `ipBlock`.
    fn peer(
        &self,
        path: &str,
        field: &str,
        peer: &NetworkPolicyPeer,
        warnings: &mut Vec<Warning>,
    ) -> (crate::clause::Peers, String) {
        use crate::clause::Peers;
        let rule = || self.rule_name(path);
        if let Some(block) = &peer.ip_block {
            let field = format!("{field}.ipBlock");
            let Some(net) = cidr(&block.cidr, rule, &format!("{field}.cidr"), warnings) else {
                return (Peers::Nothing, field);
            };
            let except = block
                .except
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(e, text)| cidr(text, rule, &format!("{field}.except[{e}]"), warnings))
                .collect();
            let text = format!("{field} {net}");
            return (
                Peers::Cidr {
                    cidr: net,
                    except,
                    pods: true,
                },
                text,
            );
        }
        let pods = match &peer.pod_selector {
            Some(s) => selector(Some(s), rule, &format!("{field}.podSelector"), warnings),
            None => Some(LabelSelector::default()),
        };
        let namespaces = match &peer.namespace_selector {
            Some(s) => selector(
                Some(s),
                rule,
                &format!("{field}.namespaceSelector"),
                warnings,
            )
            .map(Some),
            None => Some(None),
        };
        let (Some(pods), Some(namespace_labels)) = (pods, namespaces) else {
            return (Peers::Nothing, field.to_string());
        };
        let text = match (&peer.pod_selector, &namespace_labels) {
            (Some(_), Some(ns)) => format!("{field} pods {pods} in namespaces {ns}"),
            (_, Some(ns)) => format!("{field} namespaces {ns}"),
            _ => format!("{field} pods {pods}"),
        };
        let namespace = namespace_labels
            .is_none()
            .then(|| self.namespace.to_string());
        (
            Peers::Selected(Selection {
                labels: pods,
                namespace,
                namespace_labels,
            }),
            text,
        )
    }
}

/// A NetworkPolicy port: protocol (TCP when absent), a number, range or name; no port
/// means every port of the protocol.
fn port_selection(k: usize, port: &NetworkPolicyPort) -> (Ports, String) {
    let protocol = match port.protocol.as_deref() {
        Some("UDP") => proto::UDP,
        Some("SCTP") => proto::SCTP,
        _ => proto::TCP,
    };
    let number = match &port.port {
        None => PortNumber::Range(0, u16::MAX),
        Some(IntOrString::Int(first)) => {
            let first = clamp_port(*first);
            let last = port.end_port.map_or(first, clamp_port).max(first);
            PortNumber::Range(first, last)
        }
        Some(IntOrString::String(name)) => PortNumber::Named(name.clone()),
    };
    let text = format!(
        "ports[{k}] {}/{}",
        show_port(&number),
        proto::name(protocol)
    );
    (
        Ports::L4 {
            protos: vec![protocol],
            port: number,
        },
        text,
    )
}

/// A validated port number as u16 (validation refused anything outside 0-65535).
fn clamp_port(port: i32) -> u16 {
    port.clamp(0, i32::from(u16::MAX)) as u16
}

/// `80`, `8000-8080`, `http`, or `*` for every port.
pub fn show_port(number: &PortNumber) -> String {
    match number {
        PortNumber::Range(0, u16::MAX) => "*".to_string(),
        PortNumber::Range(first, last) if first == last => first.to_string(),
        PortNumber::Range(first, last) => format!("{first}-{last}"),
        PortNumber::Named(name) => name.clone(),
    }
}

//! `cilium.io/v2` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy as sections:
//! each rule of `spec` and `specs` selects endpoints (of the policy's namespace for a
//! CiliumNetworkPolicy, of every namespace for a clusterwide one) and lists allow and
//! deny clauses by endpoints, entities and CIDRs (which never select pods), with
//! `toPorts` (ranges, protocol ANY) and ICMP types.

use crate::clause::{Clause, Peers, PortNumber, Ports, Section, icmp_port, proto};
use crate::network_policy::show_port;
use crate::output::{Direction, PolicyKind, RuleRef, Warning};
use crate::parse::{cidr, selector};
use crate::universe::{NAMESPACE_KEY, Selection};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use membrane_common::identity;
use membrane_model::LabelSelector;
use membrane_model::cilium::{
    CidrRule, EgressRule, Entity, IcmpFamily, IcmpRule, IngressRule, L4Protocol, PortRule, Rule,
};
use membrane_model::selector::match_key;

/// The policy a rule belongs to.
pub struct Source<'a> {
    /// CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
    pub kind: PolicyKind,
    /// The namespace of a CiliumNetworkPolicy; `None` for a clusterwide one.
    pub namespace: Option<&'a str>,
    /// The policy's name.
    pub name: &'a str,
}

/// The sections of a policy's rules (`spec`, then `specs`); problems are added to
/// `warnings` and the part they affect allows nothing.
pub fn sections(
    source: &Source<'_>,
    spec: Option<&Rule>,
    specs: Option<&[Rule]>,
    warnings: &mut Vec<Warning>,
) -> Vec<Section> {
    let rules = spec
        .map(|rule| ("spec".to_string(), rule))
        .into_iter()
        .chain(
            specs
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, rule)| (format!("specs[{i}]"), rule)),
        );
    rules
        .filter_map(|(path, rule)| source.section(&path, rule, warnings))
        .collect()
}

/// The peer and port fields shared by ingress (`from*`) and egress (`to*`) rules.
struct PeerRule<'a> {
    /// `from` or `to`.
    prefix: &'static str,
    endpoints: Option<&'a [meta::LabelSelector]>,
    requires: Option<&'a [meta::LabelSelector]>,
    entities: Option<&'a [Entity]>,
    cidrs: Option<&'a [String]>,
    cidr_sets: Option<&'a [CidrRule]>,
    fqdns: bool,
    to_ports: Option<&'a [PortRule]>,
    icmps: Option<&'a [IcmpRule]>,
}

impl<'a> From<&'a IngressRule> for PeerRule<'a> {
    fn from(rule: &'a IngressRule) -> Self {
        PeerRule {
            prefix: "from",
            endpoints: rule.from_endpoints.as_deref(),
            requires: rule.from_requires.as_deref(),
            entities: rule.from_entities.as_deref(),
            cidrs: rule.from_cidr.as_deref(),
            cidr_sets: rule.from_cidr_set.as_deref(),
            fqdns: false,
            to_ports: rule.to_ports.as_deref(),
            icmps: rule.icmps.as_deref(),
        }
    }
}

impl<'a> From<&'a EgressRule> for PeerRule<'a> {
    fn from(rule: &'a EgressRule) -> Self {
        PeerRule {
            prefix: "to",
            endpoints: rule.to_endpoints.as_deref(),
            requires: rule.to_requires.as_deref(),
            entities: rule.to_entities.as_deref(),
            cidrs: rule.to_cidr.as_deref(),
            cidr_sets: rule.to_cidr_set.as_deref(),
            fqdns: rule.to_fqdns.as_ref().is_some_and(|f| !f.is_empty()),
            to_ports: rule.to_ports.as_deref(),
            icmps: rule.icmps.as_deref(),
        }
    }
}

impl PeerRule<'_> {
    fn has_peers(&self) -> bool {
        self.endpoints.is_some()
            || self.entities.is_some()
            || self.cidrs.is_some()
            || self.cidr_sets.is_some()
            || self.fqdns
    }
}

impl Source<'_> {
    fn rule_name(&self, path: &str) -> String {
        match self.namespace {
            Some(ns) => format!("{} {ns}/{} {path}", self.kind.as_str(), self.name),
            None => format!("{} {} {path}", self.kind.as_str(), self.name),
        }
    }

    fn section(&self, path: &str, rule: &Rule, warnings: &mut Vec<Warning>) -> Option<Section> {
        let Some(endpoints) = &rule.endpoint_selector else {
            warnings.push(Warning {
                rule: self.rule_name(path),
                field: "nodeSelector".to_string(),
                problem: "host policies are not enforced; the rule selects no endpoint".to_string(),
            });
            return None;
        };
        let labels = selector(
            Some(endpoints),
            || self.rule_name(path),
            "endpointSelector",
            warnings,
        )?;
        let present = |a: Option<usize>, b: Option<usize>| a.unwrap_or(0) + b.unwrap_or(0) > 0;
        let defaults = rule.enable_default_deny.unwrap_or_default();
        let ingress_default_deny = defaults.ingress.unwrap_or(present(
            rule.ingress.as_ref().map(Vec::len),
            rule.ingress_deny.as_ref().map(Vec::len),
        ));
        let egress_default_deny = defaults.egress.unwrap_or(present(
            rule.egress.as_ref().map(Vec::len),
            rule.egress_deny.as_ref().map(Vec::len),
        ));
        let mut clauses = Vec::new();
        let lists: [(&str, Direction, bool, Vec<PeerRule<'_>>); 4] = [
            (
                "ingress",
                Direction::Ingress,
                false,
                rule.ingress.iter().flatten().map(PeerRule::from).collect(),
            ),
            (
                "ingressDeny",
                Direction::Ingress,
                true,
                rule.ingress_deny
                    .iter()
                    .flatten()
                    .map(PeerRule::from)
                    .collect(),
            ),
            (
                "egress",
                Direction::Egress,
                false,
                rule.egress.iter().flatten().map(PeerRule::from).collect(),
            ),
            (
                "egressDeny",
                Direction::Egress,
                true,
                rule.egress_deny
                    .iter()
                    .flatten()
                    .map(PeerRule::from)
                    .collect(),
            ),
        ];
        for (list, direction, deny, entries) in lists {
            for (i, entry) in entries.iter().enumerate() {
                let path = format!("{path}.{list}[{i}]");
                clauses.extend(self.clauses(&path, direction, deny, entry, warnings));
            }
        }
        Some(Section {
            subject: Selection {
                labels,
                namespace: self.namespace.map(str::to_string),
                namespace_labels: None,
            },
            ingress_default_deny,
            egress_default_deny,
            clauses,
        })
    }

    /// A peer selector: scoped to the policy's namespace unless it names a namespace
    /// itself (or the policy is clusterwide).
    fn scoped(&self, labels: LabelSelector) -> Selection {
        let names_namespace = labels
            .match_labels()
            .keys()
            .any(|k| match_key(k) == NAMESPACE_KEY)
            || labels
                .match_expressions()
                .iter()
                .any(|r| match_key(r.key()) == NAMESPACE_KEY);
        Selection {
            labels,
            namespace: (!names_namespace)
                .then(|| self.namespace.map(str::to_string))
                .flatten(),
            namespace_labels: None,
        }
    }

    fn clauses(
        &self,
        path: &str,
        direction: Direction,
        deny: bool,
        entry: &PeerRule<'_>,
        warnings: &mut Vec<Warning>,
    ) -> Vec<Clause> {
        let rule_name = || self.rule_name(path);
        let prefix = entry.prefix;
        let mut peers: Vec<(Peers, String)> = Vec::new();
        for (j, s) in entry.endpoints.into_iter().flatten().enumerate() {
            let field = format!("{prefix}Endpoints[{j}]");
            let peer = match selector(Some(s), rule_name, &field, warnings) {
                Some(labels) => {
                    let text = format!("{field} {labels}");
                    (Peers::Selected(self.scoped(labels)), text)
                }
                None => (Peers::Nothing, field),
            };
            peers.push(peer);
        }
        for entity in entry.entities.into_iter().flatten() {
            let name = serde_name(entity);
            peers.push((entity_peers(*entity), format!("{prefix}Entities[{name}]")));
        }
        for (j, text) in entry.cidrs.into_iter().flatten().enumerate() {
            let field = format!("{prefix}CIDR[{j}]");
            let peer = match cidr(text, rule_name, &field, warnings) {
                Some(net) => (
                    Peers::Cidr {
                        cidr: net,
                        except: Vec::new(),
                        pods: false,
                    },
                    format!("{field} {net}"),
                ),
                None => (Peers::Nothing, field),
            };
            peers.push(peer);
        }
        for (j, set) in entry.cidr_sets.into_iter().flatten().enumerate() {
            let field = format!("{prefix}CIDRSet[{j}]");
            let peer = match cidr(&set.cidr, rule_name, &format!("{field}.cidr"), warnings) {
                Some(net) => {
                    let except = set
                        .except
                        .iter()
                        .flatten()
                        .enumerate()
                        .filter_map(|(e, text)| {
                            cidr(text, rule_name, &format!("{field}.except[{e}]"), warnings)
                        })
                        .collect();
                    (
                        Peers::Cidr {
                            cidr: net,
                            except,
                            pods: false,
                        },
                        format!("{field} {net}"),
                    )
                }
                None => (Peers::Nothing, field),
            };
            peers.push(peer);
        }
        if entry.fqdns {
            warnings.push(Warning {
                rule: rule_name(),
                field: "toFQDNs".to_string(),
                problem: "DNS-based peers are not enforced yet; they allow nothing".to_string(),
            });
        }
        let has_ports = entry.to_ports.is_some() || entry.icmps.is_some();
        if !entry.has_peers() && has_ports {
            peers.push((Peers::Any, "any peer".to_string()));
        }
        let requires: Vec<Selection> = entry
            .requires
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(j, s)| {
                selector(
                    Some(s),
                    rule_name,
                    &format!("{prefix}Requires[{j}]"),
                    warnings,
                )
            })
            .map(|labels| self.scoped(labels))
            .collect();
        let ports = if has_ports {
            self.ports(entry, rule_name, warnings)
        } else {
            vec![(Ports::Any, "any port".to_string())]
        };
        let mut clauses = Vec::new();
        for (peer, peer_text) in &peers {
            for (port, port_text) in &ports {
                clauses.push(Clause {
                    direction,
                    deny,
                    peers: peer.clone(),
                    requires: requires.clone(),
                    ports: port.clone(),
                    rule: RuleRef {
                        kind: self.kind,
                        namespace: self.namespace.map(str::to_string),
                        name: self.name.to_string(),
                        path: path.to_string(),
                        peer: peer_text.clone(),
                        port: port_text.clone(),
                        deny,
                    },
                });
            }
        }
        clauses
    }

    /// The port selections of `toPorts` and `icmps`.
    fn ports(
        &self,
        entry: &PeerRule<'_>,
        rule_name: impl Fn() -> String + Copy,
        warnings: &mut Vec<Warning>,
    ) -> Vec<(Ports, String)> {
        let mut out = Vec::new();
        for (k, port_rule) in entry.to_ports.into_iter().flatten().enumerate() {
            if port_rule.rules.is_some() {
                warnings.push(Warning {
                    rule: rule_name(),
                    field: format!("toPorts[{k}].rules"),
                    problem: "L7 rules are not enforced; the ports are allowed at L4".to_string(),
                });
            }
            let ports = port_rule.ports.as_deref().unwrap_or_default();
            if ports.is_empty() {
                out.push((Ports::Any, format!("toPorts[{k}] any port")));
            }
            for (m, port) in ports.iter().enumerate() {
                let protos: Vec<u8> = match port.protocol {
                    Some(L4Protocol::Tcp) => vec![proto::TCP],
                    Some(L4Protocol::Udp) => vec![proto::UDP],
                    Some(L4Protocol::Sctp) => vec![proto::SCTP],
                    Some(L4Protocol::Any) | None => proto::ANY.to_vec(),
                };
                let number = match port.port.parse::<u16>() {
                    Ok(0) => PortNumber::Range(0, u16::MAX),
                    Ok(first) => {
                        let last = port
                            .end_port
                            .map_or(first, |e| e.clamp(0, i32::from(u16::MAX)) as u16);
                        PortNumber::Range(first, last.max(first))
                    }
                    Err(_) => PortNumber::Named(port.port.clone()),
                };
                let protocol = match port.protocol {
                    Some(L4Protocol::Tcp) => "TCP",
                    Some(L4Protocol::Udp) => "UDP",
                    Some(L4Protocol::Sctp) => "SCTP",
                    Some(L4Protocol::Any) | None => "ANY",
                };
                let text = format!("toPorts[{k}].ports[{m}] {}/{protocol}", show_port(&number));
                let selection = if number == PortNumber::Range(0, u16::MAX) && protos.len() > 1 {
                    Ports::Any
                } else {
                    Ports::L4 {
                        protos,
                        port: number,
                    }
                };
                out.push((selection, text));
            }
        }
        for (k, icmp) in entry.icmps.into_iter().flatten().enumerate() {
            for (m, field) in icmp.fields.iter().flatten().enumerate() {
                let path = format!("icmps[{k}].fields[{m}]");
                let Some(icmp_type) = field.type_number() else {
                    warnings.push(Warning {
                        rule: rule_name(),
                        field: path,
                        problem: format!(
                            "no ICMP type of that name for {}",
                            field.family().as_str()
                        ),
                    });
                    continue;
                };
                let protocol = match field.family() {
                    IcmpFamily::IPv4 => proto::ICMP,
                    IcmpFamily::IPv6 => proto::ICMPV6,
                };
                let port = icmp_port(icmp_type);
                out.push((
                    Ports::L4 {
                        protos: vec![protocol],
                        port: PortNumber::Range(port, port),
                    },
                    format!("{path} {icmp_type}/{}", proto::name(protocol)),
                ));
            }
        }
        out
    }
}

/// The peers an entity stands for.
fn entity_peers(entity: Entity) -> Peers {
    match entity {
        Entity::All => Peers::Any,
        Entity::World => Peers::World {
            ipv4: true,
            ipv6: true,
        },
        Entity::WorldIpv4 => Peers::World {
            ipv4: true,
            ipv6: false,
        },
        Entity::WorldIpv6 => Peers::World {
            ipv4: false,
            ipv6: true,
        },
        Entity::Cluster => Peers::Cluster,
        Entity::Host => Peers::Reserved(identity::HOST),
        Entity::RemoteNode => Peers::Reserved(identity::REMOTE_NODE),
        Entity::KubeApiserver => Peers::Reserved(identity::KUBE_APISERVER),
        Entity::Ingress => Peers::Reserved(identity::INGRESS),
        Entity::Init => Peers::Reserved(identity::INIT),
        Entity::Health => Peers::Reserved(identity::HEALTH),
        Entity::Unmanaged => Peers::Reserved(identity::UNMANAGED),
    }
}

/// The entity as manifests spell it.
fn serde_name(entity: &Entity) -> &'static str {
    match entity {
        Entity::All => "all",
        Entity::World => "world",
        Entity::WorldIpv4 => "world-ipv4",
        Entity::WorldIpv6 => "world-ipv6",
        Entity::Cluster => "cluster",
        Entity::Host => "host",
        Entity::RemoteNode => "remote-node",
        Entity::KubeApiserver => "kube-apiserver",
        Entity::Ingress => "ingress",
        Entity::Init => "init",
        Entity::Health => "health",
        Entity::Unmanaged => "unmanaged",
    }
}

//! The compilation: policies to sections, CIDR identities, then per local endpoint the
//! sections selecting it, its enforcement flags and its entries.

use crate::cidr;
use crate::cilium::{self, Source};
use crate::clause::{Peers, PortNumber, Ports, Section};
use crate::entries::{self, Item};
use crate::input::{EnforcementMode, LocalEndpoint, NamedPort, PolicyInput};
use crate::network_policy;
use crate::output::{Compiled, Direction, EndpointPolicy, PolicyKind, RuleRef, Warning};
use crate::resolve::{Resolved, Resolver};
use crate::rule_ids::RuleIds;
use crate::universe::{IdentityLabels, Universe};
use ipnet::IpNet;
use membrane_common::identity;
use membrane_model::Object;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Compiles `input`: every local endpoint's flags and entries, the rule table and the
/// CIDR identities in use.
pub fn compile(input: &PolicyInput) -> Compiled {
    let mut warnings = Vec::new();
    let sections = sections(&input.policies, &mut warnings);
    let cidr_identities = cidr::allocate(
        &prefixes(&sections, |host| input.owns_host(host)),
        &input.previous_cidr_identities,
    );
    let universe = Universe::new(input);
    let resolver = Resolver {
        universe: &universe,
        cidr_identities: &cidr_identities,
        pod_addresses: &input.pod_addresses,
    };
    let mut rule_ids = RuleIds::default();
    let mut resolved: HashMap<(usize, usize), Resolved> = HashMap::new();
    let mut endpoints = BTreeMap::new();
    for endpoint in &input.endpoints {
        let policy = if input.mode == EnforcementMode::Never {
            EndpointPolicy::default()
        } else {
            let mut ctx = EndpointContext {
                input,
                sections: &sections,
                resolver: &resolver,
                rule_ids: &mut rule_ids,
                resolved: &mut resolved,
                cluster_named_ports: &input.cluster_named_ports,
            };
            ctx.endpoint(endpoint)
        };
        endpoints.insert(endpoint.id, policy);
    }
    Compiled {
        endpoints,
        rules: rule_ids.into_table(),
        cidr_identities,
        warnings,
    }
}

/// The sections of every policy object, in a stable order (kind, namespace, name).
fn sections(policies: &[Object], warnings: &mut Vec<Warning>) -> Vec<Section> {
    let mut sorted: Vec<&Object> = policies.iter().collect();
    sorted.sort_by_key(|o| {
        let meta = o.metadata();
        (o.kind(), meta.namespace.clone(), meta.name.clone())
    });
    let mut out = Vec::new();
    for object in sorted {
        let meta = object.metadata();
        let name = meta.name.as_deref().unwrap_or_default();
        match object {
            Object::NetworkPolicy(policy) => out.extend(network_policy::sections(policy, warnings)),
            Object::CiliumNetworkPolicy(policy) => {
                let namespace = meta.namespace.as_deref().unwrap_or("default");
                let source = Source {
                    kind: PolicyKind::CiliumNetworkPolicy,
                    namespace: Some(namespace),
                    name,
                };
                out.extend(cilium::sections(
                    &source,
                    policy.spec.as_ref(),
                    policy.specs.as_deref(),
                    warnings,
                ));
            }
            Object::CiliumClusterwideNetworkPolicy(policy) => {
                let source = Source {
                    kind: PolicyKind::CiliumClusterwideNetworkPolicy,
                    namespace: None,
                    name,
                };
                out.extend(cilium::sections(
                    &source,
                    policy.spec.as_ref(),
                    policy.specs.as_deref(),
                    warnings,
                ));
            }
            _ => {}
        }
    }
    out
}

/// Every prefix the sections name, `except` prefixes included, less the host prefixes
/// of pod and node addresses (`taken`): the ipcache holds those as the pods' and nodes'
/// own entries (a CIDR identity there would replace their identity and tunnel
/// endpoint), and their identity is what such a rule meets.
fn prefixes(sections: &[Section], taken: impl Fn(IpAddr) -> bool) -> BTreeSet<IpNet> {
    sections
        .iter()
        .flat_map(|s| &s.clauses)
        .filter_map(|c| match &c.peers {
            Peers::Cidr { cidr, except, .. } => Some(std::iter::once(cidr).chain(except)),
            _ => None,
        })
        .flatten()
        .copied()
        .filter(|prefix| !(prefix.prefix_len() == prefix.max_prefix_len() && taken(prefix.addr())))
        .collect()
}

/// What compiling one endpoint needs.
struct EndpointContext<'a> {
    input: &'a PolicyInput,
    sections: &'a [Section],
    resolver: &'a Resolver<'a>,
    rule_ids: &'a mut RuleIds,
    resolved: &'a mut HashMap<(usize, usize), Resolved>,
    cluster_named_ports: &'a BTreeSet<NamedPort>,
}

impl EndpointContext<'_> {
    fn endpoint(&mut self, endpoint: &LocalEndpoint) -> EndpointPolicy {
        let labels = IdentityLabels::new(&endpoint.labels, &self.input.namespaces);
        let always = self.input.mode == EnforcementMode::Always;
        let (mut ingress_deny, mut egress_deny) = (always, always);
        let mut items = Vec::new();
        for (s, section) in self.sections.iter().enumerate() {
            if !section.subject.matches(&labels) {
                continue;
            }
            ingress_deny |= section.ingress_default_deny;
            egress_deny |= section.egress_default_deny;
            for (c, clause) in section.clauses.iter().enumerate() {
                let peers = self
                    .resolved
                    .entry((s, c))
                    .or_insert_with(|| self.resolver.resolve(&clause.peers, &clause.requires))
                    .clone();
                let ports = self.ports(&clause.ports, clause.direction, endpoint);
                if ports.is_empty() {
                    continue;
                }
                let rule_id = self.rule_ids.id(&clause.rule);
                let identities: Vec<u32> = match peers {
                    Resolved::Any => vec![0],
                    Resolved::Set(set) => set.into_iter().collect(),
                };
                for identity in identities {
                    for &(proto, first, last) in &ports {
                        items.push(Item {
                            direction: clause.direction,
                            proto,
                            identity,
                            first,
                            last,
                            deny: clause.deny,
                            rule_id,
                        });
                    }
                }
            }
        }
        let mut policy = EndpointPolicy {
            audit: self.input.audit,
            ..EndpointPolicy::default()
        };
        for (direction, default_deny) in [
            (Direction::Ingress, ingress_deny),
            (Direction::Egress, egress_deny),
        ] {
            let enforced = default_deny || items.iter().any(|i| i.direction == direction && i.deny);
            if !enforced {
                items.retain(|i| i.direction != direction);
                continue;
            }
            match direction {
                Direction::Ingress => policy.ingress_enforced = true,
                Direction::Egress => policy.egress_enforced = true,
            }
            if direction == Direction::Ingress {
                // The node reaches its endpoints (kubelet probes), as Cilium's
                // allow-localhost does; a deny of the host still wins.
                items.push(self.builtin(direction, identity::HOST, "allow-localhost", "host"));
            }
            if !default_deny {
                // Selected only by rules without default deny that deny something: what
                // they do not deny stays allowed.
                items.push(self.builtin(direction, 0, "allow-not-denied", "any peer"));
            }
        }
        policy.entries = entries::build(items);
        policy
    }

    /// An allow of every port from `identity`, described as a built-in rule.
    fn builtin(&mut self, direction: Direction, identity: u32, name: &str, peer: &str) -> Item {
        let rule_id = self.rule_ids.id(&RuleRef {
            kind: PolicyKind::Builtin,
            namespace: None,
            name: name.to_string(),
            path: direction.as_str().to_string(),
            peer: peer.to_string(),
            port: "any port".to_string(),
            deny: false,
        });
        Item {
            direction,
            proto: 0,
            identity,
            first: 0,
            last: u16::MAX,
            deny: false,
            rule_id,
        }
    }

    /// The (protocol, first, last) triples of a port selection for `endpoint`: named
    /// ports resolve through the endpoint's own ports on ingress and through every
    /// pod's on egress.
    fn ports(
        &self,
        ports: &Ports,
        direction: Direction,
        endpoint: &LocalEndpoint,
    ) -> Vec<(u8, u16, u16)> {
        match ports {
            Ports::Any => vec![(0, 0, u16::MAX)],
            Ports::L4 {
                protos,
                port: PortNumber::Range(first, last),
            } => protos.iter().map(|p| (*p, *first, *last)).collect(),
            Ports::L4 {
                protos,
                port: PortNumber::Named(name),
            } => {
                let named: Box<dyn Iterator<Item = &NamedPort>> = match direction {
                    Direction::Ingress => Box::new(endpoint.named_ports.iter()),
                    Direction::Egress => Box::new(self.cluster_named_ports.iter()),
                };
                let mut found: Vec<(u8, u16, u16)> = named
                    .filter(|n| n.name == *name && protos.contains(&n.proto))
                    .map(|n| (n.proto, n.port, n.port))
                    .collect();
                found.sort_unstable();
                found.dedup();
                found
            }
        }
    }
}

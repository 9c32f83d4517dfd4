//! One local endpoint's compilation: the sections selecting it, its enforcement flags
//! and its entries, built whole or, for one peer identity, only that peer's entries.

use super::{SectionRef, Shared};
use crate::clause::{PortNumber, Ports};
use crate::entries::{self, Item};
use crate::input::{EnforcementMode, LocalEndpoint, NamedPort};
use crate::output::{Direction, EndpointPolicy, PolicyKind, RuleRef};
use crate::resolve::{Resolved, Resolver};
use crate::universe::IdentityLabels;
use membrane_common::identity;
use std::collections::BTreeSet;

/// Both directions, in the order flags and built-in rules are decided.
const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// A local endpoint, what selects it and what it compiled to.
#[derive(Clone, Debug)]
pub struct EndpointState {
    /// The endpoint as given.
    pub endpoint: LocalEndpoint,
    /// Its labels as selectors see them.
    pub labels: IdentityLabels,
    /// The sections whose subject selects it.
    pub sections: BTreeSet<SectionRef>,
    /// Per direction (ingress, egress): default deny from the mode or a section.
    default_deny: [bool; 2],
    /// Per direction: the peers some deny entry names (a direction with deny rules
    /// is enforced).
    denied: [BTreeSet<u32>; 2],
    /// The rule ids its entries and flags come from (held in the rule table).
    rules: BTreeSet<u32>,
    /// The compiled flags and entries.
    pub policy: EndpointPolicy,
}

/// Index of a direction in the per-direction arrays.
fn at(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// Whether `policy` enforces `direction`.
fn enforced(policy: &EndpointPolicy, direction: Direction) -> bool {
    match direction {
        Direction::Ingress => policy.ingress_enforced,
        Direction::Egress => policy.egress_enforced,
    }
}

impl EndpointState {
    /// `endpoint` with the sections of `shared` selecting it; nothing compiled yet.
    pub fn new(endpoint: LocalEndpoint, shared: &Shared) -> EndpointState {
        let labels = IdentityLabels::new(&endpoint.labels, &shared.input.namespaces);
        let sections = shared.sections_selecting(&labels).collect();
        EndpointState {
            endpoint,
            labels,
            sections,
            default_deny: [false; 2],
            denied: Default::default(),
            rules: BTreeSet::new(),
            policy: EndpointPolicy::default(),
        }
    }

    /// Compiles the flags and every entry again (peers resolved once per clause and
    /// kept in `shared`).
    pub fn build(&mut self, shared: &mut Shared) {
        let held = std::mem::take(&mut self.rules);
        self.denied = Default::default();
        self.policy = EndpointPolicy::default();
        if shared.input.mode != EnforcementMode::Never {
            self.compile(shared);
        }
        for id in &self.rules {
            shared.rule_ids.hold(*id);
        }
        for id in held {
            shared.rule_ids.release(id);
        }
    }

    /// Gives back the rule ids the endpoint holds (it is gone).
    pub fn release(self, shared: &mut Shared) {
        for id in self.rules {
            shared.rule_ids.release(id);
        }
    }

    fn compile(&mut self, shared: &mut Shared) {
        let always = shared.input.mode == EnforcementMode::Always;
        self.default_deny = [always; 2];
        for section in self.sections.iter().map(|r| shared.section(*r)) {
            self.default_deny[0] |= section.ingress_default_deny;
            self.default_deny[1] |= section.egress_default_deny;
        }
        let mut rules = BTreeSet::new();
        let mut items = clause_items(shared, self, None, &mut rules);
        self.rules = rules;
        self.policy.audit = shared.input.audit;
        for direction in DIRECTIONS {
            let d = at(direction);
            self.denied[d] = items
                .iter()
                .filter(|i| i.direction == direction && i.deny)
                .map(|i| i.identity)
                .collect();
            if !self.default_deny[d] && self.denied[d].is_empty() {
                items.retain(|i| i.direction != direction);
                continue;
            }
            match direction {
                Direction::Ingress => self.policy.ingress_enforced = true,
                Direction::Egress => self.policy.egress_enforced = true,
            }
            items.extend(self.builtins(shared, direction, None));
        }
        self.policy.entries = entries::build(items);
    }

    /// Compiles again only the entries naming `peer` (whose membership in some clause
    /// changed). False, with nothing changed, when the endpoint's enforcement would
    /// change: then it needs [`EndpointState::build`].
    pub fn refresh_peer(&mut self, shared: &mut Shared, peer: u32) -> bool {
        if shared.input.mode == EnforcementMode::Never {
            return true;
        }
        let items = clause_items(shared, self, Some(peer), &mut BTreeSet::new());
        let mut denied = self.denied.clone();
        for direction in DIRECTIONS {
            let d = at(direction);
            if items.iter().any(|i| i.direction == direction && i.deny) {
                denied[d].insert(peer);
            } else {
                denied[d].remove(&peer);
            }
            let now = self.default_deny[d] || !denied[d].is_empty();
            if now != enforced(&self.policy, direction) {
                return false;
            }
        }
        self.denied = denied;
        self.policy.entries.retain(|key, _| key.identity != peer);
        let mut wanted: Vec<Item> = items
            .into_iter()
            .filter(|i| enforced(&self.policy, i.direction))
            .collect();
        for direction in DIRECTIONS {
            if enforced(&self.policy, direction) {
                wanted.extend(self.builtins(shared, direction, Some(peer)));
            }
        }
        self.policy.entries.extend(entries::build(wanted));
        true
    }

    /// The built-in allows of an enforced `direction` (those of `peer` only, when
    /// given): the node reaches its endpoints (kubelet probes), as Cilium's
    /// allow-localhost does (a deny of the host still wins), and a direction enforced
    /// only by deny rules allows what they do not deny.
    fn builtins(
        &mut self,
        shared: &mut Shared,
        direction: Direction,
        peer: Option<u32>,
    ) -> Vec<Item> {
        let mut out = Vec::new();
        let mut add = |identity: u32, name: &str, peer_name: &str, rules: &mut BTreeSet<u32>| {
            let rule_id = shared.rule_ids.id(&RuleRef {
                kind: PolicyKind::Builtin,
                namespace: None,
                name: name.to_string(),
                path: direction.as_str().to_string(),
                peer: peer_name.to_string(),
                port: "any port".to_string(),
                deny: false,
            });
            rules.insert(rule_id);
            out.push(Item {
                direction,
                proto: 0,
                identity,
                first: 0,
                last: u16::MAX,
                deny: false,
                rule_id,
            });
        };
        let wants = |identity: u32| peer.is_none_or(|p| p == identity);
        if direction == Direction::Ingress && wants(identity::HOST) {
            add(identity::HOST, "allow-localhost", "host", &mut self.rules);
        }
        if !self.default_deny[at(direction)] && wants(0) {
            add(0, "allow-not-denied", "any peer", &mut self.rules);
        }
        out
    }
}

/// The items of the clauses selecting `state`'s endpoint (those of `peer` only, when
/// given); the rule ids of clauses with ports are added to `rules`.
fn clause_items(
    shared: &mut Shared,
    state: &EndpointState,
    peer: Option<u32>,
    rules: &mut BTreeSet<u32>,
) -> Vec<Item> {
    let Shared {
        input,
        policies,
        universe,
        cidr_identities,
        resolved,
        rule_ids,
        ..
    } = shared;
    let resolver = Resolver {
        universe,
        cidr_identities,
        pod_addresses: &input.pod_addresses,
    };
    let mut items = Vec::new();
    for section_ref in &state.sections {
        let section = &policies[&section_ref.policy].sections[section_ref.section];
        for (c, clause) in section.clauses.iter().enumerate() {
            let ports = ports(
                &clause.ports,
                clause.direction,
                &state.endpoint,
                &input.cluster_named_ports,
            );
            if ports.is_empty() {
                continue;
            }
            let rule_id = rule_ids.id(&clause.rule);
            rules.insert(rule_id);
            let peers = resolved
                .entry(section_ref.clause(c))
                .or_insert_with(|| resolver.resolve(&clause.peers, &clause.requires));
            let identities: Vec<u32> = match (peers, peer) {
                (Resolved::Any, None | Some(0)) => vec![0],
                (Resolved::Any, Some(_)) => Vec::new(),
                (Resolved::Set(set), None) => set.iter().copied().collect(),
                (Resolved::Set(set), Some(p)) => set.get(&p).copied().into_iter().collect(),
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
    items
}

/// The (protocol, first, last) triples of a port selection for `endpoint`: named ports
/// resolve through the endpoint's own ports on ingress and through every pod's
/// (`cluster`) on egress.
fn ports(
    ports: &Ports,
    direction: Direction,
    endpoint: &LocalEndpoint,
    cluster: &BTreeSet<NamedPort>,
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
                Direction::Egress => Box::new(cluster.iter()),
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

/// Whether a section has an egress clause with a named port (resolved through every
/// pod's named ports, so a change of those recompiles its endpoints).
pub fn names_egress_ports(section: &crate::clause::Section) -> bool {
    section.clauses.iter().any(|c| {
        c.direction == Direction::Egress
            && matches!(
                &c.ports,
                Ports::L4 {
                    port: PortNumber::Named(_),
                    ..
                }
            )
    })
}

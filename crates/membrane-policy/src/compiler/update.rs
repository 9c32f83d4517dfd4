//! Bringing a [`Compiler`] to a new input: each difference from the input it holds is
//! applied on its own (a policy's sections, an identity's place in the resolved peers,
//! an endpoint), the work they cause is gathered, and each affected endpoint is then
//! compiled once: whole, or only for the peers whose membership changed.

use super::endpoint::{EndpointState, names_egress_ports};
use super::{Compiler, PolicyKey, SectionRef, Shared, key_of};
use crate::clause::{Clause, Peers};
use crate::input::{Labels, LocalEndpoint, PolicyInput};
use crate::resolve::{Resolved, Resolver};
use membrane_model::Object;
use std::collections::{BTreeMap, BTreeSet};

/// What an update changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Endpoints whose flags or entries may have changed, added and removed ones
    /// included.
    pub endpoints: BTreeSet<u16>,
    /// Everything was compiled again (the namespaces, the mode or audit changed).
    pub full: bool,
}

/// Work an update's changes cause, done once at its end.
#[derive(Debug, Default)]
struct Pending {
    /// Endpoints to compile whole.
    rebuild: BTreeSet<u16>,
    /// Per endpoint, the peers whose entries to compile again.
    peers: BTreeMap<u16, BTreeSet<u32>>,
    /// Pod or node addresses changed.
    addresses: bool,
    /// Pods' named ports changed.
    named_ports: bool,
    /// A policy was added, changed or removed.
    policies: bool,
}

/// Per section, the peer identities that joined or left one of its clauses.
type Deltas = BTreeMap<SectionRef, BTreeSet<u32>>;

impl Compiler {
    /// Brings the compilation to `input` (its `previous_cidr_identities` is not read:
    /// the compiler keeps its own) and says what changed.
    pub fn update(&mut self, input: PolicyInput) -> Changes {
        let held = &self.shared.input;
        if input.mode != held.mode
            || input.audit != held.audit
            || input.namespaces != held.namespaces
        {
            return self.recompile(input);
        }
        let PolicyInput {
            policies,
            identities,
            pod_addresses,
            node_addresses,
            cluster_named_ports,
            endpoints,
            ..
        } = input;
        let mut pending = Pending::default();
        let mut changes = Changes::default();
        self.update_policies(policies, &mut pending);
        self.update_identities(identities, &mut pending);
        let held = &mut self.shared.input;
        if pod_addresses != held.pod_addresses || node_addresses != held.node_addresses {
            held.pod_addresses = pod_addresses;
            held.node_addresses = node_addresses;
            pending.addresses = true;
        }
        if cluster_named_ports != held.cluster_named_ports {
            held.cluster_named_ports = cluster_named_ports;
            pending.named_ports = true;
        }
        self.update_endpoints(endpoints, &mut changes, &mut pending);
        self.settle(pending, &mut changes);
        changes
    }

    /// Compiles `input` from scratch, keeping the CIDR identities' numbers.
    fn recompile(&mut self, mut input: PolicyInput) -> Changes {
        let before: BTreeSet<u16> = self.endpoints.keys().copied().collect();
        input.previous_cidr_identities = self.shared.cidr_identities.clone();
        let compiler = Compiler::new(input);
        let changes = Changes {
            endpoints: before
                .into_iter()
                .chain(compiler.endpoints.keys().copied())
                .collect(),
            full: true,
        };
        *self = compiler;
        changes
    }

    fn update_policies(&mut self, policies: Vec<Object>, pending: &mut Pending) {
        let wanted: BTreeMap<PolicyKey, Object> =
            policies.into_iter().map(|o| (key_of(&o), o)).collect();
        let gone: Vec<PolicyKey> = self
            .shared
            .keys
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(slot) = self.shared.remove_policy(&key) {
                self.unselect(slot, pending);
                pending.policies = true;
            }
        }
        for (key, object) in wanted {
            let old = self.shared.keys.get(&key).copied();
            if old.is_some_and(|slot| self.shared.policies[&slot].object == object) {
                continue;
            }
            let slot = self.shared.insert_policy(object);
            if let Some(old) = old {
                self.unselect(old, pending);
            }
            self.select(slot, pending);
            pending.policies = true;
        }
    }

    /// Takes policy `slot`'s sections off every endpoint they selected.
    fn unselect(&mut self, slot: u32, pending: &mut Pending) {
        for (id, state) in &mut self.endpoints {
            let before = state.sections.len();
            state.sections.retain(|s| s.policy != slot);
            if state.sections.len() != before {
                pending.rebuild.insert(*id);
            }
        }
    }

    /// Adds policy `slot`'s sections to the endpoints they select.
    fn select(&mut self, slot: u32, pending: &mut Pending) {
        let sections = &self.shared.policies[&slot].sections;
        for (id, state) in &mut self.endpoints {
            for (section, _) in sections
                .iter()
                .enumerate()
                .filter(|(_, s)| s.subject.matches(&state.labels))
            {
                state.sections.insert(SectionRef {
                    policy: slot,
                    section,
                });
                pending.rebuild.insert(*id);
            }
        }
    }

    fn update_identities(&mut self, identities: BTreeMap<u32, Labels>, pending: &mut Pending) {
        let old = std::mem::replace(&mut self.shared.input.identities, identities);
        let now = &self.shared.input.identities;
        let changed: Vec<u32> = now
            .iter()
            .filter(|(number, labels)| old.get(number) != Some(labels))
            .map(|(number, _)| *number)
            .chain(old.keys().filter(|n| !now.contains_key(n)).copied())
            .collect();
        for number in changed {
            let shared = &mut self.shared;
            match shared.input.identities.get(&number) {
                Some(labels) => shared
                    .universe
                    .insert(number, labels, &shared.input.namespaces),
                None => shared.universe.remove(number),
            }
            let deltas = shared.identity_changed(number);
            self.mark(&deltas, pending);
        }
    }

    fn update_endpoints(
        &mut self,
        endpoints: Vec<LocalEndpoint>,
        changes: &mut Changes,
        pending: &mut Pending,
    ) {
        let wanted: BTreeMap<u16, LocalEndpoint> =
            endpoints.into_iter().map(|e| (e.id, e)).collect();
        let gone: Vec<u16> = self
            .endpoints
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .copied()
            .collect();
        for id in gone {
            self.remove_endpoint(id);
            changes.endpoints.insert(id);
        }
        for (id, endpoint) in wanted {
            if self.endpoints.get(&id).map(|s| &s.endpoint) == Some(&endpoint) {
                continue;
            }
            let state = EndpointState::new(endpoint, &self.shared);
            if let Some(old) = self.endpoints.insert(id, state) {
                old.release(&mut self.shared);
            }
            pending.rebuild.insert(id);
        }
    }

    /// Adds the peers of `deltas` to the pending work of every endpoint one of their
    /// sections selects.
    fn mark(&self, deltas: &Deltas, pending: &mut Pending) {
        if deltas.is_empty() {
            return;
        }
        for (id, state) in &self.endpoints {
            for section in state.sections.iter().filter_map(|s| deltas.get(s)) {
                pending.peers.entry(*id).or_default().extend(section);
            }
        }
    }

    /// Does the gathered work: CIDR identities and the peers depending on addresses,
    /// warnings, then each affected endpoint compiled once.
    fn settle(&mut self, mut pending: Pending, changes: &mut Changes) {
        if pending.addresses || pending.policies {
            let shared = &mut self.shared;
            let wanted = shared.wanted_cidr_identities(&shared.cidr_identities);
            let deltas = if wanted != shared.cidr_identities {
                shared.cidr_identities = wanted;
                shared.resolve_again(|peers| {
                    matches!(peers, Peers::World { .. } | Peers::Cidr { .. })
                })
            } else if pending.addresses {
                shared.resolve_again(|peers| matches!(peers, Peers::Cidr { pods: true, .. }))
            } else {
                Deltas::new()
            };
            self.mark(&deltas, &mut pending);
        }
        if pending.policies {
            self.shared.collect_warnings();
        }
        if pending.named_ports {
            for (id, state) in &self.endpoints {
                if state
                    .sections
                    .iter()
                    .any(|s| names_egress_ports(self.shared.section(*s)))
                {
                    pending.rebuild.insert(*id);
                }
            }
        }
        for id in &pending.rebuild {
            if let Some(state) = self.endpoints.get_mut(id) {
                state.build(&mut self.shared);
            }
        }
        for (id, peers) in &pending.peers {
            if pending.rebuild.contains(id) {
                continue;
            }
            let Some(state) = self.endpoints.get_mut(id) else {
                continue;
            };
            if !peers
                .iter()
                .all(|peer| state.refresh_peer(&mut self.shared, *peer))
            {
                state.build(&mut self.shared);
            }
        }
        changes.endpoints.extend(pending.rebuild);
        changes.endpoints.extend(pending.peers.into_keys());
    }
}

impl Shared {
    /// Identity `number` changed (the universe holds its new labels, or not it): puts
    /// it into or out of every resolved clause whose peers now do or no longer admit
    /// it. Returns the sections of the clauses it changed.
    fn identity_changed(&mut self, number: u32) -> Deltas {
        self.update_resolved(|resolver, clause, peers| {
            let Resolved::Set(set) = peers else {
                return BTreeSet::new();
            };
            if !Resolver::reads_labels(&clause.peers, &clause.requires) {
                return BTreeSet::new();
            }
            let admitted = resolver.admits(&clause.peers, &clause.requires, number);
            let changed = if admitted {
                set.insert(number)
            } else {
                set.remove(&number)
            };
            if changed {
                [number].into()
            } else {
                BTreeSet::new()
            }
        })
    }

    /// Resolves again every resolved clause whose peers `which` picks; returns the
    /// identities that joined or left, by section.
    fn resolve_again(&mut self, which: impl Fn(&Peers) -> bool) -> Deltas {
        self.update_resolved(|resolver, clause, peers| {
            if !which(&clause.peers) {
                return BTreeSet::new();
            }
            let fresh = resolver.resolve(&clause.peers, &clause.requires);
            if fresh == *peers {
                return BTreeSet::new();
            }
            let (old, new) = (members(peers), members(&fresh));
            *peers = fresh;
            old.symmetric_difference(&new).copied().collect()
        })
    }

    /// Runs `update` on every resolved clause (it brings the resolution up to date in
    /// place and returns the identities that joined or left); collects those by section.
    fn update_resolved(
        &mut self,
        mut update: impl FnMut(&Resolver, &Clause, &mut Resolved) -> BTreeSet<u32>,
    ) -> Deltas {
        let Shared {
            input,
            policies,
            universe,
            cidr_identities,
            resolved,
            ..
        } = self;
        let resolver = Resolver {
            universe,
            cidr_identities,
            pod_addresses: &input.pod_addresses,
        };
        let mut deltas = Deltas::new();
        for (at, peers) in resolved.iter_mut() {
            let clause =
                &policies[&at.section.policy].sections[at.section.section].clauses[at.clause];
            let changed = update(&resolver, clause, peers);
            if !changed.is_empty() {
                deltas.entry(at.section).or_default().extend(changed);
            }
        }
        deltas
    }
}

/// The identities of a resolution (0 for any peer).
fn members(peers: &Resolved) -> BTreeSet<u32> {
    match peers {
        Resolved::Any => [0].into(),
        Resolved::Set(set) => set.clone(),
    }
}

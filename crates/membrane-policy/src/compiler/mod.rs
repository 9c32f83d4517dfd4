//! The compiler's state kept between changes, so that a change recompiles only what it
//! touches: a new or removed identity is matched against the resolved peers of the
//! clauses and changes only the entries naming it, on the endpoints those clauses
//! apply to; a changed policy recompiles the endpoints its old or new sections select;
//! a new endpoint compiles its own entries; pod and node addresses re-resolve the CIDR
//! peers; a change of namespaces, mode or audit compiles everything again. The result
//! is always what [`crate::compile`] gives for the same input (a property test holds
//! it to that).

mod endpoint;
mod update;

#[cfg(test)]
mod tests;

pub use update::Changes;

use crate::cidr;
use crate::clause::Section;
use crate::compile;
use crate::input::{LocalEndpoint, PolicyInput};
use crate::output::{Compiled, EndpointPolicy, Warning};
use crate::resolve::Resolved;
use crate::rule_ids::RuleIds;
use crate::universe::{IdentityLabels, Universe};
use endpoint::EndpointState;
use ipnet::IpNet;
use membrane_model::{Kind, Object};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A policy object's place in the compilation order: kind, namespace, name.
type PolicyKey = (Kind, Option<String>, Option<String>);

/// The key of `object`.
fn key_of(object: &Object) -> PolicyKey {
    let meta = object.metadata();
    (object.kind(), meta.namespace.clone(), meta.name.clone())
}

/// One section: the slot of its policy and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectionRef {
    policy: u32,
    section: usize,
}

impl SectionRef {
    /// Clause `clause` of this section.
    fn clause(self, clause: usize) -> ClauseRef {
        ClauseRef {
            section: self,
            clause,
        }
    }
}

/// One clause: its section and its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ClauseRef {
    section: SectionRef,
    clause: usize,
}

/// One policy object and what it became.
#[derive(Clone, Debug)]
struct PolicyUnit {
    object: Object,
    sections: Vec<Section>,
    warnings: Vec<Warning>,
    /// The prefixes its clauses name (CIDR identities are numbered for them).
    prefixes: BTreeSet<IpNet>,
}

/// What every endpoint's compilation reads: the inputs, the policies' sections, the
/// identities, the CIDR identities, the peers resolved so far and the rule ids.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The inputs but policies and endpoints (kept in `policies` and the endpoints).
    input: PolicyInput,
    keys: BTreeMap<PolicyKey, u32>,
    policies: HashMap<u32, PolicyUnit>,
    next_slot: u32,
    universe: Universe,
    cidr_identities: BTreeMap<IpNet, u32>,
    /// Peers of clauses resolved so far (clauses are resolved when an endpoint first
    /// needs them, and kept equal to a fresh resolution at every change).
    resolved: HashMap<ClauseRef, Resolved>,
    rule_ids: RuleIds,
    warnings: Vec<Warning>,
}

impl Shared {
    /// Section `at`.
    fn section(&self, at: SectionRef) -> &Section {
        &self.policies[&at.policy].sections[at.section]
    }

    /// The sections whose subject selects `labels`.
    fn sections_selecting<'a>(
        &'a self,
        labels: &'a IdentityLabels,
    ) -> impl Iterator<Item = SectionRef> + 'a {
        self.policies.iter().flat_map(move |(slot, unit)| {
            unit.sections
                .iter()
                .enumerate()
                .filter(|(_, s)| s.subject.matches(labels))
                .map(|(section, _)| SectionRef {
                    policy: *slot,
                    section,
                })
        })
    }

    /// The CIDR identities the policies' prefixes need now, keeping the current
    /// numbers (host prefixes of pod and node addresses get none).
    fn wanted_cidr_identities(&self, previous: &BTreeMap<IpNet, u32>) -> BTreeMap<IpNet, u32> {
        let prefixes: BTreeSet<IpNet> = self
            .policies
            .values()
            .flat_map(|unit| &unit.prefixes)
            .filter(|p| !(p.prefix_len() == p.max_prefix_len() && self.input.owns_host(p.addr())))
            .copied()
            .collect();
        cidr::allocate(&prefixes, previous)
    }

    /// The warnings of every policy, in the compilation order.
    fn collect_warnings(&mut self) {
        self.warnings = self
            .keys
            .values()
            .flat_map(|slot| self.policies[slot].warnings.iter().cloned())
            .collect();
    }
}

/// The policy compiler with its state: built from a whole [`PolicyInput`], then
/// brought to each new input with [`Compiler::update`] (or one endpoint at a time with
/// [`Compiler::set_endpoint`] / [`Compiler::remove_endpoint`]), recompiling only what
/// changed.
#[derive(Clone, Debug)]
pub struct Compiler {
    shared: Shared,
    endpoints: BTreeMap<u16, EndpointState>,
}

impl Compiler {
    /// Compiles `input` from scratch (its previous CIDR identities keep their numbers).
    pub fn new(input: PolicyInput) -> Compiler {
        let PolicyInput {
            policies,
            endpoints,
            previous_cidr_identities,
            ..
        } = input;
        let input = PolicyInput {
            policies: Vec::new(),
            endpoints: Vec::new(),
            previous_cidr_identities: BTreeMap::new(),
            ..input
        };
        let mut shared = Shared {
            universe: Universe::new(&input),
            input,
            keys: BTreeMap::new(),
            policies: HashMap::new(),
            next_slot: 0,
            cidr_identities: BTreeMap::new(),
            resolved: HashMap::new(),
            rule_ids: RuleIds::default(),
            warnings: Vec::new(),
        };
        for object in policies {
            shared.insert_policy(object);
        }
        shared.cidr_identities = shared.wanted_cidr_identities(&previous_cidr_identities);
        shared.collect_warnings();
        let mut compiler = Compiler {
            shared,
            endpoints: BTreeMap::new(),
        };
        for endpoint in endpoints {
            compiler.set_endpoint(endpoint);
        }
        compiler
    }

    /// Compiles (or recompiles) endpoint `endpoint` alone, over the current state.
    pub fn set_endpoint(&mut self, endpoint: LocalEndpoint) {
        let id = endpoint.id;
        self.remove_endpoint(id);
        let mut state = EndpointState::new(endpoint, &self.shared);
        state.build(&mut self.shared);
        self.endpoints.insert(id, state);
    }

    /// Forgets endpoint `id`.
    pub fn remove_endpoint(&mut self, id: u16) {
        if let Some(state) = self.endpoints.remove(&id) {
            state.release(&mut self.shared);
        }
    }

    /// Endpoint `id`'s compiled flags and entries.
    pub fn endpoint(&self, id: u16) -> Option<&EndpointPolicy> {
        self.endpoints.get(&id).map(|state| &state.policy)
    }

    /// Every endpoint's id with its compiled flags and entries.
    pub fn endpoints(&self) -> impl Iterator<Item = (u16, &EndpointPolicy)> {
        self.endpoints
            .iter()
            .map(|(id, state)| (*id, &state.policy))
    }

    /// The CIDR identities in use (prefix -> identity).
    pub fn cidr_identities(&self) -> &BTreeMap<IpNet, u32> {
        &self.shared.cidr_identities
    }

    /// Every rule id some endpoint's entries or flags come from, with its rule.
    pub fn rules(&self) -> &BTreeMap<u32, crate::output::RuleRef> {
        self.shared.rule_ids.table()
    }

    /// Parts of policies that could not be compiled.
    pub fn warnings(&self) -> &[Warning] {
        &self.shared.warnings
    }

    /// A copy of everything compiled.
    pub fn compiled(&self) -> Compiled {
        Compiled {
            endpoints: self.endpoints().map(|(id, p)| (id, p.clone())).collect(),
            rules: self.rules().clone(),
            cidr_identities: self.shared.cidr_identities.clone(),
            warnings: self.shared.warnings.clone(),
        }
    }

    /// Everything compiled.
    pub fn into_compiled(self) -> Compiled {
        Compiled {
            rules: self.rules().clone(),
            endpoints: self
                .endpoints
                .into_iter()
                .map(|(id, state)| (id, state.policy))
                .collect(),
            cidr_identities: self.shared.cidr_identities,
            warnings: self.shared.warnings,
        }
    }
}

impl Shared {
    /// Adds (or replaces) a policy object's sections; returns its slot. Endpoints'
    /// section lists are the caller's to update.
    fn insert_policy(&mut self, object: Object) -> u32 {
        let mut warnings = Vec::new();
        let sections = compile::sections(&object, &mut warnings);
        let prefixes = compile::prefixes(&sections);
        let slot = self.next_slot;
        self.next_slot += 1;
        if let Some(old) = self.keys.insert(key_of(&object), slot) {
            self.drop_slot(old);
        }
        self.policies.insert(
            slot,
            PolicyUnit {
                object,
                sections,
                warnings,
                prefixes,
            },
        );
        slot
    }

    /// Removes policy `key`; returns its slot.
    fn remove_policy(&mut self, key: &PolicyKey) -> Option<u32> {
        let slot = self.keys.remove(key)?;
        self.drop_slot(slot);
        Some(slot)
    }

    fn drop_slot(&mut self, slot: u32) {
        self.policies.remove(&slot);
        self.resolved
            .retain(|clause, _| clause.section.policy != slot);
    }
}

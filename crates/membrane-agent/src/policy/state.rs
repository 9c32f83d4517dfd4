//! The policy component's state: the cluster's view, the node's endpoints, the
//! incremental compiler and what is programmed; every change recompiles only what it
//! touches ([`Compiler::update`]) and writes, for the endpoints it names, only the
//! difference between the compiled and the programmed entries.

use super::maps::PolicyMaps;
use super::metrics::PolicyCounters;
use crate::endpoints::PolicyHook;
use crate::services::datapath::is_map_full;
use ipnet::IpNet;
use membrane_api::Endpoint;
use membrane_datapath::PolicyEnforcement;
use membrane_model::Object;
use membrane_policy::{
    Changes, Compiled, Compiler, EndpointPolicy, EnforcementMode, Entry, EntryKey, Labels,
    LocalEndpoint, NamedPort, PolicyInput, Warning,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the cluster holds that policy reads (everything but this node's endpoints).
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// Policy objects.
    pub policies: Vec<Object>,
    /// Allocated identities and their labels.
    pub identities: BTreeMap<u32, Labels>,
    /// Namespace labels by name.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Every pod address and its identity.
    pub pod_addresses: BTreeMap<IpAddr, u32>,
    /// Every node's addresses.
    pub node_addresses: BTreeSet<IpAddr>,
    /// Named container ports by pod (`namespace`, `name`).
    pub pod_ports: BTreeMap<(String, String), Vec<NamedPort>>,
}

/// One local endpoint as the component knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// The pod, as `namespace/name`.
    pub pod: Option<String>,
    /// What the compiler reads of it.
    pub endpoint: LocalEndpoint,
}

/// The enforcement mode and audit flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// When endpoints enforce.
    pub mode: EnforcementMode,
    /// Audit mode.
    pub audit: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// Made by the first pass; before it, new endpoints keep their adopted flags.
    compiler: Option<Compiler>,
    cluster: ClusterView,
    endpoints: BTreeMap<u16, Known>,
    warnings: Vec<Warning>,
    programmed: BTreeMap<u16, BTreeMap<EntryKey, Entry>>,
    cidrs: BTreeMap<IpNet, u32>,
    /// The flags each endpoint's datapath entry was last given.
    flags: BTreeMap<u16, PolicyEnforcement>,
    /// Endpoints whose map writes failed: written again at the next pass.
    retry: BTreeSet<u16>,
    /// Endpoints the hook prepared since the last pass: a pass that listed the
    /// endpoints before they were created keeps them.
    prepared: BTreeSet<u16>,
}

/// The component's state, shared by its loop, the endpoint manager's hook and the API.
#[derive(Debug)]
pub struct PolicyState<M> {
    settings: Settings,
    inner: Mutex<Inner>,
    maps: Mutex<M>,
    counters: Arc<PolicyCounters>,
}

/// What the datapath held when the agent started: entries per endpoint, CIDR identities
/// and endpoints' flags.
#[derive(Debug, Default)]
pub struct Adopted {
    /// Policy entries by endpoint.
    pub entries: BTreeMap<u16, BTreeMap<EntryKey, Entry>>,
    /// CIDR identities (ipcache entries without a node, numbered from 2^24).
    pub cidrs: BTreeMap<IpNet, u32>,
    /// Each endpoint's enforcement flags.
    pub flags: BTreeMap<u16, PolicyEnforcement>,
}

/// The enforcement flags of a compiled endpoint.
pub fn flags(policy: &EndpointPolicy) -> PolicyEnforcement {
    PolicyEnforcement {
        ingress: policy.ingress_enforced,
        egress: policy.egress_enforced,
        audit: policy.audit,
    }
}

impl<M: PolicyMaps> PolicyState<M> {
    /// State over `maps`, starting from what the datapath already holds.
    pub fn new(settings: Settings, maps: M, adopted: Adopted) -> PolicyState<M> {
        PolicyState {
            settings,
            inner: Mutex::new(Inner {
                programmed: adopted.entries,
                cidrs: adopted.cidrs,
                flags: adopted.flags,
                ..Inner::default()
            }),
            maps: Mutex::new(maps),
            counters: Arc::default(),
        }
    }

    /// The counters, for the agent's metrics.
    pub fn counters(&self) -> Arc<PolicyCounters> {
        self.counters.clone()
    }

    /// Reports that endpoint `id`'s entries could not be written (and were undone).
    fn refused(&self, id: u16, error: &M::Error) {
        self.counters.failures.inc();
        if is_map_full(error) {
            self.counters.map_full.inc();
            tracing::error!(endpoint = id, error = %crate::agent::chain(error), "the policy map is full: endpoint {id}'s new policy is not applied (it keeps its previous entries and flags; retried at every pass); raise --bpf-policy-map-max");
        } else {
            tracing::warn!(endpoint = id, error = %crate::agent::chain(error), "cannot write endpoint {id}'s policy entries: undone, retried at the next pass");
        }
    }

    /// Publishes how many entries are programmed.
    fn count_entries(&self, programmed: &BTreeMap<u16, BTreeMap<EntryKey, Entry>>) {
        let entries: usize = programmed.values().map(BTreeMap::len).sum();
        self.counters.entries.set(entries as u64);
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The last compilation, the endpoints it was made for and the cluster view.
    pub fn snapshot(&self) -> (Compiled, BTreeMap<u16, Known>, ClusterView) {
        let inner = self.inner();
        (
            inner
                .compiler
                .as_ref()
                .map(Compiler::compiled)
                .unwrap_or_default(),
            inner.endpoints.clone(),
            inner.cluster.clone(),
        )
    }

    /// The labels endpoint `id` had in the last compilation.
    pub fn known_labels(&self, id: u16) -> Option<Labels> {
        Some(self.inner().endpoints.get(&id)?.endpoint.labels.clone())
    }

    /// The compiler's input for `endpoints` over `cluster`.
    pub fn input(
        &self,
        cluster: &ClusterView,
        endpoints: Vec<LocalEndpoint>,
        previous_cidrs: &BTreeMap<IpNet, u32>,
    ) -> PolicyInput {
        PolicyInput {
            policies: cluster.policies.clone(),
            identities: cluster.identities.clone(),
            namespaces: cluster.namespaces.clone(),
            pod_addresses: cluster.pod_addresses.clone(),
            node_addresses: cluster.node_addresses.clone(),
            cluster_named_ports: cluster.pod_ports.values().flatten().cloned().collect(),
            endpoints,
            previous_cidr_identities: previous_cidrs.clone(),
            mode: self.settings.mode,
            audit: self.settings.audit,
        }
    }

    /// Brings the compilation to `cluster` and `endpoints` (recompiling only what
    /// changed) and writes the difference for the endpoints it changed. Returns the
    /// endpoints whose enforcement flags changed (the caller rewrites their datapath
    /// entry) and how many map operations failed (retried at the next pass).
    pub fn reconcile(&self, cluster: ClusterView, mut endpoints: Vec<Known>) -> (Vec<u16>, usize) {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let prepared = std::mem::take(&mut inner.prepared);
        for id in prepared {
            if !endpoints.iter().any(|k| k.endpoint.id == id)
                && let Some(known) = inner.endpoints.get(&id)
            {
                endpoints.push(known.clone());
            }
        }
        let input = self.input(
            &cluster,
            endpoints.iter().map(|k| k.endpoint.clone()).collect(),
            &inner.cidrs,
        );
        let mut changes = match inner.compiler.as_mut() {
            Some(compiler) => compiler.update(input),
            None => {
                let compiler = Compiler::new(input);
                let changes = Changes {
                    endpoints: compiler
                        .endpoints()
                        .map(|(id, _)| id)
                        .chain(inner.programmed.keys().copied())
                        .collect(),
                    full: true,
                };
                inner.compiler = Some(compiler);
                changes
            }
        };
        tracing::debug!(
            endpoints = changes.endpoints.len(),
            full = changes.full,
            "policy compiled"
        );
        let compiler = inner.compiler.as_ref().expect("compiled above");
        for warning in compiler.warnings() {
            if !inner.warnings.contains(warning) {
                tracing::warn!(%warning, "part of a policy is not enforced");
            }
        }
        inner.warnings = compiler.warnings().to_vec();
        changes.endpoints.append(&mut inner.retry);
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let owned_elsewhere = |prefix: &IpNet| {
            prefix.prefix_len() == prefix.max_prefix_len()
                && (cluster.pod_addresses.contains_key(&prefix.addr())
                    || cluster.node_addresses.contains(&prefix.addr()))
        };
        let mut failures = write_cidrs(
            &mut *maps,
            &mut inner.cidrs,
            compiler.cidr_identities(),
            Some(&owned_elsewhere),
        );
        let empty = BTreeMap::new();
        let mut changed = Vec::new();
        for id in changes.endpoints {
            let policy = compiler.endpoint(id);
            let want = policy.map_or(&empty, |p| &p.entries);
            match write_entries(&mut *maps, &mut inner.programmed, id, want) {
                Ok(0) => {}
                Ok(stale) => {
                    inner.retry.insert(id);
                    failures += stale;
                }
                Err(error) => {
                    // Nothing of the new policy applied: entries and flags stay as they were.
                    self.refused(id, &error);
                    inner.retry.insert(id);
                    failures += 1;
                    continue;
                }
            }
            match policy.map(flags) {
                Some(now) => {
                    if inner.flags.insert(id, now) != Some(now) {
                        changed.push(id);
                    }
                }
                None => {
                    inner.flags.remove(&id);
                }
            }
        }
        self.count_entries(&inner.programmed);
        drop(maps);
        inner.cluster = cluster;
        inner.endpoints = endpoints.into_iter().map(|k| (k.endpoint.id, k)).collect();
        (changed, failures)
    }
}

/// Writes the CIDR identities of `want` that differ from `programmed`; with `remove`,
/// also removes those no longer wanted, except prefixes `remove` says another owner
/// holds now (a pod's address: its ipcache entry replaced ours and must stay). Returns
/// the number of failures.
fn write_cidrs<M: PolicyMaps>(
    maps: &mut M,
    programmed: &mut BTreeMap<IpNet, u32>,
    want: &BTreeMap<IpNet, u32>,
    remove: Option<&dyn Fn(&IpNet) -> bool>,
) -> usize {
    let mut failures = 0;
    for (prefix, identity) in want {
        if programmed.get(prefix) == Some(identity) {
            continue;
        }
        match maps.upsert_cidr(*prefix, *identity) {
            Ok(()) => {
                programmed.insert(*prefix, *identity);
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%prefix, identity, error = %crate::agent::chain(&error), "cannot program a CIDR identity");
            }
        }
    }
    let Some(owned_elsewhere) = remove else {
        return failures;
    };
    let stale: Vec<IpNet> = programmed
        .keys()
        .filter(|p| !want.contains_key(*p))
        .copied()
        .collect();
    for prefix in stale {
        if owned_elsewhere(&prefix) {
            programmed.remove(&prefix);
            continue;
        }
        match maps.remove_cidr(prefix) {
            Ok(()) => {
                programmed.remove(&prefix);
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%prefix, error = %crate::agent::chain(&error), "cannot remove a CIDR identity");
            }
        }
    }
    failures
}

/// Makes endpoint `id`'s programmed entries equal `want`, whole or not at all: new and
/// changed entries are written first, together; if a write fails, those made are undone
/// (the endpoint keeps its previous entries) and the error returned; then stale entries
/// are removed. Returns how many removals failed (those entries stay programmed and are
/// removed at a later pass).
fn write_entries<M: PolicyMaps>(
    maps: &mut M,
    programmed: &mut BTreeMap<u16, BTreeMap<EntryKey, Entry>>,
    id: u16,
    want: &BTreeMap<EntryKey, Entry>,
) -> Result<usize, M::Error> {
    let had = programmed.entry(id).or_default();
    let (changes, before): (Vec<(EntryKey, Entry)>, Vec<Option<Entry>>) = want
        .iter()
        .filter(|(key, entry)| had.get(*key) != Some(*entry))
        .map(|(key, entry)| ((*key, *entry), had.get(key).copied()))
        .unzip();
    if let Err((written, error)) = maps.write_entries(id, &changes) {
        let written = changes.iter().zip(before).take(written);
        undo(
            maps,
            id,
            written.map(|((key, _), before)| (*key, before)).collect(),
            had,
            want,
        );
        if had.is_empty() {
            programmed.remove(&id);
        }
        return Err(*error);
    }
    for (key, entry) in changes {
        had.insert(key, entry);
    }
    let stale: Vec<EntryKey> = had
        .keys()
        .filter(|k| !want.contains_key(*k))
        .copied()
        .collect();
    let mut failures = 0;
    for key in stale {
        match maps.remove_entry(id, &key) {
            Ok(()) => {
                had.remove(&key);
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(endpoint = id, ?key, error = %crate::agent::chain(&error), "cannot remove a policy entry");
            }
        }
    }
    if had.is_empty() {
        programmed.remove(&id);
    }
    Ok(failures)
}

/// Puts back what `written` replaced (or removes what it added), newest first; an
/// entry that cannot be put back is recorded in `had` as it is now (`want`'s), so a
/// later pass corrects or removes it.
fn undo<M: PolicyMaps>(
    maps: &mut M,
    id: u16,
    written: Vec<(EntryKey, Option<Entry>)>,
    had: &mut BTreeMap<EntryKey, Entry>,
    want: &BTreeMap<EntryKey, Entry>,
) {
    for (key, before) in written.into_iter().rev() {
        let undone = match before {
            Some(entry) => maps.write_entry(id, &key, &entry),
            None => maps.remove_entry(id, &key),
        };
        if let Err(error) = undone {
            tracing::error!(endpoint = id, ?key, error = %crate::agent::chain(&error), "cannot undo a policy entry write");
            had.insert(key, want[&key]);
        }
    }
}

/// The pod `namespace/name` of a registration, when it names one.
pub fn pod_of(endpoint: &Endpoint) -> Option<(String, String)> {
    let registration = &endpoint.registration;
    Some((
        registration
            .pod_namespace
            .clone()
            .unwrap_or_else(|| crate::routing::identity::DEFAULT_NAMESPACE.to_string()),
        registration.pod_name.clone()?,
    ))
}

impl<M: PolicyMaps> PolicyState<M> {
    /// What the component knows of `endpoint` with `identity` and identity `labels`.
    pub fn known(
        cluster: &ClusterView,
        endpoint: &Endpoint,
        identity: u32,
        labels: Labels,
    ) -> Known {
        let pod = pod_of(endpoint);
        let named_ports = pod
            .as_ref()
            .and_then(|key| cluster.pod_ports.get(key))
            .map_or_else(Vec::new, Vec::clone);
        Known {
            pod: pod.map(|(ns, name)| format!("{ns}/{name}")),
            endpoint: LocalEndpoint {
                id: endpoint.id,
                identity,
                labels,
                named_ports,
            },
        }
    }
}

impl<M: PolicyMaps> PolicyHook for PolicyState<M> {
    fn prepare(
        &self,
        endpoint: &Endpoint,
        identity: u32,
        labels: &BTreeSet<String>,
    ) -> PolicyEnforcement {
        let mut guard = self.inner();
        let inner = &mut *guard;
        let Some(compiler) = inner.compiler.as_mut() else {
            // Restoring before the caches are read: keep what the datapath enforced.
            return inner.flags.get(&endpoint.id).copied().unwrap_or_default();
        };
        let known = Self::known(
            &inner.cluster,
            endpoint,
            identity,
            labels.iter().cloned().collect(),
        );
        compiler.set_endpoint(known.endpoint.clone());
        let Some(policy) = compiler.endpoint(endpoint.id) else {
            return PolicyEnforcement::default();
        };
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = write_entries(
            &mut *maps,
            &mut inner.programmed,
            endpoint.id,
            &policy.entries,
        ) {
            // The endpoint starts with its flags and none of its entries: its enforced
            // directions drop everything until a pass writes them.
            self.refused(endpoint.id, &error);
            inner.retry.insert(endpoint.id);
        }
        drop(maps);
        self.count_entries(&inner.programmed);
        let now = flags(policy);
        inner.flags.insert(endpoint.id, now);
        inner.endpoints.insert(endpoint.id, known);
        inner.prepared.insert(endpoint.id);
        now
    }

    /// The flags that go with the entries written (an endpoint whose new entries were
    /// refused keeps its previous flags).
    fn enforcement(&self, id: u16) -> PolicyEnforcement {
        self.inner().flags.get(&id).copied().unwrap_or_default()
    }

    fn forget(&self, id: u16) {
        let mut guard = self.inner();
        let inner = &mut *guard;
        if let Some(compiler) = inner.compiler.as_mut() {
            compiler.remove_endpoint(id);
        }
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(stale) = write_entries(&mut *maps, &mut inner.programmed, id, &BTreeMap::new())
            && stale > 0
        {
            tracing::warn!(
                endpoint = id,
                stale,
                "some policy entries of a deleted endpoint stay until the next pass"
            );
        }
        drop(maps);
        self.count_entries(&inner.programmed);
        inner.endpoints.remove(&id);
        inner.prepared.remove(&id);
        inner.flags.remove(&id);
        inner.retry.remove(&id);
    }
}

//! The policy component's state: the cluster's view, the node's endpoints, the last
//! compilation and what is programmed; every change recompiles and writes only the
//! difference between the compiled and the programmed entries.

use super::maps::PolicyMaps;
use crate::endpoints::PolicyHook;
use ipnet::IpNet;
use membrane_api::Endpoint;
use membrane_datapath::PolicyEnforcement;
use membrane_model::Object;
use membrane_policy::{
    Compiled, EndpointPolicy, EnforcementMode, Entry, EntryKey, Labels, LocalEndpoint, NamedPort,
    PolicyInput,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

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
    /// Set after the first full pass; before it, new endpoints keep their adopted flags.
    ready: bool,
    cluster: ClusterView,
    endpoints: BTreeMap<u16, Known>,
    compiled: Compiled,
    programmed: BTreeMap<u16, BTreeMap<EntryKey, Entry>>,
    cidrs: BTreeMap<IpNet, u32>,
    adopted_flags: BTreeMap<u16, PolicyEnforcement>,
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
                adopted_flags: adopted.flags,
                ..Inner::default()
            }),
            maps: Mutex::new(maps),
        }
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
            inner.compiled.clone(),
            inner.endpoints.clone(),
            inner.cluster.clone(),
        )
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

    /// Recompiles for `cluster` and `endpoints` and writes the difference. Returns the
    /// endpoints whose enforcement flags changed (the caller rewrites their datapath
    /// entry) and how many map operations failed (retried at the next pass).
    pub fn reconcile(&self, cluster: ClusterView, mut endpoints: Vec<Known>) -> (Vec<u16>, usize) {
        let mut inner = self.inner();
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
        let compiled = membrane_policy::compile(&input);
        for warning in &compiled.warnings {
            if !inner.compiled.warnings.contains(warning) {
                tracing::warn!(%warning, "part of a policy is not enforced");
            }
        }
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let owned_elsewhere = |prefix: &IpNet| {
            prefix.prefix_len() == prefix.max_prefix_len() && input.owns_host(prefix.addr())
        };
        let mut failures = write_cidrs(
            &mut *maps,
            &mut inner.cidrs,
            &compiled.cidr_identities,
            Some(&owned_elsewhere),
        );
        let empty = BTreeMap::new();
        let ids: BTreeSet<u16> = compiled
            .endpoints
            .keys()
            .chain(inner.programmed.keys())
            .copied()
            .collect();
        for id in ids {
            let want = compiled.endpoints.get(&id).map_or(&empty, |p| &p.entries);
            failures += write_entries(&mut *maps, &mut inner.programmed, id, want);
        }
        drop(maps);
        let changed = compiled
            .endpoints
            .iter()
            .filter(|(id, policy)| {
                let before = inner
                    .compiled
                    .endpoints
                    .get(id)
                    .map(flags)
                    .or_else(|| inner.adopted_flags.get(id).copied());
                before != Some(flags(policy))
            })
            .map(|(id, _)| *id)
            .collect();
        inner.cluster = cluster;
        inner.endpoints = endpoints.into_iter().map(|k| (k.endpoint.id, k)).collect();
        inner.compiled = compiled;
        inner.ready = true;
        inner.adopted_flags.clear();
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

/// Makes endpoint `id`'s programmed entries equal `want`: new and changed ones written
/// first, then stale ones removed. Returns the number of failures.
fn write_entries<M: PolicyMaps>(
    maps: &mut M,
    programmed: &mut BTreeMap<u16, BTreeMap<EntryKey, Entry>>,
    id: u16,
    want: &BTreeMap<EntryKey, Entry>,
) -> usize {
    let had = programmed.entry(id).or_default();
    let mut failures = 0;
    for (key, entry) in want {
        if had.get(key) == Some(entry) {
            continue;
        }
        match maps.write_entry(id, key, entry) {
            Ok(()) => {
                had.insert(*key, *entry);
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(endpoint = id, ?key, error = %crate::agent::chain(&error), "cannot write a policy entry");
            }
        }
    }
    let stale: Vec<EntryKey> = had
        .keys()
        .filter(|k| !want.contains_key(*k))
        .copied()
        .collect();
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
    failures
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
        let mut inner = self.inner();
        if !inner.ready {
            // Restoring before the caches are read: keep what the datapath enforced.
            return inner
                .adopted_flags
                .get(&endpoint.id)
                .copied()
                .unwrap_or_default();
        }
        let known = Self::known(
            &inner.cluster,
            endpoint,
            identity,
            labels.iter().cloned().collect(),
        );
        let input = self.input(&inner.cluster, vec![known.endpoint.clone()], &inner.cidrs);
        let compiled = membrane_policy::compile(&input);
        let Some(policy) = compiled.endpoints.get(&endpoint.id).cloned() else {
            return PolicyEnforcement::default();
        };
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let Inner {
            cidrs, programmed, ..
        } = &mut *inner;
        write_cidrs(&mut *maps, cidrs, &compiled.cidr_identities, None);
        write_entries(&mut *maps, programmed, endpoint.id, &policy.entries);
        drop(maps);
        inner.compiled.rules.extend(compiled.rules);
        inner.compiled.endpoints.insert(endpoint.id, policy.clone());
        inner.endpoints.insert(endpoint.id, known);
        inner.prepared.insert(endpoint.id);
        flags(&policy)
    }

    fn enforcement(&self, id: u16) -> PolicyEnforcement {
        let inner = self.inner();
        inner
            .compiled
            .endpoints
            .get(&id)
            .map(flags)
            .or_else(|| inner.adopted_flags.get(&id).copied())
            .unwrap_or_default()
    }

    fn forget(&self, id: u16) {
        let mut inner = self.inner();
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        write_entries(&mut *maps, &mut inner.programmed, id, &BTreeMap::new());
        drop(maps);
        inner.compiled.endpoints.remove(&id);
        inner.endpoints.remove(&id);
        inner.prepared.remove(&id);
    }
}

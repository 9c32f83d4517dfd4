//! `policy trace`: the two ends of a packet resolved to identities and compiled policies
//! (a local endpoint's is the one programmed; another node's pod is compiled here from
//! the same inputs by the same compiler), then the datapath's lookups replayed.

use super::maps::PolicyMaps;
use super::state::{Known, PolicyState};
use crate::cluster::Cluster;
use crate::routing::identity::labels::{LabelFilter, LabelSources, identity_labels};
use ipnet::IpNet;
use membrane_api::Endpoint;
use membrane_api::policy::{TraceDecision, TracePeer, TraceReport, TraceRequest, TraceRule};
use membrane_common::identity::{HOST, REMOTE_NODE, WORLD};
use membrane_policy::{
    Compiled, Decision, EndpointPolicy, LocalEndpoint, MatchKind, RuleRef, Verdict, proto,
};
use membrane_state::keys;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Why a trace cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The protocol is not one policy knows.
    #[error("protocol {0:?} is not TCP, UDP, SCTP, ICMP or ICMPv6")]
    BadProtocol(String),
    /// A `namespace/pod` names no stored Pod.
    #[error("{field}: there is no pod {name} (namespace/pod) in the cluster")]
    NoSuchPod {
        /// `from` or `to`.
        field: &'static str,
        /// As given.
        name: String,
    },
    /// Neither an address nor `namespace/pod`.
    #[error("{field}: {name:?} is neither an address nor namespace/pod")]
    BadPeer {
        /// `from` or `to`.
        field: &'static str,
        /// As given.
        name: String,
    },
    /// The pod's labels have no identity yet.
    #[error("{field}: pod {name} has no identity yet (no endpoint carries its labels)")]
    NoIdentity {
        /// `from` or `to`.
        field: &'static str,
        /// As given.
        name: String,
    },
}

/// What resolving a peer needs besides the policy state.
pub struct Context<'a> {
    /// Objects and nodes.
    pub cluster: &'a Cluster,
    /// This node's name.
    pub node: &'a str,
    /// The cluster's name (an identity label).
    pub cluster_name: &'a str,
    /// The identity label filter.
    pub filter: &'a LabelFilter,
    /// The local endpoints with their identities.
    pub endpoints: &'a [(Endpoint, u32)],
}

/// One resolved end.
struct Peer {
    identity: u32,
    local: bool,
    policy: Option<EndpointPolicy>,
    /// Rules of a policy compiled for the trace only.
    rules: BTreeMap<u32, RuleRef>,
}

/// Traces `request` over `state`'s last compilation.
pub fn trace<M: PolicyMaps>(
    state: &PolicyState<M>,
    context: &Context<'_>,
    request: &TraceRequest,
) -> Result<TraceReport, TraceError> {
    let protocol = match request.protocol.to_ascii_uppercase().as_str() {
        "TCP" => proto::TCP,
        "UDP" => proto::UDP,
        "SCTP" => proto::SCTP,
        "ICMP" => proto::ICMP,
        "ICMPV6" => proto::ICMPV6,
        _ => return Err(TraceError::BadProtocol(request.protocol.clone())),
    };
    let (compiled, known, _) = state.snapshot();
    let from = resolve(state, context, &compiled, &known, "from", &request.from)?;
    let to = resolve(state, context, &compiled, &known, "to", &request.to)?;
    let mut rules = compiled.rules.clone();
    rules.extend(from.rules.clone());
    rules.extend(to.rules.clone());
    let traced = membrane_policy::trace(
        (from.policy.as_ref(), from.identity),
        (to.policy.as_ref(), to.identity),
        protocol,
        request.port,
    );
    let decision = |d: Decision| TraceDecision {
        verdict: verdict(d.verdict).to_string(),
        matched: match d.matched {
            MatchKind::None => "none",
            MatchKind::L3Only => "l3-only",
            MatchKind::L3L4 => "l3-l4",
            MatchKind::L4Only => "l4-only",
            MatchKind::All => "all",
        }
        .to_string(),
        rules: d
            .rules
            .iter()
            .map(|id| TraceRule {
                id: *id,
                rule: rules
                    .get(id)
                    .map_or_else(|| "unknown rule".to_string(), |r| r.to_string()),
            })
            .collect(),
    };
    Ok(TraceReport {
        verdict: verdict(traced.verdict()).to_string(),
        from: TracePeer {
            name: request.from.clone(),
            identity: from.identity,
            local: from.local,
        },
        to: TracePeer {
            name: request.to.clone(),
            identity: to.identity,
            local: to.local,
        },
        egress: traced.egress.map(decision),
        ingress: traced.ingress.map(decision),
    })
}

/// A verdict as the API spells it.
fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::NotEnforced => "not-enforced",
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
        Verdict::Audit => "audit",
    }
}

/// An end: a local endpoint (its programmed policy), another pod (compiled here), or an
/// address outside the pods (host, remote node, CIDR identity or world; no policy).
fn resolve<M: PolicyMaps>(
    state: &PolicyState<M>,
    context: &Context<'_>,
    compiled: &Compiled,
    known: &BTreeMap<u16, Known>,
    field: &'static str,
    name: &str,
) -> Result<Peer, TraceError> {
    let local = |id: u16, identity: u32| Peer {
        identity,
        local: true,
        policy: compiled.endpoints.get(&id).cloned(),
        rules: BTreeMap::new(),
    };
    if let Ok(address) = name.parse::<IpAddr>() {
        if let Some((endpoint, identity)) = context.endpoints.iter().find(|(e, _)| {
            e.registration.ipv4.map(IpAddr::V4) == Some(address)
                || e.registration.ipv6.map(IpAddr::V6) == Some(address)
        }) {
            return Ok(local(endpoint.id, *identity));
        }
        let (_, _, view) = state.snapshot();
        if let Some(identity) = view.pod_addresses.get(&address) {
            let labels = view.identities.get(identity).cloned().unwrap_or_default();
            return Ok(remote(state, *identity, labels, Vec::new()));
        }
        return Ok(Peer {
            identity: address_identity(context, compiled, address),
            local: false,
            policy: None,
            rules: BTreeMap::new(),
        });
    }
    let Some((namespace, pod_name)) = name.split_once('/') else {
        return Err(TraceError::BadPeer {
            field,
            name: name.to_string(),
        });
    };
    let pod_key = format!("{namespace}/{pod_name}");
    if let Some(k) = known
        .values()
        .find(|k| k.pod.as_deref() == Some(pod_key.as_str()))
    {
        return Ok(local(k.endpoint.id, k.endpoint.identity));
    }
    let object = |key: String| context.cluster.objects().get(&key);
    let pod =
        object(keys::object("Pod", namespace, pod_name)).ok_or_else(|| TraceError::NoSuchPod {
            field,
            name: name.to_string(),
        })?;
    let namespace_object = object(keys::object("Namespace", "", namespace));
    let labels: BTreeSet<String> = identity_labels(
        LabelSources {
            cluster: context.cluster_name,
            namespace,
            namespace_object: namespace_object.as_ref(),
            pod: Some(&pod),
        },
        context.filter,
    );
    let (_, _, view) = state.snapshot();
    let identity = view
        .identities
        .iter()
        .find(|(_, l)| l.iter().cloned().collect::<BTreeSet<String>>() == labels)
        .map(|(n, _)| *n)
        .ok_or_else(|| TraceError::NoIdentity {
            field,
            name: name.to_string(),
        })?;
    let ports = view
        .pod_ports
        .get(&(namespace.to_string(), pod_name.to_string()))
        .cloned()
        .unwrap_or_default();
    Ok(remote(state, identity, labels.into_iter().collect(), ports))
}

/// Another node's pod, compiled here from the same inputs.
fn remote<M: PolicyMaps>(
    state: &PolicyState<M>,
    identity: u32,
    labels: Vec<String>,
    named_ports: Vec<membrane_policy::NamedPort>,
) -> Peer {
    let (compiled, _, view) = state.snapshot();
    // An id no local endpoint has: endpoint ids are 1-based and below u16::MAX.
    let id = u16::MAX;
    let input = state.input(
        &view,
        vec![LocalEndpoint {
            id,
            identity,
            labels,
            named_ports,
        }],
        &compiled.cidr_identities,
    );
    let mut traced = membrane_policy::compile(&input);
    Peer {
        identity,
        local: false,
        policy: traced.endpoints.remove(&id),
        rules: traced.rules,
    }
}

/// The identity the datapath gives an address that is not a pod's: this node's are
/// host, other nodes' remote-node, then the longest CIDR identity, else world.
fn address_identity(context: &Context<'_>, compiled: &Compiled, address: IpAddr) -> u32 {
    for node in context.cluster.nodes() {
        if node.addresses.contains(&address) {
            return if node.name == context.node {
                HOST
            } else {
                REMOTE_NODE
            };
        }
    }
    compiled
        .cidr_identities
        .iter()
        .filter(|(prefix, _)| prefix.contains(&address))
        .max_by_key(|(prefix, _): &(&IpNet, &u32)| prefix.prefix_len())
        .map_or(WORLD, |(_, identity)| *identity)
}

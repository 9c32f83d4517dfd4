//! Reading the policy inputs: the cluster's view from the object, identity and ipcache
//! caches, and what the pinned maps held when the agent started.

use super::state::{Adopted, ClusterView};
use crate::cluster::Cluster;
use crate::cluster::reflector::{DecodeError, Reflector};
use crate::routing::ipcache::IpcacheRecord;
use membrane_common::endpoint::endpoint_flags;
use membrane_common::metrics::direction;
use membrane_datapath::{DatapathError, PinnedMaps, PolicyEnforcement};
use membrane_model::{Kind, Object};
use membrane_policy::{Direction, Entry, EntryKey, FIRST_CIDR_IDENTITY, Labels, NamedPort, proto};
use membrane_state::keys;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// Decodes a stored identity's labels (a JSON list), for a [`Reflector`].
pub fn decode_labels(_key: &str, value: &[u8]) -> Result<Labels, DecodeError> {
    Ok(serde_json::from_slice(value)?)
}

/// The kinds of policy objects, in the order of their keys.
const POLICY_KINDS: [Kind; 3] = [
    Kind::CiliumClusterwideNetworkPolicy,
    Kind::CiliumNetworkPolicy,
    Kind::NetworkPolicy,
];

/// The cluster's view: policy objects, namespaces' labels and pods' named ports from
/// the cluster's objects, node addresses from its nodes, identities from `identities`,
/// pod addresses from `ipcache`. Every pass reads it, so it copies only what it keeps
/// (the policies, labels and ports), not the Pod objects.
pub fn cluster_view(
    cluster: &Cluster,
    identities: &Reflector<Labels>,
    ipcache: &Reflector<IpcacheRecord>,
) -> ClusterView {
    let objects = cluster.objects();
    let of_kind = |kind: Kind| keys::objects_of_kind(kind.as_str());
    ClusterView {
        policies: POLICY_KINDS
            .into_iter()
            .flat_map(|kind| objects.filter_map_under(&of_kind(kind), |_, o| Some(o.clone())))
            .collect(),
        namespaces: objects
            .filter_map_under(&of_kind(Kind::Namespace), |_, namespace| {
                let name = namespace.metadata().name.clone().unwrap_or_default();
                Some((name, namespace.labels().clone()))
            })
            .into_iter()
            .collect(),
        pod_ports: objects
            .filter_map_under(&of_kind(Kind::Pod), |_, object| {
                let Object::Pod(pod) = object else {
                    return None;
                };
                let ports = named_ports(pod);
                if ports.is_empty() {
                    return None;
                }
                let meta = &pod.metadata;
                let key = (
                    meta.namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_string()),
                    meta.name.clone().unwrap_or_default(),
                );
                Some((key, ports))
            })
            .into_iter()
            .collect(),
        identities: identities
            .filter_map_under(keys::IDENTITY_IDS, |key, labels| {
                let id = keys::suffix(key, keys::IDENTITY_IDS)?.parse::<u32>().ok()?;
                Some((id, labels.clone()))
            })
            .into_iter()
            .collect(),
        pod_addresses: ipcache
            .filter_map_under(keys::IPCACHE, |key, record| {
                let address = keys::suffix(key, keys::IPCACHE)?.parse::<IpAddr>().ok()?;
                Some((address, record.identity))
            })
            .into_iter()
            .collect(),
        node_addresses: cluster
            .nodes()
            .into_iter()
            .flat_map(|n| n.addresses)
            .collect(),
    }
}

/// The named container ports of a pod.
fn named_ports(pod: &membrane_model::k8s::api::core::v1::Pod) -> Vec<NamedPort> {
    let containers = pod.spec.iter().flat_map(|spec| &spec.containers);
    containers
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|port| {
            let protocol = match port.protocol.as_deref() {
                Some("UDP") => proto::UDP,
                Some("SCTP") => proto::SCTP,
                _ => proto::TCP,
            };
            Some(NamedPort {
                name: port.name.clone()?,
                proto: protocol,
                port: u16::try_from(port.container_port).ok()?,
            })
        })
        .collect()
}

/// What the pinned maps under `pin_dir` hold of policy: entries, CIDR identities and
/// endpoint flags; nothing when the maps are not pinned yet.
pub fn adopt(pin_dir: &Path) -> Result<Adopted, DatapathError> {
    let mut adopted = Adopted::default();
    let maps = match PinnedMaps::open(pin_dir) {
        Ok(maps) => maps,
        Err(error) => {
            tracing::debug!(error = %crate::agent::chain(&error), "no pinned maps to adopt policy from");
            return Ok(adopted);
        }
    };
    for row in maps.policy()? {
        let span = u32::from(*row.ports.end()) - u32::from(*row.ports.start()) + 1;
        let key = EntryKey {
            direction: if row.direction == direction::EGRESS {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            proto: row.proto,
            identity: row.identity,
            port: *row.ports.start(),
            prefix_bits: 16 - span.trailing_zeros(),
        };
        let entry = Entry {
            deny: row.entry.action == membrane_common::policy::policy_action::DENY,
            rule_id: row.entry.rule_id,
        };
        adopted
            .entries
            .entry(row.endpoint_id)
            .or_default()
            .insert(key, entry);
    }
    adopted.cidrs = maps
        .ipcache()?
        .into_iter()
        .filter(|row| row.node.is_none() && row.identity >= FIRST_CIDR_IDENTITY)
        .map(|row| (row.prefix, row.identity))
        .collect();
    adopted.flags = maps
        .endpoints()?
        .into_iter()
        .map(|row| {
            let f = row.info.flags;
            (
                row.info.endpoint_id,
                PolicyEnforcement {
                    ingress: f & endpoint_flags::INGRESS_ENFORCED != 0,
                    egress: f & endpoint_flags::EGRESS_ENFORCED != 0,
                    audit: f & endpoint_flags::POLICY_AUDIT != 0,
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    Ok(adopted)
}

//! Local endpoints (pods on this node): registration, node-side routes, the datapath's
//! view, and their removal. Persisted in the state database next to IPAM.
//!
//! Creating an endpoint records it first (with its new id) and then programs the node;
//! if programming fails it is undone and the record removed. Recording first means a
//! crash at any point leaves a record that recovery either completes (the veth still
//! exists) or releases (it does not): nothing is programmed that no record knows about.

mod datapath;
mod policy_hook;
mod records;
mod recovery;
mod spec;

pub use datapath::NodeDatapath;
#[cfg(test)]
pub use datapath::memory;
pub use policy_hook::PolicyHook;
pub use recovery::{Reconcile, ReconcileReport};

use crate::ipam::{AllocationRecord, Ipam, IpamError};
use crate::node::{NetError, NodeNetwork};
use crate::routing::identity::Identities;
use crate::store::{Store, StoreError};
use membrane_api::{AllocateRequest, AttachmentRef, Endpoint, EndpointRegistration};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Errors of the endpoint manager.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The attachment has no addresses from IPAM.
    #[error("attachment {}/{} has no IPAM allocation: allocate addresses first", .attachment.container_id, .attachment.ifname)]
    NotAllocated {
        /// The attachment.
        attachment: AttachmentRef,
    },
    /// The registration names other addresses than IPAM handed out.
    #[error("attachment {}/{} registers addresses {registered} but was allocated {allocated}", .attachment.container_id, .attachment.ifname)]
    AddressMismatch {
        /// The attachment.
        attachment: AttachmentRef,
        /// The addresses in the registration.
        registered: String,
        /// The addresses IPAM handed out.
        allocated: String,
    },
    /// The registration names another network namespace than the allocation.
    #[error("attachment {}/{} registers netns {registered:?} but was allocated for {allocated:?}", .attachment.container_id, .attachment.ifname)]
    NetnsMismatch {
        /// The attachment.
        attachment: AttachmentRef,
        /// The netns in the registration.
        registered: String,
        /// The netns of the allocation.
        allocated: String,
    },
    /// A MAC address does not parse.
    #[error("{field} {value:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")]
    BadMac {
        /// The registration field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The host-side veth does not exist.
    #[error("there is no interface {ifname} with index {ifindex} on the node")]
    NoSuchLink {
        /// The registered index.
        ifindex: u32,
        /// The registered name.
        ifname: String,
    },
    /// The attachment already has a different endpoint.
    #[error("attachment {}/{} already has endpoint {id} on {host_ifname}: delete it first", .attachment.container_id, .attachment.ifname)]
    AlreadyRegistered {
        /// The attachment.
        attachment: AttachmentRef,
        /// The existing endpoint's id.
        id: u16,
        /// The existing endpoint's host veth.
        host_ifname: String,
    },
    /// The attachment has no endpoint.
    #[error("attachment {}/{} has no endpoint", .attachment.container_id, .attachment.ifname)]
    NotFound {
        /// The attachment.
        attachment: AttachmentRef,
    },
    /// Every endpoint id is in use.
    #[error("all {} endpoint ids of the node are in use", u16::MAX)]
    IdsExhausted,
    /// IPAM failed.
    #[error(transparent)]
    Ipam {
        /// The IPAM error.
        #[from]
        source: IpamError,
    },
    /// The state database failed.
    #[error(transparent)]
    Store {
        /// The store error.
        #[from]
        source: StoreError,
    },
    /// The node's network could not be configured.
    #[error(transparent)]
    Network {
        /// The netlink error.
        #[from]
        source: NetError,
    },
    /// The datapath refused an endpoint.
    #[error("datapath: {operation} endpoint {id} failed")]
    Datapath {
        /// What was being done.
        operation: &'static str,
        /// The endpoint id.
        id: u16,
        /// The datapath's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The endpoint's security identity could not be resolved.
    #[error("cannot resolve the security identity of endpoint {id}")]
    Identity {
        /// The endpoint id.
        id: u16,
        /// Why.
        #[source]
        source: crate::routing::RoutingError,
    },
    /// Conntrack garbage collection failed.
    #[error("datapath: collecting conntrack entries failed")]
    Conntrack {
        /// The datapath's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Owns the node's endpoints and their addresses, the datapath and the pod routes.
pub struct EndpointManager<D, N> {
    store: Store,
    ipam: Ipam,
    datapath: D,
    network: N,
    orphan_grace: Duration,
    identities: Option<std::sync::Arc<Identities>>,
    /// The identity each endpoint was last programmed with, by endpoint id.
    programmed: BTreeMap<u16, u32>,
    /// Counts the changes of the endpoints and their identities.
    changes: tokio::sync::watch::Sender<u64>,
    /// Gives endpoints their policy; without, none enforces policy.
    policy: Option<std::sync::Arc<dyn PolicyHook>>,
}

impl<D: NodeDatapath, N: NodeNetwork> EndpointManager<D, N> {
    /// A manager over `ipam`'s store. Allocations that never got an endpoint are released
    /// once older than `orphan_grace`.
    pub fn new(
        ipam: Ipam,
        datapath: D,
        network: N,
        orphan_grace: Duration,
    ) -> Result<Self, EndpointError> {
        let store = ipam.store().clone();
        records::create_tables(&store)?;
        Ok(EndpointManager {
            store,
            ipam,
            datapath,
            network,
            orphan_grace,
            identities: None,
            programmed: BTreeMap::new(),
            changes: tokio::sync::watch::Sender::new(0),
            policy: None,
        })
    }

    /// Gives endpoints the identities `identities` resolves; without, they get 0
    /// (the datapath's "unknown").
    pub fn with_identities(mut self, identities: std::sync::Arc<Identities>) -> Self {
        self.identities = Some(identities);
        self
    }

    /// Gives endpoints the policy `hook` compiles for them (entries and enforcement
    /// flags), from their creation on.
    pub fn with_policy(mut self, hook: std::sync::Arc<dyn PolicyHook>) -> Self {
        self.policy = Some(hook);
        self
    }

    /// Writes the current enforcement flags (from the policy hook) of the endpoints
    /// `ids` into their datapath entries, those that are programmed; returns how many
    /// were. Every endpoint is tried; the first failure is returned after the others.
    pub fn apply_policies(&mut self, ids: &BTreeSet<u16>) -> Result<usize, EndpointError> {
        let Some(hook) = &self.policy else {
            return Ok(0);
        };
        let mut first_error = None;
        let mut specs = Vec::new();
        for endpoint in self.list()?.iter().filter(|e| ids.contains(&e.id)) {
            let Some(identity) = self.programmed.get(&endpoint.id) else {
                continue;
            };
            match spec::entry_spec(endpoint) {
                Ok(mut spec) => {
                    spec.identity = *identity;
                    spec.policy = hook.enforcement(endpoint.id);
                    specs.push(spec);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let failed = self.datapath.write_endpoints(&specs);
        let written = specs.len() - failed.len();
        for (id, error) in failed {
            first_error.get_or_insert(EndpointError::Datapath {
                operation: "writing the policy flags of",
                id,
                source: Box::new(error),
            });
        }
        first_error.map_or(Ok(written), Err)
    }

    /// A receiver marked changed whenever an endpoint is programmed (created, restored,
    /// moved to another identity) or deleted.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every endpoint that has been programmed, with the identity it carries.
    pub fn identified(&self) -> Result<Vec<(Endpoint, u32)>, EndpointError> {
        Ok(self
            .with_programmed_identity()?
            .into_iter()
            .filter_map(|(endpoint, identity)| Some((endpoint, identity?)))
            .collect())
    }

    /// Every persisted endpoint with the identity it was programmed with, `None` for one
    /// not programmed yet (its recovery at start could not resolve its identity): the
    /// identity refresh programs those once they resolve.
    pub fn with_programmed_identity(&self) -> Result<Vec<(Endpoint, Option<u32>)>, EndpointError> {
        Ok(self
            .list()?
            .into_iter()
            .map(|endpoint| {
                let identity = self.programmed.get(&endpoint.id).copied();
                (endpoint, identity)
            })
            .collect())
    }

    /// What resolves the endpoints' identities, when they get identities.
    pub fn identities(&self) -> Option<std::sync::Arc<Identities>> {
        self.identities.clone()
    }

    /// Resolves the identity of the endpoints `ids` again and reprograms those whose
    /// identity changed (their Pod or Namespace labels did). Returns how many moved; an
    /// endpoint that cannot be resolved keeps its identity and the first such error is
    /// returned after the others were handled.
    pub async fn refresh_identities(
        &mut self,
        ids: &BTreeSet<u16>,
    ) -> Result<usize, EndpointError> {
        let Some(identities) = self.identities.clone() else {
            return Ok(0);
        };
        let (mut moved, mut first_error) = (0, None);
        for endpoint in self.list()?.into_iter().filter(|e| ids.contains(&e.id)) {
            let outcome = match identities.of(&endpoint.registration).await {
                Ok(identity) if self.programmed.get(&endpoint.id) == Some(&identity) => Ok(false),
                Ok(_) => self.program(&endpoint).await.map(|()| true),
                Err(source) => Err(EndpointError::Identity {
                    id: endpoint.id,
                    source,
                }),
            };
            match outcome {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(moved), Err)
    }

    /// The node's IPAM.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// Hands out addresses for an attachment (idempotent).
    pub fn allocate(&self, request: &AllocateRequest) -> Result<AllocationRecord, EndpointError> {
        Ok(self.ipam.allocate(&request.attachment, &request.netns)?)
    }

    /// Registers an endpoint: validates it against its allocation and the node's links,
    /// assigns an id, routes its addresses to the host veth and attaches the datapath.
    /// Registering the same thing again returns the existing endpoint (programming it
    /// again, which is idempotent).
    pub async fn create(
        &mut self,
        registration: EndpointRegistration,
    ) -> Result<Endpoint, EndpointError> {
        let attachment = registration.attachment.clone();
        if let Some(existing) = records::get(&self.store, &attachment)? {
            if existing.registration != registration {
                return Err(EndpointError::AlreadyRegistered {
                    attachment,
                    id: existing.id,
                    host_ifname: existing.registration.host_ifname,
                });
            }
            self.program(&existing).await?;
            return Ok(existing);
        }
        validate(&self.ipam, &self.network, &registration).await?;
        let endpoint = self.store.write("recording an endpoint", |txn| {
            records::insert(txn, registration)
        })?;
        if let Err(error) = self.program(&endpoint).await {
            match self.unprogram(&endpoint).await {
                Ok(()) => {
                    self.store.write("removing a failed endpoint", |txn| {
                        records::remove(txn, &attachment)
                    })?;
                }
                Err(undo) => tracing::warn!(
                    id = endpoint.id,
                    error = %undo,
                    "could not undo a failed endpoint; keeping its record for recovery or delete"
                ),
            }
            return Err(error);
        }
        tracing::info!(
            id = endpoint.id,
            container = %attachment.container_id,
            ifname = %attachment.ifname,
            veth = %endpoint.registration.host_ifname,
            "endpoint created"
        );
        Ok(endpoint)
    }

    /// Removes the endpoint of `attachment` (detaching the datapath and deleting its
    /// routes) and releases its addresses. Idempotent; true when something was released.
    pub async fn delete(&mut self, attachment: &AttachmentRef) -> Result<bool, EndpointError> {
        let Some(endpoint) = records::get(&self.store, attachment)? else {
            return Ok(self.ipam.release(attachment)?.is_some());
        };
        self.unprogram(&endpoint).await?;
        self.store.write("deleting an endpoint", |txn| {
            records::remove(txn, attachment)?;
            self.ipam.release_in(txn, attachment)
        })?;
        self.programmed.remove(&endpoint.id);
        if let Some(hook) = &self.policy {
            hook.forget(endpoint.id);
        }
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
        tracing::info!(id = endpoint.id, container = %attachment.container_id, "endpoint deleted");
        Ok(true)
    }

    /// The endpoint of `attachment`.
    pub fn get(&self, attachment: &AttachmentRef) -> Result<Endpoint, EndpointError> {
        records::get(&self.store, attachment)?.ok_or_else(|| EndpointError::NotFound {
            attachment: attachment.clone(),
        })
    }

    /// Every endpoint.
    pub fn list(&self) -> Result<Vec<Endpoint>, EndpointError> {
        Ok(records::list(&self.store)?)
    }

    /// Releases every endpoint and allocation whose attachment is not in `valid`;
    /// returns the released attachments.
    pub async fn gc(
        &mut self,
        valid: &[AttachmentRef],
    ) -> Result<Vec<AttachmentRef>, EndpointError> {
        let valid: BTreeSet<&AttachmentRef> = valid.iter().collect();
        let mut released = BTreeSet::new();
        for endpoint in self.list()? {
            let attachment = &endpoint.registration.attachment;
            if !valid.contains(attachment) && self.delete(attachment).await? {
                released.insert(attachment.clone());
            }
        }
        for (attachment, _) in self.ipam.list()? {
            if !valid.contains(&attachment) && self.ipam.release(&attachment)?.is_some() {
                released.insert(attachment);
            }
        }
        Ok(released.into_iter().collect())
    }

    /// Deletes idle conntrack entries; reports what the table held and what expired.
    pub fn collect_conntrack(&mut self) -> Result<membrane_datapath::CtStats, EndpointError> {
        self.datapath
            .collect_conntrack()
            .map_err(|e| EndpointError::Conntrack {
                source: Box::new(e),
            })
    }

    /// Routes the endpoint's addresses to its veth (with permanent neighbour entries) and
    /// attaches the datapath. Idempotent.
    async fn program(&mut self, endpoint: &Endpoint) -> Result<(), EndpointError> {
        let mut spec = spec::spec_of(endpoint)?;
        if let Some(identities) = &self.identities {
            spec.identity = identities
                .of(&endpoint.registration)
                .await
                .map_err(|source| EndpointError::Identity {
                    id: endpoint.id,
                    source,
                })?;
        }
        if let (Some(hook), Some(identities)) = (&self.policy, &self.identities) {
            let labels = identities.labels_of(&endpoint.registration);
            spec.policy = hook.prepare(endpoint, spec.identity, &labels);
        }
        for addr in spec::addresses(&endpoint.registration) {
            self.network
                .install_pod_address(addr, spec.pod_mac, spec.host_ifindex)
                .await?;
        }
        self.datapath
            .attach_endpoint(&spec)
            .map_err(|e| EndpointError::Datapath {
                operation: "attaching",
                id: endpoint.id,
                source: Box::new(e),
            })?;
        if self.programmed.insert(endpoint.id, spec.identity) != Some(spec.identity) {
            tracing::info!(
                id = endpoint.id,
                identity = spec.identity,
                "endpoint programmed with its identity"
            );
        }
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    /// Detaches the datapath and deletes the endpoint's routes and neighbour entries.
    /// Idempotent.
    async fn unprogram(&mut self, endpoint: &Endpoint) -> Result<(), EndpointError> {
        let spec = spec::spec_of(endpoint)?;
        self.datapath
            .detach_endpoint(&spec)
            .map_err(|e| EndpointError::Datapath {
                operation: "detaching",
                id: endpoint.id,
                source: Box::new(e),
            })?;
        for addr in spec::addresses(&endpoint.registration) {
            self.network
                .remove_pod_address(addr, spec.host_ifindex)
                .await?;
        }
        Ok(())
    }
}

/// Checks a new registration against its allocation and the node.
async fn validate(
    ipam: &Ipam,
    network: &impl NodeNetwork,
    registration: &EndpointRegistration,
) -> Result<(), EndpointError> {
    let attachment = &registration.attachment;
    let allocation = ipam
        .get(attachment)?
        .ok_or_else(|| EndpointError::NotAllocated {
            attachment: attachment.clone(),
        })?;
    if (registration.ipv4, registration.ipv6) != (allocation.ipv4, allocation.ipv6) {
        return Err(EndpointError::AddressMismatch {
            attachment: attachment.clone(),
            registered: show_addresses(registration.ipv4, registration.ipv6),
            allocated: show_addresses(allocation.ipv4, allocation.ipv6),
        });
    }
    if registration.netns != allocation.netns {
        return Err(EndpointError::NetnsMismatch {
            attachment: attachment.clone(),
            registered: registration.netns.clone(),
            allocated: allocation.netns,
        });
    }
    spec::parse_mac("host_mac", &registration.host_mac)?;
    spec::parse_mac("pod_mac", &registration.pod_mac)?;
    if !veth_exists(network, registration).await? {
        return Err(EndpointError::NoSuchLink {
            ifindex: registration.host_ifindex,
            ifname: registration.host_ifname.clone(),
        });
    }
    Ok(())
}

/// True when the registration's host veth exists (same index and name).
async fn veth_exists(
    network: &impl NodeNetwork,
    registration: &EndpointRegistration,
) -> Result<bool, NetError> {
    let link = network.link_by_index(registration.host_ifindex).await?;
    Ok(link.is_some_and(|link| link.name == registration.host_ifname))
}

fn show_addresses(ipv4: Option<std::net::Ipv4Addr>, ipv6: Option<std::net::Ipv6Addr>) -> String {
    let show = |a: Option<String>| a.unwrap_or_else(|| "none".to_string());
    format!(
        "{} and {}",
        show(ipv4.map(|a| a.to_string())),
        show(ipv6.map(|a| a.to_string()))
    )
}

#[cfg(test)]
mod tests;

//! Recovery: adopting persisted endpoints on start and releasing what leaked.
//!
//! Rules, applied on start ([`Reconcile::Adopt`]) and periodically ([`Reconcile::Sweep`]):
//! - an endpoint whose host veth still exists (same index and name) is kept; on start
//!   its routes are ensured and the datapath attaches it again, adopting its pinned
//!   state without breaking connections;
//! - an endpoint whose host veth is gone is deleted and its addresses released;
//! - an allocation without an endpoint is released when its netns path no longer exists,
//!   or when it is older than the grace period (the CNI plugin registers an endpoint
//!   right after allocating, so an old one belongs to an ADD that died half-way).

use super::{EndpointError, EndpointManager, NodeDatapath, veth_exists};
use crate::ipam::AllocationRecord;
use crate::node::NodeNetwork;
use crate::store::now_unix_secs;
use membrane_api::AttachmentRef;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// How far a reconciliation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconcile {
    /// On start: also program every live endpoint again.
    Adopt,
    /// Periodically: only release what leaked.
    Sweep,
}

/// What a reconciliation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Endpoints programmed again.
    pub adopted: usize,
    /// Attachments whose endpoint or addresses were released.
    pub released: Vec<AttachmentRef>,
    /// Endpoints or allocations that could not be checked, adopted or released (logged;
    /// tried again on the next pass).
    pub failures: usize,
}

impl<D: NodeDatapath, N: NodeNetwork> EndpointManager<D, N> {
    /// Applies the recovery rules to every persisted endpoint and allocation.
    pub async fn reconcile(&mut self, mode: Reconcile) -> Result<ReconcileReport, EndpointError> {
        let mut report = ReconcileReport::default();
        let mut with_endpoint = BTreeSet::new();
        for endpoint in self.list()? {
            let attachment = endpoint.registration.attachment.clone();
            let result = match veth_exists(&self.network, &endpoint.registration).await {
                Ok(true) => {
                    with_endpoint.insert(attachment.clone());
                    if mode == Reconcile::Adopt {
                        self.program(&endpoint).await.map(|()| report.adopted += 1)
                    } else {
                        Ok(())
                    }
                }
                Ok(false) => {
                    tracing::info!(id = endpoint.id, veth = %endpoint.registration.host_ifname, "host veth is gone; releasing the endpoint");
                    self.delete(&attachment)
                        .await
                        .map(|_| report.released.push(attachment))
                }
                Err(e) => Err(e.into()),
            };
            if let Err(error) = result {
                tracing::warn!(id = endpoint.id, %error, "endpoint recovery failed");
                report.failures += 1;
            }
        }
        let now = now_unix_secs();
        for (attachment, allocation) in self.ipam.list()? {
            if with_endpoint.contains(&attachment) {
                continue;
            }
            let Some(reason) = orphan_reason(&allocation, now, self.orphan_grace) else {
                continue;
            };
            tracing::info!(container = %attachment.container_id, ifname = %attachment.ifname, reason, "releasing leaked addresses");
            match self.delete(&attachment).await {
                Ok(_) => report.released.push(attachment),
                Err(error) => {
                    tracing::warn!(container = %attachment.container_id, %error, "releasing leaked addresses failed");
                    report.failures += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Why an allocation without an endpoint should be released, or `None` to keep it.
fn orphan_reason(allocation: &AllocationRecord, now: u64, grace: Duration) -> Option<&'static str> {
    if !allocation.netns.is_empty() && !Path::new(&allocation.netns).exists() {
        return Some("its network namespace is gone");
    }
    if now.saturating_sub(allocation.allocated_at) > grace.as_secs() {
        return Some("it never got an endpoint within the grace period");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation(netns: &str, allocated_at: u64) -> AllocationRecord {
        AllocationRecord {
            ipv4: None,
            ipv6: None,
            netns: netns.to_string(),
            allocated_at,
        }
    }

    #[test]
    fn a_young_allocation_with_a_live_netns_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let netns = dir.path().to_str().unwrap();
        assert_eq!(
            orphan_reason(&allocation(netns, 1000), 1100, Duration::from_secs(120)),
            None
        );
    }

    #[test]
    fn an_allocation_whose_netns_is_gone_is_released_at_once() {
        let reason = orphan_reason(
            &allocation("/nonexistent/ns", 1000),
            1000,
            Duration::from_secs(120),
        );
        assert_eq!(reason, Some("its network namespace is gone"));
    }

    #[test]
    fn an_allocation_older_than_the_grace_period_is_released() {
        let reason = orphan_reason(&allocation("", 1000), 1121, Duration::from_secs(120));
        assert_eq!(
            reason,
            Some("it never got an endpoint within the grace period")
        );
        assert_eq!(
            orphan_reason(&allocation("", 1000), 1120, Duration::from_secs(120)),
            None
        );
    }
}

//! ADD: allocate addresses, create and configure the veth pair, register the endpoint.
//!
//! An ADD for an attachment whose host veth or pod interface already exists fails with
//! code 102 before anything is allocated or created (the spec requires an error when
//! the interface exists). Any failure after allocation undoes everything done so far
//! (veth deleted, endpoint removed, addresses released) before the error is returned.

use crate::agent::Agent;
use crate::config::NetConf;
use crate::env::AttachmentEnv;
use crate::error::CniError;
use crate::link;
use crate::naming::host_veth_name;
use crate::netns::Netns;
use crate::pod::{self, PodPlan};
use crate::result::{AddResult, Attached};
use membrane_api::{AllocateRequest, Allocation, AttachmentRef, EndpointRegistration, paths};
use rtnetlink::Handle;
use std::path::Path;

/// Runs ADD and returns the result to print.
pub async fn run(
    conf: &NetConf,
    attachment: &AttachmentEnv,
    netns_path: &Path,
) -> Result<AddResult, CniError> {
    if conf.prev_result.is_some() {
        return Err(CniError::InvalidConfig {
            field: "prevResult",
            reason: "membrane-cni creates the pod interface and must be the first plugin \
                     of the chain"
                .into(),
        });
    }
    let netns = Netns::open(netns_path)?;
    let host = link::connect()?;
    let host_ifname = host_veth_name(&attachment.container_id, &attachment.ifname);
    ensure_names_free(&host, &netns, &host_ifname, &attachment.ifname).await?;

    let agent = Agent::new(&conf.agent_socket);
    let attachment_ref = AttachmentRef {
        container_id: attachment.container_id.clone(),
        ifname: attachment.ifname.clone(),
    };
    let allocation = agent
        .allocate(&AllocateRequest {
            attachment: attachment_ref.clone(),
            netns: netns_path.display().to_string(),
        })
        .await?;
    tracing::info!(?allocation, %host_ifname, "addresses allocated");

    let setup = Setup {
        conf,
        attachment,
        netns: &netns,
        host: &host,
        agent: &agent,
        host_ifname,
    };
    let mut progress = Progress::default();
    match setup.attach(&allocation, &mut progress).await {
        Ok(attached) => {
            tracing::info!(?attached, "attachment added");
            Ok(AddResult::new(&attached, conf.version, &conf.dns))
        }
        Err(cause) => {
            tracing::warn!(error = %cause, "ADD failed, undoing");
            let leftovers = setup.undo(&attachment_ref, progress).await;
            Err(CniError::Unwound {
                cause: Box::new(cause),
                leftovers,
            })
        }
    }
}

/// Fails with code 102 when the host veth name or the pod interface name is taken.
async fn ensure_names_free(
    host: &Handle,
    netns: &Netns,
    host_ifname: &str,
    pod_ifname: &str,
) -> Result<(), CniError> {
    if link::find(host, host_ifname).await?.is_some() {
        return Err(CniError::InterfaceExists {
            name: host_ifname.to_string(),
            place: "the node's network namespace",
        });
    }
    let name = pod_ifname.to_string();
    let existing = netns
        .run(move |pod| async move { link::find(&pod, &name).await })
        .await?;
    if existing.is_some() {
        return Err(CniError::InterfaceExists {
            name: pod_ifname.to_string(),
            place: "the pod's network namespace",
        });
    }
    Ok(())
}

/// What has to be undone if ADD fails after allocating.
#[derive(Default)]
struct Progress {
    veth_created: bool,
    endpoint_requested: bool,
}

/// Everything ADD works with once the names are known to be free.
struct Setup<'a> {
    conf: &'a NetConf,
    attachment: &'a AttachmentEnv,
    netns: &'a Netns,
    host: &'a Handle,
    agent: &'a Agent,
    host_ifname: String,
}

impl Setup<'_> {
    async fn attach(
        &self,
        allocation: &Allocation,
        progress: &mut Progress,
    ) -> Result<Attached, CniError> {
        if allocation.ipv4.is_none() && allocation.ipv6.is_none() {
            return Err(CniError::AgentAnswer {
                request: paths::IPAM_ALLOCATE,
                reason: "no IPv4 and no IPv6 address".into(),
            });
        }
        let mtu = self.conf.mtu.unwrap_or(allocation.mtu);
        let pod_ifname = &self.attachment.ifname;
        link::create_veth(
            self.host,
            &self.host_ifname,
            pod_ifname,
            self.netns.fd(),
            mtu,
        )
        .await?;
        progress.veth_created = true;
        let host_link = link::get(self.host, &self.host_ifname).await?;
        let host_mac = host_link.mac.ok_or_else(|| CniError::NoMacAddress {
            name: host_link.name.clone(),
        })?;
        link::set_up(self.host, &host_link).await?;

        let plan = PodPlan {
            ifname: pod_ifname.clone(),
            ipv4: allocation.ipv4,
            ipv6: allocation.ipv6,
            gateway_v4: allocation.gateway_v4,
            gateway_v6: allocation.gateway_v6,
            gateway_mac: host_mac,
        };
        let pod_mac = self.netns.run(move |pod| pod::configure(pod, plan)).await?;

        let sandbox = self.netns.path().display().to_string();
        progress.endpoint_requested = true;
        let endpoint = self
            .agent
            .create_endpoint(&EndpointRegistration {
                attachment: AttachmentRef {
                    container_id: self.attachment.container_id.clone(),
                    ifname: pod_ifname.clone(),
                },
                netns: sandbox.clone(),
                host_ifname: self.host_ifname.clone(),
                host_ifindex: host_link.index,
                host_mac: host_mac.to_string(),
                pod_mac: pod_mac.to_string(),
                ipv4: allocation.ipv4,
                ipv6: allocation.ipv6,
                pod_namespace: self.attachment.args.pod_namespace.clone(),
                pod_name: self.attachment.args.pod_name.clone(),
            })
            .await?;
        tracing::info!(endpoint = endpoint.id, "endpoint registered");
        Ok(Attached {
            host_ifname: self.host_ifname.clone(),
            host_mac,
            pod_ifname: pod_ifname.clone(),
            pod_mac,
            sandbox,
            mtu,
            ipv4: allocation.ipv4,
            ipv6: allocation.ipv6,
            gateway_v4: allocation.gateway_v4,
            gateway_v6: allocation.gateway_v6,
        })
    }

    /// Undoes `progress` and releases the addresses; returns the steps that failed.
    async fn undo(&self, attachment: &AttachmentRef, progress: Progress) -> Vec<String> {
        let mut leftovers = Vec::new();
        if progress.veth_created
            && let Err(e) = link::delete_if_present(self.host, &self.host_ifname).await
        {
            leftovers.push(format!("deleting {}: {e}", self.host_ifname));
        }
        if progress.endpoint_requested
            && let Err(e) = self.agent.delete_endpoint(attachment).await
        {
            leftovers.push(format!("removing the endpoint: {e}"));
        }
        if let Err(e) = self.agent.release(attachment).await {
            leftovers.push(format!("releasing the addresses: {e}"));
        }
        for leftover in &leftovers {
            tracing::error!(%leftover, "undo step failed");
        }
        leftovers
    }
}

//! DEL: remove the endpoint and addresses at the agent and the host-side veth.
//!
//! Idempotent: an unknown attachment, a missing veth or a missing namespace is success.
//! The veth is deleted even when the agent cannot be reached; the agent error (code 11)
//! is returned afterwards so that the runtime retries.

use crate::agent::Agent;
use crate::config::NetConf;
use crate::env::AttachmentEnv;
use crate::error::CniError;
use crate::link;
use crate::naming::host_veth_name;
use membrane_api::AttachmentRef;

/// Runs DEL.
pub async fn run(conf: &NetConf, attachment: &AttachmentEnv) -> Result<(), CniError> {
    let agent = Agent::new(&conf.agent_socket);
    let attachment_ref = AttachmentRef {
        container_id: attachment.container_id.clone(),
        ifname: attachment.ifname.clone(),
    };
    // Release too: an ADD killed between allocation and registration leaves addresses
    // without an endpoint.
    let agent_done = match agent.delete_endpoint(&attachment_ref).await {
        Ok(()) => agent.release(&attachment_ref).await,
        Err(e) => Err(e),
    };

    let host = link::connect()?;
    let host_ifname = host_veth_name(&attachment.container_id, &attachment.ifname);
    let deleted = link::delete_if_present(&host, &host_ifname).await?;
    tracing::info!(%host_ifname, deleted, agent_ok = agent_done.is_ok(), "attachment deleted");
    agent_done
}

//! GC: the agent releases every attachment not in `cni.dev/valid-attachments`, then the
//! plugin deletes the host-side veths of the released attachments.

use crate::agent::Agent;
use crate::config::NetConf;
use crate::error::CniError;
use crate::link;
use crate::naming::host_veth_name;
use crate::version::SpecVersion;
use membrane_api::GcRequest;

/// Runs GC. Every veth deletion is tried; the failures are reported together.
pub async fn run(conf: &NetConf) -> Result<(), CniError> {
    conf.version.require("GC", SpecVersion::V1_1_0)?;
    let valid = conf
        .valid_attachments
        .clone()
        .ok_or(CniError::InvalidConfig {
            field: "cni.dev/valid-attachments",
            reason: "GC needs the list of valid attachments".into(),
        })?;
    let report = Agent::new(&conf.agent_socket)
        .gc(&GcRequest {
            valid: valid.clone(),
        })
        .await?;

    let host = link::connect()?;
    let mut problems = Vec::new();
    for released in report.released.iter().filter(|a| !valid.contains(a)) {
        let name = host_veth_name(&released.container_id, &released.ifname);
        match link::delete_if_present(&host, &name).await {
            Ok(deleted) => tracing::info!(?released, %name, deleted, "released by GC"),
            Err(e) => problems.push(format!("deleting {name}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::CleanupIncomplete {
            problems: problems.join("; "),
        })
    }
}

//! STATUS: whether the plugin can add pods now.
//!
//! Code 50 when it cannot (agent unreachable, no address pool, a pool without a free
//! address); code 51 when the agent reports its datapath is not serving, since existing
//! pods then lose connectivity too. An unreachable agent is 50, not 51: the datapath
//! programs stay attached in the kernel while the agent restarts.

use crate::agent::Agent;
use crate::config::NetConf;
use crate::error::CniError;
use crate::version::SpecVersion;
use membrane_api::AgentStatus;

/// Runs STATUS.
pub async fn run(conf: &NetConf) -> Result<(), CniError> {
    conf.version.require("STATUS", SpecVersion::V1_1_0)?;
    let status =
        Agent::new(&conf.agent_socket)
            .status()
            .await
            .map_err(|e| CniError::AgentNotAvailable {
                source: Box::new(e),
            })?;
    judge(&status)
}

/// The verdict on an agent's status.
fn judge(status: &AgentStatus) -> Result<(), CniError> {
    if !status.healthy {
        return Err(CniError::LimitedConnectivity {
            reason: format!(
                "the agent on node {} reports it is not healthy",
                status.node
            ),
        });
    }
    let pools: Vec<_> = [&status.ipv4_pool, &status.ipv6_pool]
        .into_iter()
        .flatten()
        .collect();
    if pools.is_empty() {
        return Err(CniError::NotAvailable {
            reason: format!("the agent on node {} has no address pool", status.node),
        });
    }
    if let Some(full) = pools.iter().find(|pool| pool.free == 0) {
        return Err(CniError::NotAvailable {
            reason: format!(
                "address pool {} has no free address ({} used)",
                full.cidr, full.used
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CODE_LIMITED_CONNECTIVITY, CODE_NOT_AVAILABLE};
    use membrane_api::PoolStatus;

    fn status() -> AgentStatus {
        AgentStatus {
            node: "node-a".into(),
            healthy: true,
            endpoints: 3,
            ipv4_pool: Some(PoolStatus {
                cidr: "10.1.0.0/24".into(),
                used: 3,
                free: 250,
            }),
            ipv6_pool: Some(PoolStatus {
                cidr: "fd00:10:1::/112".into(),
                used: 3,
                free: 9000,
            }),
        }
    }

    #[test]
    fn healthy_agent_with_free_addresses_is_ready() {
        assert!(judge(&status()).is_ok());
    }

    #[test]
    fn unhealthy_agent_is_code_51() {
        let mut s = status();
        s.healthy = false;
        assert_eq!(judge(&s).unwrap_err().code(), CODE_LIMITED_CONNECTIVITY);
    }

    #[test]
    fn exhausted_pool_is_code_50_naming_the_pool() {
        let mut s = status();
        s.ipv6_pool.as_mut().unwrap().free = 0;
        let err = judge(&s).unwrap_err();
        assert_eq!(err.code(), CODE_NOT_AVAILABLE);
        assert!(err.to_string().contains("fd00:10:1::/112"));
    }

    #[test]
    fn agent_without_pools_is_code_50() {
        let mut s = status();
        s.ipv4_pool = None;
        s.ipv6_pool = None;
        assert_eq!(judge(&s).unwrap_err().code(), CODE_NOT_AVAILABLE);
    }
}

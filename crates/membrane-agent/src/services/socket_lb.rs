//! Attaching the socket-level load balancer at start, as configured.

use super::config::ServicesConfig;
use super::error::ServicesError;
use membrane_datapath::Datapath;
use std::path::Path;

/// Attaches the socket-level load balancer to the configured cgroup when it is on, and
/// returns that cgroup; `None` when Services are balanced per packet only.
pub fn attach<'a>(
    datapath: &mut Datapath,
    config: &'a ServicesConfig,
) -> Result<Option<&'a Path>, ServicesError> {
    let Some(cgroup) = config.socket_lb_cgroup() else {
        return Ok(None);
    };
    datapath
        .attach_socket_lb(cgroup)
        .map_err(|source| ServicesError::SocketLb {
            cgroup: cgroup.clone(),
            source: Box::new(source),
        })?;
    Ok(Some(cgroup.as_path()))
}

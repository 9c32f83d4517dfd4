//! A pod: its own network namespace and cgroup, attached to its node through the real
//! CNI plugin, detached (CNI DEL) on drop.

use crate::cgroup::{Cgroup, CgroupError};
use crate::cni::{Attachment, CniError, CniResult};
use crate::names;
use crate::netlink::{self, Link, NetlinkError};
use crate::netns::{Netns, NetnsError};
use crate::node::Node;
use crate::process::Place;
use crate::wiring::{self, WiringError};
use membrane_api::AttachmentRef;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Errors of creating or detaching a pod.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The pod's namespace could not be created.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The pod's loopback could not be set up.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The pod's cgroup could not be created.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The CNI plugin failed.
    #[error("CNI failed for pod {namespace}/{name}")]
    Cni {
        /// The pod namespace.
        namespace: String,
        /// The pod name.
        name: String,
        /// The CNI error.
        #[source]
        source: Box<CniError>,
    },
}

/// A pod of one node. The runtime's steps are mirrored: namespace and loopback, then
/// CNI ADD; on drop, kill the pod's processes, CNI DEL, remove the namespace.
#[derive(Debug)]
pub struct Pod<'n> {
    node: &'n Node,
    namespace: String,
    name: String,
    attachment: Attachment,
    result: CniResult,
    deleted: bool,
    cgroup: Cgroup,
    netns: Netns,
}

impl<'n> Pod<'n> {
    /// Creates pod `namespace/name` on `node` through CNI ADD.
    pub fn create(node: &'n Node, namespace: &str, name: &str) -> Result<Pod<'n>, PodError> {
        let netns = Netns::create("pod")?;
        wiring::loopback_up(&netns)?;
        let cgroup = node.child_cgroup("pod")?;
        let container_id = names::container_id();
        let attachment = Attachment::for_pod(&container_id, netns.path(), namespace, name);
        let cni = node.cni();
        let result = cni.add(&attachment).map_err(|source| {
            // A runtime tears down what a failed ADD may have left.
            let _ = cni.del(&attachment, None);
            PodError::Cni {
                namespace: namespace.into(),
                name: name.into(),
                source: Box::new(source),
            }
        })?;
        Ok(Pod {
            node,
            namespace: namespace.into(),
            name: name.into(),
            attachment,
            result,
            deleted: false,
            cgroup,
            netns,
        })
    }

    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The name of the node the pod runs on.
    pub fn node_name(&self) -> &str {
        self.node.name()
    }

    /// The pod's IPv4 address, from the ADD result.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.result.ipv4()
    }

    /// The pod's IPv6 address, from the ADD result.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.result.ipv6()
    }

    /// The attachment, as given to the plugin.
    pub fn attachment(&self) -> &Attachment {
        &self.attachment
    }

    /// The attachment as the agent's API names it.
    pub fn attachment_ref(&self) -> AttachmentRef {
        AttachmentRef {
            container_id: self.attachment.container_id.clone(),
            ifname: self.attachment.ifname.clone(),
        }
    }

    /// CNI CHECK with the ADD result.
    pub fn check(&self) -> Result<(), CniError> {
        self.node.cni().check(&self.attachment, &self.result)
    }

    /// CNI DEL now (drop then does not repeat it).
    pub fn del(&mut self) -> Result<(), CniError> {
        self.node.cni().del(&self.attachment, Some(&self.result))?;
        self.deleted = true;
        Ok(())
    }

    /// The links inside the pod.
    pub fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        netlink::run_in(&self.netns, |handle| async move {
            netlink::links(&handle).await
        })
    }
}

impl Place for Pod<'_> {
    fn netns(&self) -> &Netns {
        &self.netns
    }
    fn cgroup(&self) -> Option<&Cgroup> {
        Some(&self.cgroup)
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.cgroup.kill_all() {
            eprintln!(
                "testbed: cannot stop the processes of pod {}: {e}",
                self.full_name()
            );
        }
        if !self.deleted
            && let Err(e) = self.node.cni().del(&self.attachment, Some(&self.result))
        {
            eprintln!("testbed: CNI DEL of pod {} failed: {e}", self.full_name());
        }
    }
}

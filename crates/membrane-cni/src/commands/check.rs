//! CHECK: compare the attachment on the node, in the pod and at the agent with the
//! `prevResult` of its ADD.
//!
//! A missing namespace is code 3 (the container does not exist). Everything else that
//! is wrong (agent without the endpoint, veth missing or down, pod interface missing,
//! down or without an address) is collected and reported at once as code 104. The agent
//! not knowing the endpoint is 104 and not 3, because the veth may still need a DEL.

use crate::agent::Agent;
use crate::config::NetConf;
use crate::env::AttachmentEnv;
use crate::error::CniError;
use crate::link::{self, Link};
use crate::naming::host_veth_name;
use crate::netns::Netns;
use crate::pod::{self, PodInterface};
use crate::version::SpecVersion;
use membrane_api::{AttachmentRef, Endpoint};
use std::net::IpAddr;
use std::path::Path;

/// Runs CHECK.
pub async fn run(
    conf: &NetConf,
    attachment: &AttachmentEnv,
    netns_path: &Path,
) -> Result<(), CniError> {
    conf.version.require("CHECK", SpecVersion::V0_4_0)?;
    let prev = conf.prev_result.as_ref().ok_or(CniError::InvalidConfig {
        field: "prevResult",
        reason: "CHECK needs the result of the ADD".into(),
    })?;
    let expected =
        prev.addresses_of(&attachment.ifname)
            .map_err(|reason| CniError::InvalidConfig {
                field: "prevResult",
                reason,
            })?;
    let netns = Netns::open(netns_path)?;

    let attachment_ref = AttachmentRef {
        container_id: attachment.container_id.clone(),
        ifname: attachment.ifname.clone(),
    };
    let endpoint = Agent::new(&conf.agent_socket)
        .endpoint(&attachment_ref)
        .await?;
    let host = link::connect()?;
    let host_ifname = host_veth_name(&attachment.container_id, &attachment.ifname);
    let host_link = link::find(&host, &host_ifname).await?;
    let ifname = attachment.ifname.clone();
    let pod_iface = netns.run(move |pod| pod::inspect(pod, ifname)).await?;

    let problems = Findings {
        attachment: &attachment_ref,
        expected: &expected,
        endpoint: endpoint.as_ref(),
        host_ifname: &host_ifname,
        host_link: host_link.as_ref(),
        pod_iface: pod_iface.as_ref(),
    }
    .problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::CheckFailed {
            problems: problems.join("; "),
        })
    }
}

/// What CHECK observed.
struct Findings<'a> {
    attachment: &'a AttachmentRef,
    expected: &'a [IpAddr],
    endpoint: Option<&'a Endpoint>,
    host_ifname: &'a str,
    host_link: Option<&'a Link>,
    pod_iface: Option<&'a PodInterface>,
}

impl Findings<'_> {
    /// Every discrepancy, one sentence each.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let ifname = &self.attachment.ifname;
        match self.endpoint {
            None => problems.push(format!(
                "the agent has no endpoint for container {} interface {ifname}",
                self.attachment.container_id
            )),
            Some(endpoint) => {
                let registered = &endpoint.registration;
                let agent_ips: Vec<IpAddr> = [
                    registered.ipv4.map(IpAddr::from),
                    registered.ipv6.map(IpAddr::from),
                ]
                .into_iter()
                .flatten()
                .collect();
                for ip in self.expected.iter().filter(|ip| !agent_ips.contains(ip)) {
                    problems.push(format!("the agent's endpoint does not have address {ip}"));
                }
                if let Some(link) = self.host_link
                    && link.index != registered.host_ifindex
                {
                    problems.push(format!(
                        "the agent has ifindex {} for {}, the node has {}",
                        registered.host_ifindex, self.host_ifname, link.index
                    ));
                }
            }
        }
        match self.host_link {
            None => problems.push(format!("host veth {} is missing", self.host_ifname)),
            Some(link) if !link.up => {
                problems.push(format!("host veth {} is down", self.host_ifname))
            }
            Some(_) => {}
        }
        match self.pod_iface {
            None => problems.push(format!("interface {ifname} is missing in the pod")),
            Some(iface) => {
                if !iface.link.up {
                    problems.push(format!("interface {ifname} is down in the pod"));
                }
                for ip in self
                    .expected
                    .iter()
                    .filter(|ip| !iface.addresses.contains(ip))
                {
                    problems.push(format!("interface {ifname} lacks address {ip}"));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_api::EndpointRegistration;

    fn attachment() -> AttachmentRef {
        AttachmentRef {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            id: 7,
            registration: EndpointRegistration {
                attachment: attachment(),
                netns: "/run/netns/pod".into(),
                host_ifname: "lxc0123456789a".into(),
                host_ifindex: 42,
                host_mac: "02:00:00:00:00:01".into(),
                pod_mac: "02:00:00:00:00:02".into(),
                ipv4: Some("10.1.0.5".parse().unwrap()),
                ipv6: Some("fd00::5".parse().unwrap()),
                pod_namespace: None,
                pod_name: None,
            },
        }
    }

    fn link(index: u32, name: &str, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            mac: None,
            up,
            is_veth: true,
        }
    }

    fn expected() -> Vec<IpAddr> {
        vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()]
    }

    #[test]
    fn consistent_attachment_has_no_problem() {
        let (attachment, endpoint, expected) = (attachment(), endpoint(), expected());
        let host = link(42, "lxc0123456789a", true);
        let pod = PodInterface {
            link: link(2, "eth0", true),
            addresses: expected.clone(),
        };
        let findings = Findings {
            attachment: &attachment,
            expected: &expected,
            endpoint: Some(&endpoint),
            host_ifname: "lxc0123456789a",
            host_link: Some(&host),
            pod_iface: Some(&pod),
        };
        assert!(findings.problems().is_empty(), "{:?}", findings.problems());
    }

    #[test]
    fn every_discrepancy_is_reported_at_once() {
        let (attachment, expected) = (attachment(), expected());
        let pod = PodInterface {
            link: link(2, "eth0", false),
            addresses: vec!["10.1.0.5".parse().unwrap()],
        };
        let findings = Findings {
            attachment: &attachment,
            expected: &expected,
            endpoint: None,
            host_ifname: "lxc0123456789a",
            host_link: None,
            pod_iface: Some(&pod),
        };
        let problems = findings.problems().join("; ");
        assert!(problems.contains("no endpoint"), "{problems}");
        assert!(
            problems.contains("host veth lxc0123456789a is missing"),
            "{problems}"
        );
        assert!(problems.contains("eth0 is down"), "{problems}");
        assert!(problems.contains("lacks address fd00::5"), "{problems}");
    }

    #[test]
    fn stale_ifindex_at_the_agent_is_a_problem() {
        let (attachment, endpoint, expected) = (attachment(), endpoint(), expected());
        let host = link(43, "lxc0123456789a", true);
        let pod = PodInterface {
            link: link(2, "eth0", true),
            addresses: expected.clone(),
        };
        let findings = Findings {
            attachment: &attachment,
            expected: &expected,
            endpoint: Some(&endpoint),
            host_ifname: "lxc0123456789a",
            host_link: Some(&host),
            pod_iface: Some(&pod),
        };
        assert_eq!(findings.problems().len(), 1);
        assert!(findings.problems()[0].contains("ifindex 42"));
    }
}

//! Result JSON: the ADD success result shaped for each CNI version, the `dns` section,
//! and the parts of a `prevResult` the plugin reads back.

use crate::version::SpecVersion;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Route scope `link` (RT_SCOPE_LINK), as CNI 1.1 routes carry it.
const SCOPE_LINK: u8 = 253;

/// A 48-bit MAC address, printed the way CNI results and `ip link` print it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// DNS settings: the configuration's `dns` key, echoed into ADD results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Name server addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// What ADD set up, independent of the version it is reported in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Host-side veth name.
    pub host_ifname: String,
    /// Host-side veth MAC.
    pub host_mac: MacAddr,
    /// Pod interface name (`CNI_IFNAME`).
    pub pod_ifname: String,
    /// Pod interface MAC.
    pub pod_mac: MacAddr,
    /// The pod's namespace path (`CNI_NETNS`).
    pub sandbox: String,
    /// MTU of both ends.
    pub mtu: u32,
    /// The pod's IPv4 address (a /32).
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address (a /128).
    pub ipv6: Option<Ipv6Addr>,
    /// Link-local IPv4 gateway.
    pub gateway_v4: Ipv4Addr,
    /// Link-local IPv6 gateway.
    pub gateway_v6: Ipv6Addr,
}

/// The ADD success result.
#[derive(Debug, Serialize)]
pub struct AddResult {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    interfaces: Vec<Interface>,
    ips: Vec<IpConfig>,
    routes: Vec<Route>,
    dns: Dns,
}

#[derive(Debug, Serialize)]
struct Interface {
    name: String,
    mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
}

#[derive(Debug, Serialize)]
struct IpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    address: String,
    gateway: IpAddr,
    interface: usize,
}

#[derive(Debug, Serialize)]
struct Route {
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
}

/// Index of the pod interface in `interfaces` (the host veth is 0).
const POD_INTERFACE: usize = 1;

impl AddResult {
    /// The result of `attached` in the shape of `version`: 0.3.x/0.4.0 `ips` carry
    /// `version`; 1.1.0 adds interface `mtu` and the link-scope route to the gateway.
    pub fn new(attached: &Attached, version: SpecVersion, dns: &Dns) -> Self {
        let legacy = version < SpecVersion::V1_0_0;
        let v1_1 = version >= SpecVersion::V1_1_0;
        let interfaces = vec![
            Interface {
                name: attached.host_ifname.clone(),
                mac: attached.host_mac.to_string(),
                mtu: v1_1.then_some(attached.mtu),
                sandbox: None,
            },
            Interface {
                name: attached.pod_ifname.clone(),
                mac: attached.pod_mac.to_string(),
                mtu: v1_1.then_some(attached.mtu),
                sandbox: Some(attached.sandbox.clone()),
            },
        ];
        let mut ips = Vec::new();
        let mut routes = Vec::new();
        if let Some(ip) = attached.ipv4 {
            ips.push(IpConfig {
                version: legacy.then_some("4"),
                address: format!("{ip}/32"),
                gateway: attached.gateway_v4.into(),
                interface: POD_INTERFACE,
            });
            if v1_1 {
                routes.push(Route {
                    dst: format!("{}/32", attached.gateway_v4),
                    gw: None,
                    scope: Some(SCOPE_LINK),
                });
            }
            routes.push(Route {
                dst: "0.0.0.0/0".into(),
                gw: Some(attached.gateway_v4.into()),
                scope: None,
            });
        }
        if let Some(ip) = attached.ipv6 {
            ips.push(IpConfig {
                version: legacy.then_some("6"),
                address: format!("{ip}/128"),
                gateway: attached.gateway_v6.into(),
                interface: POD_INTERFACE,
            });
            routes.push(Route {
                dst: "::/0".into(),
                gw: Some(attached.gateway_v6.into()),
                scope: None,
            });
        }
        AddResult {
            cni_version: version.as_str(),
            interfaces,
            ips,
            routes,
            dns: dns.clone(),
        }
    }
}

/// The parts of a previous result that CHECK compares against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PrevResult {
    /// Interfaces, in order.
    #[serde(default)]
    pub interfaces: Vec<PrevInterface>,
    /// Addresses.
    #[serde(default)]
    pub ips: Vec<PrevIp>,
}

/// One `interfaces` entry of a previous result.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PrevInterface {
    /// Interface name.
    pub name: String,
    /// Namespace path; empty or absent for host interfaces.
    #[serde(default)]
    pub sandbox: Option<String>,
}

/// One `ips` entry of a previous result.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PrevIp {
    /// Address in CIDR form.
    pub address: String,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

impl PrevResult {
    /// The addresses the previous result gives the sandbox interface `ifname`, or an
    /// error naming an address that is not `IP/prefix`.
    pub fn addresses_of(&self, ifname: &str) -> Result<Vec<IpAddr>, String> {
        let on_pod_iface = |ip: &&PrevIp| match ip.interface {
            Some(index) => self.interfaces.get(index).is_some_and(|iface| {
                iface.name == ifname && iface.sandbox.as_deref().is_some_and(|s| !s.is_empty())
            }),
            None => true,
        };
        self.ips
            .iter()
            .filter(on_pod_iface)
            .map(|ip| {
                let (addr, prefix) = ip.address.split_once('/').unwrap_or((&ip.address, ""));
                match (addr.parse::<IpAddr>(), prefix.parse::<u8>()) {
                    (Ok(addr), Ok(_)) => Ok(addr),
                    _ => Err(format!(
                        "prevResult address {:?} is not IP/prefix",
                        ip.address
                    )),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn attached() -> Attached {
        Attached {
            host_ifname: "lxc0123456789a".into(),
            host_mac: MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01]),
            pod_ifname: "eth0".into(),
            pod_mac: MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02]),
            sandbox: "/run/netns/pod".into(),
            mtu: 1500,
            ipv4: Some(Ipv4Addr::new(10, 1, 0, 5)),
            ipv6: Some("fd00:10:1::5".parse().unwrap()),
            gateway_v4: Ipv4Addr::new(169, 254, 1, 1),
            gateway_v6: "fe80::1".parse().unwrap(),
        }
    }

    fn render(version: SpecVersion) -> Value {
        serde_json::to_value(AddResult::new(&attached(), version, &Dns::default())).unwrap()
    }

    #[test]
    fn result_1_1_has_interface_mtu_and_link_scope_route() {
        assert_eq!(
            render(SpecVersion::V1_1_0),
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "lxc0123456789a", "mac": "02:aa:bb:cc:dd:01", "mtu": 1500},
                    {"name": "eth0", "mac": "02:aa:bb:cc:dd:02", "mtu": 1500,
                     "sandbox": "/run/netns/pod"},
                ],
                "ips": [
                    {"address": "10.1.0.5/32", "gateway": "169.254.1.1", "interface": 1},
                    {"address": "fd00:10:1::5/128", "gateway": "fe80::1", "interface": 1},
                ],
                "routes": [
                    {"dst": "169.254.1.1/32", "scope": 253},
                    {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                    {"dst": "::/0", "gw": "fe80::1"},
                ],
                "dns": {},
            })
        );
    }

    #[test]
    fn result_1_0_has_no_1_1_fields_and_no_ip_version() {
        let result = render(SpecVersion::V1_0_0);
        assert_eq!(result["cniVersion"], "1.0.0");
        assert!(result["interfaces"][0].get("mtu").is_none());
        assert!(result["ips"][0].get("version").is_none());
        assert_eq!(
            result["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}])
        );
    }

    #[test]
    fn results_before_1_0_carry_ip_version() {
        for version in [
            SpecVersion::V0_3_0,
            SpecVersion::V0_3_1,
            SpecVersion::V0_4_0,
        ] {
            let result = render(version);
            assert_eq!(result["cniVersion"], version.as_str());
            assert_eq!(result["ips"][0]["version"], "4");
            assert_eq!(result["ips"][1]["version"], "6");
            assert_eq!(result["ips"][1]["interface"], 1);
            assert!(result["interfaces"][1].get("mtu").is_none());
        }
    }

    #[test]
    fn single_stack_result_lists_only_that_family() {
        let mut only_v6 = attached();
        only_v6.ipv4 = None;
        let result = serde_json::to_value(AddResult::new(
            &only_v6,
            SpecVersion::V1_1_0,
            &Dns::default(),
        ))
        .unwrap();
        assert_eq!(result["ips"].as_array().unwrap().len(), 1);
        assert_eq!(result["routes"], json!([{"dst": "::/0", "gw": "fe80::1"}]));
    }

    #[test]
    fn configured_dns_is_echoed() {
        let dns = Dns {
            nameservers: vec!["10.96.0.10".into()],
            ..Dns::default()
        };
        let result =
            serde_json::to_value(AddResult::new(&attached(), SpecVersion::V1_1_0, &dns)).unwrap();
        assert_eq!(result["dns"], json!({"nameservers": ["10.96.0.10"]}));
    }

    #[test]
    fn prev_result_addresses_are_those_of_the_sandbox_interface() {
        let prev: PrevResult = serde_json::from_value(json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "lxc0123456789a", "mac": "x"},
                           {"name": "eth0", "sandbox": "/run/netns/pod"}],
            "ips": [{"address": "10.1.0.5/32", "interface": 1},
                    {"address": "192.0.2.1/24", "interface": 0},
                    {"version": "6", "address": "fd00::5/128", "interface": 1}],
            "routes": [], "dns": {},
        }))
        .unwrap();
        let addrs = prev.addresses_of("eth0").unwrap();
        assert_eq!(
            addrs,
            vec![
                "10.1.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
    }

    #[test]
    fn prev_result_with_a_bad_address_is_an_error() {
        let prev = PrevResult {
            interfaces: vec![],
            ips: vec![PrevIp {
                address: "10.1.0.5".into(),
                interface: None,
            }],
        };
        assert!(prev.addresses_of("eth0").unwrap_err().contains("10.1.0.5"));
    }
}

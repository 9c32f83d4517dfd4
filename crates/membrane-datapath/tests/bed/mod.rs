//! A private network namespace with the devices BPF_PROG_TEST_RUN needs, and the real
//! datapath object loaded into a throwaway pin directory.

use etherparse::PacketBuilder;
use futures::TryStreamExt;
use membrane_datapath::{Datapath, DatapathOptions, EndpointSpec, MapSizes, Routing};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

pub const NODE_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const NODE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
pub const WORLD_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 254);
pub const WORLD_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0xfe);
pub const WORLD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// The collect-metadata VXLAN device of tunnel-mode tests.
pub const TUNNEL_DEVICE: &str = "vxlan0";
pub const NAT_PORTS: std::ops::RangeInclusive<u16> = 40000..=40999;

/// One pod of the bed: its endpoint and addresses.
pub struct Pod {
    pub spec: EndpointSpec,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// The namespace's devices and the loaded datapath.
pub struct Bed {
    pub dp: Datapath,
    pub a: Pod,
    pub b: Pod,
    pub uplink: u32,
    /// The options the datapath was configured with (tests may change and re-apply).
    pub options: DatapathOptions,
    _pins: PinDir,
}

impl Bed {
    /// Routes `dst` (a host route) via the world neighbour of its family, as the agent
    /// routes another node's pod CIDR in native-routing mode.
    pub fn route_via_world(&self, dst: IpAddr) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            let route = match dst {
                IpAddr::V4(v4) => RouteMessageBuilder::<IpAddr>::new()
                    .destination_prefix(IpAddr::V4(v4), 32)
                    .and_then(|b| b.gateway(IpAddr::V4(WORLD_V4))),
                IpAddr::V6(v6) => RouteMessageBuilder::<IpAddr>::new()
                    .destination_prefix(IpAddr::V6(v6), 128)
                    .and_then(|b| b.gateway(IpAddr::V6(WORLD_V6))),
            }
            .expect("a valid route")
            .build();
            handle.route().add(route).execute().await.unwrap();
        });
    }
}

/// A throwaway pin directory, removed on drop (also when a test panics).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_sysctl(path: &str, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

async fn link(handle: &Handle, name: &str) -> LinkMessage {
    handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .unwrap()
        .unwrap()
}

fn mac_of(msg: &LinkMessage) -> [u8; 6] {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(m) if m.len() == 6 => Some([m[0], m[1], m[2], m[3], m[4], m[5]]),
            _ => None,
        })
        .expect("link has a MAC")
}

async fn up(handle: &Handle, index: u32) {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .unwrap();
}

/// Runs `test` on a thread inside a fresh network namespace (never the machine's own),
/// with two pods' host veths, an uplink with a reachable "world" neighbour, and the
/// datapath loaded and configured.
pub fn with_bed(test: impl FnOnce(&mut Bed) + Send + 'static) {
    with_bed_sized(
        MapSizes {
            conntrack: 4096,
            nat: 4096,
            endpoints: 64,
            ..MapSizes::default()
        },
        test,
    )
}

/// [`with_bed`] with the datapath's maps sized `sizes`.
pub fn with_bed_sized(sizes: MapSizes, test: impl FnOnce(&mut Bed) + Send + 'static) {
    let thread = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare a network namespace (are you root?)");
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        write_sysctl("/proc/sys/net/ipv6/conf/default/accept_dad", "0");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (a, b, uplink) = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(conn);
            let mut pods = Vec::new();
            for (host, peer, last) in [("lxca", "poda", 10u8), ("lxcb", "podb", 11u8)] {
                handle
                    .link()
                    .add(LinkVeth::new(host, peer).build())
                    .execute()
                    .await
                    .unwrap();
                let h = link(&handle, host).await;
                let p = link(&handle, peer).await;
                up(&handle, h.header.index).await;
                up(&handle, p.header.index).await;
                let v4 = Ipv4Addr::new(10, 200, 0, last);
                let v6 = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, last as u16);
                pods.push(Pod {
                    spec: EndpointSpec {
                        id: last as u16,
                        host_ifname: host.to_string(),
                        host_ifindex: h.header.index,
                        host_mac: mac_of(&h),
                        pod_mac: mac_of(&p),
                        ipv4: Some(v4),
                        ipv6: Some(v6),
                        identity: 1000 + last as u32,
                        policy: Default::default(),
                        netns_cookie: None,
                    },
                    v4,
                    v6,
                });
            }
            // The uplink's far end stays unaddressed: the "world" is a static neighbour.
            handle
                .link()
                .add(LinkVeth::new("uplink0", "world0").build())
                .execute()
                .await
                .unwrap();
            let world_end = link(&handle, "world0").await.header.index;
            up(&handle, world_end).await;
            let uplink = link(&handle, "uplink0").await.header.index;
            up(&handle, uplink).await;
            handle
                .link()
                .add(
                    LinkVxlan::new(TUNNEL_DEVICE, 0)
                        .port(8472)
                        .collect_metadata(true)
                        .build(),
                )
                .execute()
                .await
                .unwrap();
            let tunnel = link(&handle, TUNNEL_DEVICE).await.header.index;
            up(&handle, tunnel).await;
            handle
                .address()
                .add(uplink, IpAddr::V4(NODE_V4), 24)
                .execute()
                .await
                .unwrap();
            handle
                .address()
                .add(uplink, IpAddr::V6(NODE_V6), 64)
                .execute()
                .await
                .unwrap();
            for world in [IpAddr::V4(WORLD_V4), IpAddr::V6(WORLD_V6)] {
                handle
                    .neighbours()
                    .add(uplink, world)
                    .link_layer_address(&WORLD_MAC)
                    .execute()
                    .await
                    .unwrap();
            }
            let b = pods.pop().unwrap();
            let a = pods.pop().unwrap();
            (a, b, uplink)
        });
        let pins = PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/membrane-test-{:08x}",
            rand::random::<u32>()
        )));
        let pin_dir = pins.0.clone();
        let options = DatapathOptions {
            pin_dir: pin_dir.clone(),
            node_ipv4: Some(NODE_V4),
            node_ipv6: Some(NODE_V6),
            uplink: "uplink0".into(),
            non_masquerade_v4: Some("10.200.0.0/16".parse().unwrap()),
            non_masquerade_v6: Some("fd00:200::/48".parse().unwrap()),
            nat_ports: NAT_PORTS,
            map_sizes: sizes,
            routing: Routing::Native,
            maglev_table_size: 251,
            flow_events: Default::default(),
            acceleration: Default::default(),
            dsr: false,
        };
        let mut dp =
            Datapath::load_object(&pin_dir, options.map_sizes).expect("load the datapath object");
        dp.configure(&options).expect("write the config map");
        dp.write_endpoint(&a.spec).unwrap();
        dp.write_endpoint(&b.spec).unwrap();
        let mut bed = Bed {
            dp,
            a,
            b,
            uplink,
            options,
            _pins: pins,
        };
        test(&mut bed);
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Which L4 a crafted packet carries.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    TcpSyn,
    TcpAck,
    Udp,
    Echo,
    EchoReply,
    /// An SCTP packet: the common header (ports, verification tag, checksum) and the
    /// payload as one chunk's bytes.
    Sctp,
}

/// A frame from the world's neighbour arriving on the uplink (the destination MAC is not
/// checked by BPF_PROG_TEST_RUN), otherwise as [`packet`] builds it.
pub fn from_world(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, l4: L4) -> Vec<u8> {
    packet(WORLD_MAC, [0x02, 0, 0, 0, 0, 1], src, dst, sport, dport, l4)
}

/// Builds an Ethernet frame from `src` to `dst` (same family) with 16 payload bytes.
pub fn packet(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    l4: L4,
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let payload = [0xabu8; 16];
    let mut out = Vec::new();
    macro_rules! finish {
        ($ip:expr, $v6:expr) => {
            match l4 {
                L4::TcpSyn => $ip
                    .tcp(sport, dport, 1000, 64240)
                    .syn()
                    .write(&mut out, &payload),
                L4::TcpAck => $ip
                    .tcp(sport, dport, 1000, 64240)
                    .ack(5)
                    .write(&mut out, &payload),
                L4::Udp => $ip.udp(sport, dport).write(&mut out, &payload),
                L4::Echo if $v6 => $ip.icmpv6_echo_request(sport, 1).write(&mut out, &payload),
                L4::Echo => $ip.icmpv4_echo_request(sport, 1).write(&mut out, &payload),
                L4::EchoReply if $v6 => $ip.icmpv6_echo_reply(sport, 1).write(&mut out, &payload),
                L4::EchoReply => $ip.icmpv4_echo_reply(sport, 1).write(&mut out, &payload),
                L4::Sctp => {
                    let mut sctp = Vec::new();
                    sctp.extend_from_slice(&sport.to_be_bytes());
                    sctp.extend_from_slice(&dport.to_be_bytes());
                    sctp.extend_from_slice(&[0; 8]);
                    sctp.extend_from_slice(&payload);
                    $ip.write(&mut out, etherparse::IpNumber::SCTP, &sctp)
                }
            }
        };
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => finish!(eth.ipv4(s.octets(), d.octets(), 64), false),
        (IpAddr::V6(s), IpAddr::V6(d)) => finish!(eth.ipv6(s.octets(), d.octets(), 64), true),
        _ => panic!("mixed families"),
    }
    .unwrap();
    out
}

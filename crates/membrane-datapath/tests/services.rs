//! Per-packet Service load balancing through the real programs (BPF_PROG_TEST_RUN):
//! translation to a backend, replies from the frontend, refusal without backends,
//! session affinity, terminating backends, Maglev and incremental updates.

#[allow(dead_code)]
mod bed;

use bed::{Bed, L4, packet, with_bed};
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use membrane_common::lb::service_flags;
use membrane_common::metrics::reason;
use membrane_common::program_names::{FROM_CONTAINER, FROM_NETDEV, XDP_FROM_NETDEV};
use membrane_datapath::{BackendSpec, Frontend, ServiceSpec};
use std::collections::HashSet;
use std::net::IpAddr;

const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;
const TCP: u8 = 6;

fn vip(v6: bool) -> IpAddr {
    if v6 {
        "fd00:96::10".parse().unwrap()
    } else {
        "10.96.0.10".parse().unwrap()
    }
}

/// (source, destination, source port, destination port) of an output packet.
fn tuple(bytes: &[u8]) -> (IpAddr, IpAddr, u16, u16) {
    let h = PacketHeaders::from_ethernet_slice(bytes).unwrap();
    let (s, d) = match h.net.unwrap() {
        NetHeaders::Ipv4(ip, _) => (IpAddr::from(ip.source), IpAddr::from(ip.destination)),
        NetHeaders::Ipv6(ip, _) => (IpAddr::from(ip.source), IpAddr::from(ip.destination)),
        other => panic!("{other:?}"),
    };
    match h.transport.unwrap() {
        TransportHeader::Tcp(t) => (s, d, t.source_port, t.destination_port),
        TransportHeader::Udp(u) => (s, d, u.source_port, u.destination_port),
        other => panic!("{other:?}"),
    }
}

fn counter(bed: &Bed, code: u8) -> u64 {
    bed.dp
        .counters()
        .unwrap()
        .iter()
        .filter(|c| c.reason == code)
        .map(|c| c.packets)
        .sum()
}

/// Programs a TCP frontend `vip:80` with backends (id, address, port).
fn frontend(
    bed: &mut Bed,
    v6: bool,
    backends: &[(u32, IpAddr, u16)],
    terminating: &[u32],
    flags: u16,
) -> Frontend {
    let frontend = Frontend {
        addr: vip(v6),
        port: 80,
        proto: TCP,
        internal: false,
    };
    for (id, addr, port) in backends {
        let spec = BackendSpec {
            addr: *addr,
            port: *port,
            proto: TCP,
            terminating: terminating.contains(id),
            local: true,
        };
        bed.dp.upsert_backend(*id, &spec).unwrap();
    }
    let active: Vec<u32> = backends
        .iter()
        .map(|b| b.0)
        .filter(|id| !terminating.contains(id))
        .collect();
    let names: Vec<Vec<u8>> = backends
        .iter()
        .filter(|b| active.contains(&b.0))
        .map(|b| format!("{}:{}", b.1, b.2).into_bytes())
        .collect();
    let spec = ServiceSpec {
        frontend,
        rev_nat_index: 7,
        flags,
        affinity_timeout_s: 10800,
        active,
        terminating: terminating.to_vec(),
    };
    bed.dp.upsert_service(&spec, &names).unwrap();
    frontend
}

/// Sends a TCP packet from pod A to the frontend and returns (action, output tuple).
fn connect(bed: &Bed, v6: bool, sport: u16, l4: L4) -> (i32, (IpAddr, IpAddr, u16, u16)) {
    let a = &bed.a;
    let src = if v6 {
        IpAddr::V6(a.v6)
    } else {
        IpAddr::V4(a.v4)
    };
    let input = packet(a.spec.pod_mac, a.spec.host_mac, src, vip(v6), sport, 80, l4);
    let out = bed
        .dp
        .test_run(FROM_CONTAINER, &input, a.spec.host_ifindex, 1)
        .unwrap();
    let t = if out.action == TC_ACT_SHOT {
        (src, vip(v6), sport, 80)
    } else {
        tuple(&out.packet)
    };
    (out.action, t)
}

fn pod_b(bed: &Bed, v6: bool) -> IpAddr {
    if v6 { bed.b.v6.into() } else { bed.b.v4.into() }
}

fn both(test: fn(&mut Bed, bool)) {
    for v6 in [false, true] {
        with_bed(move |bed| test(bed, v6));
    }
}

#[test]
fn cluster_ip_from_a_pod_reaches_the_backend_and_replies_come_from_the_frontend() {
    both(|bed, v6| {
        let b = pod_b(bed, v6);
        frontend(bed, v6, &[(1, b, 8080)], &[], 0);
        let (action, (src, dst, sport, dport)) = connect(bed, v6, 33000, L4::TcpSyn);
        assert_eq!(action, TC_ACT_REDIRECT, "delivered to the local backend");
        assert_eq!(
            (dst, dport),
            (b, 8080),
            "destination translated to the backend"
        );
        assert_eq!(sport, 33000);
        // The backend answers from its own address; the client must see the frontend.
        let bs = bed.b.spec.clone();
        let reply = packet(bs.pod_mac, bs.host_mac, b, src, 8080, 33000, L4::TcpAck);
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &reply, bs.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        let (rs, rd, rsp, rdp) = tuple(&out.packet);
        assert_eq!(
            (rs, rsp),
            (vip(v6), 80),
            "the reply's source is the frontend"
        );
        assert_eq!((rd, rdp), (src, 33000));
    });
}

/// The one's-complement sum of `bytes` folded to 16 bits (0xffff over data that
/// includes its own correct checksum).
fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn a_frontend_without_ready_backends_refuses_new_connections_with_port_unreachable() {
    both(|bed, v6| {
        frontend(bed, v6, &[], &[], 0);
        let a = bed.a.spec.clone();
        let src: IpAddr = if v6 { bed.a.v6.into() } else { bed.a.v4.into() };
        let input = packet(a.pod_mac, a.host_mac, src, vip(v6), 33000, 80, L4::TcpSyn);
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT, "sent back, not dropped");
        assert_eq!(
            counter(bed, reason::DROP_NO_BACKEND),
            1,
            "reported as a drop"
        );
        let reply = &out.packet;
        assert_eq!(&reply[..6], &a.pod_mac, "addressed back to the pod");
        assert_eq!(&reply[6..12], &a.host_mac);
        let h = PacketHeaders::from_ethernet_slice(reply).unwrap();
        let (ip_len, quote_len) = if v6 { (40, 48) } else { (20, 28) };
        let icmp = &reply[14 + ip_len..];
        assert_eq!(icmp.len(), 8 + quote_len);
        assert_eq!(
            &icmp[8..],
            &input[14..14 + quote_len],
            "quotes the refused packet's IP header and 8 bytes of TCP"
        );
        match h.net.unwrap() {
            NetHeaders::Ipv4(ip, _) => {
                assert_eq!(IpAddr::from(ip.source), vip(v6), "from the Service address");
                assert_eq!(IpAddr::from(ip.destination), src);
                assert_eq!(ip.protocol.0, 1);
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                assert_eq!((icmp[0], icmp[1]), (3, 3), "destination/port unreachable");
                assert_eq!(ones_complement_sum(icmp), 0xffff, "ICMP checksum");
            }
            NetHeaders::Ipv6(ip, _) => {
                assert_eq!(IpAddr::from(ip.source), vip(v6), "from the Service address");
                assert_eq!(IpAddr::from(ip.destination), src);
                assert_eq!(ip.next_header.0, 58);
                assert_eq!(usize::from(ip.payload_length), icmp.len());
                assert_eq!((icmp[0], icmp[1]), (1, 4), "destination/port unreachable");
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&ip.source);
                pseudo.extend_from_slice(&ip.destination);
                pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 58]);
                pseudo.extend_from_slice(icmp);
                assert_eq!(ones_complement_sum(&pseudo), 0xffff, "ICMPv6 checksum");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            bed.dp.conntrack_entries().unwrap().is_empty(),
            "a refused connection leaves no conntrack entry"
        );
    });
}

fn backends(n: u32, v6: bool) -> Vec<(u32, IpAddr, u16)> {
    (1..=n)
        .map(|i| {
            let addr: IpAddr = if v6 {
                format!("fd00:200:0:7::{i}").parse().unwrap()
            } else {
                format!("10.200.7.{i}").parse().unwrap()
            };
            (i, addr, 8080)
        })
        .collect()
}

#[test]
fn client_ip_affinity_keeps_every_connection_of_a_client_on_one_backend() {
    both(|bed, v6| {
        frontend(bed, v6, &backends(5, v6), &[], service_flags::AFFINITY);
        let chosen: HashSet<IpAddr> = (0..20)
            .map(|i| connect(bed, v6, 34000 + i, L4::TcpSyn).1.1)
            .collect();
        assert_eq!(
            chosen.len(),
            1,
            "one backend for every connection: {chosen:?}"
        );
    });
}

#[test]
fn without_affinity_new_connections_spread_over_the_backends() {
    both(|bed, v6| {
        frontend(bed, v6, &backends(5, v6), &[], 0);
        let chosen: HashSet<IpAddr> = (0..40)
            .map(|i| connect(bed, v6, 34000 + i, L4::TcpSyn).1.1)
            .collect();
        assert!(
            chosen.len() >= 4,
            "40 connections over 5 backends used only {chosen:?}"
        );
    });
}

#[test]
fn a_terminating_backend_keeps_its_connection_and_gets_no_new_ones() {
    both(|bed, v6| {
        let all = backends(2, v6);
        frontend(bed, v6, &all, &[], 0);
        let (_, (_, first, _, _)) = connect(bed, v6, 35000, L4::TcpSyn);
        let draining = all.iter().find(|b| b.1 == first).unwrap().0;
        frontend(bed, v6, &all, &[draining], 0);
        let (_, (_, again, _, _)) = connect(bed, v6, 35000, L4::TcpAck);
        assert_eq!(
            again, first,
            "the established connection stays on its backend"
        );
        for i in 0..20 {
            let (_, (_, dst, _, _)) = connect(bed, v6, 36000 + i, L4::TcpSyn);
            assert_ne!(
                dst, first,
                "a new connection went to the terminating backend"
            );
        }
    });
}

#[test]
fn a_removed_backend_is_replaced_for_the_next_packet_of_its_connections() {
    with_bed(|bed| {
        let all = backends(2, false);
        frontend(bed, false, &all, &[], 0);
        let (_, (_, first, _, _)) = connect(bed, false, 35000, L4::TcpSyn);
        let gone = all.iter().find(|b| b.1 == first).unwrap().0;
        let rest: Vec<_> = all.iter().copied().filter(|b| b.0 != gone).collect();
        frontend(bed, false, &rest, &[], 0);
        bed.dp.remove_backend(gone).unwrap();
        let (action, (_, now, _, _)) = connect(bed, false, 35000, L4::TcpAck);
        assert_ne!(action, TC_ACT_SHOT);
        assert_eq!(now, rest[0].1);
    });
}

#[test]
fn maglev_frontend_uses_only_its_backends_and_spreads_flows() {
    both(|bed, v6| {
        let all = backends(3, v6);
        frontend(bed, v6, &all, &[], service_flags::MAGLEV);
        let chosen: HashSet<IpAddr> = (0..60)
            .map(|i| connect(bed, v6, 37000 + i, L4::TcpSyn).1.1)
            .collect();
        let known: HashSet<IpAddr> = all.iter().map(|b| b.1).collect();
        assert!(chosen.is_subset(&known));
        assert_eq!(chosen.len(), 3, "60 flows reached only {chosen:?}");
    });
}

#[test]
fn updating_one_service_touches_only_its_entries_and_removal_cleans_up() {
    with_bed(|bed| {
        let f = frontend(bed, false, &backends(3, false), &[], 0);
        assert_eq!(bed.dp.service_entries(), 4, "head plus three slots");
        frontend(bed, false, &backends(1, false), &[], 0);
        assert_eq!(
            bed.dp.service_entries(),
            2,
            "shrinking removes the extra slots"
        );
        bed.dp.remove_service(&f).unwrap();
        assert_eq!(bed.dp.service_entries(), 0);
        bed.dp.remove_service(&f).expect("removing twice is fine");
        let (action, (_, dst, _, _)) = connect(bed, false, 38000, L4::TcpSyn);
        assert_ne!(
            dst,
            backends(1, false)[0].1,
            "no translation once removed ({action})"
        );
    });
}

/// Programs NodePort 30080 (all node addresses) with one backend.
fn nodeport(bed: &mut Bed, v6: bool, backend: IpAddr) {
    let any: IpAddr = if v6 {
        "::".parse().unwrap()
    } else {
        "0.0.0.0".parse().unwrap()
    };
    let frontend = Frontend {
        addr: any,
        port: 30080,
        proto: TCP,
        internal: false,
    };
    bed.dp
        .upsert_backend(
            1,
            &BackendSpec {
                addr: backend,
                port: 8080,
                proto: TCP,
                terminating: false,
                local: false,
            },
        )
        .unwrap();
    let spec = ServiceSpec {
        frontend,
        rev_nat_index: 11,
        flags: service_flags::NODEPORT | service_flags::EXTERNAL,
        affinity_timeout_s: 0,
        active: vec![1],
        terminating: vec![],
    };
    bed.dp.upsert_service(&spec, &[]).unwrap();
}

fn outside(v6: bool) -> (IpAddr, IpAddr) {
    if v6 {
        (bed::WORLD_V6.into(), bed::NODE_V6.into())
    } else {
        (bed::WORLD_V4.into(), bed::NODE_V4.into())
    }
}

#[test]
fn node_port_from_outside_reaches_a_local_backend_and_the_reply_leaves_from_the_node_port() {
    both(|bed, v6| {
        let b = pod_b(bed, v6);
        nodeport(bed, v6, b);
        let (world, node) = outside(v6);
        let input = bed::from_world(world, node, 5555, 30080, L4::TcpSyn);
        let out = bed
            .dp
            .test_run(
                membrane_common::program_names::FROM_NETDEV,
                &input,
                bed.uplink,
                1,
            )
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(
            tuple(&out.packet),
            (world, b, 5555, 8080),
            "client kept, backend as destination"
        );
        assert_eq!(counter(bed, reason::SERVICE_EXTERNAL), 1);
        let bs = bed.b.spec.clone();
        let reply = packet(bs.pod_mac, bs.host_mac, b, world, 8080, 5555, L4::TcpAck);
        let back = bed
            .dp
            .test_run(FROM_CONTAINER, &reply, bs.host_ifindex, 1)
            .unwrap();
        assert_eq!(back.action, TC_ACT_REDIRECT);
        assert_eq!(
            tuple(&back.packet),
            (node, world, 30080, 5555),
            "the reply comes from the node port"
        );
        assert_eq!(
            counter(bed, reason::MASQUERADE),
            0,
            "replies are never masqueraded"
        );
    });
}

#[test]
fn node_port_to_a_backend_on_another_node_is_source_natted_and_answered_through_the_node() {
    both(|bed, v6| {
        let remote: IpAddr = if v6 {
            "fd00:200:0:5::7".parse().unwrap()
        } else {
            "10.200.5.7".parse().unwrap()
        };
        bed.route_via_world(remote);
        nodeport(bed, v6, remote);
        let (world, node) = outside(v6);
        let input = bed::from_world(world, node, 5555, 30080, L4::TcpSyn);
        let out = bed
            .dp
            .test_run(
                membrane_common::program_names::FROM_NETDEV,
                &input,
                bed.uplink,
                1,
            )
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        let (src, dst, nat_port, dport) = tuple(&out.packet);
        assert_eq!(
            (src, dst, dport),
            (node, remote, 8080),
            "source-NATed to the node, sent to the backend"
        );
        let reply = bed::from_world(remote, node, 8080, nat_port, L4::TcpAck);
        let back = bed
            .dp
            .test_run(
                membrane_common::program_names::FROM_NETDEV,
                &reply,
                bed.uplink,
                1,
            )
            .unwrap();
        assert_eq!(back.action, TC_ACT_REDIRECT);
        assert_eq!(
            tuple(&back.packet),
            (node, world, 30080, 5555),
            "the client sees its node port answer"
        );
    });
}

#[test]
fn a_cluster_ip_is_not_reachable_from_outside_the_node() {
    both(|bed, v6| {
        let b = pod_b(bed, v6);
        frontend(bed, v6, &[(1, b, 8080)], &[], 0);
        let (world, _) = outside(v6);
        let input = bed::from_world(world, vip(v6), 5555, 80, L4::TcpSyn);
        let out = bed
            .dp
            .test_run(
                membrane_common::program_names::FROM_NETDEV,
                &input,
                bed.uplink,
                1,
            )
            .unwrap();
        assert_eq!(out.action, 0, "handed to the stack untranslated");
        assert_eq!(out.packet, input);
    });
}

#[test]
fn a_client_port_reused_through_another_service_to_the_same_backend_gets_that_services_replies() {
    both(|bed, v6| {
        let b = pod_b(bed, v6);
        let backend = BackendSpec {
            addr: b,
            port: 8080,
            proto: TCP,
            terminating: false,
            local: true,
        };
        bed.dp.upsert_backend(1, &backend).unwrap();
        let second: IpAddr = if v6 { "fd00:96::11" } else { "10.96.0.11" }
            .parse()
            .unwrap();
        for (index, addr) in [(7, vip(v6)), (8, second)] {
            let spec = ServiceSpec {
                frontend: Frontend {
                    addr,
                    port: 80,
                    proto: TCP,
                    internal: false,
                },
                rev_nat_index: index,
                flags: 0,
                affinity_timeout_s: 0,
                active: vec![1],
                terminating: vec![],
            };
            bed.dp
                .upsert_service(&spec, &[format!("{b}:8080").into_bytes()])
                .unwrap();
        }
        let a = bed.a.spec.clone();
        let client: IpAddr = if v6 { bed.a.v6.into() } else { bed.a.v4.into() };
        let bs = bed.b.spec.clone();
        let reply_source = |bed: &Bed| {
            let syn_ack = packet(bs.pod_mac, bs.host_mac, b, client, 8080, 33000, L4::TcpAck);
            let out = bed
                .dp
                .test_run(FROM_CONTAINER, &syn_ack, bs.host_ifindex, 1)
                .unwrap();
            tuple(&out.packet).0
        };
        let open = |bed: &Bed, to: IpAddr| {
            let syn = packet(a.pod_mac, a.host_mac, client, to, 33000, 80, L4::TcpSyn);
            let out = bed
                .dp
                .test_run(FROM_CONTAINER, &syn, a.host_ifindex, 1)
                .unwrap();
            assert_eq!(tuple(&out.packet).1, b, "translated to the shared backend");
        };
        open(bed, vip(v6));
        assert_eq!(reply_source(bed), vip(v6));
        // The same client port, later, through the other Service: the backend-side tuple
        // is the same as the first connection's.
        open(bed, second);
        assert_eq!(
            reply_source(bed),
            second,
            "replies come from the Service this connection was opened through"
        );
    });
}

const XDP_PASS: i32 = 2;
const XDP_TX: i32 = 3;

/// A backend address on another node, reached through the world neighbour.
fn remote_backend(bed: &Bed, v6: bool) -> IpAddr {
    let remote: IpAddr = if v6 {
        "fd00:200:0:5::7".parse().unwrap()
    } else {
        "10.200.5.7".parse().unwrap()
    };
    bed.route_via_world(remote);
    remote
}

/// Asserts that the frame's IPv4 header and TCP checksums are right, and returns its
/// TTL (hop limit).
fn checked_ttl(bytes: &[u8]) -> u8 {
    let h = PacketHeaders::from_ethernet_slice(bytes).unwrap();
    let payload = h.payload.slice();
    let Some(TransportHeader::Tcp(tcp)) = h.transport else {
        panic!("not TCP: {bytes:?}")
    };
    match h.net.unwrap() {
        NetHeaders::Ipv4(ip, _) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 checksum"
            );
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv4(&ip, payload).unwrap(),
                "TCP checksum"
            );
            ip.time_to_live
        }
        NetHeaders::Ipv6(ip, _) => {
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv6(&ip, payload).unwrap(),
                "TCP checksum"
            );
            ip.hop_limit
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn xdp_sends_a_node_port_request_for_a_remote_backend_back_out_and_its_reply_to_the_client() {
    both(|bed, v6| {
        let remote = remote_backend(bed, v6);
        nodeport(bed, v6, remote);
        let (world, node) = outside(v6);
        let input = bed::from_world(world, node, 5555, 30080, L4::TcpSyn);
        let out = bed
            .dp
            .test_run(XDP_FROM_NETDEV, &input, bed.uplink, 1)
            .unwrap();
        assert_eq!(out.action, XDP_TX, "sent straight back out");
        let (src, dst, nat_port, dport) = tuple(&out.packet);
        assert_eq!(
            (src, dst, dport),
            (node, remote, 8080),
            "source-NATed to the node, sent to the backend"
        );
        assert_eq!(&out.packet[..6], &bed::WORLD_MAC, "to the next hop's MAC");
        assert_eq!(checked_ttl(&out.packet), 63, "routed: one hop less");
        assert_eq!(counter(bed, reason::XDP_SERVICE), 1);

        let reply = bed::from_world(remote, node, 8080, nat_port, L4::TcpAck);
        let back = bed
            .dp
            .test_run(XDP_FROM_NETDEV, &reply, bed.uplink, 1)
            .unwrap();
        assert_eq!(back.action, XDP_TX);
        assert_eq!(
            tuple(&back.packet),
            (node, world, 30080, 5555),
            "the client sees its node port answer"
        );
        assert_eq!(&back.packet[..6], &bed::WORLD_MAC);
        assert_eq!(checked_ttl(&back.packet), 63);
        assert_eq!(counter(bed, reason::XDP_REVERSE_NAT), 1);

        // The connection's next packet through tc (XDP detached, say) keeps its backend
        // and its translation.
        let next = bed::from_world(world, node, 5555, 30080, L4::TcpAck);
        let tc = bed.dp.test_run(FROM_NETDEV, &next, bed.uplink, 1).unwrap();
        assert_eq!(tc.action, TC_ACT_REDIRECT);
        assert_eq!(tuple(&tc.packet), (node, remote, nat_port, 8080));
    });
}

#[test]
fn xdp_leaves_what_it_does_not_accelerate_untouched_for_tc() {
    both(|bed, v6| {
        let b = pod_b(bed, v6);
        nodeport(bed, v6, b);
        let (world, node) = outside(v6);
        let to = |dst: IpAddr, dport: u16| bed::from_world(world, dst, 5555, dport, L4::TcpSyn);
        // A node port whose backend is on this node, the node's own port, a ClusterIP.
        for input in [to(node, 30080), to(node, 22), to(vip(v6), 80)] {
            let out = bed
                .dp
                .test_run(XDP_FROM_NETDEV, &input, bed.uplink, 1)
                .unwrap();
            assert_eq!(out.action, XDP_PASS);
            assert_eq!(out.packet, input, "passed untouched");
        }
        assert_eq!(counter(bed, reason::XDP_SERVICE), 0);
        // tc then delivers the node port's connection to the backend XDP chose.
        let tc = bed
            .dp
            .test_run(FROM_NETDEV, &to(node, 30080), bed.uplink, 1)
            .unwrap();
        assert_eq!(tc.action, TC_ACT_REDIRECT);
        assert_eq!(tuple(&tc.packet), (world, b, 5555, 8080));
    });
}

/// Turns direct server return on.
fn with_dsr(bed: &mut Bed) {
    bed.options.dsr = true;
    bed.dp.configure(&bed.options).unwrap();
}

/// The bytes a frame carries between its fixed IP header and TCP: IPv4 options, or
/// IPv6 extension headers (the TCP header's offset comes from the parser's view).
fn inserted_header(bytes: &[u8], v6: bool) -> Vec<u8> {
    if v6 {
        let h = PacketHeaders::from_ethernet_slice(bytes).unwrap();
        let NetHeaders::Ipv6(_, extensions) = h.net.unwrap() else {
            panic!("not IPv6")
        };
        bytes[14 + 40..14 + 40 + extensions.header_len()].to_vec()
    } else {
        let ihl = usize::from(bytes[14] & 0x0f) * 4;
        bytes[14 + 20..14 + ihl].to_vec()
    }
}

/// What the balancing node inserts to name the frontend `addr:port`: the IPv4 option
/// (type 0x9a: port, address) or the IPv6 Destination Options header (next header TCP,
/// option 0x1b: address, port; two Pad1).
fn dsr_header(addr: IpAddr, port: u16) -> Vec<u8> {
    match addr {
        IpAddr::V4(v4) => {
            let mut option = vec![0x9a, 8];
            option.extend_from_slice(&port.to_be_bytes());
            option.extend_from_slice(&v4.octets());
            option
        }
        IpAddr::V6(v6) => {
            let mut header = vec![6, 2, 0x1b, 18];
            header.extend_from_slice(&v6.octets());
            header.extend_from_slice(&port.to_be_bytes());
            header.extend_from_slice(&[0, 0]);
            header
        }
    }
}

/// `frame` with `header` inserted after its fixed IP header, as the balancing node
/// sends a DSR SYN (lengths, IHL or next header, and the IPv4 checksum fixed).
fn with_inserted(frame: &[u8], header: &[u8], v6: bool) -> Vec<u8> {
    let at = if v6 { 14 + 40 } else { 14 + 20 };
    let mut out = frame[..at].to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&frame[at..]);
    let grow = header.len() as u16;
    if v6 {
        let len = u16::from_be_bytes([out[18], out[19]]) + grow;
        out[18..20].copy_from_slice(&len.to_be_bytes());
        out[20] = 60;
    } else {
        out[14] += (grow / 4) as u8;
        let len = u16::from_be_bytes([out[16], out[17]]) + grow;
        out[16..18].copy_from_slice(&len.to_be_bytes());
        out[24..26].copy_from_slice(&[0, 0]);
        let csum = !ones_complement_sum(&out[14..at + header.len()]);
        out[24..26].copy_from_slice(&csum.to_be_bytes());
    }
    out
}

#[test]
fn with_dsr_a_node_port_syn_to_a_remote_backend_keeps_the_client_and_names_the_frontend() {
    both(|bed, v6| {
        with_dsr(bed);
        let remote = remote_backend(bed, v6);
        nodeport(bed, v6, remote);
        let (world, node) = outside(v6);
        let send = |bed: &Bed, l4| {
            let input = bed::from_world(world, node, 5555, 30080, l4);
            bed.dp.test_run(FROM_NETDEV, &input, bed.uplink, 1).unwrap()
        };
        let syn = send(bed, L4::TcpSyn);
        assert_eq!(syn.action, TC_ACT_REDIRECT);
        assert_eq!(
            tuple(&syn.packet),
            (world, remote, 5555, 8080),
            "the client's address reaches the backend"
        );
        assert_eq!(
            inserted_header(&syn.packet, v6),
            dsr_header(node, 30080),
            "the SYN names the frontend"
        );
        assert_eq!(
            checked_ttl(&syn.packet),
            63,
            "checksums right, one hop less"
        );
        assert!(
            bed.dp.nat_entries().unwrap().is_empty(),
            "nothing source-NATed"
        );
        // The connection's later packets go as they are, to the same backend.
        let ack = send(bed, L4::TcpAck);
        assert_eq!(ack.action, TC_ACT_REDIRECT);
        assert_eq!(tuple(&ack.packet), (world, remote, 5555, 8080));
        assert!(inserted_header(&ack.packet, v6).is_empty());
        checked_ttl(&ack.packet);
    });
}

#[test]
fn with_dsr_the_backend_node_answers_the_client_from_the_frontend_and_collects_it() {
    both(|bed, v6| {
        let b = pod_b(bed, v6);
        let (world, node) = outside(v6);
        // The SYN as the balancing node sent it: the client's address, the frontend named.
        let plain = bed::from_world(world, b, 5555, 8080, L4::TcpSyn);
        let syn = with_inserted(&plain, &dsr_header(node, 30080), v6);
        let delivered = bed.dp.test_run(FROM_NETDEV, &syn, bed.uplink, 1).unwrap();
        assert_eq!(
            delivered.action, TC_ACT_REDIRECT,
            "delivered to the backend"
        );
        assert_eq!(tuple(&delivered.packet), (world, b, 5555, 8080));

        let bs = bed.b.spec.clone();
        let reply = packet(bs.pod_mac, bs.host_mac, b, world, 8080, 5555, L4::TcpAck);
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &reply, bs.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT, "straight out to the client");
        assert_eq!(
            tuple(&out.packet),
            (node, world, 30080, 5555),
            "the reply leaves from the frontend the SYN named"
        );
        checked_ttl(&out.packet);

        // Collected with its connection.
        bed.dp.set_ct_timeouts(membrane_datapath::CtTimeouts {
            tcp_established: std::time::Duration::ZERO,
            tcp_short: std::time::Duration::ZERO,
            datagram: std::time::Duration::ZERO,
        });
        std::thread::sleep(std::time::Duration::from_millis(2));
        bed.dp.collect_conntrack().unwrap();
        assert!(bed.dp.conntrack_entries().unwrap().is_empty());
        assert!(
            bed.dp.nat_entries().unwrap().is_empty(),
            "the frontend entry goes with the connection"
        );
    });
}

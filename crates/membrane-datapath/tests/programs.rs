//! The real eBPF programs run on crafted packets through BPF_PROG_TEST_RUN: verdicts,
//! rewritten bytes (addresses, ports, MACs, TTL, checksums) and map side effects.
//! Each test runs in its own network namespace.

#[allow(dead_code)]
mod bed;

use bed::{
    L4, NAT_PORTS, NODE_V4, NODE_V6, WORLD_MAC, WORLD_V4, WORLD_V6, from_world, packet, with_bed,
};
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use membrane_common::ct::ct_flags;
use membrane_common::metrics::reason;
use membrane_common::program_names::{FROM_CONTAINER, FROM_NETDEV, HOST_TO_OVERLAY};
use membrane_datapath::Datapath;
use std::net::IpAddr;

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;

/// What a packet says, decoded from the program's output.
#[derive(Debug)]
struct Seen {
    smac: [u8; 6],
    dmac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    sport: u16,
    dport: u16,
}

fn decode(bytes: &[u8]) -> Seen {
    let h = PacketHeaders::from_ethernet_slice(bytes).expect("output parses");
    let eth = h.link.clone().unwrap().ethernet2().unwrap();
    let (src, dst, ttl) = match h.net.as_ref().unwrap() {
        NetHeaders::Ipv4(ip, _) => (
            IpAddr::from(ip.source),
            IpAddr::from(ip.destination),
            ip.time_to_live,
        ),
        NetHeaders::Ipv6(ip, _) => (
            IpAddr::from(ip.source),
            IpAddr::from(ip.destination),
            ip.hop_limit,
        ),
        other => panic!("unexpected {other:?}"),
    };
    let (sport, dport) = match h.transport.as_ref().unwrap() {
        TransportHeader::Tcp(t) => (t.source_port, t.destination_port),
        TransportHeader::Udp(u) => (u.source_port, u.destination_port),
        TransportHeader::Icmpv4(i) => match i.icmp_type {
            etherparse::Icmpv4Type::EchoRequest(e) | etherparse::Icmpv4Type::EchoReply(e) => {
                (e.id, e.id)
            }
            _ => (0, 0),
        },
        TransportHeader::Icmpv6(i) => match i.icmp_type {
            etherparse::Icmpv6Type::EchoRequest(e) | etherparse::Icmpv6Type::EchoReply(e) => {
                (e.id, e.id)
            }
            _ => (0, 0),
        },
        other => panic!("unexpected transport {other:?}"),
    };
    Seen {
        smac: eth.source,
        dmac: eth.destination,
        src,
        dst,
        ttl,
        sport,
        dport,
    }
}

/// One's-complement sum of 16-bit words.
fn sum(bytes: &[u8], mut acc: u32) -> u32 {
    for chunk in bytes.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        acc += word as u32;
    }
    acc
}

fn folds_to_ffff(mut acc: u32) -> bool {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

/// Asserts that the IPv4 header checksum and the L4 checksum of `bytes` verify, computed
/// from scratch (independently of the kernel's incremental updates).
fn assert_checksums_valid(bytes: &[u8]) {
    let l3 = &bytes[14..];
    match l3[0] >> 4 {
        4 => {
            let ihl = (l3[0] & 0xf) as usize * 4;
            assert!(
                folds_to_ffff(sum(&l3[..ihl], 0)),
                "IPv4 header checksum is wrong"
            );
            let total = u16::from_be_bytes([l3[2], l3[3]]) as usize;
            let seg = &l3[ihl..total];
            let proto = l3[9];
            let acc = if proto == 1 {
                sum(seg, 0)
            } else {
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&l3[12..20]);
                pseudo.extend_from_slice(&[0, proto]);
                pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
                sum(seg, sum(&pseudo, 0))
            };
            assert!(
                folds_to_ffff(acc),
                "IPv4 L4 (proto {proto}) checksum is wrong"
            );
        }
        6 => {
            let plen = u16::from_be_bytes([l3[4], l3[5]]) as usize;
            let seg = &l3[40..40 + plen];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&l3[8..40]);
            pseudo.extend_from_slice(&(plen as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, l3[6]]);
            assert!(
                folds_to_ffff(sum(seg, sum(&pseudo, 0))),
                "IPv6 L4 (next header {}) checksum is wrong",
                l3[6]
            );
        }
        v => panic!("IP version {v}"),
    }
}

fn counter(dp: &Datapath, code: u8) -> u64 {
    dp.counters()
        .unwrap()
        .iter()
        .filter(|c| c.reason == code)
        .map(|c| c.packets)
        .sum()
}

fn both_families(test: fn(&mut bed::Bed, bool)) {
    for v6 in [false, true] {
        with_bed(move |bed| test(bed, v6));
    }
}

fn addrs(pod: &bed::Pod, v6: bool) -> IpAddr {
    if v6 { pod.v6.into() } else { pod.v4.into() }
}

fn world(v6: bool) -> IpAddr {
    if v6 { WORLD_V6.into() } else { WORLD_V4.into() }
}

fn node(v6: bool) -> IpAddr {
    if v6 { NODE_V6.into() } else { NODE_V4.into() }
}

#[test]
fn pod_to_pod_on_one_node_is_redirected_to_the_peer_with_macs_and_ttl_rewritten() {
    both_families(|bed, v6| {
        for l4 in [L4::TcpSyn, L4::Udp, L4::Echo] {
            let (a, b) = (&bed.a.spec, &bed.b.spec);
            let input = packet(
                a.pod_mac,
                a.host_mac,
                addrs(&bed.a, v6),
                addrs(&bed.b, v6),
                33000,
                8080,
                l4,
            );
            let out = bed
                .dp
                .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
                .unwrap();
            assert_eq!(out.action, TC_ACT_REDIRECT, "{l4:?} v6={v6}");
            let seen = decode(&out.packet);
            assert_eq!(
                seen.dmac, b.pod_mac,
                "delivered to the destination pod's MAC"
            );
            assert_eq!(
                seen.smac, b.host_mac,
                "from the destination's host-side veth"
            );
            assert_eq!(seen.ttl, 63, "forwarding decrements the TTL");
            assert_eq!(
                (seen.src, seen.dst),
                (addrs(&bed.a, v6), addrs(&bed.b, v6)),
                "no NAT between pods"
            );
            assert_checksums_valid(&out.packet);
        }
        assert_eq!(counter(&bed.dp, reason::FORWARD_LOCAL), 3);
        let ct = bed.dp.conntrack_entries().unwrap();
        assert_eq!(ct.len(), 3, "one conntrack entry per connection");
        assert!(
            ct.iter()
                .all(|(k, e)| k.saddr[..] == bytes_of(addrs(&bed.a, v6))[..] && e.packets_fwd == 1)
        );
    });
}

fn bytes_of(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => membrane_common::tuple::v4_bytes(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[test]
fn reply_between_pods_finds_the_connection_and_marks_it_established() {
    both_families(|bed, v6| {
        let (a, b) = (bed.a.spec.clone(), bed.b.spec.clone());
        let syn = packet(
            a.pod_mac,
            a.host_mac,
            addrs(&bed.a, v6),
            addrs(&bed.b, v6),
            33000,
            8080,
            L4::TcpSyn,
        );
        assert_eq!(
            bed.dp
                .test_run(FROM_CONTAINER, &syn, a.host_ifindex, 1)
                .unwrap()
                .action,
            TC_ACT_REDIRECT
        );
        let reply = packet(
            b.pod_mac,
            b.host_mac,
            addrs(&bed.b, v6),
            addrs(&bed.a, v6),
            8080,
            33000,
            L4::TcpAck,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &reply, b.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(decode(&out.packet).dmac, a.pod_mac);
        let ct = bed.dp.conntrack_entries().unwrap();
        assert_eq!(ct.len(), 1, "the reply reuses the connection's entry");
        let (_, entry) = ct[0];
        assert_eq!((entry.packets_fwd, entry.packets_rev), (1, 1));
        assert_ne!(entry.flags & ct_flags::ESTABLISHED, 0);
        assert_ne!(entry.flags & ct_flags::SYN_FWD, 0);
    });
}

#[test]
fn collection_removes_connections_idle_past_their_state_timeout_and_keeps_the_rest() {
    both_families(|bed, v6| {
        let (a, b) = (bed.a.spec.clone(), bed.b.spec.clone());
        let send =
            |bed: &bed::Bed, from: &membrane_datapath::EndpointSpec, src, dst, sport, dport, l4| {
                let p = packet(from.pod_mac, from.host_mac, src, dst, sport, dport, l4);
                let out = bed
                    .dp
                    .test_run(FROM_CONTAINER, &p, from.host_ifindex, 1)
                    .unwrap();
                assert_eq!(out.action, TC_ACT_REDIRECT);
            };
        let (pa, pb) = (addrs(&bed.a, v6), addrs(&bed.b, v6));
        // An established TCP connection and a UDP flow.
        send(bed, &a, pa, pb, 33000, 8080, L4::TcpSyn);
        send(bed, &b, pb, pa, 8080, 33000, L4::TcpAck);
        send(bed, &a, pa, pb, 33001, 53, L4::Udp);
        assert_eq!(bed.dp.conntrack_entries().unwrap().len(), 2);
        assert_eq!(
            bed.dp.collect_conntrack().unwrap().expired,
            0,
            "nothing idles past the default timeouts"
        );
        bed.dp.set_ct_timeouts(membrane_datapath::CtTimeouts {
            datagram: std::time::Duration::from_millis(20),
            ..Default::default()
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let stats = bed.dp.collect_conntrack().unwrap();
        assert_eq!((stats.entries, stats.expired), (2, 1));
        let left = bed.dp.conntrack_entries().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0.proto, 6, "the established TCP connection stays");
    });
}

#[test]
fn spoofed_source_address_is_dropped_and_counted() {
    both_families(|bed, v6| {
        let a = bed.a.spec.clone();
        // Pod A claims pod B's address.
        let input = packet(
            a.pod_mac,
            a.host_mac,
            addrs(&bed.b, v6),
            world(v6),
            33000,
            80,
            L4::TcpSyn,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_SHOT);
        assert_eq!(counter(&bed.dp, reason::DROP_INVALID_SOURCE), 1);
        assert!(
            bed.dp.conntrack_entries().unwrap().is_empty(),
            "nothing tracked for a dropped packet"
        );
    });
}

#[test]
fn traffic_to_the_world_is_masqueraded_and_replies_are_translated_back() {
    both_families(|bed, v6| {
        for (l4, reply_l4, sport, dport) in [
            (L4::TcpSyn, L4::TcpAck, 40100u16, 80u16),
            (L4::Udp, L4::Udp, 5353, 53),
            (L4::Echo, L4::EchoReply, 777, 777),
        ] {
            let a = bed.a.spec.clone();
            let input = packet(
                a.pod_mac,
                a.host_mac,
                addrs(&bed.a, v6),
                world(v6),
                sport,
                dport,
                l4,
            );
            let out = bed
                .dp
                .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
                .unwrap();
            assert_eq!(out.action, TC_ACT_REDIRECT, "{l4:?} v6={v6}");
            let seen = decode(&out.packet);
            assert_eq!(seen.src, node(v6), "source rewritten to the node address");
            assert_eq!(seen.dst, world(v6));
            assert_eq!(seen.dmac, WORLD_MAC, "MAC from the FIB's neighbour");
            assert!(
                NAT_PORTS.contains(&seen.sport),
                "port {} in the NAT range",
                seen.sport
            );
            if NAT_PORTS.contains(&sport) {
                assert_eq!(
                    seen.sport, sport,
                    "a source port inside the range is kept when free"
                );
            }
            assert_checksums_valid(&out.packet);

            // The reply arrives on the uplink, addressed to the node.
            let reply = from_world(
                world(v6),
                node(v6),
                if matches!(l4, L4::Echo) {
                    seen.sport
                } else {
                    dport
                },
                seen.sport,
                reply_l4,
            );
            let back = bed.dp.test_run(FROM_NETDEV, &reply, bed.uplink, 1).unwrap();
            assert_eq!(back.action, TC_ACT_REDIRECT, "reply {reply_l4:?} v6={v6}");
            let seen = decode(&back.packet);
            assert_eq!(
                seen.dst,
                addrs(&bed.a, v6),
                "destination translated back to the pod"
            );
            assert_eq!(seen.dport, sport, "port (or echo id) translated back");
            assert_eq!(seen.dmac, a.pod_mac);
            assert_checksums_valid(&back.packet);
        }
        assert_eq!(counter(&bed.dp, reason::MASQUERADE), 3);
        assert_eq!(counter(&bed.dp, reason::REVERSE_NAT), 3);
        let (ct, nat) = bed.dp.table_sizes().unwrap();
        assert_eq!(
            (ct, nat),
            (3, 6),
            "one conntrack and two NAT entries per connection"
        );
        assert!(
            bed.dp
                .conntrack_entries()
                .unwrap()
                .iter()
                .all(|(_, e)| e.flags & ct_flags::SNAT != 0 && e.packets_rev == 1)
        );
    });
}

#[test]
fn source_port_outside_the_range_is_replaced_and_restored() {
    both_families(|bed, v6| {
        let a = bed.a.spec.clone();
        let input = packet(
            a.pod_mac,
            a.host_mac,
            addrs(&bed.a, v6),
            world(v6),
            12345,
            443,
            L4::TcpSyn,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        let seen = decode(&out.packet);
        assert_ne!(seen.sport, 12345);
        assert!(NAT_PORTS.contains(&seen.sport));
        assert_checksums_valid(&out.packet);
        // A second packet of the same connection gets the same translation.
        let again = decode(
            &bed.dp
                .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
                .unwrap()
                .packet,
        );
        assert_eq!(again.sport, seen.sport);
    });
}

#[test]
fn masquerade_without_a_free_port_drops_with_its_reason() {
    with_bed(|bed| {
        let a = bed.a.spec.clone();
        let b = bed.b.spec.clone();
        // Both pods use the same source port to the same destination: only one of
        // them can keep it, and the range is 1000 ports wide, so the second one gets
        // another port. Exhaust the range by hand instead: fill every reply slot.
        for port in NAT_PORTS {
            let input = packet(
                b.pod_mac,
                b.host_mac,
                bed.b.v4.into(),
                WORLD_V4.into(),
                port,
                80,
                L4::Udp,
            );
            assert_eq!(
                bed.dp
                    .test_run(FROM_CONTAINER, &input, b.host_ifindex, 1)
                    .unwrap()
                    .action,
                TC_ACT_REDIRECT
            );
        }
        let input = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            WORLD_V4.into(),
            40500,
            80,
            L4::Udp,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_SHOT);
        assert_eq!(counter(&bed.dp, reason::DROP_NAT_NO_PORT), 1);
    });
}

#[test]
fn traffic_for_the_node_itself_goes_to_the_stack_untranslated() {
    both_families(|bed, v6| {
        let a = bed.a.spec.clone();
        let input = packet(
            a.pod_mac,
            a.host_mac,
            addrs(&bed.a, v6),
            node(v6),
            33000,
            22,
            L4::TcpSyn,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_OK);
        assert_eq!(out.packet, input, "the stack gets the packet unchanged");
        assert_eq!(counter(&bed.dp, reason::TO_STACK), 1);
    });
}

#[test]
fn uplink_traffic_without_a_translation_goes_to_the_stack() {
    both_families(|bed, v6| {
        let input = from_world(world(v6), node(v6), 5555, 22, L4::TcpSyn);
        let out = bed.dp.test_run(FROM_NETDEV, &input, bed.uplink, 1).unwrap();
        assert_eq!(out.action, TC_ACT_OK);
        assert_eq!(out.packet, input);
        assert!(bed.dp.conntrack_entries().unwrap().is_empty());
    });
}

#[test]
fn truncated_packet_from_a_pod_is_dropped_as_invalid() {
    with_bed(|bed| {
        let a = bed.a.spec.clone();
        let full = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            bed.b.v4.into(),
            1,
            2,
            L4::TcpSyn,
        );
        // Ethernet + IPv4 header, TCP header cut after 8 bytes (flags missing).
        let cut = &full[..14 + 20 + 8];
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, cut, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_SHOT);
        assert_eq!(counter(&bed.dp, reason::DROP_INVALID_PACKET), 1);
    });
}

#[test]
fn deleting_an_endpoint_removes_its_entries_and_connections() {
    with_bed(|bed| {
        let a = bed.a.spec.clone();
        let input = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            WORLD_V4.into(),
            40200,
            80,
            L4::TcpSyn,
        );
        assert_eq!(
            bed.dp
                .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
                .unwrap()
                .action,
            TC_ACT_REDIRECT
        );
        assert_eq!(bed.dp.table_sizes().unwrap(), (1, 2));
        bed.dp.detach_endpoint(&a).unwrap();
        assert_eq!(
            bed.dp.table_sizes().unwrap(),
            (0, 0),
            "connection and both NAT entries gone"
        );
        let left: Vec<_> = bed
            .dp
            .endpoint_entries()
            .unwrap()
            .into_iter()
            .map(|(_, i)| i.endpoint_id)
            .collect();
        assert_eq!(
            left,
            vec![bed.b.spec.id, bed.b.spec.id],
            "only pod B's two addresses remain"
        );
        bed.dp.detach_endpoint(&a).expect("detaching twice is fine");
    });
}

/// A pod of another node (identity 4242, on node 10.99.0.77) written into the ipcache.
fn remote_pod_in_ipcache(bed: &mut bed::Bed, v6: bool) -> IpAddr {
    let remote_pod: IpAddr = if v6 {
        "fd00:200:0:5::7".parse().unwrap()
    } else {
        "10.200.5.7".parse().unwrap()
    };
    let remote_node: IpAddr = "10.99.0.77".parse().unwrap();
    bed.dp
        .upsert_ipcache(ipnet::IpNet::from(remote_pod), 4242, Some(remote_node))
        .unwrap();
    remote_pod
}

#[test]
fn tunnel_mode_sends_traffic_for_a_remote_pod_to_the_overlay() {
    both_families(|bed, v6| {
        let a = bed.a.spec.clone();
        bed.options.routing = membrane_datapath::Routing::Tunnel {
            device: bed::TUNNEL_DEVICE.into(),
        };
        bed.dp.configure(&bed.options).unwrap();
        let remote_pod = remote_pod_in_ipcache(bed, v6);
        let input = packet(
            a.pod_mac,
            a.host_mac,
            addrs(&bed.a, v6),
            remote_pod,
            33000,
            8080,
            L4::TcpSyn,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(counter(&bed.dp, reason::TO_OVERLAY), 1);
        let seen = decode(&out.packet);
        assert_eq!(
            (seen.src, seen.dst),
            (addrs(&bed.a, v6), remote_pod),
            "the inner packet is not translated"
        );
        assert_eq!(seen.ttl, 63);
        assert_checksums_valid(&out.packet);
        let ct = bed.dp.conntrack_entries().unwrap();
        assert_eq!(ct.len(), 1);
        assert_eq!(
            ct[0].1.src_identity, a.identity,
            "the connection records the sender's identity"
        );
    });
}

#[test]
fn the_nodes_own_traffic_routed_to_the_tunnel_gets_the_remote_node_and_its_identity() {
    both_families(|bed, v6| {
        let remote_pod = remote_pod_in_ipcache(bed, v6);
        let ifindex = bed.a.spec.host_ifindex;
        let to = |dst: IpAddr| {
            let input = packet(WORLD_MAC, WORLD_MAC, node(v6), dst, 33000, 8080, L4::TcpSyn);
            bed.dp
                .test_run(HOST_TO_OVERLAY, &input, ifindex, 1)
                .unwrap()
        };
        let out = to(remote_pod);
        assert_eq!(out.action, TC_ACT_OK, "on to the tunnel device's transmit");
        assert_eq!(counter(&bed.dp, reason::TO_OVERLAY), 1);
        assert_eq!(
            decode(&out.packet).dst,
            remote_pod,
            "the packet is not rewritten"
        );
        let unknown = if v6 { "fd00:200:0:9::9" } else { "10.200.9.9" };
        assert_eq!(to(unknown.parse().unwrap()).action, TC_ACT_SHOT);
        assert_eq!(
            counter(&bed.dp, reason::DROP_NO_ROUTE),
            1,
            "an address no node hosts cannot be tunnelled"
        );
    });
}

#[test]
fn native_mode_routes_traffic_for_a_remote_pod_through_the_fib_unmasqueraded() {
    both_families(|bed, v6| {
        let a = bed.a.spec.clone();
        // The remote node's pod CIDR is inside the cluster CIDR and routed via the world
        // neighbour, as the agent's routes would do.
        let remote_pod: IpAddr = if v6 {
            "fd00:200:0:5::7".parse().unwrap()
        } else {
            "10.200.5.7".parse().unwrap()
        };
        bed.dp
            .upsert_ipcache(ipnet::IpNet::from(remote_pod), 4242, Some(world(false)))
            .unwrap();
        bed.route_via_world(remote_pod);
        let input = packet(
            a.pod_mac,
            a.host_mac,
            addrs(&bed.a, v6),
            remote_pod,
            33000,
            8080,
            L4::TcpSyn,
        );
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
            .unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(counter(&bed.dp, reason::FORWARD_FIB), 1);
        assert_eq!(counter(&bed.dp, reason::MASQUERADE), 0);
        let seen = decode(&out.packet);
        assert_eq!((seen.src, seen.dst), (addrs(&bed.a, v6), remote_pod));
        assert_eq!(seen.dmac, WORLD_MAC);
    });
}

#[test]
fn packet_from_the_network_for_a_local_pod_is_delivered_with_the_senders_identity() {
    both_families(|bed, v6| {
        let a = bed.a.spec.clone();
        let remote_pod: IpAddr = if v6 {
            "fd00:200:0:5::7".parse().unwrap()
        } else {
            "10.200.5.7".parse().unwrap()
        };
        bed.dp
            .upsert_ipcache(
                ipnet::IpNet::from(remote_pod),
                4242,
                Some("10.99.0.77".parse().unwrap()),
            )
            .unwrap();
        let input = from_world(remote_pod, addrs(&bed.a, v6), 33000, 8080, L4::TcpSyn);
        let out = bed.dp.test_run(FROM_NETDEV, &input, bed.uplink, 1).unwrap();
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(counter(&bed.dp, reason::FROM_NETWORK), 1);
        assert_eq!(decode(&out.packet).dmac, a.pod_mac);
        let ct = bed.dp.conntrack_entries().unwrap();
        assert_eq!(
            ct[0].1.src_identity, 4242,
            "identity of the source from the ipcache"
        );
    });
}

#[test]
fn ipcache_entries_round_trip_and_removal_is_idempotent() {
    with_bed(|bed| {
        let node: IpAddr = "10.99.0.77".parse().unwrap();
        bed.dp
            .upsert_ipcache("10.200.5.0/24".parse().unwrap(), 6, Some(node))
            .unwrap();
        bed.dp
            .upsert_ipcache("10.200.5.7/32".parse().unwrap(), 4242, Some(node))
            .unwrap();
        bed.dp
            .upsert_ipcache("fd00:200:0:5::/64".parse().unwrap(), 6, None)
            .unwrap();
        let mut rows = bed.dp.ipcache_entries().unwrap();
        rows.sort_by_key(|r| r.0.to_string());
        assert_eq!(rows.len(), 3);
        assert!(rows.contains(&("10.200.5.7/32".parse().unwrap(), 4242, Some(node))));
        assert!(rows.contains(&("fd00:200:0:5::/64".parse().unwrap(), 6, None)));
        bed.dp
            .remove_ipcache("10.200.5.7/32".parse().unwrap())
            .unwrap();
        bed.dp
            .remove_ipcache("10.200.5.7/32".parse().unwrap())
            .expect("removing twice is fine");
        assert_eq!(bed.dp.ipcache_entries().unwrap().len(), 2);
    });
}

#[test]
fn every_program_verifies_with_headroom_below_the_kernel_limit() {
    with_bed(|bed| {
        let counts = bed.dp.verified_instructions();
        assert_eq!(
            counts.len(),
            13,
            "4 tc programs, the uplink's XDP program and 8 socket hooks: {counts:?}"
        );
        for (name, count) in counts {
            println!("{name}: {count} instructions verified");
            assert!(
                count < 500_000,
                "{name} needs {count} verified instructions: half the kernel's limit is our budget"
            );
        }
    });
}

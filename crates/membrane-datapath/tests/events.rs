//! Flow events from the real programs (BPF_PROG_TEST_RUN) read back through the ring
//! buffer: drops always, a connection's first packet, not its later packets.

#[allow(dead_code)]
mod bed;

use bed::{L4, packet, with_bed};
use membrane_common::FlowEvent;
use membrane_common::events::{ct_state, event_kind, observation_point};
use membrane_common::metrics::reason;
use membrane_common::program_names::FROM_CONTAINER;
use std::time::Duration;

/// A runtime and the bed's event reader (which registers with that runtime).
fn reader(bed: &mut bed::Bed) -> (tokio::runtime::Runtime, membrane_datapath::EventReader) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = rt.block_on(async { bed.dp.take_event_reader() }).unwrap();
    (rt, reader)
}

/// Reads whatever the ring holds within a short wait.
fn drain(
    reader: &mut membrane_datapath::EventReader,
    rt: &tokio::runtime::Runtime,
) -> Vec<FlowEvent> {
    let mut out = Vec::new();
    rt.block_on(async {
        while tokio::time::timeout(Duration::from_millis(200), reader.next_batch(&mut out))
            .await
            .is_ok()
        {}
    });
    out
}

#[test]
fn forwarded_connections_report_their_first_packet_and_drops_report_every_packet() {
    with_bed(|bed| {
        let (rt, mut reader) = reader(bed);
        let (a, b) = (bed.a.spec.clone(), bed.b.spec.clone());
        let syn = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            bed.b.v4.into(),
            33000,
            8080,
            L4::TcpSyn,
        );
        let ack = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            bed.b.v4.into(),
            33000,
            8080,
            L4::TcpAck,
        );
        let spoofed = packet(
            a.pod_mac,
            a.host_mac,
            bed.b.v4.into(),
            bed.a.v4.into(),
            1,
            2,
            L4::Udp,
        );
        bed.dp
            .test_run(FROM_CONTAINER, &syn, a.host_ifindex, 1)
            .unwrap();
        for _ in 0..5 {
            bed.dp
                .test_run(FROM_CONTAINER, &ack, a.host_ifindex, 1)
                .unwrap();
        }
        bed.dp
            .test_run(FROM_CONTAINER, &spoofed, a.host_ifindex, 1)
            .unwrap();
        bed.dp
            .test_run(FROM_CONTAINER, &spoofed, a.host_ifindex, 1)
            .unwrap();
        let events = drain(&mut reader, &rt);
        let traces: Vec<_> = events
            .iter()
            .filter(|e| e.kind == event_kind::TRACE)
            .collect();
        let drops: Vec<_> = events
            .iter()
            .filter(|e| e.kind == event_kind::DROP)
            .collect();
        assert_eq!(
            traces.len(),
            1,
            "one trace for the connection's first packet, none for its 5 ACKs: {events:?}"
        );
        let t = traces[0];
        assert_eq!(t.ct_state, ct_state::NEW);
        assert_eq!(t.reason, reason::FORWARD_LOCAL);
        assert_eq!(t.observation_point, observation_point::TO_ENDPOINT);
        assert_eq!((t.src_endpoint, t.dst_endpoint), (a.id, b.id));
        assert_eq!((t.src_identity, t.dst_identity), (a.identity, b.identity));
        assert_eq!(u16::from_be(t.tuple.dport), 8080);
        assert_eq!(drops.len(), 2, "every dropped packet is reported");
        assert!(
            drops
                .iter()
                .all(|d| d.reason == reason::DROP_INVALID_SOURCE)
        );
        assert_eq!(bed.dp.lost_events().unwrap(), 0);
    });
}

#[test]
fn a_new_connection_off_the_node_reports_the_peers_identity_and_icmp_its_type_and_code() {
    with_bed(|bed| {
        let (rt, mut reader) = reader(bed);
        let a = bed.a.spec.clone();
        let world: std::net::IpAddr = bed::WORLD_V4.into();
        bed.route_via_world(world);
        let ping = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            world,
            7,
            7,
            L4::Echo,
        );
        bed.dp
            .test_run(FROM_CONTAINER, &ping, a.host_ifindex, 1)
            .unwrap();
        let events = drain(&mut reader, &rt);
        let trace = events
            .iter()
            .find(|e| e.kind == event_kind::TRACE)
            .unwrap_or_else(|| panic!("no trace event: {events:?}"));
        assert_eq!(trace.src_identity, a.identity);
        assert_eq!(
            trace.dst_identity,
            membrane_common::identity::WORLD,
            "an address the ipcache does not know is the world"
        );
        assert_eq!((trace.icmp_type, trace.icmp_code), (8, 0), "echo request");
    });
}

#[test]
fn flow_event_settings_report_every_packet_or_drops_only() {
    with_bed(|bed| {
        let (rt, mut reader) = reader(bed);
        let a = bed.a.spec.clone();
        let (pa, pb) = (bed.a.v4.into(), bed.b.v4.into());
        let mut exchange = |bed: &mut bed::Bed, setting, sport| {
            bed.options.flow_events = setting;
            bed.dp.configure(&bed.options).unwrap();
            for l4 in [L4::TcpSyn, L4::TcpAck, L4::TcpAck, L4::TcpAck] {
                let p = packet(a.pod_mac, a.host_mac, pa, pb, sport, 8080, l4);
                bed.dp
                    .test_run(FROM_CONTAINER, &p, a.host_ifindex, 1)
                    .unwrap();
            }
            let spoofed = packet(a.pod_mac, a.host_mac, pb, pa, 1, 2, L4::Udp);
            bed.dp
                .test_run(FROM_CONTAINER, &spoofed, a.host_ifindex, 1)
                .unwrap();
            let events = drain(&mut reader, &rt);
            let count = |kind| events.iter().filter(|e| e.kind == kind).count();
            (count(event_kind::TRACE), count(event_kind::DROP))
        };
        use membrane_datapath::FlowEvents;
        assert_eq!(
            exchange(bed, FlowEvents::All, 33000),
            (4, 1),
            "every packet"
        );
        assert_eq!(
            exchange(bed, FlowEvents::Connections, 33001),
            (1, 1),
            "the first packet"
        );
        assert_eq!(
            exchange(bed, FlowEvents::DropsOnly, 33002),
            (0, 1),
            "drops only"
        );
    });
}

#[test]
fn a_refusal_for_want_of_backends_names_its_service() {
    with_bed(|bed| {
        let (rt, mut reader) = reader(bed);
        let frontend = membrane_datapath::Frontend {
            addr: "10.96.0.10".parse().unwrap(),
            port: 80,
            proto: 6,
            internal: false,
        };
        let spec = membrane_datapath::ServiceSpec {
            frontend,
            rev_nat_index: 9,
            flags: 0,
            affinity_timeout_s: 0,
            active: vec![],
            terminating: vec![],
        };
        bed.dp.upsert_service(&spec, &[]).unwrap();
        let a = bed.a.spec.clone();
        let syn = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            frontend.addr,
            33000,
            80,
            L4::TcpSyn,
        );
        bed.dp
            .test_run(FROM_CONTAINER, &syn, a.host_ifindex, 1)
            .unwrap();
        let events = drain(&mut reader, &rt);
        let drop = events
            .iter()
            .find(|e| e.kind == event_kind::DROP)
            .unwrap_or_else(|| panic!("no drop event: {events:?}"));
        assert_eq!(drop.reason, reason::DROP_NO_BACKEND);
        assert_eq!(
            drop.rev_nat_index, 9,
            "the refused Service's reverse-NAT index"
        );
    });
}

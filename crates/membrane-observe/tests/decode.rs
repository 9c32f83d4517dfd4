//! Decoding of each datapath event kind into an enriched flow.

mod support;

use membrane_common::events::{ct_state, event_kind, observation_point, policy_verdict};
use membrane_common::metrics::{direction, reason};
use membrane_common::policy;
use membrane_common::tuple::proto;
use membrane_common::{Family, identity};
use membrane_observe::api::flow as pb;
use membrane_observe::flow::{
    EventKind, L4, ObservationPoint, ServiceName, TcpFlags, TrafficDirection, Verdict, monitor_type,
};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use support::*;

#[test]
fn trace_event_is_a_forwarded_flow_enriched_with_both_pods() {
    let flow = decoder().decode(&tcp(1500, 1, 2, 40000, 80, 0x12)).unwrap();
    assert_eq!(flow.verdict, Verdict::Forwarded);
    assert_eq!(flow.kind, EventKind::Trace(ObservationPoint::FromEndpoint));
    assert_eq!(flow.event_type(), (monitor_type::TRACE, 5));
    assert_eq!(flow.time, epoch() + Duration::from_millis(1500));
    assert_eq!(flow.source_ip.to_string(), "10.0.0.1");
    assert_eq!(flow.destination_ip.to_string(), "10.0.0.2");
    assert_eq!(
        flow.l4,
        Some(L4::Tcp {
            source_port: 40000,
            destination_port: 80,
            flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK)
        })
    );
    assert_eq!(flow.source.pod_name, "client-abc");
    assert_eq!(flow.source.namespace, "shop");
    assert_eq!(flow.source.id, 11);
    assert_eq!(flow.source.identity, 1001);
    assert_eq!(
        flow.source.labels,
        ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=shop"]
    );
    assert_eq!(flow.source.workloads[0].name, "client");
    assert_eq!(flow.destination.pod_name, "web-1");
    assert_eq!(flow.direction, Some(TrafficDirection::Egress));
    assert_eq!(flow.is_reply, Some(false));
    assert_eq!(&*flow.node_name, "node1");
    assert_eq!(flow.drop_reason, None);
}

#[test]
fn reply_packets_are_marked_as_replies() {
    let mut event = tcp(0, 2, 1, 80, 40000, 0x10);
    event.ct_state = ct_state::REPLY;
    event.direction = direction::INGRESS;
    event.observation_point = observation_point::TO_ENDPOINT;
    let flow = decoder().decode(&event).unwrap();
    assert_eq!(flow.is_reply, Some(true));
    assert_eq!(flow.direction, Some(TrafficDirection::Ingress));
    assert_eq!(flow.observation_point().hubble(), 101);
    assert_eq!(flow.event_type(), (monitor_type::TRACE, 0));
}

#[test]
fn drop_event_carries_our_reason_and_the_matching_hubble_drop_reason() {
    let cases = [
        (reason::DROP_INVALID_SOURCE, pb::DropReason::InvalidSourceIp),
        (
            reason::DROP_NO_BACKEND,
            pb::DropReason::ServiceBackendNotFound,
        ),
        (reason::DROP_TTL_EXCEEDED, pb::DropReason::TtlExceeded),
        (reason::DROP_NO_ROUTE, pb::DropReason::FibLookupFailed),
        (reason::DROP_POLICY, pb::DropReason::PolicyDenied),
        (reason::DROP_POLICY_DENY, pb::DropReason::PolicyDeny),
        (reason::DROP_NO_CONFIG, pb::DropReason::Unknown),
    ];
    for (code, hubble) in cases {
        let flow = decoder().decode(&drop(0, 1, 2, code)).unwrap();
        assert_eq!(flow.verdict, Verdict::Dropped);
        assert_eq!(flow.kind, EventKind::Drop);
        let reason = flow.drop_reason.unwrap();
        assert_eq!(reason.hubble(), hubble as i32, "{code}");
        assert_eq!(reason.description(), reason::name(code));
        assert_eq!(flow.event_type(), (monitor_type::DROP, hubble as i32));
        let wire = pb::Flow::from(&flow);
        assert_eq!(wire.drop_reason_desc, hubble as i32);
        assert_eq!(wire.summary, reason::name(code));
    }
}

#[test]
fn policy_verdict_is_forwarded_or_dropped_by_its_reason() {
    let mut allowed = tcp(0, 1, 2, 40000, 80, 0x02);
    allowed.kind = event_kind::POLICY_VERDICT;
    allowed.policy_verdict = policy_verdict::ALLOWED;
    let flow = decoder().decode(&allowed).unwrap();
    assert_eq!(
        (flow.kind, flow.verdict),
        (EventKind::PolicyVerdict, Verdict::Forwarded)
    );
    assert_eq!(flow.event_type().0, monitor_type::POLICY_VERDICT);
    let mut denied = allowed;
    denied.reason = reason::DROP_POLICY;
    denied.policy_verdict = policy_verdict::DENIED;
    denied.policy_match = policy::match_kind::NONE;
    let flow = decoder().decode(&denied).unwrap();
    assert_eq!(flow.verdict, Verdict::Dropped);
    assert_eq!(
        flow.drop_reason.unwrap().hubble(),
        pb::DropReason::PolicyDenied as i32
    );
    let mut audited = allowed;
    audited.policy_verdict = policy_verdict::AUDIT;
    audited.policy_match = policy::match_kind::L3_L4;
    let flow = decoder().decode(&audited).unwrap();
    assert_eq!(flow.verdict, Verdict::Audit);
    assert_eq!(pb::Flow::from(&flow).policy_match_type, 2);
    // What the datapath sends in audit mode: the forwarded packet's trace, carrying the
    // would-be drop's verdict.
    let mut let_through = tcp(0, 1, 2, 40000, 80, 0x02);
    let_through.policy_verdict = policy_verdict::AUDIT;
    assert_eq!(
        decoder().decode(&let_through).unwrap().verdict,
        Verdict::Audit
    );
    let forwarded = tcp(0, 1, 2, 40000, 80, 0x02);
    assert_eq!(
        decoder().decode(&forwarded).unwrap().verdict,
        Verdict::Forwarded
    );
}

#[test]
fn socket_translation_names_the_service_and_the_backend() {
    let mut event = tcp(0, 1, 9, 40000, 80, 0);
    event.kind = event_kind::SOCK_TRANSLATE;
    event.reason = reason::SOCK_LB;
    event.rev_nat_index = 5;
    event.xlated_daddr = v4(2);
    event.xlated_dport = 8080u16.to_be();
    let flow = decoder().decode(&event).unwrap();
    assert_eq!(flow.verdict, Verdict::Translated);
    assert_eq!(flow.event_type().0, monitor_type::TRACE_SOCK);
    assert_eq!(
        flow.destination_service,
        Some(ServiceName {
            namespace: "shop".to_string(),
            name: "web".to_string()
        })
    );
    assert_eq!(
        flow.translated_to,
        Some(("10.0.0.2".parse().unwrap(), 8080))
    );
    let wire = pb::Flow::from(&flow);
    assert_eq!(wire.r#type, pb::FlowType::Sock as i32);
    assert_eq!(wire.destination_service.unwrap().name, "web");
}

#[test]
fn unknown_addresses_get_reserved_labels_from_their_identity() {
    let mut event = tcp(0, 1, 200, 40000, 443, 0x02);
    event.dst_identity = identity::WORLD;
    let flow = decoder().decode(&event).unwrap();
    assert_eq!(flow.destination.pod_name, "");
    assert_eq!(flow.destination.labels, ["reserved:world"]);
    assert_eq!(flow.destination.identity, identity::WORLD);
}

#[test]
fn ipv6_udp_and_icmp_decode_with_their_l4() {
    let mut event = tcp(0, 1, 2, 5353, 53, 0);
    event.tuple.family = Family::V6;
    event.tuple.saddr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).octets();
    event.tuple.daddr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).octets();
    event.tuple.proto = proto::UDP;
    let flow = decoder().decode(&event).unwrap();
    assert!(flow.is_ipv6());
    assert_eq!(
        flow.source_ip,
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
    );
    assert_eq!(
        flow.l4,
        Some(L4::Udp {
            source_port: 5353,
            destination_port: 53
        })
    );
    event.tuple.proto = proto::ICMPV6;
    event.ct_state = ct_state::REPLY;
    event.icmp_type = 129;
    let flow = decoder().decode(&event).unwrap();
    assert_eq!(flow.l4, Some(L4::Icmpv6 { kind: 129, code: 0 }));
    let mut unreachable = tcp(0, 1, 2, 0, 0, 0);
    unreachable.tuple.proto = proto::ICMP;
    (unreachable.icmp_type, unreachable.icmp_code) = (3, 3);
    assert_eq!(
        decoder().decode(&unreachable).unwrap().l4,
        Some(L4::Icmpv4 { kind: 3, code: 3 }),
        "the type and code the datapath read, not a guess"
    );
}

#[test]
fn events_of_unknown_kind_or_family_are_refused() {
    let mut event = tcp(0, 1, 2, 1, 2, 0);
    event.kind = 99;
    assert!(decoder().decode(&event).is_err());
    let mut event = tcp(0, 1, 2, 1, 2, 0);
    event.tuple.family = 0;
    assert!(decoder().decode(&event).is_err());
}

#[test]
fn a_spoofed_packet_comes_from_the_pod_whose_interface_it_left_not_from_the_address_owner() {
    // From client-abc's interface (111) with web-1's address: no source endpoint.
    let event = membrane_common::FlowEvent {
        ifindex: 111,
        ..drop(10, 2, 3, reason::DROP_INVALID_SOURCE)
    };
    let flow = decoder().decode(&event).unwrap();
    assert_eq!(flow.source.pod_name, "client-abc");
    assert_eq!(flow.source_ip.to_string(), "10.0.0.2");
    assert_eq!(flow.destination.pod_name, "db-0");
    // Arriving at a pod (ingress), the interface names the destination, not the source.
    let arriving = membrane_common::FlowEvent {
        direction: direction::INGRESS,
        ..event
    };
    assert_eq!(
        decoder().decode(&arriving).unwrap().source.pod_name,
        "web-1"
    );
}

#[test]
fn an_untranslated_packet_to_a_frontend_is_for_that_service() {
    // Refused for want of a backend: no translation, no reverse-NAT index.
    let directory = directory();
    let frontend = (IpAddr::from([10, 0, 0, 3]), 80, proto::TCP);
    let name = ServiceName {
        namespace: "other".to_string(),
        name: "empty".to_string(),
    };
    directory.insert_frontend(frontend, name.clone());
    let decoder = membrane_observe::decode::Decoder::new(
        "node1",
        directory.clone(),
        directory,
        membrane_observe::decode::BootClock::with_epoch(epoch()),
    );
    let flow = decoder
        .decode(&drop(10, 1, 3, reason::DROP_NO_BACKEND))
        .unwrap();
    assert_eq!(flow.destination_service, Some(name));
    let other_port = decoder.decode(&tcp(10, 1, 3, 40000, 81, 0x02)).unwrap();
    assert_eq!(other_port.destination_service, None);
}

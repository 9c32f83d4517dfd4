//! Policy enforcement in the real programs (BPF_PROG_TEST_RUN): default allow, default
//! deny once enforced, L3/L4 rules with port ranges, deny over allow, ingress against
//! the sender's identity, replies of allowed connections, audit mode, ICMP types, SCTP
//! ports.

#[allow(dead_code)]
mod bed;

use bed::{Bed, L4, packet, with_bed, with_bed_sized};
use membrane_common::endpoint::endpoint_flags;
use membrane_common::metrics::reason;
use membrane_common::program_names::{FROM_CONTAINER, FROM_NETDEV};
use membrane_datapath::{Direction, MapSizes, PolicyEnforcement, PolicyRule};
use std::net::IpAddr;

const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;
const TCP: u8 = 6;
const SCTP: u8 = 132;
/// What a full LPM trie answers a new key.
const ENOSPC: i32 = 28;

/// A packet from pod A to pod B on `dport`; returns the action.
fn a_to_b(bed: &Bed, sport: u16, dport: u16, l4: L4) -> i32 {
    let a = &bed.a.spec;
    let input = packet(
        a.pod_mac,
        a.host_mac,
        bed.a.v4.into(),
        bed.b.v4.into(),
        sport,
        dport,
        l4,
    );
    bed.dp
        .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
        .unwrap()
        .action
}

fn enforce(bed: &mut Bed, pod_a: bool, policy: PolicyEnforcement) {
    let spec = if pod_a {
        &mut bed.a.spec
    } else {
        &mut bed.b.spec
    };
    spec.policy = policy;
    let spec = spec.clone();
    bed.dp.write_endpoint(&spec).unwrap();
}

fn egress_only() -> PolicyEnforcement {
    PolicyEnforcement {
        egress: true,
        ..Default::default()
    }
}

fn rule(
    bed: &Bed,
    direction: Direction,
    identity: Option<u32>,
    l4: Option<(u8, std::ops::RangeInclusive<u16>)>,
    deny: bool,
) -> PolicyRule {
    let endpoint_id = if direction == Direction::Egress {
        bed.a.spec.id
    } else {
        bed.b.spec.id
    };
    PolicyRule {
        endpoint_id,
        direction,
        identity,
        l4,
        deny,
        rule_id: 1,
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

#[test]
fn without_policy_everything_is_allowed_and_enforcement_makes_it_default_deny() {
    with_bed(|bed| {
        assert_eq!(a_to_b(bed, 40000, 8080, L4::TcpSyn), TC_ACT_REDIRECT);
        enforce(bed, true, egress_only());
        assert_eq!(a_to_b(bed, 40001, 8080, L4::TcpSyn), TC_ACT_SHOT);
        assert_eq!(counter(bed, reason::DROP_POLICY), 1);
        assert!(
            bed.dp
                .conntrack_entries()
                .unwrap()
                .iter()
                .all(|(k, _)| u16::from_be(k.sport) != 40001),
            "a denied connection leaves no conntrack entry"
        );
    });
}

#[test]
fn a_batch_of_endpoint_writes_sets_the_flags_of_every_address_of_every_endpoint() {
    with_bed(|bed| {
        let mut a = bed.a.spec.clone();
        a.policy = egress_only();
        let mut b = bed.b.spec.clone();
        b.policy = PolicyEnforcement {
            ingress: true,
            ..Default::default()
        };
        assert!(bed.dp.write_endpoints(&[b, a]).is_empty());
        let enforced = |bed: &Bed, id: u16, flag: u16| {
            let maps = membrane_datapath::PinnedMaps::open(&bed.options.pin_dir).unwrap();
            let rows = maps.endpoints().unwrap();
            let of_id: Vec<_> = rows.iter().filter(|r| r.info.endpoint_id == id).collect();
            assert_eq!(
                of_id.len(),
                2,
                "endpoint {id} has an IPv4 and an IPv6 entry"
            );
            of_id.iter().filter(|r| r.info.flags & flag != 0).count()
        };
        assert_eq!(
            enforced(bed, bed.a.spec.id, endpoint_flags::EGRESS_ENFORCED),
            2
        );
        assert_eq!(
            enforced(bed, bed.b.spec.id, endpoint_flags::INGRESS_ENFORCED),
            2
        );
        assert_eq!(
            a_to_b(bed, 40000, 8080, L4::TcpSyn),
            TC_ACT_SHOT,
            "A's egress is enforced"
        );
        assert!(
            bed.dp
                .write_endpoints(std::slice::from_ref(&bed.a.spec))
                .is_empty()
        );
        assert_eq!(
            enforced(bed, bed.a.spec.id, endpoint_flags::EGRESS_ENFORCED),
            0
        );
        assert_eq!(
            enforced(bed, bed.b.spec.id, endpoint_flags::INGRESS_ENFORCED),
            2
        );
    });
}

#[test]
fn a_batch_of_policy_rules_into_a_full_map_says_how_many_rules_it_may_have_written() {
    let sizes = MapSizes {
        policy: 4,
        ..MapSizes::default()
    };
    with_bed_sized(sizes, |bed| {
        // Six rules of one port each: one trie entry each, two more than the map holds.
        let rules: Vec<PolicyRule> = (8000..8006)
            .map(|port| {
                rule(
                    bed,
                    Direction::Egress,
                    Some(300),
                    Some((TCP, port..=port)),
                    false,
                )
            })
            .collect();
        let (touched, error) = bed.dp.write_policies(&rules).unwrap_err();
        assert_eq!(
            touched, 5,
            "four rules written and the fifth refused: {error}"
        );
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*error);
        let mut os_error = None;
        while let Some(current) = source {
            os_error = os_error.or(current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error));
            source = current.source();
        }
        assert_eq!(os_error, Some(ENOSPC), "the map is full: {error:?}");
        let maps = membrane_datapath::PinnedMaps::open(&bed.options.pin_dir).unwrap();
        let mut ports: Vec<u16> = maps
            .policy()
            .unwrap()
            .iter()
            .map(|row| *row.ports.start())
            .collect();
        ports.sort_unstable();
        assert_eq!(
            ports,
            [8000, 8001, 8002, 8003],
            "the first four are in the map"
        );
    });
}

/// Sends pod A's probes to pod B, each `(port, l4, expected action, why)` from a port of
/// its own, and asserts each probe's action.
fn expect_a_to_b(bed: &Bed, probes: &[(u16, L4, i32, &str)]) {
    for (sport, (dport, l4, expected, why)) in (40000..).zip(probes) {
        assert_eq!(a_to_b(bed, sport, *dport, *l4), *expected, "{why}");
    }
}

/// Pod A under egress enforcement with one rule allowing pod B on `l4` ports.
fn egress_to_b_on(bed: &mut Bed, l4: (u8, std::ops::RangeInclusive<u16>)) {
    enforce(bed, true, egress_only());
    let b_identity = bed.b.spec.identity;
    bed.dp
        .write_policy(&rule(
            bed,
            Direction::Egress,
            Some(b_identity),
            Some(l4),
            false,
        ))
        .unwrap();
}

#[test]
fn an_l3_l4_rule_allows_only_its_peer_on_its_ports() {
    with_bed(|bed| {
        egress_to_b_on(bed, (TCP, 8000..=8100));
        expect_a_to_b(
            bed,
            &[
                (8080, L4::TcpSyn, TC_ACT_REDIRECT, "in the range"),
                (8000, L4::TcpSyn, TC_ACT_REDIRECT, "first port of the range"),
                (8100, L4::TcpSyn, TC_ACT_REDIRECT, "last port of the range"),
                (8101, L4::TcpSyn, TC_ACT_SHOT, "outside the range"),
                (8080, L4::Udp, TC_ACT_SHOT, "another protocol"),
            ],
        );
    });
}

#[test]
fn an_sctp_rule_allows_only_its_port() {
    with_bed(|bed| {
        egress_to_b_on(bed, (SCTP, 5000..=5000));
        expect_a_to_b(
            bed,
            &[
                (5000, L4::Sctp, TC_ACT_REDIRECT, "its port"),
                (5001, L4::Sctp, TC_ACT_SHOT, "another port"),
                (5000, L4::TcpSyn, TC_ACT_SHOT, "another protocol"),
            ],
        );
    });
}

#[test]
fn deny_wins_over_allow() {
    with_bed(|bed| {
        enforce(bed, true, egress_only());
        let b_identity = bed.b.spec.identity;
        bed.dp
            .write_policy(&rule(bed, Direction::Egress, Some(b_identity), None, false))
            .unwrap();
        bed.dp
            .write_policy(&rule(
                bed,
                Direction::Egress,
                None,
                Some((TCP, 22..=22)),
                true,
            ))
            .unwrap();
        assert_eq!(
            a_to_b(bed, 40000, 8080, L4::TcpSyn),
            TC_ACT_REDIRECT,
            "allowed by the L3 rule"
        );
        assert_eq!(
            a_to_b(bed, 40001, 22, L4::TcpSyn),
            TC_ACT_SHOT,
            "denied by the L4 deny rule"
        );
        assert_eq!(counter(bed, reason::DROP_POLICY_DENY), 1);
    });
}

#[test]
fn replies_of_an_allowed_connection_pass_the_repliers_egress_policy() {
    with_bed(|bed| {
        enforce(bed, false, egress_only());
        assert_eq!(a_to_b(bed, 40000, 8080, L4::TcpSyn), TC_ACT_REDIRECT);
        let b = bed.b.spec.clone();
        let reply = packet(
            b.pod_mac,
            b.host_mac,
            bed.b.v4.into(),
            bed.a.v4.into(),
            8080,
            40000,
            L4::TcpAck,
        );
        assert_eq!(
            bed.dp
                .test_run(FROM_CONTAINER, &reply, b.host_ifindex, 1)
                .unwrap()
                .action,
            TC_ACT_REDIRECT
        );
        let new = packet(
            b.pod_mac,
            b.host_mac,
            bed.b.v4.into(),
            bed.a.v4.into(),
            41000,
            80,
            L4::TcpSyn,
        );
        assert_eq!(
            bed.dp
                .test_run(FROM_CONTAINER, &new, b.host_ifindex, 1)
                .unwrap()
                .action,
            TC_ACT_SHOT,
            "but B may not open connections"
        );
    });
}

#[test]
fn ingress_policy_is_decided_against_the_senders_identity() {
    with_bed(|bed| {
        enforce(
            bed,
            false,
            PolicyEnforcement {
                ingress: true,
                ..Default::default()
            },
        );
        let a_identity = bed.a.spec.identity;
        bed.dp
            .write_policy(&rule(
                bed,
                Direction::Ingress,
                Some(a_identity),
                Some((TCP, 8080..=8080)),
                false,
            ))
            .unwrap();
        assert_eq!(
            a_to_b(bed, 40000, 8080, L4::TcpSyn),
            TC_ACT_REDIRECT,
            "pod A may reach B:8080"
        );
        // The world (no ipcache entry: identity world) may not.
        let world: IpAddr = bed::WORLD_V4.into();
        let from_world = bed::from_world(world, bed.b.v4.into(), 5555, 8080, L4::TcpSyn);
        assert_eq!(
            bed.dp
                .test_run(FROM_NETDEV, &from_world, bed.uplink, 1)
                .unwrap()
                .action,
            TC_ACT_SHOT
        );
        bed.dp
            .write_policy(&rule(
                bed,
                Direction::Ingress,
                Some(membrane_common::identity::WORLD),
                None,
                false,
            ))
            .unwrap();
        let again = bed::from_world(world, bed.b.v4.into(), 5556, 8080, L4::TcpSyn);
        assert_eq!(
            bed.dp
                .test_run(FROM_NETDEV, &again, bed.uplink, 1)
                .unwrap()
                .action,
            TC_ACT_REDIRECT,
            "after allowing the world entity"
        );
    });
}

#[test]
fn audit_mode_reports_would_be_drops_and_lets_them_through() {
    with_bed(|bed| {
        enforce(
            bed,
            true,
            PolicyEnforcement {
                egress: true,
                audit: true,
                ..Default::default()
            },
        );
        assert_eq!(a_to_b(bed, 40000, 8080, L4::TcpSyn), TC_ACT_REDIRECT);
        assert_eq!(counter(bed, reason::DROP_POLICY), 0);
    });
}

#[test]
fn icmp_rules_match_the_echo_type() {
    with_bed(|bed| {
        enforce(bed, true, egress_only());
        // ICMP echo request is type 8: rules name it where TCP rules name a port.
        let echo_request = u16::from_be_bytes([8, 0]);
        bed.dp
            .write_policy(&rule(
                bed,
                Direction::Egress,
                None,
                Some((1, echo_request..=echo_request)),
                false,
            ))
            .unwrap();
        assert_eq!(a_to_b(bed, 7, 7, L4::Echo), TC_ACT_REDIRECT);
        assert_eq!(a_to_b(bed, 40000, 8080, L4::TcpSyn), TC_ACT_SHOT);
        bed.dp
            .remove_policy(&rule(
                bed,
                Direction::Egress,
                None,
                Some((1, echo_request..=echo_request)),
                false,
            ))
            .unwrap();
        assert_eq!(
            a_to_b(bed, 8, 8, L4::Echo),
            TC_ACT_SHOT,
            "removed rules stop allowing"
        );
    });
}

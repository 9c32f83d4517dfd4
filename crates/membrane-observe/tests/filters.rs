//! Flow filters behave as Hubble documents them: fields AND within a filter, filters OR
//! across a list, `allow - deny` between the lists.

mod support;

use membrane_common::events::{ct_state, event_kind, observation_point};
use membrane_common::metrics::reason;
use membrane_observe::api::flow as pb;
use membrane_observe::filter::{FilterSet, FlowFilter};
use membrane_observe::flow::Flow;
use proptest::prelude::*;
use support::*;

/// client-abc (10.0.0.1) -> web-1 (10.0.0.2) TCP 40000 -> 80, SYN, to Service shop/web.
fn syn_to_web() -> Flow {
    let mut event = tcp(0, 1, 2, 40000, 80, 0x02);
    event.rev_nat_index = 5;
    decoder().decode(&event).unwrap()
}

/// web-1 -> db-0 dropped for an invalid source.
fn dropped_to_db() -> Flow {
    decoder()
        .decode(&drop(0, 2, 3, reason::DROP_INVALID_SOURCE))
        .unwrap()
}

fn filter(f: pb::FlowFilter) -> FlowFilter {
    FlowFilter::try_from(&f).unwrap()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn each_filter_field_selects_exactly_the_flows_it_names() {
    let syn = syn_to_web();
    let dropped = dropped_to_db();
    let cases: Vec<(&str, pb::FlowFilter, bool, bool)> = vec![
        ("empty filter", pb::FlowFilter::default(), true, true),
        (
            "source ip",
            pb::FlowFilter {
                source_ip: strings(&["10.0.0.1"]),
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "source cidr",
            pb::FlowFilter {
                source_ip: strings(&["10.0.0.0/30"]),
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "destination ip",
            pb::FlowFilter {
                destination_ip: strings(&["10.0.0.3"]),
                ..Default::default()
            },
            false,
            true,
        ),
        (
            "pod prefix in ns",
            pb::FlowFilter {
                source_pod: strings(&["shop/client-"]),
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "namespace only",
            pb::FlowFilter {
                destination_pod: strings(&["shop/"]),
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "pod without ns is in default",
            pb::FlowFilter {
                source_pod: strings(&["client"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "wrong namespace",
            pb::FlowFilter {
                source_pod: strings(&["other/client"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "label",
            pb::FlowFilter {
                source_label: strings(&["app=client"]),
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "label with source",
            pb::FlowFilter {
                destination_label: strings(&["k8s:app in (db, cache)"]),
                ..Default::default()
            },
            false,
            true,
        ),
        (
            "service",
            pb::FlowFilter {
                destination_service: strings(&["shop/web"]),
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "source service never set",
            pb::FlowFilter {
                source_service: strings(&["shop/"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "workload",
            pb::FlowFilter {
                destination_workload: vec![pb::Workload {
                    name: "db".into(),
                    kind: String::new(),
                }],
                ..Default::default()
            },
            false,
            true,
        ),
        (
            "workload kind",
            pb::FlowFilter {
                source_workload: vec![pb::Workload {
                    name: String::new(),
                    kind: "Deployment".into(),
                }],
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "identity",
            pb::FlowFilter {
                source_identity: vec![1001],
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "fqdn parses, matches nothing",
            pb::FlowFilter {
                destination_fqdn: strings(&["*.example.com"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "verdict",
            pb::FlowFilter {
                verdict: vec![pb::Verdict::Dropped as i32],
                ..Default::default()
            },
            false,
            true,
        ),
        (
            "drop reason",
            pb::FlowFilter {
                drop_reason_desc: vec![pb::DropReason::InvalidSourceIp as i32],
                ..Default::default()
            },
            false,
            true,
        ),
        (
            "event type",
            pb::FlowFilter {
                event_type: vec![pb::EventTypeFilter {
                    r#type: 4,
                    match_sub_type: false,
                    sub_type: 0,
                }],
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "event sub type",
            pb::FlowFilter {
                event_type: vec![pb::EventTypeFilter {
                    r#type: 4,
                    match_sub_type: true,
                    sub_type: 0,
                }],
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "from-endpoint sub type",
            pb::FlowFilter {
                event_type: vec![pb::EventTypeFilter {
                    r#type: 4,
                    match_sub_type: true,
                    sub_type: 5,
                }],
                ..Default::default()
            },
            true,
            false,
        ),
        (
            "protocol",
            pb::FlowFilter {
                protocol: strings(&["TCP"]),
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "protocol udp",
            pb::FlowFilter {
                protocol: strings(&["udp"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "l7 protocol",
            pb::FlowFilter {
                protocol: strings(&["http"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "destination port",
            pb::FlowFilter {
                destination_port: strings(&["80"]),
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "source port",
            pb::FlowFilter {
                source_port: strings(&["80"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "tcp flags subset",
            pb::FlowFilter {
                tcp_flags: vec![pb::TcpFlags {
                    syn: true,
                    ..Default::default()
                }],
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "tcp flags superset",
            pb::FlowFilter {
                tcp_flags: vec![pb::TcpFlags {
                    syn: true,
                    ack: true,
                    ..Default::default()
                }],
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "node name",
            pb::FlowFilter {
                node_name: strings(&["node*"]),
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "other cluster",
            pb::FlowFilter {
                node_name: strings(&["prod/"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "ip version",
            pb::FlowFilter {
                ip_version: vec![pb::IpVersion::IPv6 as i32],
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "direction",
            pb::FlowFilter {
                traffic_direction: vec![pb::TrafficDirection::Egress as i32],
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "reply",
            pb::FlowFilter {
                reply: vec![false],
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "http fields match no L3/L4 flow",
            pb::FlowFilter {
                http_method: strings(&["GET"]),
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "unencrypted",
            pb::FlowFilter {
                encrypted: vec![false],
                ..Default::default()
            },
            true,
            true,
        ),
        (
            "fields AND",
            pb::FlowFilter {
                source_ip: strings(&["10.0.0.1"]),
                verdict: vec![pb::Verdict::Dropped as i32],
                ..Default::default()
            },
            false,
            false,
        ),
        (
            "values OR",
            pb::FlowFilter {
                destination_pod: strings(&["shop/web", "other/db"]),
                ..Default::default()
            },
            true,
            true,
        ),
    ];
    for (name, wire, on_syn, on_drop) in cases {
        let f = filter(wire);
        assert_eq!(f.matches(&syn), on_syn, "{name} on the SYN");
        assert_eq!(f.matches(&dropped), on_drop, "{name} on the drop");
    }
}

#[test]
fn reply_filter_treats_a_drop_of_unknown_direction_as_not_a_reply() {
    let mut event = drop(0, 2, 3, reason::DROP_NO_ROUTE);
    event.ct_state = ct_state::UNKNOWN;
    let flow = decoder().decode(&event).unwrap();
    assert!(
        filter(pb::FlowFilter {
            reply: vec![false],
            ..Default::default()
        })
        .matches(&flow)
    );
    assert!(
        !filter(pb::FlowFilter {
            reply: vec![true],
            ..Default::default()
        })
        .matches(&flow)
    );
    let mut trace = tcp(0, 1, 2, 1, 2, 0);
    trace.ct_state = ct_state::UNKNOWN;
    trace.kind = event_kind::TRACE;
    trace.observation_point = observation_point::TO_STACK;
    let flow = decoder().decode(&trace).unwrap();
    assert!(
        !filter(pb::FlowFilter {
            reply: vec![false],
            ..Default::default()
        })
        .matches(&flow)
    );
}

#[test]
fn invalid_filter_values_are_refused_with_the_field_named() {
    let bad = [
        pb::FlowFilter {
            source_ip: strings(&["10.0.0.300"]),
            ..Default::default()
        },
        pb::FlowFilter {
            destination_ip: strings(&["10.0.0.0/33"]),
            ..Default::default()
        },
        pb::FlowFilter {
            source_pod: strings(&[""]),
            ..Default::default()
        },
        pb::FlowFilter {
            source_label: strings(&["app in web"]),
            ..Default::default()
        },
        pb::FlowFilter {
            protocol: strings(&["gopher"]),
            ..Default::default()
        },
        pb::FlowFilter {
            destination_port: strings(&["65536"]),
            ..Default::default()
        },
        pb::FlowFilter {
            node_name: strings(&["a/b/c"]),
            ..Default::default()
        },
        pb::FlowFilter {
            source_fqdn: strings(&["bad name"]),
            ..Default::default()
        },
        pb::FlowFilter {
            experimental: Some(pb::flow_filter::Experimental {
                cel_expression: strings(&["true"]),
            }),
            ..Default::default()
        },
    ];
    for wire in bad {
        assert!(
            FlowFilter::try_from(&wire).is_err(),
            "{wire:?} was accepted"
        );
    }
}

/// A small vocabulary of filters whose results on the two flows differ.
fn some_filter() -> impl Strategy<Value = pb::FlowFilter> {
    prop_oneof![
        Just(pb::FlowFilter::default()),
        Just(pb::FlowFilter {
            source_ip: strings(&["10.0.0.1"]),
            ..Default::default()
        }),
        Just(pb::FlowFilter {
            destination_pod: strings(&["other/"]),
            ..Default::default()
        }),
        Just(pb::FlowFilter {
            verdict: vec![pb::Verdict::Forwarded as i32],
            ..Default::default()
        }),
        Just(pb::FlowFilter {
            protocol: strings(&["udp"]),
            ..Default::default()
        }),
        Just(pb::FlowFilter {
            destination_port: strings(&["80"]),
            ..Default::default()
        }),
    ]
}

proptest! {
    /// For any allow- and deny-lists, a flow is returned exactly when some allow filter
    /// matches (or there is none) and no deny filter matches.
    #[test]
    fn allow_and_deny_lists_combine_as_allow_minus_deny(
        allow in proptest::collection::vec(some_filter(), 0..4),
        deny in proptest::collection::vec(some_filter(), 0..4),
    ) {
        let set = FilterSet {
            allow: allow.into_iter().map(filter).collect(),
            deny: deny.into_iter().map(filter).collect(),
        };
        for flow in [syn_to_web(), dropped_to_db()] {
            let allowed = set.allow.is_empty() || set.allow.iter().any(|f| f.matches(&flow));
            let denied = set.deny.iter().any(|f| f.matches(&flow));
            prop_assert_eq!(set.matches(&flow), allowed && !denied);
            // Adding a deny filter never lets more flows through; adding an allow filter
            // to a non-empty list never lets fewer through.
            let mut stricter = set.clone();
            stricter.deny.push(filter(pb::FlowFilter::default()));
            prop_assert!(!stricter.matches(&flow));
            if !set.allow.is_empty() {
                let mut wider = set.clone();
                wider.allow.push(filter(pb::FlowFilter::default()));
                prop_assert_eq!(wider.matches(&flow), !denied);
            }
        }
    }
}

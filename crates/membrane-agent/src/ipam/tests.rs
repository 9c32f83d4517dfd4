use super::*;
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::Path;

fn attachment(id: &str) -> AttachmentRef {
    AttachmentRef {
        container_id: id.to_string(),
        ifname: "eth0".to_string(),
    }
}

fn ipam_at(dir: &Path, v4: &str, v6: &str) -> Ipam {
    let store = Store::open(dir).unwrap();
    Ipam::new(
        store,
        Some(Pool::v4(v4.parse().unwrap())),
        Pool::v6(v6.parse().unwrap()),
    )
    .unwrap()
}

#[test]
fn allocating_twice_for_one_attachment_returns_the_same_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = ipam_at(dir.path(), "10.1.0.0/24", "fd00:1::/120");
    let first = ipam.allocate(&attachment("a"), "/var/run/netns/a").unwrap();
    let again = ipam.allocate(&attachment("a"), "/var/run/netns/a").unwrap();
    assert_eq!(first, again);
    assert_eq!(first.ipv4, Some("10.1.0.1".parse().unwrap()));
    assert_eq!(first.ipv6, Some("fd00:1::1".parse().unwrap()));
    let other = ipam.allocate(&attachment("b"), "/var/run/netns/b").unwrap();
    assert_ne!(other.ipv4, first.ipv4);
    assert_ne!(other.ipv6, first.ipv6);
}

#[test]
fn a_slash_30_hands_out_two_addresses_then_reports_the_exhausted_pool() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = ipam_at(dir.path(), "10.9.0.0/30", "fd00:9::/64");
    let a = ipam.allocate(&attachment("a"), "ns").unwrap();
    let b = ipam.allocate(&attachment("b"), "ns").unwrap();
    assert_eq!(a.ipv4, Some("10.9.0.1".parse().unwrap()));
    assert_eq!(b.ipv4, Some("10.9.0.2".parse().unwrap()));
    let err = ipam.allocate(&attachment("c"), "ns").unwrap_err();
    assert!(matches!(err, IpamError::PoolExhausted { .. }), "{err:?}");
    assert!(err.to_string().contains("10.9.0.0/30"), "{err}");
    // The failed allocation took nothing from the IPv6 pool either.
    let (v4, v6) = ipam.usage().unwrap();
    assert_eq!((v4.unwrap().used, v6.unwrap().used), (2, 2));
}

#[test]
fn reopening_the_database_never_hands_out_an_address_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let ipam = ipam_at(dir.path(), "10.1.0.0/24", "fd00:1::/120");
        ipam.allocate(&attachment("a"), "ns").unwrap()
    };
    let ipam = ipam_at(dir.path(), "10.1.0.0/24", "fd00:1::/120");
    assert_eq!(ipam.allocate(&attachment("a"), "ns").unwrap(), first);
    let second = ipam.allocate(&attachment("b"), "ns").unwrap();
    assert_ne!(second.ipv4, first.ipv4);
    assert_ne!(second.ipv6, first.ipv6);
}

#[test]
fn released_addresses_return_to_the_pool_only_after_the_cursor_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = ipam_at(dir.path(), "10.9.0.0/29", "fd00:9::/125");
    let a = ipam.allocate(&attachment("a"), "ns").unwrap();
    assert_eq!(ipam.release(&attachment("a")).unwrap(), Some(a.clone()));
    assert_eq!(
        ipam.release(&attachment("a")).unwrap(),
        None,
        "release is idempotent"
    );
    assert_eq!(ipam.get(&attachment("a")).unwrap(), None);
    let b = ipam.allocate(&attachment("b"), "ns").unwrap();
    assert_ne!(b.ipv4, a.ipv4, "a freed address is not reused right away");
    // 10.9.0.1-6 make six addresses; after the other five are taken the freed one is next.
    for id in ["c", "d", "e", "f"] {
        ipam.allocate(&attachment(id), "ns").unwrap();
    }
    let g = ipam.allocate(&attachment("g"), "ns").unwrap();
    assert_eq!(g.ipv4, a.ipv4);
}

#[test]
fn allocations_record_the_netns_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = ipam_at(dir.path(), "10.1.0.0/24", "fd00:1::/120");
    ipam.allocate(&attachment("a"), "/var/run/netns/a").unwrap();
    let all = ipam.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, attachment("a"));
    assert_eq!(all[0].1.netns, "/var/run/netns/a");
    assert!(all[0].1.allocated_at > 0);
}

#[test]
fn a_single_family_node_hands_out_only_that_family() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ipam = Ipam::new(store, None, Pool::v6("fd00:2::/64".parse().unwrap())).unwrap();
    let a = ipam.allocate(&attachment("a"), "ns").unwrap();
    assert_eq!(a.ipv4, None);
    assert_eq!(a.ipv6, Some("fd00:2::1".parse().unwrap()));
    let (v4, v6) = ipam.usage().unwrap();
    assert!(v4.is_none());
    assert_eq!(
        v6.unwrap().free,
        u64::MAX - 1,
        "a /64 less its anycast address and one used"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Allocate(u8),
    Release(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24).prop_map(Op::Allocate),
        2 => (0u8..24).prop_map(Op::Release),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn live_allocations_never_share_an_address(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        // 14 IPv4 and 15 IPv6 addresses for 24 attachments: exhaustion happens too.
        let mut ipam = ipam_at(dir.path(), "10.5.0.0/28", "fd00:5::/124");
        for op in ops {
            match op {
                Op::Allocate(n) => match ipam.allocate(&attachment(&n.to_string()), "ns") {
                    Ok(_) | Err(IpamError::PoolExhausted { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                },
                Op::Release(n) => {
                    ipam.release(&attachment(&n.to_string())).unwrap();
                }
                Op::Reopen => {
                    drop(ipam);
                    ipam = ipam_at(dir.path(), "10.5.0.0/28", "fd00:5::/124");
                }
            }
            let all = ipam.list().unwrap();
            let v4: HashSet<_> = all.iter().map(|(_, r)| r.ipv4.unwrap()).collect();
            let v6: HashSet<_> = all.iter().map(|(_, r)| r.ipv6.unwrap()).collect();
            prop_assert_eq!(v4.len(), all.len());
            prop_assert_eq!(v6.len(), all.len());
            let (p4, p6) = ipam.usage().unwrap();
            prop_assert_eq!(p4.unwrap().used, all.len() as u64);
            prop_assert_eq!(p6.unwrap().used, all.len() as u64);
        }
    }
}

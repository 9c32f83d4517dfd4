//! Helpers of several-node tests: the flags of agents sharing one etcd, pod addresses,
//! what a node's pinned ipcache holds, and bounded waits for the nodes to converge.

use crate::{Node, Pod};
use membrane_common::Family;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a stopped node's records (node, ipcache entries, identity uses) outlive its
/// agent in several-node tests.
pub const LEASE_TTL_SECS: &str = "3";

/// The pause between two polls of [`wait_until`].
const POLL: Duration = Duration::from_millis(50);

/// The flags of a node on the etcd at `etcd` routing in `mode` (`tunnel` or `native`),
/// with the blocks the test bed cuts pod CIDRs from (`10.200.0.0/16`, `fd00:200::/48`;
/// see [`crate::addressing`]) as the cluster's, never masqueraded between nodes.
pub fn etcd_flags<'a>(etcd: &'a str, mode: &'a str) -> Vec<&'a str> {
    vec![
        "--kvstore",
        "etcd",
        "--kvstore-endpoints",
        etcd,
        "--kvstore-lease-ttl-secs",
        LEASE_TTL_SECS,
        "--routing-mode",
        mode,
        "--cluster-cidr-v4",
        "10.200.0.0/16",
        "--cluster-cidr-v6",
        "fd00:200::/48",
    ]
}

/// The pod's IPv6 address when `v6`, else its IPv4 address.
///
/// # Panics
///
/// When the pod has no address of that family.
pub fn pod_address(pod: &Pod, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(pod.ipv6().expect("the pod has an IPv6 address"))
    } else {
        IpAddr::V4(pod.ipv4().expect("the pod has an IPv4 address"))
    }
}

/// The identity `node`'s pinned ipcache holds for `ip`, if it holds `ip`.
///
/// # Panics
///
/// When the pinned map cannot be read.
pub fn ipcache_identity(node: &Node, ip: IpAddr) -> Option<u32> {
    crate::pinned::ipcache_identities(node.pin_dir().path())
        .expect("the node's pinned ipcache is readable")
        .into_iter()
        .find(|(found, _)| *found == ip)
        .map(|(_, identity)| identity)
}

/// The source identity that the conntrack entry of a `proto` connection between
/// `client` and `server` carries in `node`'s pinned conntrack map, if there is one.
///
/// # Panics
///
/// When the pinned map cannot be read.
pub fn conntrack_source_identity(
    node: &Node,
    client: IpAddr,
    server: IpAddr,
    proto: u8,
) -> Option<u32> {
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(a) => membrane_common::tuple::v4_bytes(a.octets()),
        IpAddr::V6(a) => a.octets(),
    };
    let family = if client.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    crate::pinned::conntrack_entries(node.pin_dir().path())
        .expect("the node's pinned conntrack map is readable")
        .into_iter()
        .find(|(key, _)| {
            key.family == family
                && key.proto == proto
                && ((key.saddr == bytes(client) && key.daddr == bytes(server))
                    || (key.saddr == bytes(server) && key.daddr == bytes(client)))
        })
        .map(|(_, entry)| entry.src_identity)
}

/// Polls `probe` until it returns something, at most `within` (and a bounded number of
/// polls), and returns how long that took with the value.
///
/// # Panics
///
/// When `within` passes first, naming `what`.
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let started = Instant::now();
    let polls = within.as_millis() / POLL.as_millis() + 1;
    for _ in 0..polls {
        if let Some(value) = probe() {
            return (value, started.elapsed());
        }
        if started.elapsed() >= within {
            break;
        }
        std::thread::sleep(POLL);
    }
    panic!("{what}: not within {within:?}");
}

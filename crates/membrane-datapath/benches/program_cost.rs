//! Kernel time per packet of each forwarding path, measured by running the real programs
//! with BPF_PROG_TEST_RUN inside a private network namespace.
//!
//! Each run gets a fresh copy of the packet (`repeat` would feed the program its own
//! rewritten output: a masqueraded packet no longer comes from a pod), so the figure is
//! the kernel-measured time of single runs over many calls: median and mean. The first
//! row is the harness floor (a non-IP frame the program passes at once); the last column
//! subtracts it, leaving the cost of the path itself.
//!
//! Run with `cargo bench -p membrane-datapath --bench program_cost` (as root), or as part
//! of `cargo xtask bench pod-to-pod`.

// The tests' fixture, shared: the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/bed/mod.rs"]
mod bed;

use bed::{L4, NODE_V4, WORLD_MAC, WORLD_V4, packet, with_bed};
use membrane_common::program_names::{FROM_CONTAINER, FROM_NETDEV};
use membrane_datapath::{BackendSpec, Frontend, ServiceSpec};

/// Single runs per path.
const RUNS: usize = 100_000;

fn main() {
    with_bed(|bed| {
        let a = bed.a.spec.clone();
        let pod_to_pod = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            bed.b.v4.into(),
            33000,
            8080,
            L4::TcpAck,
        );
        let pod_to_world = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            WORLD_V4.into(),
            40100,
            80,
            L4::TcpAck,
        );
        let pod_to_pod_v6 = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v6.into(),
            bed.b.v6.into(),
            33000,
            8080,
            L4::TcpAck,
        );
        // Warm up: create the conntrack and NAT entries the measured packets reuse.
        bed.dp
            .test_run(FROM_CONTAINER, &pod_to_pod, a.host_ifindex, 1)
            .unwrap();
        bed.dp
            .test_run(FROM_CONTAINER, &pod_to_pod_v6, a.host_ifindex, 1)
            .unwrap();
        let out = bed
            .dp
            .test_run(FROM_CONTAINER, &pod_to_world, a.host_ifindex, 1)
            .unwrap();
        let nat_port = u16::from_be_bytes([out.packet[34], out.packet[35]]);
        let reply = packet(
            WORLD_MAC,
            [2, 0, 0, 0, 0, 1],
            WORLD_V4.into(),
            NODE_V4.into(),
            80,
            nat_port,
            L4::TcpAck,
        );

        // A ClusterIP with pod B as its only backend, reached per packet (no socket LB).
        let vip: std::net::IpAddr = "10.96.0.10".parse().unwrap();
        let backend = BackendSpec {
            addr: bed.b.v4.into(),
            port: 8080,
            proto: 6,
            terminating: false,
            local: true,
        };
        bed.dp.upsert_backend(1, &backend).unwrap();
        let frontend = Frontend {
            addr: vip,
            port: 80,
            proto: 6,
            internal: false,
        };
        let spec = ServiceSpec {
            frontend,
            rev_nat_index: 1,
            flags: 0,
            affinity_timeout_s: 0,
            active: vec![1],
            terminating: vec![],
        };
        bed.dp.upsert_service(&spec, &[]).unwrap();
        let pod_to_cluster_ip = packet(
            a.pod_mac,
            a.host_mac,
            bed.a.v4.into(),
            vip,
            34000,
            80,
            L4::TcpAck,
        );
        bed.dp
            .test_run(FROM_CONTAINER, &pod_to_cluster_ip, a.host_ifindex, 1)
            .unwrap();

        let mut arp = pod_to_pod.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        println!(
            "{:<44} {:>10} {:>10} {:>12}",
            "path (BPF_PROG_TEST_RUN, 1e5 runs)", "median ns", "mean ns", "minus floor"
        );
        let mut floor = None;
        for (name, program, input, ifindex, action) in [
            (
                "harness floor (non-IP frame, passed at once)",
                FROM_CONTAINER,
                &arp,
                a.host_ifindex,
                0,
            ),
            (
                "pod -> pod, same node, IPv4 (redirect_peer)",
                FROM_CONTAINER,
                &pod_to_pod,
                a.host_ifindex,
                7,
            ),
            (
                "pod -> pod, same node, IPv6 (redirect_peer)",
                FROM_CONTAINER,
                &pod_to_pod_v6,
                a.host_ifindex,
                7,
            ),
            (
                "pod -> world, masquerade, IPv4",
                FROM_CONTAINER,
                &pod_to_world,
                a.host_ifindex,
                7,
            ),
            (
                "world -> pod, reverse NAT, IPv4",
                FROM_NETDEV,
                &reply,
                bed.uplink,
                7,
            ),
            (
                "pod -> ClusterIP -> pod, per-packet LB, IPv4",
                FROM_CONTAINER,
                &pod_to_cluster_ip,
                a.host_ifindex,
                7,
            ),
        ] {
            let mut ns: Vec<u128> = (0..RUNS)
                .map(|_| {
                    let run = bed.dp.test_run(program, input, ifindex, 1).unwrap();
                    assert_eq!(
                        run.action, action,
                        "{name}: the measured path must be taken"
                    );
                    run.duration.as_nanos()
                })
                .collect();
            ns.sort_unstable();
            let mean = ns.iter().sum::<u128>() / RUNS as u128;
            let median = ns[RUNS / 2];
            let floor = *floor.get_or_insert(median);
            println!(
                "{:<44} {:>10} {:>10} {:>12}",
                name,
                median,
                mean,
                median.saturating_sub(floor)
            );
        }
    });
}

//! Kernel time per packet of the ingress policy lookup with no policy entries but the
//! one allowing the sender, versus 10,000 more, measured by running the real
//! `from_container` program with BPF_PROG_TEST_RUN inside a private network namespace.
//!
//! Every measured packet is the TCP SYN of a new connection from pod A to pod B (a fresh
//! source port each run, so conntrack never short-cuts the policy lookup), with B's
//! ingress enforced and one entry allowing A's identity on 8080/TCP; the second case adds
//! 10,000 entries for B's ingress naming other identities and ports. The figure is the
//! kernel-measured time of single runs: median and mean, and the ratio of the medians.
//!
//! Run with `cargo bench -p membrane-datapath --bench policy_cost` (as root), or as part
//! of `cargo xtask bench policy`.

// The tests' fixture, shared: the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/bed/mod.rs"]
mod bed;

use bed::{Bed, L4, packet, with_bed_sized};
use membrane_common::program_names::FROM_CONTAINER;
use membrane_datapath::{Direction, MapSizes, PolicyEnforcement, PolicyRule};

/// Single runs per case, each a new connection (distinct source ports).
const RUNS: u16 = 20_000;
/// Runs of the warm-up, on source ports below the measured ones.
const WARM_UP: u16 = 1_000;
/// Policy entries added in the loaded case.
const ENTRIES: u32 = 10_000;
/// The allowed destination port.
const PORT: u16 = 8080;
const TCP: u8 = 6;
const TC_ACT_REDIRECT: i32 = 7;

/// An ingress entry of pod B allowing `identity` on TCP `port`.
fn allow(bed: &Bed, identity: u32, port: u16, rule_id: u32) -> PolicyRule {
    PolicyRule {
        endpoint_id: bed.b.spec.id,
        direction: Direction::Ingress,
        identity: Some(identity),
        l4: Some((TCP, port..=port)),
        deny: false,
        rule_id,
    }
}

/// Median and mean kernel ns of `runs` SYNs from A to B, from source ports
/// `first..first + runs`.
fn measure(bed: &Bed, first: u16, runs: u16) -> (u128, u128) {
    let a = &bed.a.spec;
    let mut ns: Vec<u128> = (first..first + runs)
        .map(|sport| {
            let syn = packet(
                a.pod_mac,
                a.host_mac,
                bed.a.v4.into(),
                bed.b.v4.into(),
                sport,
                PORT,
                L4::TcpSyn,
            );
            let run = bed
                .dp
                .test_run(FROM_CONTAINER, &syn, a.host_ifindex, 1)
                .unwrap();
            assert_eq!(run.action, TC_ACT_REDIRECT, "the SYN must be allowed");
            run.duration.as_nanos()
        })
        .collect();
    ns.sort_unstable();
    let mean = ns.iter().sum::<u128>() / u128::from(runs);
    (ns[usize::from(runs) / 2], mean)
}

fn main() {
    let sizes = MapSizes {
        conntrack: 1 << 16,
        nat: 4096,
        endpoints: 64,
        ..MapSizes::default()
    };
    with_bed_sized(sizes, |bed| {
        bed.b.spec.policy = PolicyEnforcement {
            ingress: true,
            ..Default::default()
        };
        let spec = bed.b.spec.clone();
        bed.dp.write_endpoint(&spec).unwrap();
        let a_identity = bed.a.spec.identity;
        bed.dp
            .write_policy(&allow(bed, a_identity, PORT, 1))
            .unwrap();
        // Warm up on ports the measured runs do not use.
        measure(bed, 1024, WARM_UP);
        let (none, none_mean) = measure(bed, 20_000, RUNS);
        for i in 0..ENTRIES {
            // Other identities (well above any the bed allocates), on 1,000 ports.
            let rule = allow(bed, 1_000_000 + i, 1000 + (i % 1000) as u16, 2 + i);
            bed.dp.write_policy(&rule).unwrap();
        }
        let (loaded, loaded_mean) = measure(bed, 20_000 + RUNS, RUNS);
        println!(
            "{:<58} {:>10} {:>10}",
            "TCP SYN pod A -> pod B, B ingress enforced (20,000 runs)", "median ns", "mean ns"
        );
        println!(
            "{:<58} {:>10} {:>10}",
            "1 policy entry (allow A on 8080/TCP)", none, none_mean
        );
        println!(
            "{:<58} {:>10} {:>10}",
            format!(
                "{} policy entries (+{ENTRIES} other identities/ports)",
                ENTRIES + 1
            ),
            loaded,
            loaded_mean
        );
        println!(
            "ratio of medians, {} entries / 1 entry: {:.2}",
            ENTRIES + 1,
            loaded as f64 / none as f64
        );
    });
}

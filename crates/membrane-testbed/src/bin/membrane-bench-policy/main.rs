//! `membrane-bench-policy`: on one test-bed node running the real agent on a real etcd,
//! with N pods created through the real CNI,
//!
//! 1. the time from `apply` of a NetworkPolicy selecting every pod to each pod's entry
//!    in the pinned endpoints map carrying `INGRESS_ENFORCED` (p50, p99, max over the
//!    pods), and the agent's resident memory before and after;
//! 2. then the state the issue names: identities of pods on other nodes allocated in
//!    etcd as another agent would, and policies over the pods admitting some of them,
//!    applied through the objects API; the time until the pinned policy map holds every
//!    entry they make, and the agent's memory in that state;
//! 3. in that state, the time from `apply` of a NetworkPolicy selecting every pod for
//!    egress to each pod's entry carrying `EGRESS_ENFORCED` (no policy before selected
//!    them for egress).
#![forbid(unsafe_code)]

mod enforcement;
mod loaded;
mod memory;
mod objects;
mod peer;
mod scale;

use anyhow::{Context, ensure};
use clap::Parser;
use membrane_common::endpoint::endpoint_flags;
use membrane_testbed::cluster::etcd_flags;
use membrane_testbed::report::Latency;
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod, pinned};
use memory::Memory;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Objects per call of the objects API: each call is one etcd transaction, and etcd
/// refuses transactions of more than 128 operations.
const APPLY_BATCH: usize = 100;

/// Addresses of the pod CIDR left over beyond the pods (network, broadcast, the router).
const POD_CIDR_SLACK: u32 = 8;

/// Measures how fast policy reaches the datapath of many endpoints, and what the agent
/// holds in memory at scale.
#[derive(Parser)]
#[command(name = "membrane-bench-policy", version)]
struct Cli {
    /// Pods on the node, all selected by the policy (the node's pod CIDR is widened to
    /// hold them).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..=4000))]
    endpoints: u32,
    /// Identities of pods on other nodes allocated in etcd before the scale policies.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    identities: u32,
    /// Scale policies applied after the identities, each selecting some of the pods.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=20_000))]
    policies: u32,
    /// Seconds every pod gets to show up in the endpoints map, then to enforce, and the
    /// agent to take in the scale policies.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// The longest IPv4 pod CIDR prefix that holds `endpoints` pods.
fn pod_prefix_for(endpoints: u32) -> u8 {
    (16..=24)
        .rev()
        .find(|&prefix| 1u32 << (32 - prefix) >= endpoints + POD_CIDR_SLACK)
        .unwrap_or(16)
}

/// Applies `objects` through `node`'s objects API in calls of [`APPLY_BATCH`].
fn apply_in_batches(node: &Node, objects: Vec<Value>, what: &str) -> anyhow::Result<()> {
    for (n, batch) in objects.chunks(APPLY_BATCH).enumerate() {
        node.agent()
            .apply(batch.to_vec())
            .with_context(|| format!("applying {what}, batch {n}"))?;
    }
    Ok(())
}

/// Waits (bounded) until every address is in the node's pinned endpoints map.
fn wait_endpoints(node: &Node, addresses: &[IpAddr], within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let known = pinned::endpoint_addresses(node.pin_dir().path())?;
        let missing = addresses.iter().filter(|a| !known.contains(a)).count();
        if missing == 0 {
            return Ok(());
        }
        ensure!(
            started.elapsed() < within,
            "{missing} of {} pods never reached the endpoints map",
            addresses.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates `count` pods through the CNI and returns them with their IPv4 addresses.
fn create_pods(node: &Node, count: u32) -> anyhow::Result<(Vec<Pod<'_>>, Vec<IpAddr>)> {
    let mut pods = Vec::with_capacity(count as usize);
    for index in 0..count {
        let name = objects::pod_name(index);
        pods.push(
            Pod::create(node, objects::NAMESPACE, &name)
                .with_context(|| format!("creating pod {name}"))?,
        );
    }
    let addresses = pods
        .iter()
        .map(|p| {
            p.ipv4()
                .map(IpAddr::V4)
                .with_context(|| format!("pod {} has no IPv4 address", p.full_name()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((pods, addresses))
}

/// Milliseconds, for printing.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// How a latency reads in a line of output.
fn percentiles(latency: &Latency) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latency.p50_us as f64 / 1000.0,
        latency.p99_us as f64 / 1000.0,
        latency.max_us as f64 / 1000.0
    )
}

/// How `memory` reads in a line of output.
fn mib(memory: Memory) -> String {
    format!(
        "VmRSS {:.1} MiB (peak VmHWM {:.1} MiB)",
        memory.rss_kib as f64 / 1024.0,
        memory.peak_kib as f64 / 1024.0
    )
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let within = Duration::from_secs(cli.timeout);
    let outside = Outside::create().context("creating the outside namespace")?;
    let etcd =
        Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).context("starting etcd")?;
    let endpoint = etcd.endpoint();
    let prefix = pod_prefix_for(cli.endpoints);
    let node = Node::builder(&outside, 1)
        .pod_prefix_v4(prefix)
        .flags(&etcd_flags(&endpoint, "tunnel"))
        .start()
        .context("starting node 1 and its agent")?;
    let pid = node.agent().pid().context("the agent has no process")?;
    apply_in_batches(
        &node,
        objects::workload(cli.endpoints),
        "the namespace and Pods",
    )?;
    eprintln!(
        "creating {} pods through the CNI in {} ...",
        cli.endpoints,
        node.addressing().pod_cidr_v4()
    );
    let started = Instant::now();
    let (_pods, addresses) = create_pods(&node, cli.endpoints)?;
    let created = started.elapsed();
    wait_endpoints(&node, &addresses, within)?;
    let before_any = enforcement::wait_enforced(
        node.pin_dir().path(),
        &addresses[..1],
        endpoint_flags::INGRESS_ENFORCED,
        Instant::now(),
        Duration::from_millis(1),
    );
    ensure!(
        before_any.is_err(),
        "a pod enforces ingress before any policy was applied"
    );
    let memory_pods = Memory::of(pid)?;

    eprintln!("applying the policy ...");
    let applied = Instant::now();
    node.agent()
        .apply(vec![objects::policy()])
        .context("applying the NetworkPolicy")?;
    let apply_returned = applied.elapsed();
    let latencies = enforcement::wait_enforced(
        node.pin_dir().path(),
        &addresses,
        endpoint_flags::INGRESS_ENFORCED,
        applied,
        within,
    )?;
    let memory_policy = Memory::of(pid)?;
    let latency = Latency::from_samples(&latencies).context("no endpoints measured")?;

    eprintln!(
        "allocating {} identities in etcd as another node ...",
        cli.identities
    );
    let allocation = peer::allocate_identities(outside.netns(), endpoint, cli.identities)?;
    let memory_identities = Memory::of(pid)?;
    eprintln!("applying {} scale policies ...", cli.policies);
    let expected: BTreeMap<u16, usize> = (0..cli.policies)
        .map(|p| {
            let entries = scale::expected_entries(p, cli.endpoints, cli.identities);
            (scale::port(p), entries)
        })
        .collect();
    let scale_applied = Instant::now();
    apply_in_batches(
        &node,
        (0..cli.policies).map(scale::policy).collect(),
        "the scale policies",
    )?;
    let scale_apply_returned = scale_applied.elapsed();
    let (entries, loaded) =
        loaded::wait_loaded(node.pin_dir().path(), &expected, scale_applied, within)?;
    let memory_loaded = Memory::of(pid)?;

    eprintln!("applying the egress policy in that state ...");
    let egress_applied = Instant::now();
    node.agent()
        .apply(vec![objects::egress_policy()])
        .context("applying the egress NetworkPolicy")?;
    let egress_returned = egress_applied.elapsed();
    let egress_latencies = enforcement::wait_enforced(
        node.pin_dir().path(),
        &addresses,
        endpoint_flags::EGRESS_ENFORCED,
        egress_applied,
        within,
    )?;
    let egress = Latency::from_samples(&egress_latencies).context("no endpoints measured")?;

    println!(
        "one node (IPv4 pod CIDR {}), real agent on a real etcd, {} pods created through the real CNI in {:.1} s ({:.0} ms per pod)",
        node.addressing().pod_cidr_v4(),
        cli.endpoints,
        created.as_secs_f64(),
        ms(created) / f64::from(cli.endpoints)
    );
    println!(
        "NetworkPolicy (podSelector {{}}, ingress only from app={} on 7000/TCP) applied through the objects API; \
         the apply call returned after {:.1} ms",
        objects::CLIENT,
        ms(apply_returned)
    );
    println!(
        "apply to INGRESS_ENFORCED in the pinned endpoints map (polled every 2 ms), over {} endpoints: {}",
        latencies.len(),
        percentiles(&latency)
    );
    println!(
        "{} identities allocated in etcd by another node in {:.1} s",
        cli.identities,
        allocation.as_secs_f64()
    );
    println!(
        "{} scale policies (CiliumNetworkPolicy, one port each) applied in calls of {APPLY_BATCH}, returned after {:.0} ms; \
         every entry they make ({} in the map in all) in the pinned policy map {:.0} ms after the first call",
        cli.policies,
        ms(scale_apply_returned),
        entries,
        ms(loaded)
    );
    println!(
        "with them loaded: NetworkPolicy (podSelector {{}}, egress only to app={} on 7000/TCP) applied, \
         the call returned after {:.1} ms; apply to EGRESS_ENFORCED over {} endpoints: {}",
        objects::CLIENT,
        ms(egress_returned),
        egress_latencies.len(),
        percentiles(&egress)
    );
    println!("agent memory:");
    println!(
        "  {} endpoints, no policy: {}",
        cli.endpoints,
        mib(memory_pods)
    );
    println!("  after the NetworkPolicy: {}", mib(memory_policy));
    println!(
        "  plus {} identities: {}",
        cli.identities,
        mib(memory_identities)
    );
    println!(
        "  plus {} policies ({} identities, {} endpoints): {}",
        cli.policies,
        cli.identities,
        cli.endpoints,
        mib(memory_loaded)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_cidr_is_widened_only_as_far_as_the_pods_need() {
        assert_eq!(pod_prefix_for(200), 24);
        assert_eq!(pod_prefix_for(250), 23);
        assert_eq!(pod_prefix_for(1000), 22);
        assert_eq!(pod_prefix_for(2000), 21);
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

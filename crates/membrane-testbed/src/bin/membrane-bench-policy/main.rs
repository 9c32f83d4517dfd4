//! `membrane-bench-policy`: on one test-bed node running the real agent, with N pods
//! created through the real CNI, the time from `apply` of a NetworkPolicy selecting every
//! pod to each pod's entry in the pinned endpoints map carrying `INGRESS_ENFORCED`
//! (p50, p99, max over the pods), and the agent's resident memory before and after.
#![forbid(unsafe_code)]

mod enforcement;
mod memory;
mod objects;

use anyhow::{Context, ensure};
use clap::Parser;
use membrane_testbed::pinned;
use membrane_testbed::report::Latency;
use membrane_testbed::{Node, Outside, Pod};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Measures how fast a policy reaches the datapath of many endpoints.
#[derive(Parser)]
#[command(name = "membrane-bench-policy", version)]
struct Cli {
    /// Pods on the node, all selected by the policy. At most 250: the test bed gives a
    /// node a /24 pod CIDR.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(2..=250))]
    endpoints: u32,
    /// Seconds every pod gets to show up in the endpoints map, and then to enforce.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=1800))]
    timeout: u64,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let within = Duration::from_secs(cli.timeout);
    let outside = Outside::create().context("creating the outside namespace")?;
    let node = Node::start(&outside, 1).context("starting node 1 and its agent")?;
    let pid = node.agent().pid().context("the agent has no process")?;
    node.agent()
        .apply(objects::workload(cli.endpoints))
        .context("applying the namespace and Pod objects")?;
    eprintln!("creating {} pods through the CNI ...", cli.endpoints);
    let started = Instant::now();
    let mut pods = Vec::with_capacity(cli.endpoints as usize);
    for index in 0..cli.endpoints {
        let name = objects::pod_name(index);
        pods.push(
            Pod::create(&node, objects::NAMESPACE, &name)
                .with_context(|| format!("creating pod {name}"))?,
        );
    }
    let created = started.elapsed();
    let addresses: Vec<IpAddr> = pods
        .iter()
        .map(|p| {
            p.ipv4()
                .map(IpAddr::V4)
                .context("a pod has no IPv4 address")
        })
        .collect::<anyhow::Result<_>>()?;
    wait_endpoints(&node, &addresses, within)?;
    let before_any = enforcement::wait_enforced(
        node.pin_dir().path(),
        &addresses[..1],
        Instant::now(),
        Duration::from_millis(1),
    );
    ensure!(
        before_any.is_err(),
        "a pod enforces ingress before any policy was applied"
    );
    let rss_before = memory::rss_kib(pid)?;

    let applied = Instant::now();
    node.agent()
        .apply(vec![objects::policy()])
        .context("applying the NetworkPolicy")?;
    let apply_returned = applied.elapsed();
    let latencies = enforcement::wait_enforced(node.pin_dir().path(), &addresses, applied, within)?;
    let rss_after = memory::rss_kib(pid)?;
    let latency = Latency::from_samples(&latencies).context("no endpoints measured")?;

    println!(
        "one node, real agent, {} pods created through the real CNI in {:.1} s ({:.0} ms per pod)",
        cli.endpoints,
        created.as_secs_f64(),
        created.as_secs_f64() * 1000.0 / f64::from(cli.endpoints)
    );
    println!(
        "NetworkPolicy (podSelector {{}}, ingress only from app={} on 7000/TCP) applied through the objects API; \
         the apply call returned after {:.1} ms",
        objects::CLIENT,
        apply_returned.as_secs_f64() * 1000.0
    );
    println!(
        "apply to INGRESS_ENFORCED in the pinned endpoints map (polled every 2 ms), over {} endpoints: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        latency.p50_us as f64 / 1000.0,
        latency.p99_us as f64 / 1000.0,
        latency.max_us as f64 / 1000.0
    );
    println!(
        "agent VmRSS with {} endpoints: {} KiB before the policy, {} KiB after",
        cli.endpoints, rss_before, rss_after
    );
    Ok(())
}

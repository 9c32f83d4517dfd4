//! `membrane-bench-cross-node`: TCP request/response latency and throughput between pods
//! on two nodes, through Membrane with the VXLAN tunnel and with native routing (two
//! agents sharing a real etcd), against the same node namespaces with plain veth pods
//! routed by the kernel, no eBPF and no tunnel, all measured in one run and printed as a
//! table with ratios.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use membrane_testbed::bench::{self, Measured};
use membrane_testbed::cluster::etcd_flags;
use membrane_testbed::workload::{self, DEFAULT_PORTS};
use membrane_testbed::{Etcd, Netns, NodeAddressing, Outside, Place, Pod, wiring};
use membrane_testbed::{Node, netlink};
use std::net::{IpAddr, SocketAddr};

/// Measures cross-node pod-to-pod TCP in both routing modes and through plain routing.
#[derive(Parser)]
#[command(name = "membrane-bench-cross-node", version)]
struct Cli {
    /// Request/response exchanges measured per path (after a warm-up).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    exchanges: u32,
    /// Seconds of throughput measurement per path.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    seconds: u32,
}

/// A client pod on node 1 and a server pod on node 2, both nodes' agents on one etcd,
/// routing in `mode`.
fn through_membrane(cli: &Cli, mode: &str) -> anyhow::Result<Measured> {
    let outside = Outside::create()?;
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4()))?;
    let endpoint = etcd.endpoint();
    let flags = etcd_flags(&endpoint, mode);
    let a = Node::start_with(&outside, 1, &flags)?;
    let b = Node::start_with(&outside, 2, &flags)?;
    if mode == "native" {
        for node in [&a, &b] {
            wiring::route_pod_cidrs(outside.netns(), node.addressing())?;
        }
    }
    let client = Pod::create(&a, "bench", "client")?;
    let server = Pod::create(&b, "bench", "server")?;
    let _serving = workload::serve(&server, DEFAULT_PORTS)?;
    let ip = server
        .ipv4()
        .context("the server pod has no IPv4 address")?;
    let target = SocketAddr::new(IpAddr::V4(ip), DEFAULT_PORTS.tcp);
    // The nodes learn each other's pods through etcd: wait until the path answers.
    let mut answered = false;
    for _ in 0..100 {
        let outcome = workload::ping(&client, target.ip(), 1)?;
        if outcome.success && outcome.report.failed == 0 {
            answered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    anyhow::ensure!(answered, "{mode}: the server pod never answered the client");
    Ok(bench::measure(&client, target, cli.exchanges, cli.seconds)?)
}

/// Node namespaces wired to the outside as the test bed's nodes are, each with one pod
/// joined by a plain veth in the node's pod CIDR, the outside routing each pod CIDR to
/// its node: the kernel forwards every hop, nothing else runs.
fn through_plain_routing(cli: &Cli) -> anyhow::Result<Measured> {
    let outside = Outside::create()?;
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for index in [1, 2] {
        let plan = NodeAddressing::new(index).context("a node index of the test bed")?;
        let node = Netns::create("plainnode")?;
        wiring::loopback_up(&node)?;
        wiring::enable_forwarding(&node)?;
        wiring::connect_node(&node, outside.netns(), plan)?;
        let cidr = plan.pod_cidr_v4();
        let gateway = format!(
            "{}/{}",
            cidr.hosts().next().context("a pod CIDR host")?,
            cidr.prefix_len()
        );
        let address = format!(
            "{}/{}",
            cidr.hosts().nth(1).context("a pod CIDR host")?,
            cidr.prefix_len()
        );
        let pod = Netns::create("plainpod")?;
        wiring::loopback_up(&pod)?;
        bench::plain_veth(&node, "pod0", gateway.parse()?, &pod, address.parse()?)?;
        netlink::run_in(outside.netns(), |handle| async move {
            netlink::add_route(&handle, cidr.into(), IpAddr::V4(plan.uplink_v4().addr())).await
        })?;
        nodes.push(node);
        pods.push((pod, address));
    }
    let (server, address) = &pods[1];
    let _serving = workload::serve(server, DEFAULT_PORTS)?;
    let ip: ipnet::Ipv4Net = address.parse()?;
    let target = SocketAddr::new(IpAddr::V4(ip.addr()), DEFAULT_PORTS.tcp);
    Ok(bench::measure(
        &pods[0].0,
        target,
        cli.exchanges,
        cli.seconds,
    )?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!(
        "cross-node pod-to-pod TCP over IPv4: {} request/response exchanges of 64 bytes, then {}s of throughput, one connection each",
        cli.exchanges, cli.seconds
    );
    println!("measuring through Membrane, VXLAN tunnel ...");
    let tunnel = through_membrane(&cli, "tunnel")?;
    println!("measuring through Membrane, native routing ...");
    let native = through_membrane(&cli, "native")?;
    println!("measuring through plain veths and kernel routing, no tunnel ...");
    let plain = through_plain_routing(&cli)?;
    println!();
    bench::print_table(
        &[("tunnel", tunnel), ("native", native)],
        ("kernel routing", plain),
    );
    Ok(())
}

//! `membrane-bench`: same-node pod-to-pod TCP request/response latency and throughput
//! through Membrane, against the same two pod namespaces joined by plain veths and
//! kernel routing with no eBPF (what the kernel alone does on this machine), measured in
//! one run and printed as a table with ratios. With `--flow-events`, the cost of
//! observability instead: Membrane with flow events off (drops only), per connection
//! (the default) and for every packet, as ratios to events off.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use membrane_testbed::bench::{self, Measured};
use membrane_testbed::workload::{self, DEFAULT_PORTS};
use membrane_testbed::{Netns, Node, Outside, Pod, wiring};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Measures pod-to-pod TCP through Membrane and through plain veths.
#[derive(Parser)]
#[command(name = "membrane-bench", version)]
struct Cli {
    /// Request/response exchanges measured per path (after a warm-up).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    exchanges: u32,
    /// Seconds of throughput measurement per path.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    seconds: u32,
    /// Compare the agent's flow-event settings instead of Membrane and plain routing.
    #[arg(long)]
    flow_events: bool,
}

/// Two pods on one Membrane node whose agent reports `flow_events` (the agent's
/// `--flow-events`).
fn through_membrane(cli: &Cli, flow_events: &str) -> anyhow::Result<Measured> {
    let outside = Outside::create()?;
    let node = Node::start_with(&outside, 1, &["--flow-events", flow_events])?;
    let client = Pod::create(&node, "bench", "client")?;
    let server = Pod::create(&node, "bench", "server")?;
    let _serving = workload::serve(&server, DEFAULT_PORTS)?;
    let ip = server
        .ipv4()
        .context("the server pod has no IPv4 address")?;
    let target = SocketAddr::new(IpAddr::V4(ip), DEFAULT_PORTS.tcp);
    Ok(bench::measure(&client, target, cli.exchanges, cli.seconds)?)
}

/// The same two pods joined by plain veths to a routing namespace, no eBPF anywhere:
/// `10.201.<n>.2/24` in pod n, through `10.201.<n>.1` on the router.
fn through_plain_routing(cli: &Cli) -> anyhow::Result<Measured> {
    let router = Netns::create("router")?;
    wiring::loopback_up(&router)?;
    wiring::enable_forwarding(&router)?;
    let client = Netns::create("client")?;
    let server = Netns::create("server")?;
    for (pod, subnet) in [(&client, 1), (&server, 2)] {
        wiring::loopback_up(pod)?;
        bench::plain_veth(
            &router,
            &format!("r{subnet}"),
            format!("10.201.{subnet}.1/24").parse()?,
            pod,
            format!("10.201.{subnet}.2/24").parse()?,
        )?;
    }
    let _serving = workload::serve(&server, DEFAULT_PORTS)?;
    let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 201, 2, 2)), DEFAULT_PORTS.tcp);
    Ok(bench::measure(&client, target, cli.exchanges, cli.seconds)?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!(
        "same-node pod-to-pod TCP over IPv4: {} request/response exchanges of 64 bytes, then {}s of throughput, one connection each",
        cli.exchanges, cli.seconds
    );
    if cli.flow_events {
        let mut measured = Vec::new();
        for (setting, label) in [
            ("drops", "events off (drops only)"),
            ("connections", "events per connection"),
            ("all", "events for every packet"),
        ] {
            println!("measuring through Membrane, --flow-events {setting} ...");
            measured.push((label, through_membrane(&cli, setting)?));
        }
        let off = measured.remove(0);
        println!();
        bench::print_table(&measured, off);
        return Ok(());
    }
    println!("measuring through Membrane ...");
    let membrane = through_membrane(&cli, "connections")?;
    println!("measuring through plain veths and kernel routing ...");
    let plain = through_plain_routing(&cli)?;
    println!();
    bench::print_table(&[("Membrane", membrane)], ("plain veth + routing", plain));
    Ok(())
}

//! `membrane-bench`: same-node pod-to-pod TCP request/response latency and throughput
//! through Membrane, against the same two pod namespaces joined by plain veths and
//! kernel routing with no eBPF (what the kernel alone does on this machine), measured in
//! one run and printed as a table with ratios.
#![forbid(unsafe_code)]

use anyhow::{Context, ensure};
use clap::Parser;
use membrane_testbed::netlink;
use membrane_testbed::report::{CountReport, Latency, ThroughputReport};
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome};
use membrane_testbed::{Netns, Node, Outside, Place, Pod, wiring};
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
}

/// Exchanges run first on each path and not counted.
const WARM_UP: u32 = 200;

/// What one path measured.
struct Measured {
    latency: Latency,
    bits_per_second: f64,
}

fn checked<R: std::fmt::Debug>(what: &str, outcome: Outcome<R>) -> anyhow::Result<R> {
    ensure!(
        outcome.success,
        "{what} failed: {:?} {}",
        outcome.report,
        outcome.stderr
    );
    Ok(outcome.report)
}

/// Warm-up, latency, then throughput from `client` to the TCP server at `target`.
fn measure(
    client: &(impl Place + ?Sized),
    target: SocketAddr,
    cli: &Cli,
) -> anyhow::Result<Measured> {
    checked("warm-up", workload::rr(client, target, WARM_UP)?)?;
    let rr: CountReport = checked(
        "request/response",
        workload::rr(client, target, cli.exchanges)?,
    )?;
    let throughput: ThroughputReport = checked(
        "throughput",
        workload::throughput(client, target, cli.seconds)?,
    )?;
    Ok(Measured {
        latency: rr.latency.context("no latency samples")?,
        bits_per_second: throughput.bits_per_second,
    })
}

/// Two pods on one Membrane node.
fn through_membrane(cli: &Cli) -> anyhow::Result<Measured> {
    let outside = Outside::create()?;
    let node = Node::start(&outside, 1)?;
    let client = Pod::create(&node, "bench", "client")?;
    let server = Pod::create(&node, "bench", "server")?;
    let _serving = workload::serve(&server, DEFAULT_PORTS)?;
    let ip = server
        .ipv4()
        .context("the server pod has no IPv4 address")?;
    measure(
        &client,
        SocketAddr::new(IpAddr::V4(ip), DEFAULT_PORTS.tcp),
        cli,
    )
}

/// Joins `pod` to `router` by a veth: `eth0` in the pod with `10.201.<subnet>.2/24` and a
/// default route through the router's end, `10.201.<subnet>.1/24`.
fn plain_veth(router: &Netns, pod: &Netns, subnet: u8) -> anyhow::Result<()> {
    let router_end = format!("r{subnet}");
    let pod_file = pod.open()?;
    netlink::run_in(router, |handle| {
        let router_end = router_end.clone();
        async move {
            netlink::create_veth(&handle, &router_end, "eth0").await?;
            netlink::move_to_netns(&handle, "eth0", &pod_file).await?;
            let index = netlink::index_of(&handle, &router_end).await?;
            netlink::add_address(
                &handle,
                index,
                IpAddr::V4(Ipv4Addr::new(10, 201, subnet, 1)),
                24,
            )
            .await?;
            netlink::set_up(&handle, index).await
        }
    })?;
    netlink::run_in(pod, |handle| async move {
        let index = netlink::index_of(&handle, "eth0").await?;
        netlink::add_address(
            &handle,
            index,
            IpAddr::V4(Ipv4Addr::new(10, 201, subnet, 2)),
            24,
        )
        .await?;
        netlink::set_up(&handle, index).await?;
        netlink::add_default_route(&handle, IpAddr::V4(Ipv4Addr::new(10, 201, subnet, 1))).await
    })?;
    Ok(())
}

/// The same two pods joined by plain veths to a routing namespace, no eBPF anywhere.
fn through_plain_routing(cli: &Cli) -> anyhow::Result<Measured> {
    let router = Netns::create("router")?;
    wiring::loopback_up(&router)?;
    wiring::enable_forwarding(&router)?;
    let client = Netns::create("client")?;
    let server = Netns::create("server")?;
    for (pod, subnet) in [(&client, 1), (&server, 2)] {
        wiring::loopback_up(pod)?;
        plain_veth(&router, pod, subnet)?;
    }
    let _serving = workload::serve(&server, DEFAULT_PORTS)?;
    measure(
        &client,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 201, 2, 2)), DEFAULT_PORTS.tcp),
        cli,
    )
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!(
        "same-node pod-to-pod TCP over IPv4: {} request/response exchanges of 64 bytes, then {}s of throughput, one connection each",
        cli.exchanges, cli.seconds
    );
    println!("measuring through Membrane ...");
    let membrane = through_membrane(&cli)?;
    println!("measuring through plain veths and kernel routing ...");
    let plain = through_plain_routing(&cli)?;
    println!();
    println!(
        "| {:<28} | {:>12} | {:>20} | {:>8} |",
        "metric", "Membrane", "plain veth + routing", "ratio"
    );
    println!("|{:-<30}|{:->14}|{:->22}|{:->10}|", "", "", "", "");
    let row = |name: &str, ours: f64, limit: f64, digits: usize| {
        println!(
            "| {name:<28} | {ours:>12.digits$} | {limit:>20.digits$} | {:>8.2} |",
            ours / limit
        );
    };
    row(
        "request/response p50 (µs)",
        membrane.latency.p50_us as f64,
        plain.latency.p50_us as f64,
        0,
    );
    row(
        "request/response p99 (µs)",
        membrane.latency.p99_us as f64,
        plain.latency.p99_us as f64,
        0,
    );
    row(
        "throughput (Gbit/s)",
        membrane.bits_per_second / 1e9,
        plain.bits_per_second / 1e9,
        2,
    );
    println!();
    println!(
        "ratio = Membrane / plain: below 1 is faster for latency, above 1 is faster for throughput"
    );
    Ok(())
}

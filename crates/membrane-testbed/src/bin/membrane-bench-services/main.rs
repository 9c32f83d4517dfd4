//! `membrane-bench-services`: the kube-proxy replacement against kube-proxy's own rule
//! shapes. For each number of Services, in one run: new-connection latency and rate
//! through a ClusterIP and request latency on an established connection, for Membrane
//! with socket LB, Membrane with per-packet LB only, kube-proxy-shaped iptables rules,
//! kube-proxy-shaped nftables rules, and the client connecting straight to a backend
//! (the physical limit); plus the time to program every Service and to add one more, and
//! the maps' kernel memory. Printed as one table.
#![forbid(unsafe_code)]

mod catalog;
mod kube_proxy;
mod membrane;
mod rounds;
mod setup;
mod table;
mod topology;

use anyhow::ensure;
use clap::{Parser, ValueEnum};
use setup::Ready;
use std::time::{Duration, Instant};
use table::{Path, Row};
use topology::BACKENDS;

/// Measures Service load balancing against kube-proxy's rule shapes.
#[derive(Parser)]
#[command(name = "membrane-bench-services", version)]
struct Cli {
    /// Numbers of Services, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000,100000")]
    sizes: Vec<u32>,
    /// A short run: 100 and 1,000 Services, fewer connections.
    #[arg(long)]
    quick: bool,
    /// New connections measured per path (after a warm-up), over all rounds.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(100..=50_000))]
    connections: u32,
    /// Request/response exchanges per path, over all rounds.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    exchanges: u32,
    /// Rounds: every path is measured once per round, paths taking turns, so that the
    /// shared machine's load falls on all of them alike.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Which iptables loads the kube-proxy iptables shape.
    #[arg(long, value_enum, default_value_t = IptablesBackend::Legacy)]
    iptables: IptablesBackend,
    /// Seconds a baseline's rule load may take before it is given up (and reported).
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=1800))]
    baseline_timeout: u64,
}

/// The iptables flavour of the baseline.
#[derive(Clone, Copy, ValueEnum)]
enum IptablesBackend {
    /// xtables through `iptables-legacy-restore`: the classic kube-proxy datapath.
    Legacy,
    /// The nf_tables backend through `iptables-restore`.
    Nft,
}

impl IptablesBackend {
    fn restore(self) -> &'static str {
        match self {
            IptablesBackend::Legacy => "iptables-legacy-restore",
            IptablesBackend::Nft => "iptables-restore",
        }
    }
}

/// Prepares `path` at `n` Services.
fn prepare(path: Path, n: u32, cli: &Cli) -> anyhow::Result<Ready> {
    let timeout = Duration::from_secs(cli.baseline_timeout);
    match path {
        Path::Direct => setup::direct(),
        Path::SocketLb | Path::PerPacket | Path::MembraneDirect => setup::membrane(path, n),
        Path::Iptables => setup::kube_proxy(
            path,
            &kube_proxy::iptables::Iptables {
                restore: cli.iptables.restore(),
            },
            n,
            timeout,
        ),
        Path::Nftables => setup::kube_proxy(path, &kube_proxy::nftables::Nftables, n, timeout),
    }
}

/// Every path at `n` Services: each prepared on its own bed, then measured in
/// interleaved rounds; a path that fails becomes a row saying why.
fn size(n: u32, cli: &Cli) -> Vec<Row> {
    let mut ready = Vec::new();
    let mut rows = Vec::new();
    for path in [
        Path::Direct,
        Path::SocketLb,
        Path::PerPacket,
        Path::Iptables,
        Path::Nftables,
        Path::MembraneDirect,
    ] {
        eprintln!("{n} Services: preparing {path:?} ...");
        match prepare(path, n, cli) {
            Ok(r) => ready.push(r),
            Err(e) => rows.push(Row::failed(path, e)),
        }
    }
    eprintln!(
        "{n} Services: measuring {} paths in {} rounds ...",
        ready.len(),
        cli.rounds
    );
    rows.extend(rounds::measure(
        &ready,
        cli.rounds,
        cli.connections,
        cli.exchanges,
    ));
    rows.sort_by_key(|r| r.path());
    rows
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.sizes = vec![100, 1000];
        cli.connections = cli.connections.min(1000);
        cli.exchanges = cli.exchanges.min(1000);
    }
    ensure!(
        cli.sizes.iter().all(|n| (1..=1_000_000).contains(n)),
        "--sizes: every size must be 1 to 1,000,000 Services"
    );
    println!(
        "ClusterIP TCP over IPv4, {BACKENDS} backends per Service, client and backends in pods on one node; \
         per path {} new connections spread over every Service (connect, 64-byte line out and back, close, one at a time) \
         and {} request/response exchanges on one established connection, in {} interleaved rounds; \
         iptables rules loaded by {}",
        cli.connections,
        cli.exchanges,
        cli.rounds,
        cli.iptables.restore()
    );
    let started = Instant::now();
    let mut tables = Vec::new();
    for &n in &cli.sizes {
        tables.push((n, size(n, &cli)));
    }
    println!();
    table::print(&tables);
    println!();
    println!("whole run: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

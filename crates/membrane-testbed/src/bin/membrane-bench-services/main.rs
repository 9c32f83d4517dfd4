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
mod table;
mod topology;

use anyhow::{Context, ensure};
use clap::Parser;
use kube_proxy::RuleShape;
use membrane::Membrane;
use membrane_testbed::Place;
use membrane_testbed::report::{ConnectsReport, CountReport};
use membrane_testbed::workload::{self, Outcome};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use table::{Measured, Path, Row};
use topology::{BACKENDS, Bed};

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
    /// New connections measured per path (after a warm-up).
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(100..=50_000))]
    connections: u32,
    /// Request/response exchanges on one connection per path.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(100..=200_000))]
    exchanges: u32,
    /// Seconds a baseline's rule load may take before it is given up (and reported).
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=1800))]
    baseline_timeout: u64,
}

/// Connections made first on each path and not counted.
const WARM_UP: u32 = 300;

fn checked<R: std::fmt::Debug>(what: &str, outcome: Outcome<R>) -> anyhow::Result<R> {
    ensure!(
        outcome.success,
        "{what} failed: {:?} {}",
        outcome.report,
        outcome.stderr
    );
    Ok(outcome.report)
}

/// Warm-up, new connections over `spread` addresses from `first`, then request/response
/// on one connection to `established`. Failed connections are counted, not fatal: a
/// path that loses connections pays for each with a client time-out, and the table shows
/// how many.
fn measure(
    client: &(impl Place + ?Sized),
    first: SocketAddr,
    spread: u64,
    established: SocketAddr,
    cli: &Cli,
) -> anyhow::Result<Measured> {
    workload::connects(client, first, spread, WARM_UP)?;
    let connects: ConnectsReport =
        workload::connects(client, first, spread, cli.connections)?.report;
    ensure!(
        connects.ok > 0,
        "no connection succeeded: {:?}",
        connects.first_error
    );
    if let Some(error) = &connects.first_error {
        eprintln!(
            "  {} of {} connections failed, first: {error}",
            connects.failed, cli.connections
        );
    }
    let rr: CountReport = checked(
        "request/response",
        workload::rr(client, established, cli.exchanges)?,
    )?;
    Ok(Measured {
        connect: connects.latency.context("no connection latency")?,
        per_second: connects.ok as f64 / (connects.elapsed_us.max(1) as f64 / 1e6),
        failed: connects.failed,
        rr: rr.latency.context("no request latency")?,
    })
}

/// The client straight to the backends: no Service, no rules, no eBPF.
fn direct(cli: &Cli) -> anyhow::Result<Row> {
    let bed = Bed::create()?;
    let backend = topology::first_backend();
    let measured = measure(&bed.client, backend, u64::from(BACKENDS), backend, cli)?;
    Ok(Row::measured(Path::Direct, measured))
}

/// A kube-proxy rule shape with `n` Services.
fn baseline(path: Path, shape: &dyn RuleShape, n: u32, cli: &Cli) -> anyhow::Result<Row> {
    let bed = Bed::create()?;
    let timeout = Duration::from_secs(cli.baseline_timeout);
    let program = kube_proxy::load(&bed, shape, &shape.program_all(n), timeout)
        .with_context(|| format!("loading {n} Services"))?;
    let add = kube_proxy::load(&bed, shape, &shape.add_one(n), timeout)
        .context("adding one more Service")?;
    let measured = measure(
        &bed.client,
        catalog::frontend(0),
        u64::from(n + 1),
        catalog::frontend(n / 2),
        cli,
    )?;
    let mut row = Row::measured(path, measured);
    row.program = Some(program);
    row.add_one = Some(add);
    Ok(row)
}

/// Membrane with `n` Services, on its own bed: through the socket LB (`path` is
/// [`Path::SocketLb`]) or per packet only.
fn through_membrane(path: Path, n: u32, cli: &Cli) -> anyhow::Result<Row> {
    let bed = Bed::create()?;
    let mut membrane = Membrane::load(&bed, n)?;
    let program = membrane.program(n)?;
    let started = Instant::now();
    membrane.add(n)?;
    let add = started.elapsed();
    let entries = membrane.service_entries();
    ensure!(
        entries == (n as usize + 1) * (usize::from(BACKENDS) + 1),
        "the services map holds {entries} entries for {} Services",
        n + 1
    );
    let footprint = membrane.footprint()?;
    let spread = u64::from(n + 1);
    let (first, established) = (catalog::frontend(0), catalog::frontend(n / 2));
    let measured = if path == Path::SocketLb {
        measure(
            &membrane.socket_lb_client(&bed.client),
            first,
            spread,
            established,
            cli,
        )
    } else {
        measure(&bed.client, first, spread, established, cli)
    }
    .with_context(|| format!("datapath drops: [{}]", membrane.drops()))?;
    let mut row = Row::measured(path, measured);
    row.program = Some(program);
    row.add_one = Some(add);
    row.lb_bytes = Some(footprint.lb_bytes);
    row.all_bytes = Some(footprint.all_bytes);
    Ok(row)
}

/// Every path at `n` Services; a path that fails becomes a row saying why.
fn size(n: u32, cli: &Cli) -> Vec<Row> {
    let mut rows = Vec::new();
    eprintln!("{n} Services: direct ...");
    rows.push(direct(cli).unwrap_or_else(|e| Row::failed(Path::Direct, &e)));
    for path in [Path::SocketLb, Path::PerPacket] {
        eprintln!("{n} Services: {path:?} ...");
        rows.push(through_membrane(path, n, cli).unwrap_or_else(|e| Row::failed(path, &e)));
    }
    eprintln!("{n} Services: iptables ...");
    rows.push(
        baseline(Path::Iptables, &kube_proxy::iptables::Iptables, n, cli)
            .unwrap_or_else(|e| Row::failed(Path::Iptables, &e)),
    );
    eprintln!("{n} Services: nftables ...");
    rows.push(
        baseline(Path::Nftables, &kube_proxy::nftables::Nftables, n, cli)
            .unwrap_or_else(|e| Row::failed(Path::Nftables, &e)),
    );
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
        "ClusterIP TCP over IPv4, {} backends per Service, client and backends in pods on one node; \
         per path {} new connections spread over every Service (connect, 64-byte line out and back, close, one at a time) \
         and {} request/response exchanges on one established connection",
        BACKENDS, cli.connections, cli.exchanges
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

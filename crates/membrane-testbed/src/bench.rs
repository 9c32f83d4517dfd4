//! Pieces of the whole-system benchmarks: TCP request/response latency and throughput
//! from a client to a server, pods joined to a routing namespace by plain veths for
//! kernel-only baselines, and a table of every path next to its baseline with ratios.

use crate::netlink::{self, NetlinkError};
use crate::netns::{Netns, NetnsError};
use crate::process::Place;
use crate::report::{CountReport, Latency, ThroughputReport};
use crate::workload::{self, Outcome, WorkloadError};
use ipnet::Ipv4Net;
use std::net::{IpAddr, SocketAddr};

/// Exchanges run first on each path and not counted.
pub const WARM_UP: u32 = 200;

/// Errors of a measurement.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The workload client could not run.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// The workload client ran and reported a failure.
    #[error("{what} to {target} failed: {detail}")]
    Failed {
        /// The measurement.
        what: &'static str,
        /// Its target.
        target: SocketAddr,
        /// The client's report and standard error.
        detail: String,
    },
    /// The request/response client reported no latency samples.
    #[error("request/response to {target} reported no latency samples")]
    NoSamples {
        /// Its target.
        target: SocketAddr,
    },
}

/// What one path measured.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Request/response latency of 64-byte exchanges on one connection.
    pub latency: Latency,
    /// Throughput of one connection.
    pub bits_per_second: f64,
}

fn checked<R: std::fmt::Debug>(
    what: &'static str,
    target: SocketAddr,
    outcome: Outcome<R>,
) -> Result<R, BenchError> {
    if outcome.success {
        Ok(outcome.report)
    } else {
        Err(BenchError::Failed {
            what,
            target,
            detail: format!("{:?} {}", outcome.report, outcome.stderr),
        })
    }
}

/// Warm-up, `exchanges` request/response exchanges, then `seconds` of throughput from
/// `client` to the workload server's TCP port at `target`.
pub fn measure(
    client: &(impl Place + ?Sized),
    target: SocketAddr,
    exchanges: u32,
    seconds: u32,
) -> Result<Measured, BenchError> {
    checked("warm-up", target, workload::rr(client, target, WARM_UP)?)?;
    let rr: CountReport = checked(
        "request/response",
        target,
        workload::rr(client, target, exchanges)?,
    )?;
    let throughput: ThroughputReport = checked(
        "throughput",
        target,
        workload::throughput(client, target, seconds)?,
    )?;
    Ok(Measured {
        latency: rr.latency.ok_or(BenchError::NoSamples { target })?,
        bits_per_second: throughput.bits_per_second,
    })
}

/// Errors while joining a pod namespace by a plain veth.
#[derive(Debug, thiserror::Error)]
pub enum PlainVethError {
    /// A namespace could not be opened.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Joins `pod` to `router` by a veth, no eBPF: `router_end` in the router with
/// `gateway`'s address and prefix, `eth0` in the pod with `address` in that prefix and a
/// default route through `gateway`.
pub fn plain_veth(
    router: &Netns,
    router_end: &str,
    gateway: Ipv4Net,
    pod: &Netns,
    address: Ipv4Net,
) -> Result<(), PlainVethError> {
    let pod_file = pod.open()?;
    let router_end = router_end.to_string();
    netlink::run_in(router, |handle| async move {
        netlink::create_veth(&handle, &router_end, "eth0").await?;
        netlink::move_to_netns(&handle, "eth0", &pod_file).await?;
        let index = netlink::index_of(&handle, &router_end).await?;
        netlink::add_address(
            &handle,
            index,
            IpAddr::V4(gateway.addr()),
            gateway.prefix_len(),
        )
        .await?;
        netlink::set_up(&handle, index).await
    })?;
    netlink::run_in(pod, |handle| async move {
        let index = netlink::index_of(&handle, "eth0").await?;
        netlink::add_address(
            &handle,
            index,
            IpAddr::V4(address.addr()),
            address.prefix_len(),
        )
        .await?;
        netlink::set_up(&handle, index).await?;
        netlink::add_default_route(&handle, IpAddr::V4(gateway.addr())).await
    })?;
    Ok(())
}

/// Prints a markdown table: one column per path in `paths`, then `baseline`, then each
/// path's ratio to the baseline, for the latency percentiles and the throughput.
pub fn print_table(paths: &[(&str, Measured)], baseline: (&str, Measured)) {
    let mut header = format!("| {:<26} |", "metric");
    for (name, _) in paths.iter().chain([&baseline]) {
        header.push_str(&format!(" {name:>16} |"));
    }
    for (name, _) in paths {
        header.push_str(&format!(" {:>16} |", format!("{name} ratio")));
    }
    println!("{header}");
    let columns = 2 * paths.len() + 1;
    println!("|{:-<28}|{}", "", format!("{:->18}|", "").repeat(columns));
    let row = |metric: &str, value: fn(&Measured) -> f64, digits: usize| {
        let mut line = format!("| {metric:<26} |");
        for (_, measured) in paths.iter().chain([&baseline]) {
            line.push_str(&format!(" {:>16.digits$} |", value(measured)));
        }
        for (_, measured) in paths {
            line.push_str(&format!(
                " {:>16.2} |",
                value(measured) / value(&baseline.1)
            ));
        }
        println!("{line}");
    };
    row("request/response p50 (µs)", |m| m.latency.p50_us as f64, 0);
    row("request/response p99 (µs)", |m| m.latency.p99_us as f64, 0);
    row("throughput (Gbit/s)", |m| m.bits_per_second / 1e9, 2);
    println!();
    println!(
        "ratio = path / {}: below 1 is faster for latency, above 1 is faster for throughput",
        baseline.0
    );
}

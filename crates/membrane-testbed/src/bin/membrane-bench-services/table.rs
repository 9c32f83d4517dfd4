//! The results: one row per path and number of Services, printed as one Markdown table
//! with each path's latency and rate against the direct path of the same size.

use membrane_testbed::report::Latency;
use std::time::Duration;

/// The paths compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// (a) Membrane, socket-level LB.
    SocketLb,
    /// (b) Membrane, per-packet LB only.
    PerPacket,
    /// (c) kube-proxy-shaped iptables.
    Iptables,
    /// (d) kube-proxy-shaped nftables.
    Nftables,
    /// (e) the client straight to a backend.
    Direct,
    /// (f) the client straight to a backend through Membrane's endpoint programs, no
    /// Service: what any pod-to-pod packet pays, to tell it from the Service cost.
    MembraneDirect,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::SocketLb => "(a) Membrane socket LB",
            Path::PerPacket => "(b) Membrane per-packet LB",
            Path::Iptables => "(c) iptables (kube-proxy shape)",
            Path::Nftables => "(d) nftables (kube-proxy shape)",
            Path::Direct => "(e) direct to backend",
            Path::MembraneDirect => "(f) direct to backend through Membrane",
        }
    }
}

/// What one path measured.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// New-connection latency.
    pub connect: Latency,
    /// New connections per second, one at a time.
    pub per_second: f64,
    /// Connections that failed (each cost the client a time-out).
    pub failed: u64,
    /// Request latency on an established connection.
    pub rr: Latency,
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    path: Path,
    result: Result<Measured, String>,
    /// Time to program every Service.
    pub program: Option<Duration>,
    /// Time to add one more.
    pub add_one: Option<Duration>,
    /// Kernel memory of the load-balancing maps and of every sized map.
    pub memory: Option<(u64, u64)>,
}

impl Row {
    /// A path that was measured.
    pub fn measured(path: Path, measured: Measured) -> Row {
        Row {
            path,
            result: Ok(measured),
            program: None,
            add_one: None,
            memory: None,
        }
    }

    /// A path that could not be measured, and why.
    pub fn failed(path: Path, reason: impl std::fmt::Display) -> Row {
        Row {
            path,
            result: Err(format!("{reason:#}")),
            program: None,
            add_one: None,
            memory: None,
        }
    }

    /// The row's path.
    pub fn path(&self) -> Path {
        self.path
    }
}

fn ratio(ours: f64, direct: Option<f64>) -> String {
    match direct {
        Some(d) if d > 0.0 => format!("{:.2}", ours / d),
        _ => "-".into(),
    }
}

fn duration(d: Option<Duration>) -> String {
    match d {
        Some(d) if d >= Duration::from_secs(1) => format!("{:.2} s", d.as_secs_f64()),
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
        None => "-".into(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// Prints every size's rows as one table; ratios are to the direct row of the same size
/// (latency: below 1 is faster; rate: above 1 is faster).
pub fn print(sizes: &[(u32, Vec<Row>)]) {
    println!(
        "| Services | path | connect p50 µs | connect p99 µs | conn/s | request p50 µs | request p99 µs | p50 / direct | p99 / direct | conn/s / direct | failed conns | program all | add one | LB maps MiB (all maps) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for (n, rows) in sizes {
        let direct = rows
            .iter()
            .find(|r| r.path == Path::Direct)
            .and_then(|r| r.result.as_ref().ok());
        for row in rows {
            let memory = match row.memory {
                Some((lb, all)) => format!("{} ({})", mib(lb), mib(all)),
                None => "-".into(),
            };
            match &row.result {
                Ok(m) => println!(
                    "| {n} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {memory} |",
                    row.path.label(),
                    m.connect.p50_us,
                    m.connect.p99_us,
                    m.per_second,
                    m.rr.p50_us,
                    m.rr.p99_us,
                    ratio(
                        m.connect.p50_us as f64,
                        direct.map(|d| d.connect.p50_us as f64)
                    ),
                    ratio(
                        m.connect.p99_us as f64,
                        direct.map(|d| d.connect.p99_us as f64)
                    ),
                    ratio(m.per_second, direct.map(|d| d.per_second)),
                    m.failed,
                    duration(row.program),
                    duration(row.add_one),
                ),
                Err(reason) => {
                    failures.push(format!("{n} Services, {}: {reason}", row.path.label()));
                    println!(
                        "| {n} | {} | not measured (note {}) | | | | | | | | | | | |",
                        row.path.label(),
                        failures.len()
                    );
                }
            }
        }
    }
    for (i, failure) in failures.iter().enumerate() {
        println!();
        println!("note {}: {failure}", i + 1);
    }
}

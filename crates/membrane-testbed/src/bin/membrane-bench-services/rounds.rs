//! Measuring the prepared paths in interleaved rounds: each round gives every path its
//! share of new connections and request/response exchanges in turn, so that load from
//! elsewhere on the shared machine falls on every path alike. Percentiles are the
//! median over rounds; rates are over all rounds.

use crate::setup::Ready;
use crate::table::{Measured, Row};
use anyhow::{Context, ensure};
use membrane_testbed::report::{ConnectsReport, CountReport, Latency};
use membrane_testbed::workload;

/// Connections made first on each path and not counted.
const WARM_UP: u32 = 300;

/// What one path gathered over the rounds.
#[derive(Default)]
struct Tally {
    connect: Vec<Latency>,
    rr: Vec<Latency>,
    ok: u64,
    failed: u64,
    elapsed_us: u64,
    error: Option<String>,
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// The median p50 and p99 of several runs, and the largest maximum.
fn combined(runs: &[Latency]) -> Latency {
    Latency {
        p50_us: median(runs.iter().map(|l| l.p50_us).collect()),
        p99_us: median(runs.iter().map(|l| l.p99_us).collect()),
        max_us: runs.iter().map(|l| l.max_us).max().unwrap_or(0),
    }
}

impl Tally {
    fn measured(&self) -> Measured {
        Measured {
            connect: combined(&self.connect),
            per_second: self.ok as f64 / (self.elapsed_us.max(1) as f64 / 1e6),
            failed: self.failed,
            rr: combined(&self.rr),
        }
    }
}

/// One round of one path: `connections` new connections, then `exchanges` on one.
fn round(
    ready: &Ready,
    connections: u32,
    exchanges: u32,
) -> anyhow::Result<(ConnectsReport, CountReport)> {
    ready.with_client(|client| {
        let connects = workload::connects(client, ready.first, ready.spread, connections)?.report;
        ensure!(
            connects.ok > 0,
            "no connection succeeded: {:?}",
            connects.first_error
        );
        if let Some(error) = &connects.first_error {
            eprintln!(
                "  {:?}: {} of {connections} connections failed, first: {error}",
                ready.path, connects.failed
            );
        }
        let rr = workload::rr(client, ready.established, exchanges)?;
        ensure!(
            rr.success,
            "request/response failed: {:?} {}",
            rr.report,
            rr.stderr
        );
        Ok((connects, rr.report))
    })
}

/// Warms every path up, measures them in `rounds` rounds sharing `connections` and
/// `exchanges` each, and returns a row per path.
pub fn measure(ready: &[Ready], rounds: u32, connections: u32, exchanges: u32) -> Vec<Row> {
    let per_round = ((connections / rounds).max(1), (exchanges / rounds).max(1));
    let mut tallies: Vec<Tally> = ready.iter().map(|_| Tally::default()).collect();
    for (r, tally) in ready.iter().zip(&mut tallies) {
        let warm = r.with_client(|client| workload::connects(client, r.first, r.spread, WARM_UP));
        if let Err(e) = warm {
            tally.error = Some(format!("warm-up: {e:#}"));
        }
    }
    for _ in 0..rounds {
        for (r, tally) in ready.iter().zip(&mut tallies) {
            if tally.error.is_some() {
                continue;
            }
            match round(r, per_round.0, per_round.1) {
                Ok((connects, rr)) => {
                    tally.ok += connects.ok;
                    tally.failed += connects.failed;
                    tally.elapsed_us += connects.elapsed_us;
                    let latencies = connects
                        .latency
                        .context("no connection latency")
                        .and_then(|c| Ok((c, rr.latency.context("no request latency")?)));
                    match latencies {
                        Ok((c, l)) => {
                            tally.connect.push(c);
                            tally.rr.push(l);
                        }
                        Err(e) => tally.error = Some(format!("{e:#}")),
                    }
                }
                Err(e) => {
                    let drops = r
                        .drops()
                        .map(|d| format!("; datapath drops: [{d}]"))
                        .unwrap_or_default();
                    tally.error = Some(format!("{e:#}{drops}"));
                }
            }
        }
    }
    ready
        .iter()
        .zip(tallies)
        .map(|(r, tally)| match &tally.error {
            Some(error) => Row::failed(r.path, error),
            None => {
                let mut row = Row::measured(r.path, tally.measured());
                row.program = r.program;
                row.add_one = r.add_one;
                row.memory = r.memory;
                row
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_combine_as_median_percentiles_and_the_largest_maximum() {
        let l = |p50, p99, max| Latency {
            p50_us: p50,
            p99_us: p99,
            max_us: max,
        };
        let c = combined(&[l(10, 90, 100), l(30, 20, 300), l(20, 50, 200)]);
        assert_eq!((c.p50_us, c.p99_us, c.max_us), (20, 50, 300));
    }
}

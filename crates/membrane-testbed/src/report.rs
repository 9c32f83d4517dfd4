//! What the workload binary's clients print: one JSON object of counters each. Shared by
//! the binary, which prints them, and the test helpers, which parse them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`, or `None` if there are none.
    pub fn from_samples(samples: &[Duration]) -> Option<Latency> {
        let mut micros: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
        micros.sort_unstable();
        let rank = |percent: u64| {
            let n = micros.len() as u64;
            let index = (percent * n).div_ceil(100).max(1) - 1;
            micros[index as usize]
        };
        (!micros.is_empty()).then(|| Latency {
            p50_us: rank(50),
            p99_us: rank(99),
            max_us: *micros.last().expect("not empty"),
        })
    }
}

/// Outcome of `tcp`, `udp`, `http`, `ping` and `rr`: how many operations succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountReport {
    /// The client mode (`tcp`, `udp`...).
    pub mode: String,
    /// What it talked to.
    pub target: String,
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Latency of the successful operations.
    pub latency: Option<Latency>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Outcome of `connects`: short connections one after another over a block of
/// addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectsReport {
    /// The first address of the block, with the port.
    pub first: String,
    /// How many consecutive addresses the connections were spread over.
    pub spread: u64,
    /// Connections that exchanged their line.
    pub ok: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Latency of each successful connection: connect, one line out and back, close.
    pub latency: Option<Latency>,
    /// Wall time of the whole run, in microseconds.
    pub elapsed_us: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Outcome of `whoami`: the source address the server saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoamiReport {
    /// The client's address as seen by the server.
    pub peer: SocketAddr,
}

/// Outcome of `servers`: which server answered each of a run of new connections (or
/// datagrams, each from a new socket), by the server's own address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServersReport {
    /// What it talked to.
    pub target: String,
    /// Answers per server address.
    pub servers: BTreeMap<SocketAddr, u64>,
    /// Connections that got no answer.
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Outcome of `stream`: one long-lived connection exchanging messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    /// What it talked to.
    pub target: String,
    /// Messages sent.
    pub sent: u64,
    /// Echoes received intact and in order.
    pub received: u64,
    /// Failed exchanges (timeout, reset, wrong echo).
    pub errors: u64,
    /// True if the connection was ever lost or stalled past the timeout.
    pub broke: bool,
    /// New connections opened after a break.
    pub reconnects: u64,
    /// Round-trip latency of the exchanges.
    pub latency: Option<Latency>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Outcome of `throughput`: bytes the server acknowledged over the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputReport {
    /// What it talked to.
    pub target: String,
    /// Bytes the server received.
    pub bytes: u64,
    /// How long the client sent.
    pub seconds: f64,
    /// `bytes * 8 / seconds`.
    pub bits_per_second: f64,
}

/// First line the server prints once every listener is bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeReady {
    /// TCP echo port.
    pub tcp: Option<u16>,
    /// UDP echo port.
    pub udp: Option<u16>,
    /// HTTP port.
    pub http: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = ms(&(1..=100).collect::<Vec<_>>());
        let latency = Latency::from_samples(&samples).unwrap();
        assert_eq!(latency.p50_us, 50_000);
        assert_eq!(latency.p99_us, 99_000);
        assert_eq!(latency.max_us, 100_000);
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        let latency = Latency::from_samples(&ms(&[7])).unwrap();
        assert_eq!(
            (latency.p50_us, latency.p99_us, latency.max_us),
            (7000, 7000, 7000)
        );
    }

    #[test]
    fn a_servers_report_reads_back_with_addresses_as_keys() {
        let report = ServersReport {
            target: "10.96.0.1:80".into(),
            servers: [
                ("10.0.0.1:80".parse().unwrap(), 3),
                ("[fd00::1]:80".parse().unwrap(), 1),
            ]
            .into(),
            failed: 0,
            first_error: None,
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            serde_json::from_str::<ServersReport>(&json).unwrap(),
            report
        );
    }

    #[test]
    fn no_samples_give_no_latency() {
        assert_eq!(Latency::from_samples(&[]), None);
    }

    #[test]
    fn unsorted_samples_are_sorted_first() {
        let latency = Latency::from_samples(&ms(&[9, 1, 5])).unwrap();
        assert_eq!(latency.p50_us, 5000);
        assert_eq!(latency.max_us, 9000);
    }
}

//! Conntrack garbage collection: expiring idle connections by their state's timeout.

use crate::error::DatapathError;
use crate::maps::Maps;
use membrane_common::ct::{ct_flags, ct_timeouts};
use membrane_common::tuple::proto;
use membrane_common::{CtEntry, CtKey};
use std::time::Duration;

/// What a collection pass saw and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Entries present before the pass.
    pub entries: usize,
    /// Entries removed as expired.
    pub expired: usize,
}

/// The monotonic clock `bpf_ktime_get_ns` reads.
fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// How long a connection may stay idle before collection removes it, by its state
/// (Cilium's `--bpf-ct-timeout-regular-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTimeouts {
    /// An established TCP connection.
    pub tcp_established: Duration,
    /// A TCP connection that has not completed its handshake, or has closed.
    pub tcp_short: Duration,
    /// UDP, ICMP and anything else without connection state.
    pub datagram: Duration,
}

impl Default for CtTimeouts {
    fn default() -> Self {
        CtTimeouts {
            tcp_established: Duration::from_nanos(ct_timeouts::TCP_ESTABLISHED_NS),
            tcp_short: Duration::from_nanos(ct_timeouts::TCP_SHORT_NS),
            datagram: Duration::from_nanos(ct_timeouts::DATAGRAM_NS),
        }
    }
}

impl CtTimeouts {
    /// How long `entry` may stay idle.
    pub fn of(&self, key: &CtKey, entry: &CtEntry) -> Duration {
        if key.proto != proto::TCP {
            return self.datagram;
        }
        let closing = entry.flags & (ct_flags::RST | ct_flags::FIN_FWD | ct_flags::FIN_REV) != 0;
        if entry.flags & ct_flags::ESTABLISHED != 0 && !closing {
            self.tcp_established
        } else {
            self.tcp_short
        }
    }
}

/// Removes every connection idle longer than its timeout (and its NAT entries).
pub fn collect(maps: &mut Maps, timeouts: &CtTimeouts) -> Result<CtStats, DatapathError> {
    let now = monotonic_ns();
    let entries: Vec<(CtKey, CtEntry)> = maps.ct.iter().filter_map(Result::ok).collect();
    let mut stats = CtStats {
        entries: entries.len(),
        expired: 0,
    };
    for (key, entry) in entries {
        let idle = Duration::from_nanos(now.saturating_sub(entry.last_seen_ns));
        if idle > timeouts.of(&key, &entry) {
            maps.forget_connection(&key)?;
            stats.expired += 1;
        }
    }
    Ok(stats)
}

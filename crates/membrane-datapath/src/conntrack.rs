//! Conntrack garbage collection: expiring idle connections by their state's timeout.

use crate::error::DatapathError;
use crate::maps::Maps;
use membrane_common::ct::{ct_flags, ct_timeouts};
use membrane_common::tuple::proto;
use membrane_common::{CtEntry, CtKey};

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

/// How long `entry` may stay idle.
pub fn timeout_ns(key: &CtKey, entry: &CtEntry) -> u64 {
    if key.proto != proto::TCP {
        return ct_timeouts::DATAGRAM_NS;
    }
    let closing = entry.flags & (ct_flags::RST | ct_flags::FIN_FWD | ct_flags::FIN_REV) != 0;
    if entry.flags & ct_flags::ESTABLISHED != 0 && !closing {
        ct_timeouts::TCP_ESTABLISHED_NS
    } else {
        ct_timeouts::TCP_SHORT_NS
    }
}

/// Removes every expired connection (and its NAT entries).
pub fn collect(maps: &mut Maps) -> Result<CtStats, DatapathError> {
    let now = monotonic_ns();
    let entries: Vec<(CtKey, CtEntry)> = maps.ct.iter().filter_map(Result::ok).collect();
    let mut stats = CtStats {
        entries: entries.len(),
        expired: 0,
    };
    for (key, entry) in entries {
        if now.saturating_sub(entry.last_seen_ns) > timeout_ns(&key, &entry) {
            maps.forget_connection(&key)?;
            stats.expired += 1;
        }
    }
    Ok(stats)
}

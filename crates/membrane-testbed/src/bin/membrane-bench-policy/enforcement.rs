//! Watches a node's pinned endpoints map until every pod shows an enforcement flag
//! (`INGRESS_ENFORCED` or `EGRESS_ENFORCED`), recording when each one first did.

use anyhow::{Context, bail};
use membrane_datapath::PinnedMaps;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Time between two reads of the endpoints map.
const POLL: Duration = Duration::from_millis(2);

/// Per pod address, the time from `since` until its endpoint entry first carried `flag`
/// (an `endpoint_flags` constant); fails naming how many never did within `within`.
pub fn wait_enforced(
    pin_dir: &Path,
    addresses: &[IpAddr],
    flag: u16,
    since: Instant,
    within: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let maps = PinnedMaps::open(pin_dir)
        .with_context(|| format!("opening the pinned maps in {}", pin_dir.display()))?;
    let mut seen: HashMap<IpAddr, Duration> = HashMap::with_capacity(addresses.len());
    let polls = within.as_millis() / POLL.as_millis() + 1;
    for _ in 0..polls {
        let rows = maps
            .endpoints()
            .context("reading the pinned endpoints map")?;
        let now = since.elapsed();
        for row in rows {
            if row.info.flags & flag != 0 {
                seen.entry(row.address).or_insert(now);
            }
        }
        if addresses.iter().all(|a| seen.contains_key(a)) {
            return Ok(addresses.iter().map(|a| seen[a]).collect());
        }
        if since.elapsed() >= within {
            break;
        }
        std::thread::sleep(POLL);
    }
    let missing = addresses.iter().filter(|a| !seen.contains_key(a)).count();
    bail!(
        "{missing} of {} endpoints without flag {flag:#x} {} s after the apply",
        addresses.len(),
        within.as_secs()
    )
}

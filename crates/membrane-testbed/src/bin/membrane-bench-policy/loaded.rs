//! Waits until a node's pinned policy map holds every entry the scale policies make:
//! the sign that the agent has taken in all the identities and policies.

use anyhow::{Context, bail};
use membrane_common::metrics::direction;
use membrane_datapath::PinnedMaps;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Time between two reads of the policy map (a read walks every entry).
const POLL: Duration = Duration::from_millis(500);

/// Waits, at most `within`, until for every port of `expected` the pinned policy map under
/// `pin_dir` holds exactly that many ingress entries on that single port; returns how
/// many entries the map held in all and the time taken from `since`.
pub fn wait_loaded(
    pin_dir: &Path,
    expected: &BTreeMap<u16, usize>,
    since: Instant,
    within: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let maps = PinnedMaps::open(pin_dir)
        .with_context(|| format!("opening the pinned maps in {}", pin_dir.display()))?;
    let polls = within.as_millis() / POLL.as_millis() + 1;
    let mut wrong = expected.len();
    for _ in 0..polls {
        let rows = maps.policy().context("reading the pinned policy map")?;
        let mut found: BTreeMap<u16, usize> = BTreeMap::new();
        for row in &rows {
            let single = row.ports.start() == row.ports.end();
            if single && row.direction == direction::INGRESS {
                *found.entry(*row.ports.start()).or_default() += 1;
            }
        }
        wrong = expected
            .iter()
            .filter(|(port, count)| found.get(port).copied().unwrap_or(0) != **count)
            .count();
        if wrong == 0 {
            return Ok((rows.len(), since.elapsed()));
        }
        if since.elapsed() >= within {
            break;
        }
        std::thread::sleep(POLL);
    }
    bail!(
        "{wrong} of {} scale policies' ports do not have their entries in the policy map {} s after the apply",
        expected.len(),
        within.as_secs()
    )
}

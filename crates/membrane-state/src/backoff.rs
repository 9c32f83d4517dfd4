//! Exponential backoff with full jitter, for reconnecting to a store that went away.

use rand::Rng as _;
use std::time::Duration;

/// The first retry waits up to this long.
pub const INITIAL: Duration = Duration::from_millis(100);

/// No retry waits longer than this.
pub const MAX: Duration = Duration::from_secs(5);

/// Delays between attempts: each ceiling doubles up to a maximum, and each delay is drawn
/// uniformly below the ceiling, so that many agents cut off together do not return
/// together.
#[derive(Clone, Debug)]
pub struct Backoff {
    ceiling: Duration,
    max: Duration,
    initial: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Backoff {
    /// Delays starting at [`INITIAL`] and capped at [`MAX`].
    pub fn new() -> Backoff {
        Backoff::between(INITIAL, MAX)
    }

    /// Delays starting at `initial` and capped at `max`.
    pub(crate) fn between(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            ceiling: initial,
            max,
            initial,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// Starts again from the initial delay, after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_stay_under_it_and_reset() {
        let mut backoff = Backoff::between(Duration::from_millis(100), Duration::from_millis(800));
        let ceilings = [100, 200, 400, 800, 800, 800];
        for ceiling in ceilings {
            let delay = backoff.next_delay();
            assert!(
                delay <= Duration::from_millis(ceiling)
                    && delay >= Duration::from_millis(ceiling / 2),
                "{delay:?} outside [{}, {ceiling}] ms",
                ceiling / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn delays_are_jittered() {
        let mut delays = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut backoff = Backoff::between(Duration::from_secs(1), Duration::from_secs(1));
            delays.insert(backoff.next_delay());
        }
        assert!(delays.len() > 1, "50 draws gave the same delay");
    }
}

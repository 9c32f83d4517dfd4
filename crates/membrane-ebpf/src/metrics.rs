//! Counting what happened to each packet.

use crate::maps::METRICS;
use membrane_common::metrics_index;

/// Adds one packet of `len` bytes to the counter of `reason` in `direction`.
#[inline(always)]
pub fn count(reason: u8, direction: u8, len: u32) {
    if let Some(slot) = METRICS.get_ptr_mut(metrics_index(reason, direction)) {
        // SAFETY: the pointer comes from a successful per-CPU array lookup, so it points
        // at this CPU's value, which nothing else writes concurrently.
        unsafe {
            (*slot).packets += 1;
            (*slot).bytes += len as u64;
        }
    }
}

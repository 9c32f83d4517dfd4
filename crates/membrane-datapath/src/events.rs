//! Reading flow events from the datapath's ring buffer.

use crate::error::DatapathError;
use aya::maps::{MapData, RingBuf};
use membrane_common::{FlowEvent, map_names};
use tokio::io::unix::AsyncFd;

/// The consumer side of the events ring buffer. There is one per loaded datapath.
pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
}

/// Decodes one ring buffer record; `None` for a record of the wrong size.
fn decode(bytes: &[u8]) -> Option<FlowEvent> {
    if bytes.len() != core::mem::size_of::<FlowEvent>() {
        return None;
    }
    // SAFETY: FlowEvent is plain old data (#[repr(C)], integers and byte arrays only) and
    // the record has exactly its size; read_unaligned copes with any alignment.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<FlowEvent>()) })
}

impl EventReader {
    /// Wraps the ring buffer map for async reading (needs a tokio runtime).
    pub(crate) fn new(ring: RingBuf<MapData>) -> Result<EventReader, DatapathError> {
        // SAFETY: the RingBuf owns its map's file descriptor for as long as it lives, and
        // the AsyncFd owns the RingBuf, so the descriptor stays open and the same.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| DatapathError::Events {
                source: e.into_parts().1,
            })?;
        Ok(EventReader { ring })
    }

    /// Waits until at least one event is available, then appends every available event
    /// to `out`. Returns how many records had an unexpected size (and were skipped).
    pub async fn next_batch(&mut self, out: &mut Vec<FlowEvent>) -> Result<usize, DatapathError> {
        loop {
            let mut guard = self
                .ring
                .readable_mut()
                .await
                .map_err(|source| DatapathError::Events { source })?;
            let ring = guard.get_inner_mut();
            let mut malformed = 0;
            let before = out.len();
            while let Some(item) = ring.next() {
                match decode(&item) {
                    Some(event) => out.push(event),
                    None => malformed += 1,
                }
            }
            guard.clear_ready();
            if out.len() > before || malformed > 0 {
                return Ok(malformed);
            }
        }
    }
}

/// Name of the map, for error messages.
pub(crate) const MAP: &str = map_names::EVENTS;

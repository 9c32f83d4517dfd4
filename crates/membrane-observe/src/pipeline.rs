//! The way in: batches of datapath events are decoded, counted and stored; losses
//! reported by the datapath are turned into lost-event records.

use crate::decode::Decoder;
use crate::flow::LostSource;
use crate::metrics::ObserveMetrics;
use crate::store::FlowStore;
use membrane_common::FlowEvent;
use std::sync::Arc;
use std::sync::Mutex;

/// Decoder, store and metrics of one node.
pub struct Pipeline {
    decoder: Decoder,
    store: Arc<FlowStore>,
    metrics: Arc<ObserveMetrics>,
    kernel_lost_seen: Mutex<Option<u64>>,
}

impl Pipeline {
    /// A pipeline feeding `store` and `metrics`.
    pub fn new(decoder: Decoder, store: Arc<FlowStore>, metrics: Arc<ObserveMetrics>) -> Pipeline {
        Pipeline {
            decoder,
            store,
            metrics,
            kernel_lost_seen: Mutex::new(None),
        }
    }

    /// The store flows go to.
    pub fn store(&self) -> &Arc<FlowStore> {
        &self.store
    }

    /// Decodes, counts and stores every event; returns how many could not be decoded
    /// (each is logged).
    pub fn ingest(&self, events: &[FlowEvent]) -> usize {
        let mut undecodable = 0;
        for event in events {
            match self.decoder.decode(event) {
                Ok(flow) => {
                    self.metrics.record_flow(&flow);
                    self.store.push_flow(flow);
                }
                Err(error) => {
                    undecodable += 1;
                    tracing::warn!(%error, "skipping a flow event");
                }
            }
        }
        undecodable
    }

    /// Records events lost at `source`.
    pub fn lost(&self, source: LostSource, count: u64) {
        if count == 0 {
            return;
        }
        self.metrics.record_lost(source, count);
        self.store.push_lost(source, count);
    }

    /// Takes the datapath's running total of events it could not write into the full
    /// ring buffer, and records the increase since the previous call as lost. The first
    /// call only sets the baseline: the pinned counters outlive agent restarts, and
    /// losses from before this observer started are not its to report.
    pub fn kernel_lost_total(&self, total: u64) {
        let mut seen = self
            .kernel_lost_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let previous = seen.replace(total);
        let new = match previous {
            None => 0,
            Some(previous) if total >= previous => total - previous,
            // A smaller total means the counters were reset (a new datapath).
            Some(_) => total,
        };
        drop(seen);
        self.lost(LostSource::KernelRingBuffer, new);
    }
}

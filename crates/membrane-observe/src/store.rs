//! The flow store: a bounded ring of the last N events and a broadcast of new ones to
//! followers. Events lost anywhere are recorded in the ring as lost-event records and
//! counted, so that no loss is silent.

use crate::flow::{Event, Flow, Lost, LostSource};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast;

/// How long a namespace stays listed after its last flow (Hubble lists the last hour).
pub const NAMESPACE_RETENTION: Duration = Duration::from_secs(3600);

/// Counters of the store, as ServerStatus reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoreStatus {
    /// Events in the ring.
    pub num_flows: u64,
    /// Capacity of the ring.
    pub max_flows: u64,
    /// Flows seen since start.
    pub seen_flows: u64,
    /// Time since the store was created.
    pub uptime: Duration,
    /// Flows per second over the last minute.
    pub flows_rate: f64,
}

struct Ring {
    events: VecDeque<Event>,
    seen_flows: u64,
    namespaces: BTreeMap<String, SystemTime>,
}

/// The last N events and the stream of new ones.
pub struct FlowStore {
    capacity: usize,
    ring: Mutex<Ring>,
    sender: broadcast::Sender<Event>,
    started: Instant,
}

impl FlowStore {
    /// A store keeping the last `capacity` events, whose followers may fall at most
    /// `follow_buffer` events behind before they are told they lost some.
    pub fn new(capacity: usize, follow_buffer: usize) -> Arc<FlowStore> {
        let (sender, _) = broadcast::channel(follow_buffer.max(1));
        Arc::new(FlowStore {
            capacity: capacity.max(1),
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity.max(1)),
                seen_flows: 0,
                namespaces: BTreeMap::new(),
            }),
            sender,
            started: Instant::now(),
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a flow.
    pub fn push_flow(&self, flow: Flow) {
        let flow = Arc::new(flow);
        let mut ring = self.ring();
        ring.seen_flows += 1;
        for ns in [&flow.source.namespace, &flow.destination.namespace] {
            if !ns.is_empty() {
                ring.namespaces.insert(ns.clone(), flow.time);
            }
        }
        self.push(&mut ring, Event::Flow(flow));
    }

    /// Records `count` events lost at `source`.
    pub fn push_lost(&self, source: LostSource, count: u64) {
        if count == 0 {
            return;
        }
        let lost = Lost {
            source,
            count,
            time: SystemTime::now(),
        };
        let mut ring = self.ring();
        self.push(&mut ring, Event::Lost(lost));
    }

    /// Adds `event` to the ring in time order and sends it to followers. Events reach the
    /// store in the order the datapath's ring buffer handed them over, which can put a
    /// packet seen on one CPU a few microseconds behind a later one seen on another: such
    /// an event is placed by its time, so that the ring (and every window read from it)
    /// stays oldest first. Followers get events as they come.
    fn push(&self, ring: &mut Ring, event: Event) {
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        let time = event.time();
        let at = ring.events.partition_point(|e| e.time() <= time);
        ring.events.insert(at, event.clone());
        // No receiver is not an error: nobody follows right now.
        let _ = self.sender.send(event);
    }

    /// The events in the ring, oldest first, and a receiver of every later event, taken
    /// together so that nothing falls between them.
    pub fn snapshot_and_follow(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let ring = self.ring();
        (
            ring.events.iter().cloned().collect(),
            self.sender.subscribe(),
        )
    }

    /// The events in the ring, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        self.ring().events.iter().cloned().collect()
    }

    /// Counters for ServerStatus and GetNodes.
    pub fn status(&self) -> StoreStatus {
        let ring = self.ring();
        let minute_ago = SystemTime::now() - Duration::from_secs(60);
        let recent = ring
            .events
            .iter()
            .rev()
            .filter(|e| matches!(e, Event::Flow(_)))
            .take_while(|e| e.time() >= minute_ago)
            .count();
        StoreStatus {
            num_flows: ring.events.len() as u64,
            max_flows: self.capacity as u64,
            seen_flows: ring.seen_flows,
            uptime: self.started.elapsed(),
            flows_rate: recent as f64 / 60.0,
        }
    }

    /// Namespaces seen in flows within [`NAMESPACE_RETENTION`] of `now`, sorted.
    pub fn namespaces(&self, now: SystemTime) -> Vec<String> {
        let mut ring = self.ring();
        let cutoff = now
            .checked_sub(NAMESPACE_RETENTION)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        ring.namespaces.retain(|_, seen| *seen >= cutoff);
        ring.namespaces.keys().cloned().collect()
    }
}

//! The bounded queue between the reader of the datapath's ring buffer and the decoder:
//! the reader never waits for the decoder, and what does not fit is counted as lost
//! (and reported as such) rather than held without bound or dropped silently.

use membrane_common::FlowEvent;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// At most `capacity` events waiting to be decoded.
pub struct EventQueue {
    events: Mutex<VecDeque<FlowEvent>>,
    capacity: usize,
    ready: Notify,
}

impl EventQueue {
    /// A queue holding at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> EventQueue {
        let capacity = capacity.max(1);
        EventQueue {
            events: Mutex::new(VecDeque::with_capacity(capacity.min(65_536))),
            capacity,
            ready: Notify::new(),
        }
    }

    /// Appends as many of `events` as fit, in order, and returns how many did not fit.
    pub fn push(&self, events: &[FlowEvent]) -> usize {
        let mut queue = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity - queue.len();
        let taken = room.min(events.len());
        queue.extend(&events[..taken]);
        drop(queue);
        if taken > 0 {
            self.ready.notify_one();
        }
        events.len() - taken
    }

    /// Waits until events are queued, then moves at most `max` of them (oldest first)
    /// into `out`.
    pub async fn pop(&self, out: &mut Vec<FlowEvent>, max: usize) {
        loop {
            // Registered before looking, so a push between the look and the wait wakes it.
            let notified = self.ready.notified();
            {
                let mut queue = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if !queue.is_empty() {
                    let n = max.max(1).min(queue.len());
                    out.extend(queue.drain(..n));
                    return;
                }
            }
            notified.await;
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> FlowEvent {
        FlowEvent {
            timestamp_ns: n,
            tuple: membrane_common::CtKey {
                saddr: [0; 16],
                daddr: [0; 16],
                sport: 0,
                dport: 0,
                proto: 0,
                family: 0,
                _pad: [0; 2],
            },
            xlated_daddr: [0; 16],
            xlated_dport: 0,
            src_endpoint: 0,
            dst_endpoint: 0,
            _pad0: 0,
            rev_nat_index: 0,
            src_identity: 0,
            dst_identity: 0,
            len: 0,
            ifindex: 0,
            kind: 0,
            reason: 0,
            direction: 0,
            observation_point: 0,
            tcp_flags: 0,
            ct_state: 0,
            policy_match: 0,
            policy_verdict: 0,
            icmp_type: 0,
            icmp_code: 0,
            _pad: [0; 2],
        }
    }

    #[tokio::test]
    async fn what_does_not_fit_is_counted_and_the_rest_comes_out_in_order() {
        let queue = EventQueue::new(3);
        let events: Vec<FlowEvent> = (1..=5).map(event).collect();
        assert_eq!(queue.push(&events), 2);
        assert_eq!(queue.push(&events[..1]), 1, "still full");
        let mut out = Vec::new();
        queue.pop(&mut out, 2).await;
        assert_eq!(
            out.iter().map(|e| e.timestamp_ns).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(queue.push(&events[3..]), 0, "room for two again");
        out.clear();
        queue.pop(&mut out, 10).await;
        assert_eq!(
            out.iter().map(|e| e.timestamp_ns).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_pop_wakes_on_push() {
        let queue = std::sync::Arc::new(EventQueue::new(8));
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                queue.pop(&mut out, 8).await;
                out.len()
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(queue.push(&[event(1), event(2)]), 0);
        let popped = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("pop woke up")
            .unwrap();
        assert_eq!(popped, 2);
    }
}

//! A GetFlows request in our own terms, and which stored events it selects.

use crate::filter::FilterSet;
use crate::flow::Event;
use std::time::SystemTime;

/// What a GetFlows caller asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowQuery {
    /// How many flows from the ring; `None` for all (or, when following without a time
    /// window, none).
    pub number: Option<usize>,
    /// The earliest `number` flows instead of the latest.
    pub first: bool,
    /// Keep streaming new flows.
    pub follow: bool,
    /// Allow- and deny-lists.
    pub filters: FilterSet,
    /// Only flows at or after this time.
    pub since: Option<SystemTime>,
    /// Only flows at or before this time.
    pub until: Option<SystemTime>,
}

impl FlowQuery {
    /// Whether the event is in the time window and, for a flow, passes the filters.
    pub fn selects(&self, event: &Event) -> bool {
        let time = event.time();
        let in_window = self.since.is_none_or(|since| time >= since)
            && self.until.is_none_or(|until| time <= until);
        in_window
            && match event {
                Event::Flow(flow) => self.filters.matches(flow),
                Event::Lost(_) => true,
            }
    }

    /// The events of `history` (oldest first) that the query returns before following,
    /// oldest first. `number` counts flows; lost-event records inside the selected span
    /// come along.
    pub fn from_history(&self, history: Vec<Event>) -> Vec<Event> {
        let wants_history = self.number.is_some() || self.since.is_some() || !self.follow;
        if !wants_history {
            return Vec::new();
        }
        let mut selected: Vec<Event> = history.into_iter().filter(|e| self.selects(e)).collect();
        let Some(number) = self.number else {
            return selected;
        };
        let is_flow = |e: &Event| matches!(e, Event::Flow(_));
        if self.first {
            let mut flows = 0;
            let end = selected
                .iter()
                .position(|e| {
                    flows += usize::from(is_flow(e));
                    flows > number
                })
                .unwrap_or(selected.len());
            selected.truncate(end);
            selected
        } else {
            let mut flows = 0;
            let start = selected
                .iter()
                .rposition(|e| {
                    flows += usize::from(is_flow(e));
                    flows > number
                })
                .map_or(0, |i| i + 1);
            selected.split_off(start)
        }
    }
}

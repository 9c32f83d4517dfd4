//! The periodic task: conntrack collection and the leak check, every interval until
//! cancelled.

use crate::agent::Agent;
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Runs [`Agent::maintain`] every `interval` (the first pass one interval after start,
/// since the agent has just reconciled) until `token` is cancelled.
pub async fn run<D: NodeDatapath, N: NodeNetwork>(
    agent: Arc<Agent<D, N>>,
    interval: Duration,
    token: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticks.tick() => agent.maintain().await,
        }
    }
}

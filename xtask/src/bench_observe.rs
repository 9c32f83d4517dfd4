//! `cargo xtask bench observe`: how many datapath events one core decodes and enriches
//! per second (alone, through the whole pipeline, through the agent's bounded queue) and
//! the flow store's memory per stored flow, from `membrane-observe`'s `flows` bench; then
//! the cost of observability on pod-to-pod request/response and throughput, with flow
//! events off, per connection and for every packet (`membrane-bench --flow-events`).

use crate::cmd::{self, Phases, cargo};
use crate::setup;

/// Setup, the flows bench (cargo's bench profile), a release build, then the
/// pod-to-pod comparison of flow-event settings.
pub fn run(build: &[String], seconds: u64) -> anyhow::Result<()> {
    let mut phases = Phases::new(4);
    phases.start("setup");
    setup::run()?;
    phases.start("flow decoding, enrichment and storage per core; flow store memory");
    cargo(&[
        "bench".into(),
        "--package".into(),
        "membrane-observe".into(),
        "--bench".into(),
        "flows".into(),
    ])?;
    phases.start("build the workspace's binaries (release)");
    cargo(build)?;
    phases.start("pod-to-pod with flow events off, per connection and for every packet");
    cmd::run_binary(
        "release",
        "membrane-bench",
        &[
            "--flow-events".to_string(),
            "--seconds".to_string(),
            seconds.to_string(),
        ],
    )
}

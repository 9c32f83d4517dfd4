//! `cargo xtask bench observe`: how many datapath events one core decodes and enriches
//! per second (alone, through the whole pipeline, through the agent's bounded queue) and
//! the flow store's memory per stored flow, from `membrane-observe`'s `flows` bench.

use crate::cmd::{Phases, cargo};
use crate::setup;

/// Setup, then the bench (built and run with cargo's bench profile).
pub fn run() -> anyhow::Result<()> {
    let mut phases = Phases::new(2);
    phases.start("setup");
    setup::run()?;
    phases.start("flow decoding, enrichment and storage per core; flow store memory");
    cargo(&[
        "bench".into(),
        "--package".into(),
        "membrane-observe".into(),
        "--bench".into(),
        "flows".into(),
    ])
}

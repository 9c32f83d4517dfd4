//! `cargo xtask bench cross-node`: pod-to-pod TCP between two nodes through Membrane's
//! VXLAN tunnel and native routing against the same node namespaces routed by the kernel
//! alone, in one run of the release `membrane-bench-cross-node` binary.

use crate::cmd::{Phases, cargo, run_binary};
use crate::setup;

/// Setup, release build, then the benchmark with `seconds` of throughput per path.
pub fn run(seconds: u64, build_args: &[String]) -> anyhow::Result<()> {
    let mut phases = Phases::new(3);
    phases.start("setup");
    setup::run()?;
    phases.start("build the workspace's binaries (release)");
    cargo(build_args)?;
    phases.start("benchmark cross-node pod-to-pod: tunnel, native routing, kernel routing");
    run_binary(
        "release",
        "membrane-bench-cross-node",
        &["--seconds".to_string(), seconds.to_string()],
    )
}

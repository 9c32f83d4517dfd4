//! The baselines: kube-proxy's own rule shapes for the same Services, loaded in bulk into
//! the bed's node namespace (never the machine's) the way kube-proxy loads them.

pub mod iptables;
pub mod nftables;

use crate::topology::Bed;
use anyhow::{Context, ensure};
use membrane_testbed::process;
use std::process::Command;
use std::time::{Duration, Instant};

/// One of kube-proxy's rule shapes.
pub trait RuleShape {
    /// The program that loads a rule file from stdin, and its arguments.
    fn loader(&self) -> (&'static str, &'static [&'static str]);
    /// The rules of Services `0..n`, as kube-proxy writes them at its first sync.
    fn program_all(&self, n: u32) -> String;
    /// What kube-proxy writes when Service `n` joins the `n` already programmed.
    fn add_one(&self, n: u32) -> String;
}

/// Loads `rules` with `shape`'s loader inside `bed`'s node, within `timeout`, and
/// returns how long the loader took.
pub fn load(
    bed: &Bed,
    shape: &dyn RuleShape,
    rules: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let (program, args) = shape.loader();
    let mut command = Command::new(program);
    command.args(args);
    let started = Instant::now();
    let finished = process::run(command, &bed.node, rules.as_bytes(), timeout)
        .with_context(|| format!("{program} {}", args.join(" ")))?;
    let took = started.elapsed();
    ensure!(
        finished.status.success(),
        "{program} failed ({}): {}",
        finished.status,
        finished
            .stderr
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join(" / ")
    );
    Ok(took)
}

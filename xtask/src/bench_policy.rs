//! `cargo xtask bench policy`: network policy at scale in one run. The time from `apply`
//! to enforcement on many endpoints and the agent's memory with those endpoints and then
//! with 10,000 identities and 1,000 policies loaded (release `membrane-bench-policy`, a
//! real agent on a real etcd and real pods in the test bed), the compile time
//! for 10,000 identities and 1,000 policies (`membrane-policy`'s `compile` bench) and the
//! kernel time per packet with 10,000 policy entries versus one (`membrane-datapath`'s
//! `policy_cost` bench).

use crate::cmd::{Phases, cargo, run_binary};

/// Options of the policy benchmark.
#[derive(Clone, Debug, Default, clap::Args)]
#[group(id = "policy_options")]
pub struct Options {
    /// Policy benchmark: pods on the test-bed node, all selected by the policy
    /// [default: 1,000].
    #[arg(long)]
    pub endpoints: Option<u32>,
    /// Policy benchmark: identities of other nodes' pods loaded before the memory
    /// figure [default: 10,000].
    #[arg(long)]
    pub identities: Option<u32>,
    /// Policy benchmark: policies loaded before the memory figure [default: 1,000].
    #[arg(long)]
    pub policies: Option<u32>,
}

impl Options {
    /// The binary's arguments.
    fn args(&self) -> Vec<String> {
        [
            ("--endpoints", self.endpoints),
            ("--identities", self.identities),
            ("--policies", self.policies),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.map(|n| [flag.to_string(), n.to_string()]))
        .flatten()
        .collect()
    }
}

/// `cargo bench` of one bench target of one package.
fn bench(package: &str, target: &str) -> anyhow::Result<()> {
    cargo(&[
        "bench".into(),
        "--package".into(),
        package.into(),
        "--bench".into(),
        target.into(),
    ])
}

/// Setup, release build, then the three measurements.
pub fn run(options: &Options, build_args: &[String]) -> anyhow::Result<()> {
    let mut phases = Phases::new(5);
    phases.start("setup");
    crate::setup::run()?;
    phases.start("build the workspace's binaries (release)");
    cargo(build_args)?;
    phases.start("apply to enforcement on every endpoint, agent memory (real agent, real pods)");
    run_binary("release", "membrane-bench-policy", &options.args())?;
    phases.start("compile time: 10,000 identities, 1,000 policies");
    bench("membrane-policy", "compile")?;
    phases.start("kernel time per packet: 10,000 policy entries versus one (BPF_PROG_TEST_RUN)");
    bench("membrane-datapath", "policy_cost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_options_given_reach_the_binary() {
        assert!(Options::default().args().is_empty());
        let options = Options {
            endpoints: Some(100),
            policies: Some(7),
            ..Options::default()
        };
        assert_eq!(options.args(), ["--endpoints", "100", "--policies", "7"]);
    }
}

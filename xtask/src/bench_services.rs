//! `cargo xtask bench services`: the kube-proxy replacement against kube-proxy's iptables
//! and nftables rule shapes and the direct path, at several numbers of Services, in one
//! run of the release `membrane-bench-services` binary.

use crate::cmd::{Phases, cargo, run_binary};

/// Options of the services benchmark.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Options {
    /// Services benchmark: a short run (100 and 1,000 Services, fewer connections).
    #[arg(long)]
    pub quick: bool,
    /// Services benchmark: numbers of Services, comma-separated
    /// [default: 100,1000,10000,100000].
    #[arg(long, value_name = "N,N,...")]
    pub sizes: Option<String>,
    /// Services benchmark: new connections measured per path [default: 3000].
    #[arg(long)]
    pub connections: Option<u32>,
}

impl Options {
    /// The binary's arguments.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.quick {
            args.push("--quick".to_string());
        }
        if let Some(sizes) = &self.sizes {
            args.extend(["--sizes".to_string(), sizes.clone()]);
        }
        if let Some(connections) = self.connections {
            args.extend(["--connections".to_string(), connections.to_string()]);
        }
        args
    }
}

/// Setup, release build, then the benchmark.
pub fn run(options: &Options, build_args: &[String]) -> anyhow::Result<()> {
    let mut phases = Phases::new(3);
    phases.start("setup");
    crate::setup::run()?;
    phases.start("build the workspace's binaries (release)");
    cargo(build_args)?;
    phases.start("benchmark Service load balancing against kube-proxy's rule shapes");
    run_binary("release", "membrane-bench-services", &options.args())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_options_given_reach_the_binary() {
        assert!(Options::default().args().is_empty());
        let options = Options {
            quick: true,
            sizes: Some("100,1000".into()),
            connections: Some(500),
        };
        assert_eq!(
            options.args(),
            ["--quick", "--sizes", "100,1000", "--connections", "500"]
        );
    }
}

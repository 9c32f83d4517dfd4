//! `cargo xtask`: the project's single entry point. Checks and installs prerequisites,
//! builds, tests, runs the demo and the benchmark.
#![forbid(unsafe_code)]

mod bench_cross_node;
mod bench_observe;
mod bench_policy;
mod bench_services;
mod cmd;
mod setup;

use clap::{Parser, Subcommand, ValueEnum};
use cmd::{Phases, cargo};
use std::process::ExitCode;

/// Membrane's tasks.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Checks the machine and installs what is missing (idempotent).
    Setup,
    /// Setup, then builds every binary of the workspace.
    Build {
        /// Builds with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Setup, build, then runs every test of every crate; extra arguments go to
    /// `cargo test`, e.g. `cargo xtask test -p membrane-testbed -- --nocapture`.
    Test {
        /// Arguments passed on to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then brings up a local cluster (two nodes on a real etcd, or one on
    /// the embedded store) running examples/, drives traffic (a refused path included),
    /// shows membrane status, the Services and live flows, and removes it all at the end.
    Demo {
        /// Keeps the demo up this many seconds, instead of until Ctrl-C.
        #[arg(long)]
        duration: Option<u64>,
        /// Nodes: 2 (sharing state through etcd) or 1 (the embedded store).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
        nodes: u8,
    },
    /// Setup, release build, then measures a scenario against its physical limit.
    Bench {
        /// What to measure.
        scenario: Scenario,
        /// Seconds of throughput measurement per path.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[command(flatten)]
        services: bench_services::Options,
        #[command(flatten)]
        policy: bench_policy::Options,
    },
    /// Checks formatting and runs clippy on every crate.
    Lint,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    /// Same-node pod-to-pod TCP latency and throughput, versus plain veths and routing.
    PodToPod,
    /// Cross-node pod-to-pod TCP latency and throughput through the tunnel and native
    /// routing, versus the same nodes routed by the kernel with no eBPF and no tunnel.
    CrossNode,
    /// Service load balancing at 100 to 100,000 Services: Membrane (socket and per-packet
    /// LB) versus kube-proxy-shaped iptables and nftables rules and the direct path.
    Services,
    /// Flow events decoded and enriched per second on one core, the flow store's memory
    /// per stored flow, and pod-to-pod with flow events off, per connection and for
    /// every packet.
    Observe,
    /// Network policy: apply to enforcement on many endpoints, compile time at 10,000
    /// identities, kernel time per packet with 10,000 entries, agent memory.
    Policy,
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> anyhow::Result<()> {
    match task {
        Task::Setup => setup::run(),
        Task::Build { release } => {
            let mut phases = Phases::new(2);
            phases.start("setup");
            setup::run()?;
            phases.start("build the workspace's binaries");
            cargo(&build_args(release))
        }
        Task::Test { args } => {
            let mut phases = Phases::new(3);
            phases.start("setup");
            setup::run()?;
            phases.start("build the workspace's binaries (the test bed execs them)");
            cargo(&build_args(false))?;
            phases.start("run every test of the workspace");
            let mut test = vec!["test".to_string(), "--workspace".to_string()];
            test.extend(args);
            cargo(&test)
        }
        Task::Demo { duration, nodes } => {
            let mut phases = Phases::new(3);
            phases.start("setup");
            setup::run()?;
            phases.start("build the workspace's binaries");
            cargo(&build_args(false))?;
            phases.start("run the demo");
            let mut args = vec!["--nodes".to_string(), nodes.to_string()];
            if let Some(seconds) = duration {
                args.extend(["--duration".to_string(), seconds.to_string()]);
            }
            cmd::run_binary("debug", "membrane-demo", &args)
        }
        Task::Bench {
            scenario: Scenario::Observe,
            seconds,
            ..
        } => bench_observe::run(&build_args(true), seconds),
        Task::Bench {
            scenario: Scenario::Policy,
            policy,
            ..
        } => bench_policy::run(&policy, &build_args(true)),
        Task::Bench {
            scenario: Scenario::Services,
            services,
            ..
        } => bench_services::run(&services, &build_args(true)),
        Task::Bench {
            scenario: Scenario::CrossNode,
            seconds,
            ..
        } => bench_cross_node::run(seconds, &build_args(true)),
        Task::Bench {
            scenario: Scenario::PodToPod,
            seconds,
            ..
        } => {
            let mut phases = Phases::new(4);
            phases.start("setup");
            setup::run()?;
            phases.start("build the workspace's binaries (release)");
            cargo(&build_args(true))?;
            phases.start("benchmark same-node pod-to-pod");
            cmd::run_binary(
                "release",
                "membrane-bench",
                &["--seconds".to_string(), seconds.to_string()],
            )?;
            phases.start("kernel time per packet of each forwarding path (BPF_PROG_TEST_RUN)");
            cargo(&[
                "bench".into(),
                "--package".into(),
                "membrane-datapath".into(),
                "--bench".into(),
                "program_cost".into(),
            ])
        }
        Task::Lint => {
            cargo(&["fmt".into(), "--all".into(), "--".into(), "--check".into()])?;
            cargo(&[
                "clippy".into(),
                "--workspace".into(),
                "--all-targets".into(),
                "--".into(),
                "-D".into(),
                "warnings".into(),
            ])
        }
    }
}

fn build_args(release: bool) -> Vec<String> {
    let mut args = vec![
        "build".to_string(),
        "--workspace".to_string(),
        "--bins".to_string(),
    ];
    if release {
        args.push("--release".to_string());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_args(argv: &[&str]) -> Vec<String> {
        match Cli::try_parse_from(argv).unwrap().task {
            Task::Test { args } => args,
            _ => panic!("not the test task"),
        }
    }

    #[test]
    fn test_passes_cargo_test_arguments_and_the_harness_separator_through() {
        assert_eq!(
            test_args(&[
                "xtask",
                "test",
                "-p",
                "membrane-testbed",
                "--",
                "--nocapture"
            ]),
            ["-p", "membrane-testbed", "--", "--nocapture"]
        );
    }

    #[test]
    fn the_command_line_definition_is_valid() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn test_without_arguments_runs_everything() {
        assert!(test_args(&["xtask", "test"]).is_empty());
    }
}

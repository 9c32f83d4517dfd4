//! The policy conformance suite: a table of scenarios (tests/policy_conformance/scenarios/*.yaml),
//! each a set of NetworkPolicy / CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy
//! manifests applied with the real `membrane apply -f`, and a probe matrix of real
//! traffic (TCP, UDP, HTTP, ICMP; IPv4 and IPv6; pods on three nodes, the nodes
//! themselves, the world) with the expected result of each probe; optionally
//! `membrane policy trace` verdicts, flows the nodes' observers must report, and
//! connections opened before the apply that must go on. After each scenario its
//! policies are deleted with `membrane delete -f` and every probe must connect again.
//!
//! The bed (etcd, three agents in tunnel mode - the third in audit mode - and nine pods
//! in four labelled namespaces) is started once. Every scenario and probe is printed with what was expected and what
//! happened; the test fails listing each scenario with a mismatch, unless the scenario is
//! marked `known_failure`, which is printed loudly instead.
//!
//! `MEMBRANE_POLICY_SCENARIOS=word` runs only the scenarios whose name contains `word`.
//! Needs root, bpffs, cgroup v2 and Debian's etcd-server (`cargo xtask test` provides them).

mod bed;
mod inventory;
mod probe;
mod runner;
mod scenario;
mod stream;

use bed::{Bed, Cluster};
use std::path::Path;

/// Environment variable selecting scenarios by a part of their name.
const FILTER_ENV: &str = "MEMBRANE_POLICY_SCENARIOS";
/// The issue asks for at least this many scenarios.
const MIN_SCENARIOS: usize = 60;

#[test]
fn every_policy_scenario_refuses_and_allows_exactly_the_probes_its_table_expects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_conformance/scenarios");
    let all = scenario::load_dir(&dir);
    let filter = std::env::var(FILTER_ENV).ok();
    let scenarios: Vec<_> = all
        .iter()
        .filter(|s| filter.as_deref().is_none_or(|word| s.name.contains(word)))
        .collect();
    if filter.is_none() {
        assert!(
            all.len() >= MIN_SCENARIOS,
            "the table has {} scenarios, fewer than {MIN_SCENARIOS}",
            all.len()
        );
    }
    let cluster = Cluster::start();
    let bed = Bed::populate(&cluster);
    let mut failed = Vec::new();
    let mut known = Vec::new();
    for scenario in scenarios {
        let result = runner::run(&bed, scenario);
        println!("{}", result.render());
        if !result.restored() {
            println!(
                "!!!! deleting the policies of {} did not restore every probe: later scenarios may fail because of it",
                scenario.name
            );
        }
        if result.passed() {
            continue;
        }
        let entry = format!(
            "{}:\n      {}",
            scenario.name,
            result.mismatches().join("\n      ")
        );
        match &scenario.known_failure {
            Some(reason) => known.push(format!("{entry}\n      (known failure: {reason})")),
            None => failed.push(entry),
        }
    }
    if !known.is_empty() {
        println!(
            "!!!! {} KNOWN FAILURES (not failing the test):\n  {}",
            known.len(),
            known.join("\n  ")
        );
    }
    assert!(
        failed.is_empty(),
        "{} scenarios failed:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

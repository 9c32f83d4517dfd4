//! The agent binary refuses a bad configuration whole, before it touches anything.

use std::process::Command;

#[test]
fn every_configuration_problem_is_reported_at_once_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let output = Command::new(env!("CARGO_BIN_EXE_membrane-agent"))
        .args(["--state-dir", state_dir.to_str().unwrap()])
        .args(["--ipv4-pod-cidr", "10.0.0.0/99", "--mtu", "lots"])
        .env("MEMBRANE_NAT_PORT_RANGE", "70000-80000")
        .env("MEMBRANE_SOCKET", dir.path().join("agent.sock"))
        .env_remove("MEMBRANE_NODE_NAME")
        .env_remove("MEMBRANE_UPLINK")
        .env_remove("MEMBRANE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for expected in [
        "--ipv4-pod-cidr",
        "--mtu",
        "--nat-port-range (or MEMBRANE_NAT_PORT_RANGE) \"70000-80000\"",
        "--node-name is required",
        "--uplink is required",
        "at least one of --ipv4-pod-cidr, --ipv6-pod-cidr, --cluster-pool-ipv4 and --cluster-pool-ipv6 is required",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }
    assert!(
        !state_dir.exists(),
        "nothing may start before the configuration is valid"
    );
    assert!(!dir.path().join("agent.sock").exists());
}

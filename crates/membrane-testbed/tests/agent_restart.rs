//! The datapath keeps forwarding while the agent crashes and restarts: maps stay pinned,
//! programs stay attached, and the restarted agent adopts them without breaking
//! established connections.

use membrane_testbed::report::StreamReport;
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome};
use membrane_testbed::{Node, Outside, Pod};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const STREAM: Duration = Duration::from_secs(6);
const INTERVAL: Duration = Duration::from_millis(50);

/// Runs a stream from a pod to `target` and crashes and restarts the agent in the middle.
fn stream_through_a_crash(node: &Node, client: &Pod, target: SocketAddr) {
    let stream = workload::spawn_stream(client, target, STREAM, INTERVAL).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let restarted = node.crash_and_restart_agent().unwrap();
    assert!(restarted.healthy);
    let outcome: Outcome<StreamReport> = stream.finish(workload::stream_timeout(STREAM)).unwrap();
    let report = &outcome.report;
    assert!(!report.broke, "the stream broke: {outcome:?}");
    assert!(
        outcome.success && report.errors == 0 && report.received == report.sent,
        "{outcome:?}"
    );
    assert!(
        report.sent >= 60,
        "the stream ran through the restart: {outcome:?}"
    );
}

fn pod_to_pod_stream_survives(v6: bool) {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let client = Pod::create(&node, "default", "client").unwrap();
    let server = Pod::create(&node, "default", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    let to = if v6 {
        IpAddr::V6(server.ipv6().unwrap())
    } else {
        IpAddr::V4(server.ipv4().unwrap())
    };
    stream_through_a_crash(&node, &client, SocketAddr::new(to, DEFAULT_PORTS.tcp));
    assert_eq!(
        node.status().unwrap().endpoints,
        2,
        "the restarted agent adopted both pods"
    );
}

#[test]
fn a_pod_to_pod_tcp_stream_survives_an_agent_kill_and_restart_v4() {
    pod_to_pod_stream_survives(false);
}

#[test]
fn a_pod_to_pod_tcp_stream_survives_an_agent_kill_and_restart_v6() {
    pod_to_pod_stream_survives(true);
}

fn masqueraded_stream_survives(v6: bool) {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let client = Pod::create(&node, "default", "client").unwrap();
    let _serving = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let to = if v6 {
        IpAddr::V6(outside.world_v6())
    } else {
        IpAddr::V4(outside.world_v4())
    };
    stream_through_a_crash(&node, &client, SocketAddr::new(to, DEFAULT_PORTS.tcp));
}

#[test]
fn a_masqueraded_tcp_stream_to_the_outside_survives_an_agent_kill_and_restart_v4() {
    masqueraded_stream_survives(false);
}

#[test]
fn a_masqueraded_tcp_stream_to_the_outside_survives_an_agent_kill_and_restart_v6() {
    masqueraded_stream_survives(true);
}

#[test]
fn pods_created_before_and_after_a_graceful_agent_restart_reach_each_other() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let before = Pod::create(&node, "default", "before").unwrap();
    let _serving = workload::serve(&before, DEFAULT_PORTS).unwrap();
    let old_pid = node.agent().pid().expect("the agent runs");
    node.restart_agent().unwrap();
    let new_pid = node.agent().pid().expect("the agent runs again");
    assert_ne!(old_pid, new_pid, "a new agent process");
    let after = Pod::create(&node, "default", "after").unwrap();
    assert_ne!(
        after.ipv4(),
        before.ipv4(),
        "the restarted agent remembers the allocation"
    );
    assert_ne!(
        after.ipv6(),
        before.ipv6(),
        "the restarted agent remembers the allocation"
    );
    for to in [
        IpAddr::V4(before.ipv4().unwrap()),
        IpAddr::V6(before.ipv6().unwrap()),
    ] {
        let outcome = workload::tcp(&after, SocketAddr::new(to, DEFAULT_PORTS.tcp), 3).unwrap();
        assert!(outcome.success, "{outcome:?}");
    }
}

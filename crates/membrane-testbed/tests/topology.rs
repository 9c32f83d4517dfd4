//! The test bed's own building blocks against the running kernel: namespaces, cgroups,
//! the outside namespace and the workload binary. No agent is needed.

use membrane_testbed::addressing::{NodeAddressing, UPLINK, WORLD_V4, WORLD_V6};
use membrane_testbed::netlink;
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome, assert_all_ok, assert_reaches};
use membrane_testbed::{Cgroup, Netns, Outside, wiring};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A namespace wired to `outside` like a node, without an agent.
fn bare_node(outside: &Outside, index: u8) -> Netns {
    let netns = Netns::create("bare").unwrap();
    wiring::loopback_up(&netns).unwrap();
    wiring::connect_node(
        &netns,
        membrane_testbed::Place::netns(outside),
        NodeAddressing::new(index).unwrap(),
    )
    .unwrap();
    netns
}

#[test]
fn a_namespace_exists_while_held_and_is_gone_after_drop() {
    let netns = Netns::create("t").unwrap();
    let path = netns.path().to_path_buf();
    assert!(path.exists());
    let links = netlink::run_in(&netns, |h| async move { netlink::links(&h).await }).unwrap();
    let names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo"], "a new namespace holds only its loopback");
    drop(netns);
    assert!(!path.exists());
}

#[test]
fn namespaces_are_distinct_from_each_other_and_from_the_machine() {
    let a = Netns::create("t").unwrap();
    let b = Netns::create("t").unwrap();
    let inode = |netns: &Netns| {
        netns
            .run(|| {
                std::fs::metadata("/proc/thread-self/ns/net")
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            })
            .unwrap()
            .unwrap()
    };
    let own = std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata("/proc/thread-self/ns/net").unwrap(),
    );
    assert_ne!(inode(&a), inode(&b));
    assert_ne!(inode(&a), own);
}

#[test]
fn everything_is_removed_when_a_test_panics_while_holding_it() {
    let paths = std::panic::catch_unwind(|| {
        let netns = Netns::create("panic").unwrap();
        let cgroup = Cgroup::create("panic").unwrap();
        let held: (PathBuf, PathBuf) = (netns.path().into(), cgroup.path().into());
        std::panic::panic_any(held);
    })
    .unwrap_err();
    let (netns, cgroup) = paths.downcast_ref::<(PathBuf, PathBuf)>().unwrap();
    assert!(!netns.exists(), "{} is left behind", netns.display());
    assert!(!cgroup.exists(), "{} is left behind", cgroup.display());
}

#[test]
fn a_process_spawned_into_a_cgroup_is_listed_there_and_killed_with_it() {
    let netns = Netns::create("cg").unwrap();
    let cgroup = Cgroup::create("cg").unwrap();
    struct InCgroup<'a>(&'a Netns, &'a Cgroup);
    impl membrane_testbed::Place for InCgroup<'_> {
        fn netns(&self) -> &Netns {
            self.0
        }
        fn cgroup(&self) -> Option<&Cgroup> {
            Some(self.1)
        }
    }
    let mut command = Command::new("sleep");
    command.arg("600");
    let process = membrane_testbed::process::spawn(command, &InCgroup(&netns, &cgroup)).unwrap();
    let pid = process.pid().unwrap();
    assert_eq!(cgroup.pids().unwrap(), [pid]);
    let path = cgroup.path().to_path_buf();
    drop(cgroup);
    assert!(!path.exists());
    assert!(!PathBuf::from(format!("/proc/{pid}/cmdline")).exists() || process_is_zombie(pid));
}

fn process_is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
}

#[test]
fn a_node_namespace_gets_its_uplink_addresses_and_default_routes() {
    let outside = Outside::create().unwrap();
    let node = bare_node(&outside, 3);
    let plan = NodeAddressing::new(3).unwrap();
    let (links, addresses, v4, v6) = netlink::run_in(&node, |h| async move {
        Ok((
            netlink::links(&h).await?,
            netlink::addresses(&h).await?,
            netlink::routes(&h, rtnetlink::IpVersion::V4).await?,
            netlink::routes(&h, rtnetlink::IpVersion::V6).await?,
        ))
    })
    .unwrap();
    let uplink = links
        .iter()
        .find(|l| l.name == UPLINK)
        .expect("the uplink exists");
    assert_eq!(uplink.kind.as_deref(), Some("veth"));
    assert!(uplink.up);
    let on_uplink: Vec<_> = addresses
        .iter()
        .filter(|(i, _)| *i == uplink.index)
        .map(|(_, a)| *a)
        .collect();
    assert!(
        on_uplink.contains(&plan.uplink_v4().into()),
        "{on_uplink:?}"
    );
    assert!(
        on_uplink.contains(&plan.uplink_v6().into()),
        "{on_uplink:?}"
    );
    let default_v4 = v4
        .iter()
        .find(|r| r.destination.prefix_len() == 0)
        .expect("a v4 default route");
    assert_eq!(
        default_v4.gateway,
        Some(IpAddr::V4(plan.gateway_v4().addr()))
    );
    let default_v6 = v6
        .iter()
        .find(|r| r.destination.prefix_len() == 0)
        .expect("a v6 default route");
    assert_eq!(
        default_v6.gateway,
        Some(IpAddr::V6(plan.gateway_v6().addr()))
    );
}

#[test]
fn a_node_namespace_reaches_the_world_over_tcp_udp_http_and_icmp_on_both_families() {
    let outside = Outside::create().unwrap();
    let node = bare_node(&outside, 1);
    let _server = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    for world in [IpAddr::V4(WORLD_V4), IpAddr::V6(WORLD_V6)] {
        assert_reaches(&node, world, DEFAULT_PORTS, 3);
        let url = format!("http://{}/", SocketAddr::new(world, DEFAULT_PORTS.http));
        assert_all_ok("http", &workload::http(&node, &url, 2).unwrap());
    }
}

#[test]
fn the_world_sees_a_node_by_its_uplink_address() {
    let outside = Outside::create().unwrap();
    let node = bare_node(&outside, 2);
    let plan = NodeAddressing::new(2).unwrap();
    let _server = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let tcp =
        workload::whoami_tcp(&node, SocketAddr::new(WORLD_V4.into(), DEFAULT_PORTS.tcp)).unwrap();
    assert_eq!(tcp.report.peer.ip(), IpAddr::V4(plan.uplink_v4().addr()));
    let udp =
        workload::whoami_udp(&node, SocketAddr::new(WORLD_V6.into(), DEFAULT_PORTS.udp)).unwrap();
    assert_eq!(udp.report.peer.ip(), IpAddr::V6(plan.uplink_v6().addr()));
}

#[test]
fn the_outside_has_no_route_back_to_pod_cidrs() {
    let outside = Outside::create().unwrap();
    let _node = bare_node(&outside, 1);
    let plan = NodeAddressing::new(1).unwrap();
    let outside_ns = membrane_testbed::Place::netns(&outside);
    let v4 = netlink::run_in(outside_ns, |h| async move {
        netlink::routes(&h, rtnetlink::IpVersion::V4).await
    })
    .unwrap();
    let pod = IpAddr::V4(plan.pod_cidr_v4().addr());
    assert!(v4.iter().all(|r| !r.destination.contains(&pod)), "{v4:?}");
}

#[test]
fn a_stream_to_a_quiet_server_never_breaks() {
    let outside = Outside::create().unwrap();
    let node = bare_node(&outside, 1);
    let _server = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let target = SocketAddr::new(WORLD_V4.into(), DEFAULT_PORTS.tcp);
    let stream = workload::spawn_stream(
        &node,
        target,
        Duration::from_secs(2),
        Duration::from_millis(50),
    )
    .unwrap();
    let outcome: Outcome<membrane_testbed::report::StreamReport> = stream
        .finish(workload::stream_timeout(Duration::from_secs(2)))
        .unwrap();
    assert!(outcome.success, "{outcome:?}");
    assert!(!outcome.report.broke);
    assert!(outcome.report.sent >= 20, "{outcome:?}");
    assert_eq!(outcome.report.sent, outcome.report.received);
}

#[test]
fn a_stream_to_a_server_that_dies_reports_the_break() {
    let outside = Outside::create().unwrap();
    let node = bare_node(&outside, 1);
    let server = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let target = SocketAddr::new(WORLD_V6.into(), DEFAULT_PORTS.tcp);
    let stream = workload::spawn_stream(
        &node,
        target,
        Duration::from_secs(2),
        Duration::from_millis(50),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(server);
    let outcome: Outcome<membrane_testbed::report::StreamReport> = stream
        .finish(workload::stream_timeout(Duration::from_secs(2)))
        .unwrap();
    assert!(!outcome.success);
    assert!(outcome.report.broke, "{outcome:?}");
    assert!(outcome.report.received > 0, "{outcome:?}");
}

#[test]
fn latency_and_throughput_are_measured_between_namespaces() {
    let outside = Outside::create().unwrap();
    let node = bare_node(&outside, 1);
    let _server = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let target = SocketAddr::new(WORLD_V4.into(), DEFAULT_PORTS.tcp);
    let rr = workload::rr(&node, target, 200).unwrap();
    assert_all_ok("rr", &rr);
    let latency = rr.report.latency.unwrap();
    assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
    let throughput = workload::throughput(&node, target, 1).unwrap();
    assert!(throughput.success, "{throughput:?}");
    assert!(throughput.report.bytes > 0, "{throughput:?}");
}

//! `membrane-demo`: brings up one node with its agent, an outside namespace and three
//! pods through the CNI plugin, shows traffic through Membrane on both IP families,
//! then stays up until Ctrl-C (or `--duration` seconds) and removes everything.
#![forbid(unsafe_code)]

use anyhow::{Context, ensure};
use clap::Parser;
use membrane_testbed::report::CountReport;
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome};
use membrane_testbed::{Node, Outside, Place, Pod, pinned};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Membrane on one node, in network namespaces of this machine.
#[derive(Parser)]
#[command(name = "membrane-demo", version)]
struct Cli {
    /// Stays up this many seconds after the checks, instead of until Ctrl-C.
    #[arg(long)]
    duration: Option<u64>,
}

/// Numbered steps with their duration.
struct Steps {
    total: usize,
    current: usize,
}

impl Steps {
    fn run<T>(
        &mut self,
        what: &str,
        step: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.current += 1;
        println!("[{}/{}] {what} ...", self.current, self.total);
        let started = Instant::now();
        let result = step()?;
        println!("      done in {:.1}s", started.elapsed().as_secs_f64());
        Ok(result)
    }
}

fn address(pod: &Pod, v6: bool) -> anyhow::Result<IpAddr> {
    Ok(if v6 {
        IpAddr::V6(
            pod.ipv6()
                .with_context(|| format!("{} has no IPv6 address", pod.full_name()))?,
        )
    } else {
        IpAddr::V4(
            pod.ipv4()
                .with_context(|| format!("{} has no IPv4 address", pod.full_name()))?,
        )
    })
}

fn family(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

/// Prints one line for a client run and fails unless every operation succeeded.
fn show(what: &str, outcome: Outcome<CountReport>) -> anyhow::Result<()> {
    let report = &outcome.report;
    let latency = report
        .latency
        .map(|l| format!("p50 {}µs  p99 {}µs", l.p50_us, l.p99_us))
        .unwrap_or_default();
    println!(
        "      {what:<44} {:>3}/{:<3} ok  {latency}",
        report.ok,
        report.ok + report.failed
    );
    ensure!(
        outcome.success,
        "{what} failed: {report:?} {}",
        outcome.stderr
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    println!(
        "Membrane demo: one node, three pods and the outside world, all in network namespaces.\n"
    );
    let mut steps = Steps {
        total: 7,
        current: 0,
    };

    let outside = steps.run(
        "create the outside namespace (stands for the world)",
        || Ok(Outside::create()?),
    )?;
    println!(
        "      {}: world addresses {} and {}, no route back to any pod",
        outside.netns().name(),
        outside.world_v4(),
        outside.world_v6()
    );

    let node = steps.run(
        "bring up node 1: namespace, cgroup, bpffs pins, membrane-agent",
        || Ok(Node::start(&outside, 1)?),
    )?;
    let status = node.status()?;
    println!(
        "      node {} in {}: uplink {} / {}, pod CIDRs {} and {}, agent healthy: {}",
        node.name(),
        node.netns().name(),
        node.ipv4(),
        node.ipv6(),
        node.addressing().pod_cidr_v4(),
        node.addressing().pod_cidr_v6(),
        status.healthy
    );

    let pods = steps.run(
        "create three pods through the membrane-cni plugin (CNI ADD)",
        || {
            ["web", "client", "db"]
                .into_iter()
                .map(|name| {
                    Pod::create(&node, "demo", name).with_context(|| format!("pod demo/{name}"))
                })
                .collect::<anyhow::Result<Vec<Pod>>>()
        },
    )?;
    for pod in &pods {
        let v4 = pod.ipv4().map(|ip| ip.to_string()).unwrap_or_default();
        let v6 = pod.ipv6().map(|ip| ip.to_string()).unwrap_or_default();
        println!(
            "      {:<12} {v4:<14} {v6:<22} netns {}",
            pod.full_name(),
            pod.netns().name()
        );
    }
    let (web, client, db) = (&pods[0], &pods[1], &pods[2]);

    let servers = steps.run(
        "start TCP/UDP/HTTP servers in demo/web, demo/db, the node and the outside",
        || {
            Ok([
                workload::serve(web, DEFAULT_PORTS)?,
                workload::serve(db, DEFAULT_PORTS)?,
                workload::serve(&node, DEFAULT_PORTS)?,
                workload::serve(&outside, DEFAULT_PORTS)?,
            ])
        },
    )?;
    let ports = servers[0].ready();
    println!(
        "      listening on TCP {}, UDP {}, HTTP {}",
        ports.tcp.unwrap_or_default(),
        ports.udp.unwrap_or_default(),
        ports.http.unwrap_or_default()
    );

    steps.run(
        "pod to pod on the same node (eBPF redirect between veths)",
        || {
            for v6 in [false, true] {
                for (to, server) in [("web", web), ("db", db)] {
                    let ip = address(server, v6)?;
                    let name = format!("client -> {to} {}", family(v6));
                    show(
                        &format!("{name} TCP"),
                        workload::tcp(client, SocketAddr::new(ip, DEFAULT_PORTS.tcp), 10)?,
                    )?;
                    show(
                        &format!("{name} UDP"),
                        workload::udp(client, SocketAddr::new(ip, DEFAULT_PORTS.udp), 10)?,
                    )?;
                    show(&format!("{name} ICMP"), workload::ping(client, ip, 5)?)?;
                }
                let url = format!(
                    "http://{}/",
                    SocketAddr::new(address(web, v6)?, DEFAULT_PORTS.http)
                );
                show(
                    &format!("client -> web {} HTTP", family(v6)),
                    workload::http(client, &url, 5)?,
                )?;
            }
            Ok(())
        },
    )?;

    steps.run(
        "pod to its node, and pod to the outside (masquerade)",
        || {
            for v6 in [false, true] {
                let (node_ip, world) = if v6 {
                    (IpAddr::V6(node.ipv6()), IpAddr::V6(outside.world_v6()))
                } else {
                    (IpAddr::V4(node.ipv4()), IpAddr::V4(outside.world_v4()))
                };
                let name = format!("client -> node {}", family(v6));
                show(
                    &format!("{name} TCP"),
                    workload::tcp(client, SocketAddr::new(node_ip, DEFAULT_PORTS.tcp), 5)?,
                )?;
                show(&format!("{name} ICMP"), workload::ping(client, node_ip, 3)?)?;
                let name = format!("client -> world {}", family(v6));
                show(
                    &format!("{name} TCP"),
                    workload::tcp(client, SocketAddr::new(world, DEFAULT_PORTS.tcp), 5)?,
                )?;
                show(
                    &format!("{name} UDP"),
                    workload::udp(client, SocketAddr::new(world, DEFAULT_PORTS.udp), 5)?,
                )?;
                show(&format!("{name} ICMP"), workload::ping(client, world, 3)?)?;
                let seen = workload::whoami_tcp(client, SocketAddr::new(world, DEFAULT_PORTS.tcp))?;
                let pod_ip = address(client, v6)?;
                println!(
                    "      the world saw the client (pod {pod_ip}) come from {}{}",
                    seen.report.peer,
                    if seen.report.peer.ip() == node_ip {
                        ": the node's address, masqueraded"
                    } else {
                        ""
                    }
                );
                ensure!(
                    seen.report.peer.ip() == node_ip,
                    "the client was not masqueraded as {node_ip}"
                );
            }
            Ok(())
        },
    )?;

    steps.run(
        "read the datapath's packet counters from the pinned metrics map",
        || {
            for counter in pinned::counters(node.pin_dir().path())? {
                println!(
                    "      {:<8} {:<26} {:>8} packets {:>10} bytes{}",
                    counter.direction,
                    counter.reason,
                    counter.packets,
                    counter.bytes,
                    if counter.is_drop { "  (drop)" } else { "" }
                );
            }
            Ok(())
        },
    )?;

    println!("\nEverything is up. Look around, for example:");
    println!("  ip netns exec {} ip route", node.netns().name());
    println!("  ip netns exec {} ip addr", client.netns().name());
    println!("  ls {}", node.pin_dir().path().display());
    println!("  tail -f {}", node.log_path().display());
    wait(cli.duration)?;
    println!(
        "cleaning up: CNI DEL of every pod, stop the agent, remove namespaces, cgroups and pins"
    );
    drop(pods);
    Ok(())
}

/// Waits for Ctrl-C (or SIGTERM), or `seconds` if given.
fn wait(seconds: Option<u64>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let interrupted = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        match seconds {
            Some(seconds) => {
                println!("\nstaying up for {seconds}s (Ctrl-C ends earlier)");
                let _ = tokio::time::timeout(Duration::from_secs(seconds), interrupted).await;
            }
            None => {
                println!("\nstaying up until Ctrl-C");
                interrupted.await;
            }
        }
        Ok(())
    })
}

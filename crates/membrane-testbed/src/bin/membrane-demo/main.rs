//! `membrane-demo`: a local cluster in network namespaces of this machine: two nodes
//! sharing state through a real etcd (or one node on the embedded store), the example
//! application of `examples/shop` with its Services and policies, and the probe pods of
//! `examples/connectivity`. It drives traffic (a refused path included), shows
//! `membrane status`, the Services and a live stream of flows, stays up until Ctrl-C
//! (or `--duration`) and removes everything it created.
#![forbid(unsafe_code)]

mod inventory;
mod signals;
mod steps;
mod traffic;

use anyhow::{Context, bail};
use clap::Parser;
use inventory::Inventory;
use membrane_api::{ServiceFrontend, paths};
use membrane_testbed::app::{self, App};
use membrane_testbed::process::{self, Process};
use membrane_testbed::workload::{self, DEFAULT_PORTS};
use membrane_testbed::{Etcd, Node, Outside, Place, cli, cluster};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use steps::{Steps, wait_for};
use traffic::{Expect, Path};

/// Membrane on a local cluster, in network namespaces of this machine.
#[derive(Parser)]
#[command(name = "membrane-demo", version)]
struct Cli {
    /// Nodes: 2 share state through a real etcd the demo starts; 1 uses the embedded store.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    nodes: u8,

    /// Stays up this many seconds after the checks, instead of until Ctrl-C.
    #[arg(long)]
    duration: Option<u64>,

    /// The examples directory (holding shop/ and connectivity/).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))]
    examples: PathBuf,

    /// Writes the names of everything the demo creates (namespaces, cgroups, pin
    /// directories, state directories) as JSON to this file, for a check that all of it
    /// is gone afterwards.
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
}

/// How long the agents get to program the Services.
const PROGRAM_LIMIT: Duration = Duration::from_secs(60);

/// The pods that run on the second node when there are two.
const ON_SECOND_NODE: [&str; 3] = ["shop/api-1", "shop/db-0", "membrane-connectivity/server-1"];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    signals::watch()?;
    let stopping = AtomicBool::new(false);
    println!(
        "Membrane demo: {} node(s), the shop application and the outside world, in network namespaces of this machine.",
        cli.nodes
    );
    let mut steps = Steps::new(8);
    let mut inventory = Inventory::default();

    let outside = steps.run("create the outside namespace (the world)", || {
        Ok(Outside::create()?)
    })?;
    inventory.netns.push(outside.netns().path().to_path_buf());
    let etcd = if cli.nodes == 2 {
        let etcd = steps.run(
            "start etcd (Debian's etcd-server) in the outside namespace",
            || {
                Ok(Etcd::start(
                    outside.netns(),
                    IpAddr::V4(outside.world_v4()),
                )?)
            },
        )?;
        println!("      etcd at {}", etcd.endpoint());
        inventory
            .state_dirs
            .extend(etcd.log_path().parent().map(PathBuf::from));
        Some(etcd)
    } else {
        steps.run(
            "one node: the agent keeps cluster state in its embedded store",
            || Ok(()),
        )?;
        None
    };
    let endpoint = etcd.as_ref().map(Etcd::endpoint);
    let flags: Vec<&str> = match &endpoint {
        Some(endpoint) => cluster::etcd_flags(endpoint, "tunnel"),
        None => Vec::new(),
    };
    let nodes = steps.run(
        &format!(
            "bring up {} node(s): namespace, cgroup, bpffs pins, membrane-agent",
            cli.nodes
        ),
        || {
            (1..=cli.nodes)
                .map(|i| {
                    let started = Instant::now();
                    let node = Node::start_with(&outside, i, &flags)
                        .with_context(|| format!("node {i}"))?;
                    println!(
                        "      {} up, agent healthy, in {:.1}s",
                        node.name(),
                        started.elapsed().as_secs_f64()
                    );
                    Ok(node)
                })
                .collect::<anyhow::Result<Vec<Node>>>()
        },
    )?;
    for node in &nodes {
        inventory.netns.push(node.netns().path().to_path_buf());
        inventory
            .cgroups
            .extend(node.cgroup().map(|c| c.path().to_path_buf()));
        inventory.pin_dirs.push(node.pin_dir().path().to_path_buf());
        inventory.state_dirs.push(node.state_dir().to_path_buf());
        println!(
            "      {}: uplink {} / {}, pod CIDRs {} and {}, agent socket {}",
            node.name(),
            node.ipv4(),
            node.ipv6(),
            node.addressing().pod_cidr_v4(),
            node.addressing().pod_cidr_v6(),
            node.agent().config().socket.display()
        );
    }
    if let Some(path) = &cli.inventory {
        inventory.write(path)?;
    }
    let first = &nodes[0];
    let place = |pod: &str| -> &Node {
        match nodes.get(1) {
            Some(second) if ON_SECOND_NODE.contains(&pod) => second,
            _ => first,
        }
    };

    let apps = steps.run(
        "apply examples/shop and examples/connectivity: Pod objects, pods through the CNI plugin, servers, Services, EndpointSlices, policies",
        || {
            let mut apps = Vec::new();
            for dir in ["shop", "connectivity"] {
                let objects = app::load(&cli.examples.join(dir))?;
                apps.push(App::deploy(first, objects, place)?);
            }
            Ok(apps)
        },
    )?;
    for pod in apps.iter().flat_map(App::pods) {
        inventory.netns.push(pod.netns().path().to_path_buf());
        inventory
            .cgroups
            .extend(pod.cgroup().map(|c| c.path().to_path_buf()));
    }
    if let Some(path) = &cli.inventory {
        inventory.write(path)?;
    }
    for app in &apps {
        for pod in app.pods() {
            println!(
                "      {:<32} on {:<14} {:<14} {}",
                pod.full_name(),
                pod.node_name(),
                pod.ipv4().map(|ip| ip.to_string()).unwrap_or_default(),
                pod.ipv6().map(|ip| ip.to_string()).unwrap_or_default()
            );
        }
    }
    let shop = &apps[0];
    let pod = |name: &str| {
        shop.pod(name)
            .with_context(|| format!("examples/shop has no pod {name}"))
    };
    let (visitor, frontend, api) = (
        pod("visitors/client")?,
        pod("shop/frontend-0")?,
        pod("shop/api-0")?,
    );

    steps.run(
        "wait until every node's agent programs the Services",
        || {
            for node in &nodes {
                println!("      {}", node.name());
                let programmed = wait_for(PROGRAM_LIMIT, Duration::from_millis(500), || {
                    node.agent()
                        .get::<Vec<ServiceFrontend>>(paths::SERVICES)
                        .is_ok_and(|all| {
                            all.iter().filter(|f| f.namespace == "shop").count() >= 4
                                && all.iter().all(|f| f.programmed)
                        })
                });
                if !programmed {
                    bail!(
                        "{} did not program the Services within {PROGRAM_LIMIT:?}",
                        node.name()
                    );
                }
            }
            Ok(())
        },
    )?;

    let _world = workload::serve(&outside, DEFAULT_PORTS)?;
    let node_port = SocketAddr::new(IpAddr::V4(first.ipv4()), 30080);
    let paths = vec![
        Path {
            name: "outside -> frontend NodePort (HTTP)".into(),
            from: &outside,
            target: format!("http://{node_port}/"),
            expect: Expect::Connects,
        },
        Path {
            name: "visitors/client -> frontend Service (HTTP)".into(),
            from: visitor,
            target: "http://10.96.100.10/".into(),
            expect: Expect::Connects,
        },
        Path {
            name: "frontend -> api Service (HTTP)".into(),
            from: frontend,
            target: "http://10.96.100.20/".into(),
            expect: Expect::Connects,
        },
        Path {
            name: "api -> db Service (TCP)".into(),
            from: api,
            target: "tcp://10.96.100.30:5432".into(),
            expect: Expect::Connects,
        },
        Path {
            name: "frontend -> db Service (refused by db-from-api)".into(),
            from: frontend,
            target: "tcp://10.96.100.30:5432".into(),
            expect: Expect::Refused,
        },
        Path {
            name: "visitors/client -> api Service (refused by api-from-frontend)".into(),
            from: visitor,
            target: "http://10.96.100.20/".into(),
            expect: Expect::Refused,
        },
    ];
    steps.run("drive traffic along the application's paths", || {
        for path in &paths {
            let driven = traffic::drive(path, 3)?;
            let verdict = match (path.expect, driven.as_expected) {
                (Expect::Connects, true) => "connects, as it should".to_string(),
                (Expect::Refused, true) => "refused, as it should".to_string(),
                (_, false) => format!(
                    "UNEXPECTED ({})",
                    driven
                        .first_error
                        .as_deref()
                        .unwrap_or("every request answered")
                ),
            };
            println!(
                "      {:<62} {:>2} ok {:>2} failed  {verdict}",
                path.name, driven.ok, driven.failed
            );
        }
        Ok(())
    })?;

    steps.run(
        "membrane status, membrane get services, membrane connectivity test",
        || {
            let world =
                SocketAddr::new(IpAddr::V4(outside.world_v4()), DEFAULT_PORTS.tcp).to_string();
            let mut connectivity =
                vec!["connectivity", "test", "--external-target", world.as_str()];
            let sockets: Vec<String> = nodes[1..]
                .iter()
                .map(|n| n.agent().config().socket.display().to_string())
                .collect();
            for socket in &sockets {
                connectivity.extend(["--node-socket", socket.as_str()]);
            }
            for args in [vec!["status"], vec!["get", "services"], connectivity] {
                println!("\n$ membrane {}", args.join(" "));
                let ran = cli::run(first, &args, "")?;
                print!("{}", ran.stdout);
                for line in ran.stderr.lines() {
                    println!("{line}");
                }
            }
            Ok(())
        },
    )?;

    let observe = steps.run(
        "follow the flows of the first node live (membrane observe --follow)",
        || {
            let command = cli::command(first, &["observe", "--follow"])?;
            Ok(process::spawn(command, first)?)
        },
    )?;
    println!(
        "\nEverything is up. Traffic keeps flowing every 2s; flows stream below. Look around, for example:"
    );
    println!("  ip netns exec {} ip addr", visitor.netns().name());
    println!(
        "  membrane --socket {} get pods",
        first.agent().config().socket.display()
    );
    println!(
        "  membrane bpf services --bpffs-dir {}",
        first.pin_dir().path().display()
    );
    println!(
        "  membrane --socket {} observe --last 20 --verdict DROPPED",
        first.agent().config().socket.display()
    );
    println!("  tail -f {}", first.log_path().display());
    std::thread::scope(|scope| {
        scope.spawn(|| keep_driving(&paths, &stopping));
        wait(cli.duration);
        stopping.store(true, Ordering::Relaxed);
    });
    stop(observe);
    println!(
        "\ncleaning up: objects deleted, CNI DEL of every pod, agents stopped, namespaces, cgroups, pins and etcd removed"
    );
    for app in apps.iter().rev() {
        app.remove()?;
    }
    drop(apps);
    drop(nodes);
    drop(etcd);
    drop(outside);
    println!("done: nothing the demo created is left");
    Ok(())
}

/// Drives one request per path every two seconds until `stopping`.
fn keep_driving(paths: &[Path<'_>], stopping: &AtomicBool) {
    while !stopping.load(Ordering::Relaxed) {
        for path in paths {
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            let _ = traffic::drive(path, 1);
        }
        let pause = Instant::now() + Duration::from_secs(2);
        while Instant::now() < pause && !stopping.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn stop(mut observe: Process) {
    observe.terminate(Duration::from_secs(2));
}

/// Waits for Ctrl-C (or SIGTERM), or `seconds` if given.
fn wait(seconds: Option<u64>) {
    let deadline = match seconds {
        Some(seconds) => {
            println!("\nstaying up for {seconds}s (Ctrl-C ends earlier)");
            Some(Instant::now() + Duration::from_secs(seconds))
        }
        None => {
            println!("\nstaying up until Ctrl-C");
            None
        }
    };
    while !signals::interrupted() && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

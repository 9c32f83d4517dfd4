//! `membrane connectivity test`: scenarios run between probe pods of the current
//! cluster, each reported as pass or fail with the reason.

mod cluster;
mod policy;
mod probe;
mod scenarios;

use crate::error::CliError;
use membrane_api::Client;
use probe::Outcome;
use scenarios::{POLICY_ALLOW, POLICY_REFUSE, Probe};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Check connectivity in the cluster.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the connectivity scenarios between the cluster's probe pods.
    Test(TestArgs),
}

/// Run connectivity scenarios between the cluster's probe pods.
///
/// The command deploys nothing: Membrane creates pods through the CNI plugin when a
/// container runtime asks, which a CLI cannot do. It uses existing pods labelled
/// membrane.io/connectivity=client (where probes start) and
/// membrane.io/connectivity=server (what they reach, on the TCP ports their containers
/// declare), and the Services selecting the servers. `examples/connectivity/` holds
/// such pods; `cargo xtask demo` and the test bed create them.
///
/// Probes are TCP connections opened from inside a client's network namespace, whose
/// path the CNI plugin registered with the node's agent: the command must run as root
/// on the machine of the clients' nodes, and reach those nodes' agents (--socket, plus
/// --node-socket per other node). Servers on other nodes are found through their
/// EndpointSlices.
///
/// Scenarios: pod-to-pod/same-node, pod-to-pod/cross-node, pod-to-service/cluster-ip,
/// pod-to-service/node-port (every node address), pod-to-world (--external-target),
/// policy/allow and policy/refuse. For the policy scenarios the command stores the
/// CiliumNetworkPolicy membrane-connectivity-probe in the servers' namespace (clients
/// may reach servers on their first TCP port only), waits until the second port is
/// refused, checks the first still connects, and removes the policy again.
///
/// Each scenario prints pass or fail with the reason; a scenario with nothing to probe
/// is skipped, saying why. The exit code is non-zero when any probe fails.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane connectivity test\n  membrane connectivity test --node-socket /run/membrane/node-2.sock --external-target 203.0.113.1:7000\n  membrane connectivity test --namespace membrane-connectivity --skip-policy"
)]
pub struct TestArgs {
    /// The agent socket of another node whose clients to probe from (repeatable).
    #[arg(long, value_name = "PATH")]
    node_socket: Vec<PathBuf>,

    /// Only probe pods of this namespace.
    #[arg(short, long)]
    namespace: Option<String>,

    /// An address:port outside the cluster that accepts TCP (for pod-to-world).
    #[arg(long, value_name = "ADDR:PORT")]
    external_target: Option<SocketAddr>,

    /// How long one connection attempt may take, in seconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    timeout: u64,

    /// How long the policy scenarios wait for the probe policy to be enforced, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=300))]
    policy_wait: u64,

    /// Leave out the policy scenarios (they store and remove a policy).
    #[arg(long)]
    skip_policy: bool,
}

/// Runs the command.
pub async fn run(api: &Client, args: Args) -> Result<(), CliError> {
    let Command::Test(args) = args.command;
    test(api, args).await
}

/// Tally of the results.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, out: &mut impl Write, probe: &Probe, result: Result<String, String>) {
        let (verdict, reason) = match &result {
            Ok(reason) => ("pass", reason),
            Err(reason) => ("FAIL", reason),
        };
        let _ = writeln!(
            out,
            "[{verdict}] {:<26} {}: {reason}",
            probe.scenario, probe.description
        );
        let _ = out.flush();
        match result {
            Ok(_) => self.passed += 1,
            Err(reason) => self.failed.push(format!(
                "{} ({}: {reason})",
                probe.scenario, probe.description
            )),
        }
    }
}

async fn test(api: &Client, args: TestArgs) -> Result<(), CliError> {
    let mut agents = vec![api.clone()];
    agents.extend(args.node_socket.iter().map(Client::new));
    let found = cluster::discover(api, &agents, args.namespace.as_deref()).await?;
    if found.clients.is_empty() || found.servers.is_empty() {
        return Err(CliError::NoProbePods {
            clients: found.clients.len(),
            unreachable: found.unreachable_clients.clone(),
            servers: found.servers.len(),
        });
    }
    let timeout = Duration::from_secs(args.timeout);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} client(s), {} server(s), {} Service port(s), {} node(s)",
        found.clients.len(),
        found.servers.len(),
        found.frontends.len(),
        found.nodes.len()
    );
    for name in &found.unreachable_clients {
        let _ = writeln!(
            out,
            "note: client {name} runs on a node whose agent was not given (--node-socket); it is left out"
        );
    }
    let (planned, skipped) = scenarios::plan(&found, args.external_target);
    let mut tally = Tally::default();
    for probe in &planned {
        let result = match probe::tcp(&probe.netns, probe.target, timeout) {
            Outcome::Connected(took) => Ok(format!("connected in {took:.1?}")),
            Outcome::Failed(why) => Err(why),
        };
        tally.record(&mut out, probe, result);
    }
    for s in &skipped {
        let _ = writeln!(out, "[skip] {:<26} {}", s.scenario, s.reason);
    }
    if args.skip_policy {
        let _ = writeln!(out, "[skip] policy/*                   --skip-policy given");
    } else {
        match scenarios::policy_pair(&found) {
            Some(pair) => policy_scenarios(api, &mut out, &mut tally, pair, &args).await?,
            None => {
                let _ = writeln!(
                    out,
                    "[skip] policy/*                   no server declares two TCP ports"
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{} probe(s): {} passed, {} failed",
        tally.passed + tally.failed.len(),
        tally.passed,
        tally.failed.len()
    );
    if tally.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::ConnectivityFailed {
            failed: tally.failed,
        })
    }
}

async fn policy_scenarios(
    api: &Client,
    out: &mut impl Write,
    tally: &mut Tally,
    (client, server, address, allowed, refused): (
        cluster::ProbeClient,
        String,
        std::net::IpAddr,
        u16,
        u16,
    ),
    args: &TestArgs,
) -> Result<(), CliError> {
    let namespace = server.split('/').next().unwrap_or("default").to_string();
    let client_namespace = client.name.split('/').next().unwrap_or("default");
    let timeout = Duration::from_secs(args.timeout);
    let refuse = Probe {
        scenario: POLICY_REFUSE,
        description: format!(
            "{} -> {server} {} (not in {})",
            client.name,
            SocketAddr::new(address, refused),
            policy::POLICY_NAME
        ),
        netns: client.netns.clone(),
        target: SocketAddr::new(address, refused),
    };
    let allow = Probe {
        scenario: POLICY_ALLOW,
        description: format!(
            "{} -> {server} {} (allowed by {})",
            client.name,
            SocketAddr::new(address, allowed),
            policy::POLICY_NAME
        ),
        netns: client.netns.clone(),
        target: SocketAddr::new(address, allowed),
    };
    // Without the policy the refused port must connect, or a refusal would prove nothing.
    if let Outcome::Failed(why) = probe::tcp(&refuse.netns, refuse.target, timeout) {
        tally.record(
            out,
            &refuse,
            Err(format!(
                "the port does not connect even before the policy is stored ({why})"
            )),
        );
        return Ok(());
    }
    policy::store(api, &namespace, client_namespace, allowed).await?;
    // Enforcement follows the stored policy within moments; poll, bounded in time.
    let deadline = Instant::now() + Duration::from_secs(args.policy_wait);
    let refused_result = loop {
        match probe::tcp(&refuse.netns, refuse.target, timeout) {
            Outcome::Failed(why) => break Ok(format!("refused ({why})")),
            Outcome::Connected(_) if Instant::now() >= deadline => {
                break Err(format!(
                    "still connects {}s after the policy was stored: the policy is not enforced",
                    args.policy_wait
                ));
            }
            Outcome::Connected(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    tally.record(out, &refuse, refused_result);
    let allowed_result = match probe::tcp(&allow.netns, allow.target, timeout) {
        Outcome::Connected(took) => Ok(format!("connected in {took:.1?}")),
        Outcome::Failed(why) => Err(why),
    };
    tally.record(out, &allow, allowed_result);
    policy::remove(api, &namespace).await
}

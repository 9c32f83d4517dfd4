//! `membrane observe`: flows from a node's Observer API, with the flags and output
//! formats Hubble users know.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches};
use membrane_observe::api::observer::GetFlowsRequest;
use membrane_observe::api::timestamp;
use membrane_observe::client::{ClientError, ClientTls, ServerAddress, connect};
use membrane_observe::print::{Format, PrintError, Printer};
use membrane_observe::request::{FilterFlags, FlagError};
use std::path::PathBuf;
use std::time::SystemTime;
use tokio_stream::StreamExt;

/// Filter flags, in the order they are declared: each takes a value and may repeat.
const FILTER_FLAGS: [&str; 35] = [
    "namespace",
    "from-namespace",
    "to-namespace",
    "pod",
    "from-pod",
    "to-pod",
    "ip",
    "from-ip",
    "to-ip",
    "label",
    "from-label",
    "to-label",
    "service",
    "from-service",
    "to-service",
    "fqdn",
    "from-fqdn",
    "to-fqdn",
    "port",
    "from-port",
    "to-port",
    "identity",
    "from-identity",
    "to-identity",
    "workload",
    "from-workload",
    "to-workload",
    "verdict",
    "protocol",
    "type",
    "tcp-flags",
    "node-name",
    "ip-version",
    "traffic-direction",
    "not",
];

/// Show flows seen by a node's datapath, as `hubble observe` does.
///
/// Without --follow, --since or --last, the last 20 flows are shown. Filters of one
/// kind are alternatives; different kinds must all match; --not sends the next filter to
/// the deny-list.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  membrane observe --last 50 --namespace shop
  membrane observe -f --verdict DROPPED -o json
  membrane observe --from-pod shop/client --to-port 80 --not --verdict FORWARDED
  membrane observe --since 5m --type trace:to-endpoint -o table
  membrane observe --server 10.0.0.1:4244 --tls --tls-ca-cert-files ca.pem")]
pub struct Args {
    /// The Observer: a unix socket path or host:port (default: observer.sock beside
    /// the agent's --socket, where the agent serves it unless configured otherwise).
    #[arg(long, env = "MEMBRANE_OBSERVER")]
    server: Option<String>,
    /// Keep printing new flows.
    #[arg(short, long)]
    follow: bool,
    /// Show the last N flows.
    #[arg(long, value_name = "N", conflicts_with = "first")]
    last: Option<u64>,
    /// Show the first N flows in the ring.
    #[arg(long, value_name = "N", conflicts_with = "follow")]
    first: Option<u64>,
    /// Only flows since this time: a duration ago (5m, 1h30m) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only flows until this time: a duration ago (5m) or RFC 3339.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Output format: compact, table, dict, json or jsonpb.
    #[arg(short, long, default_value = "compact", value_parser = ["compact", "table", "dict", "json", "jsonpb"])]
    output: String,

    /// Connect with TLS.
    #[arg(long)]
    tls: bool,
    /// CA certificates (PEM) to trust for the server.
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca_cert_files: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_client_key_file"])]
    tls_client_cert_file: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_client_cert_file"])]
    tls_client_key_file: Option<PathBuf>,
    /// Server name to expect in the server's certificate.
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_server_name: Option<String>,

    /// Flows from or to pods of this namespace.
    #[arg(short, long, value_name = "NS", action = ArgAction::Append)]
    namespace: Vec<String>,
    /// Flows from pods of this namespace.
    #[arg(long, value_name = "NS", action = ArgAction::Append)]
    from_namespace: Vec<String>,
    /// Flows to pods of this namespace.
    #[arg(long, value_name = "NS", action = ArgAction::Append)]
    to_namespace: Vec<String>,
    /// Flows from or to a pod: [namespace/]name-prefix.
    #[arg(long, value_name = "POD", action = ArgAction::Append)]
    pod: Vec<String>,
    /// Flows from a pod.
    #[arg(long, value_name = "POD", action = ArgAction::Append)]
    from_pod: Vec<String>,
    /// Flows to a pod.
    #[arg(long, value_name = "POD", action = ArgAction::Append)]
    to_pod: Vec<String>,
    /// Flows from or to an address or CIDR.
    #[arg(long, value_name = "IP", action = ArgAction::Append)]
    ip: Vec<String>,
    /// Flows from an address or CIDR.
    #[arg(long, value_name = "IP", action = ArgAction::Append)]
    from_ip: Vec<String>,
    /// Flows to an address or CIDR.
    #[arg(long, value_name = "IP", action = ArgAction::Append)]
    to_ip: Vec<String>,
    /// Flows from or to endpoints matching a label selector.
    #[arg(short, long, value_name = "SELECTOR", action = ArgAction::Append)]
    label: Vec<String>,
    /// Flows from endpoints matching a label selector.
    #[arg(long, value_name = "SELECTOR", action = ArgAction::Append)]
    from_label: Vec<String>,
    /// Flows to endpoints matching a label selector.
    #[arg(long, value_name = "SELECTOR", action = ArgAction::Append)]
    to_label: Vec<String>,
    /// Flows from or to a Service: [namespace/]name-prefix.
    #[arg(long, value_name = "SVC", action = ArgAction::Append)]
    service: Vec<String>,
    /// Flows from a Service.
    #[arg(long, value_name = "SVC", action = ArgAction::Append)]
    from_service: Vec<String>,
    /// Flows to a Service.
    #[arg(long, value_name = "SVC", action = ArgAction::Append)]
    to_service: Vec<String>,
    /// Flows from or to a DNS name pattern (none match until DNS names are learnt).
    #[arg(long, value_name = "PATTERN", action = ArgAction::Append)]
    fqdn: Vec<String>,
    /// Flows from a DNS name pattern.
    #[arg(long, value_name = "PATTERN", action = ArgAction::Append)]
    from_fqdn: Vec<String>,
    /// Flows to a DNS name pattern.
    #[arg(long, value_name = "PATTERN", action = ArgAction::Append)]
    to_fqdn: Vec<String>,
    /// Flows from or to a port.
    #[arg(long, value_name = "PORT", action = ArgAction::Append)]
    port: Vec<String>,
    /// Flows from a port.
    #[arg(long, value_name = "PORT", action = ArgAction::Append)]
    from_port: Vec<String>,
    /// Flows to a port.
    #[arg(long, value_name = "PORT", action = ArgAction::Append)]
    to_port: Vec<String>,
    /// Flows from or to a security identity (a number or host, world, ...).
    #[arg(long, value_name = "ID", action = ArgAction::Append)]
    identity: Vec<String>,
    /// Flows from a security identity.
    #[arg(long, value_name = "ID", action = ArgAction::Append)]
    from_identity: Vec<String>,
    /// Flows to a security identity.
    #[arg(long, value_name = "ID", action = ArgAction::Append)]
    to_identity: Vec<String>,
    /// Flows from or to a workload: [kind/]name.
    #[arg(long, value_name = "WORKLOAD", action = ArgAction::Append)]
    workload: Vec<String>,
    /// Flows from a workload.
    #[arg(long, value_name = "WORKLOAD", action = ArgAction::Append)]
    from_workload: Vec<String>,
    /// Flows to a workload.
    #[arg(long, value_name = "WORKLOAD", action = ArgAction::Append)]
    to_workload: Vec<String>,
    /// Flows with a verdict: FORWARDED, DROPPED, AUDIT, TRANSLATED, ...
    #[arg(long, value_name = "VERDICT", action = ArgAction::Append)]
    verdict: Vec<String>,
    /// Flows of a protocol: tcp, udp, icmp, icmpv4, icmpv6.
    #[arg(long, value_name = "PROTO", action = ArgAction::Append)]
    protocol: Vec<String>,
    /// Flows of an event type: trace[:point], drop, policy-verdict, trace-sock.
    #[arg(short, long = "type", value_name = "TYPE", action = ArgAction::Append)]
    r#type: Vec<String>,
    /// Flows with all these TCP flags (SYN,ACK).
    #[arg(long, value_name = "FLAGS", action = ArgAction::Append)]
    tcp_flags: Vec<String>,
    /// Flows seen on nodes matching a pattern ([cluster/]node*).
    #[arg(long, value_name = "PATTERN", action = ArgAction::Append)]
    node_name: Vec<String>,
    /// Flows of an IP version: 4 or 6.
    #[arg(long, value_name = "VERSION", action = ArgAction::Append)]
    ip_version: Vec<String>,
    /// Flows in a direction: ingress or egress.
    #[arg(long, value_name = "DIRECTION", action = ArgAction::Append)]
    traffic_direction: Vec<String>,
    /// Send the next filter flag to the deny-list.
    #[arg(long, action = ArgAction::Count)]
    not: u8,
}

/// What can go wrong in `membrane observe`.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// A filter flag is invalid.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// A time is neither a duration nor RFC 3339.
    #[error("invalid --{flag} {value:?}: give a duration ago (5m, 1h30m) or an RFC 3339 time")]
    Time {
        /// `since` or `until`.
        flag: &'static str,
        /// The value.
        value: String,
    },
    /// The Observer could not be reached.
    #[error(
        "{source}: is membrane-agent running with the Observer enabled? Point --server or MEMBRANE_OBSERVER at it"
    )]
    Connect {
        /// The connection error.
        #[source]
        source: ClientError,
    },
    /// The Observer refused the request or the stream broke.
    #[error("the Observer answered: {}", .status.message())]
    Status {
        /// The gRPC status.
        status: tonic::Status,
    },
    /// Printing failed.
    #[error(transparent)]
    Print(#[from] PrintError),
}

fn time(flag: &'static str, value: &str, now: SystemTime) -> Result<SystemTime, ObserveError> {
    humantime::parse_duration(value)
        .ok()
        .and_then(|ago| now.checked_sub(ago))
        .or_else(|| humantime::parse_rfc3339_weak(value).ok())
        .ok_or_else(|| ObserveError::Time {
            flag,
            value: value.to_string(),
        })
}

/// The filter flags of `matches`, in command-line order.
fn ordered_filters(matches: &ArgMatches) -> Result<FilterFlags, FlagError> {
    let mut given: Vec<(usize, &str, String)> = Vec::new();
    for flag in FILTER_FLAGS {
        let id = flag.replace('-', "_");
        // Defaults (the count of --not starts at 0) have indices too: skip them.
        if matches.value_source(&id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let Some(indices) = matches.indices_of(&id) else {
            continue;
        };
        if flag == "not" {
            given.extend(indices.map(|i| (i, flag, String::new())));
        } else {
            let values = matches.get_many::<String>(&id).into_iter().flatten();
            given.extend(indices.zip(values).map(|(i, v)| (i, flag, v.clone())));
        }
    }
    given.sort_by_key(|(index, _, _)| *index);
    let mut filters = FilterFlags::new();
    for (_, flag, value) in given {
        if flag == "not" {
            filters.not()?;
        } else {
            filters.add(flag, &value)?;
        }
    }
    Ok(filters)
}

/// Builds the request from the flags, streams the flows and prints them.
pub async fn run(
    args: Args,
    matches: &ArgMatches,
    agent_socket: &std::path::Path,
) -> Result<(), ObserveError> {
    let (whitelist, blacklist) = ordered_filters(matches)?.finish()?;
    let now = SystemTime::now();
    let since = args
        .since
        .as_deref()
        .map(|v| time("since", v, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|v| time("until", v, now))
        .transpose()?;
    let number = match (args.last, args.first) {
        (Some(n), _) | (None, Some(n)) => n,
        // Like hubble: without a window or --follow, the last 20.
        (None, None) if !args.follow && since.is_none() && until.is_none() => 20,
        (None, None) => 0,
    };
    let request = GetFlowsRequest {
        number,
        first: args.first.is_some(),
        follow: args.follow,
        whitelist,
        blacklist,
        since: since.map(timestamp),
        until: until.map(timestamp),
        ..GetFlowsRequest::default()
    };
    let tls = args.tls.then(|| ClientTls {
        ca: args.tls_ca_cert_files.clone(),
        identity: args
            .tls_client_cert_file
            .clone()
            .zip(args.tls_client_key_file.clone()),
        server_name: args.tls_server_name.clone(),
    });
    let server = match &args.server {
        Some(server) => ServerAddress::parse(server),
        None => ServerAddress::Unix(agent_socket.with_file_name("observer.sock")),
    };
    let mut client = connect(&server, tls.as_ref())
        .await
        .map_err(|source| ObserveError::Connect { source })?;
    let mut stream = client
        .get_flows(request)
        .await
        .map_err(|status| ObserveError::Status { status })?
        .into_inner();
    let format = Format::parse(&args.output).unwrap_or(Format::Compact);
    let mut printer = Printer::new(std::io::stdout().lock(), format);
    while let Some(item) = stream.next().await {
        let response = item.map_err(|status| ObserveError::Status { status })?;
        printer.print(&response)?;
        if args.follow {
            printer.flush()?;
        }
    }
    drop(printer.finish()?);
    Ok(())
}

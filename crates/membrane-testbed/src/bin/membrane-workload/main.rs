//! `membrane-workload`: the test bed's traffic. A server (TCP echo, UDP echo, HTTP) and
//! clients that make bounded traffic with a timeout per operation and print one JSON
//! object of counters on stdout; a client exits 0 only if every operation succeeded.
//!
//! Wire protocol of the server:
//! - TCP: line based. `WHOAMI` is answered with `peer=<address:port>` (the source the
//!   server sees); `WHOAREYOU` with `server=<address:port>` (the server's own end of the
//!   connection, so a client behind a load balancer learns which backend answered);
//!   `SINK` makes the server read until end of stream and answer `received=<bytes>`;
//!   any other line is echoed.
//! - UDP: a datagram `WHOAMI` is answered with `peer=<address:port>`, `WHOAREYOU` with
//!   `server=<address:port>` (the address the datagram reached); any other is echoed.
//! - HTTP/1.1: `GET /` answers `peer=<address:port>`, `GET /status` answers a JSON status.
#![forbid(unsafe_code)]

mod clients;
mod connects;
mod http;
mod ping;
mod serve;
mod sockets;
mod udp_pktinfo;

use clap::{Parser, Subcommand, ValueEnum};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// Makes and serves test traffic.
#[derive(Parser)]
#[command(name = "membrane-workload", version)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

/// Bounds on what a client may be asked to do.
const MAX_COUNT: u64 = 1_000_000;
const MAX_SECONDS: u64 = 3600;

#[derive(clap::Args, Clone, Copy)]
struct Timeout {
    /// Timeout of each operation, in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    millis: u64,
}

impl Timeout {
    fn duration(self) -> Duration {
        Duration::from_millis(self.millis)
    }
}

#[derive(Subcommand)]
enum Mode {
    /// Serves TCP echo, UDP echo and HTTP on every address (dual stack); prints
    /// `{"tcp":..,"udp":..,"http":..}` once listening.
    Serve {
        /// TCP echo port.
        #[arg(long)]
        tcp: Option<u16>,
        /// UDP echo port.
        #[arg(long)]
        udp: Option<u16>,
        /// HTTP port.
        #[arg(long)]
        http: Option<u16>,
    },
    /// Opens COUNT TCP connections, each exchanging one line.
    Tcp {
        /// Server address.
        target: SocketAddr,
        /// Number of connections.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Sends COUNT UDP datagrams, each from a new socket, and waits for each echo.
    Udp {
        /// Server address.
        target: SocketAddr,
        /// Number of exchanges.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Makes COUNT HTTP GETs of URL, each on a new connection.
    Http {
        /// `http://address:port/path`.
        url: String,
        /// Number of requests.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Sends COUNT ICMP or ICMPv6 echo requests through a raw socket.
    Ping {
        /// Address to ping.
        target: IpAddr,
        /// Number of echo requests.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Prints the source address the server sees for this client.
    Whoami {
        /// Protocol to ask over.
        protocol: Protocol,
        /// Server address.
        target: SocketAddr,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Makes COUNT new connections (or datagrams from new sockets) and counts which
    /// server answered each.
    Servers {
        /// Protocol to ask over.
        protocol: Protocol,
        /// Server (or Service) address.
        target: SocketAddr,
        /// Number of connections.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Keeps one TCP connection for DURATION seconds, exchanging a message every
    /// INTERVAL milliseconds; reports whether the connection ever broke.
    Stream {
        /// Server address.
        target: SocketAddr,
        /// How long to run, in seconds.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
        duration: u64,
        /// Time between messages, in milliseconds.
        #[arg(long = "interval-ms", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        interval_ms: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Measures new-connection cost: COUNT short TCP connections one after another, to
    /// FIRST's port on SPREAD consecutive addresses from FIRST's, each echoing one line.
    Connects {
        /// First address (and the port of every connection).
        first: SocketAddr,
        /// Number of consecutive addresses.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        spread: u64,
        /// Number of connections.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Measures request/response latency: COUNT exchanges on one TCP connection.
    Rr {
        /// Server address.
        target: SocketAddr,
        /// Number of exchanges.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Sends as fast as possible for SECONDS on one TCP connection; the server reports
    /// how much it received.
    Throughput {
        /// Server address.
        target: SocketAddr,
        /// How long to send.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
        seconds: u64,
        #[command(flatten)]
        timeout: Timeout,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Protocol {
    Tcp,
    Udp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match &cli.command {
        Mode::Serve { .. } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("membrane-workload: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (report, success) = match cli.command {
        Mode::Serve { tcp, udp, http } => {
            return match runtime.block_on(serve::run(tcp, udp, http)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("membrane-workload serve: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Mode::Tcp {
            target,
            count,
            timeout,
        } => finish_count(runtime.block_on(clients::tcp(target, count, timeout.duration()))),
        Mode::Udp {
            target,
            count,
            timeout,
        } => finish_count(runtime.block_on(clients::udp(target, count, timeout.duration()))),
        Mode::Http {
            url,
            count,
            timeout,
        } => finish_count(runtime.block_on(http::get(&url, count, timeout.duration()))),
        Mode::Ping {
            target,
            count,
            timeout,
        } => finish_count(ping::run(target, count, timeout.duration())),
        Mode::Rr {
            target,
            count,
            timeout,
        } => finish_count(runtime.block_on(clients::rr(target, count, timeout.duration()))),
        Mode::Connects {
            first,
            spread,
            count,
            timeout,
        } => {
            let report = runtime.block_on(connects::run(first, spread, count, timeout.duration()));
            let success = report.failed == 0;
            (serde_json::to_value(report), success)
        }
        Mode::Whoami {
            protocol,
            target,
            timeout,
        } => {
            let asked = match protocol {
                Protocol::Tcp => runtime.block_on(clients::whoami_tcp(target, timeout.duration())),
                Protocol::Udp => runtime.block_on(clients::whoami_udp(target, timeout.duration())),
            };
            match asked {
                Ok(report) => (serde_json::to_value(report), true),
                Err(e) => {
                    eprintln!("membrane-workload whoami: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Mode::Servers {
            protocol,
            target,
            count,
            timeout,
        } => {
            let udp = matches!(protocol, Protocol::Udp);
            let report = runtime.block_on(clients::servers(udp, target, count, timeout.duration()));
            let success = report.failed == 0;
            (serde_json::to_value(report), success)
        }
        Mode::Stream {
            target,
            duration,
            interval_ms,
            timeout,
        } => {
            let report = runtime.block_on(clients::stream(
                target,
                Duration::from_secs(duration),
                Duration::from_millis(interval_ms),
                timeout.duration(),
            ));
            let success = !report.broke && report.errors == 0 && report.received == report.sent;
            (serde_json::to_value(report), success)
        }
        Mode::Throughput {
            target,
            seconds,
            timeout,
        } => {
            match runtime.block_on(clients::throughput(
                target,
                Duration::from_secs(seconds),
                timeout.duration(),
            )) {
                Ok(report) => (serde_json::to_value(report), true),
                Err(e) => {
                    eprintln!("membrane-workload throughput: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match report {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("membrane-workload: cannot encode the report: {e}");
            return ExitCode::FAILURE;
        }
    }
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn finish_count(
    report: membrane_testbed::report::CountReport,
) -> (serde_json::Result<serde_json::Value>, bool) {
    let success = report.failed == 0;
    (serde_json::to_value(report), success)
}

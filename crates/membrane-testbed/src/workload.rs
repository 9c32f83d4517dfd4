//! Runs the workload binary inside a pod, node or the outside: a server, one-shot
//! clients whose JSON report is parsed, and long-running clients collected later.

use crate::binaries::{self, MissingBinary};
use crate::process::{self, Place, Process, ProcessError};
use crate::report::{
    ConnectsReport, CountReport, ServeReady, ServersReport, ThroughputReport, WhoamiReport,
};
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long a server gets to bind its ports.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-operation timeout clients are given.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Extra time a client run is given beyond its operations' own timeouts.
const RUN_MARGIN: Duration = Duration::from_secs(10);

/// Ports a server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// TCP echo (and `WHOAMI`).
    pub tcp: u16,
    /// UDP echo (and `WHOAMI`).
    pub udp: u16,
    /// HTTP.
    pub http: u16,
}

/// The ports tests use unless they need others.
pub const DEFAULT_PORTS: Ports = Ports {
    tcp: 7000,
    udp: 7001,
    http: 8080,
};

/// Errors of running the workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The workload binary is not built.
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    /// The process could not be run or did not finish in time.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The server did not report its ports in time.
    #[error("the workload server did not become ready within {timeout:?}; stderr: {stderr}")]
    NotReady {
        /// The time it was given.
        timeout: Duration,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A client printed something other than its report.
    #[error("membrane-workload {args} printed no valid report; stdout: {stdout}; stderr: {stderr}")]
    BadReport {
        /// Its arguments.
        args: String,
        /// What it printed.
        stdout: String,
        /// What it wrote to stderr.
        stderr: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// A client's report and whether every operation succeeded (exit code 0).
#[derive(Clone, Debug)]
pub struct Outcome<R> {
    /// The parsed report.
    pub report: R,
    /// True when the client exited 0.
    pub success: bool,
    /// What the client wrote to stderr.
    pub stderr: String,
}

fn workload_command(args: &[String]) -> Result<Command, WorkloadError> {
    let mut command = Command::new(binaries::locate(binaries::WORKLOAD)?);
    command.args(args);
    Ok(command)
}

/// A pipe's text, collected on a thread of its own so the child never blocks on it.
#[derive(Debug)]
struct Drained {
    text: Arc<Mutex<String>>,
    thread: std::thread::JoinHandle<()>,
}

impl Drained {
    /// What was collected so far.
    fn snapshot(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything, once the pipe has closed.
    fn finish(self) -> String {
        let _ = self.thread.join();
        let text = self.text.lock().unwrap_or_else(|p| p.into_inner());
        text.clone()
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let thread = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buffer[..n]).into_owned();
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&chunk);
        }
    });
    Drained { text, thread }
}

/// A running `membrane-workload serve`; stopped on drop.
#[derive(Debug)]
pub struct Server {
    ready: ServeReady,
    /// Keeps collecting the server's stderr so it never blocks on a full pipe.
    _stderr: Drained,
    _process: Process,
}

impl Server {
    /// The ports it listens on.
    pub fn ready(&self) -> &ServeReady {
        &self.ready
    }
}

/// Starts a TCP, UDP and HTTP server inside `place` and waits until it listens.
pub fn serve(place: &(impl Place + ?Sized), ports: Ports) -> Result<Server, WorkloadError> {
    let args: Vec<String> = [
        "serve".into(),
        "--tcp".into(),
        ports.tcp.to_string(),
        "--udp".into(),
        ports.udp.to_string(),
        "--http".into(),
        ports.http.to_string(),
    ]
    .into();
    let mut command = workload_command(&args)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = process::spawn(command, place)?;
    let child = process.child_mut().expect("a new process has its child");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(SERVE_TIMEOUT).unwrap_or_default();
    let not_ready = || WorkloadError::NotReady {
        timeout: SERVE_TIMEOUT,
        stderr: stderr.snapshot(),
    };
    let ready: ServeReady = serde_json::from_str(line.trim()).map_err(|_| not_ready())?;
    Ok(Server {
        ready,
        _stderr: stderr,
        _process: process,
    })
}

/// Runs `membrane-workload <args>` inside `place` to completion (at most `timeout`)
/// and parses its report.
pub fn client<R: DeserializeOwned>(
    place: &(impl Place + ?Sized),
    args: &[String],
    timeout: Duration,
) -> Result<Outcome<R>, WorkloadError> {
    let command = workload_command(args)?;
    let finished = process::run(command, place, &[], timeout)?;
    parse_outcome(
        args,
        finished.status.success(),
        finished.stdout,
        finished.stderr,
    )
}

fn parse_outcome<R: DeserializeOwned>(
    args: &[String],
    success: bool,
    stdout: String,
    stderr: String,
) -> Result<Outcome<R>, WorkloadError> {
    match serde_json::from_str(stdout.trim()) {
        Ok(report) => Ok(Outcome {
            report,
            success,
            stderr,
        }),
        Err(source) => Err(WorkloadError::BadReport {
            args: args.join(" "),
            stdout,
            stderr,
            source,
        }),
    }
}

fn count_timeout(count: u32) -> Duration {
    OP_TIMEOUT * count + RUN_MARGIN
}

fn count_args(mode: &str, target: String, count: u32) -> Vec<String> {
    vec![mode.into(), target, "--count".into(), count.to_string()]
}

/// `count` TCP connections to `target`, each exchanging one line.
pub fn tcp(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
    count: u32,
) -> Result<Outcome<CountReport>, WorkloadError> {
    client(
        place,
        &count_args("tcp", target.to_string(), count),
        count_timeout(count),
    )
}

/// `count` UDP exchanges with `target`, each from a new socket.
pub fn udp(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
    count: u32,
) -> Result<Outcome<CountReport>, WorkloadError> {
    client(
        place,
        &count_args("udp", target.to_string(), count),
        count_timeout(count),
    )
}

/// `count` HTTP GETs of `url`, each on a new connection.
pub fn http(
    place: &(impl Place + ?Sized),
    url: &str,
    count: u32,
) -> Result<Outcome<CountReport>, WorkloadError> {
    client(
        place,
        &count_args("http", url.to_string(), count),
        count_timeout(count),
    )
}

/// `count` ICMP or ICMPv6 echo requests to `target`.
pub fn ping(
    place: &(impl Place + ?Sized),
    target: IpAddr,
    count: u32,
) -> Result<Outcome<CountReport>, WorkloadError> {
    client(
        place,
        &count_args("ping", target.to_string(), count),
        count_timeout(count),
    )
}

/// Asserts that every operation of a client succeeded, naming `what` and showing the
/// outcome when one did not.
///
/// # Panics
///
/// When the client failed or counted a failed operation.
pub fn assert_all_ok(what: &str, outcome: &Outcome<CountReport>) {
    assert!(
        outcome.success && outcome.report.failed == 0,
        "{what}: {outcome:?}"
    );
}

/// Asserts that `from` reaches a server at `to` on `ports`: `count` TCP connections,
/// `count` UDP exchanges and `count` pings, all answered.
///
/// # Panics
///
/// When one is not, or a client cannot run.
pub fn assert_reaches(from: &(impl Place + ?Sized), to: IpAddr, ports: Ports, count: u32) {
    let tcp = tcp(from, SocketAddr::new(to, ports.tcp), count).expect("the tcp client runs");
    assert_all_ok(&format!("tcp to {to}"), &tcp);
    let udp = udp(from, SocketAddr::new(to, ports.udp), count).expect("the udp client runs");
    assert_all_ok(&format!("udp to {to}"), &udp);
    let icmp = ping(from, to, count).expect("the ping client runs");
    assert_all_ok(&format!("icmp to {to}"), &icmp);
}

/// Waits, single pings at most `within`, until `to` answers `from`; returns how long
/// that took.
///
/// # Panics
///
/// When it does not, or the ping client cannot run.
pub fn wait_reachable(from: &(impl Place + ?Sized), to: IpAddr, within: Duration) -> Duration {
    let what = format!("{} reaching {to}", from.netns().name());
    let ((), took) = crate::cluster::wait_until(&what, within, || {
        let outcome = ping(from, to, 1).expect("the ping client runs");
        (outcome.success && outcome.report.failed == 0).then_some(())
    });
    took
}

/// `count` short TCP connections one after another to `first`'s port on `spread`
/// consecutive addresses from `first`'s, for new-connection latency and rate.
pub fn connects(
    place: &(impl Place + ?Sized),
    first: SocketAddr,
    spread: u64,
    count: u32,
) -> Result<Outcome<ConnectsReport>, WorkloadError> {
    let mut args = count_args("connects", first.to_string(), count);
    args.extend(["--spread".into(), spread.to_string()]);
    client(place, &args, count_timeout(count))
}

/// `count` request/response exchanges on one TCP connection, for latency.
pub fn rr(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
    count: u32,
) -> Result<Outcome<CountReport>, WorkloadError> {
    client(
        place,
        &count_args("rr", target.to_string(), count),
        count_timeout(count),
    )
}

/// The address the TCP server at `target` sees this client connect from.
pub fn whoami_tcp(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
) -> Result<Outcome<WhoamiReport>, WorkloadError> {
    let args = vec!["whoami".into(), "tcp".into(), target.to_string()];
    client(place, &args, count_timeout(1))
}

/// The address the UDP server at `target` sees this client send from.
pub fn whoami_udp(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
) -> Result<Outcome<WhoamiReport>, WorkloadError> {
    let args = vec!["whoami".into(), "udp".into(), target.to_string()];
    client(place, &args, count_timeout(1))
}

/// Which server answers each of `count` new TCP connections to `target` (or, with
/// `udp`, each of `count` datagrams from new sockets).
pub fn servers(
    place: &(impl Place + ?Sized),
    udp: bool,
    target: SocketAddr,
    count: u32,
) -> Result<Outcome<ServersReport>, WorkloadError> {
    let protocol = if udp { "udp" } else { "tcp" };
    let args = vec![
        "servers".into(),
        protocol.into(),
        target.to_string(),
        "--count".into(),
        count.to_string(),
    ];
    client(place, &args, count_timeout(count))
}

/// Sends as much as it can to the TCP server at `target` for `seconds`.
pub fn throughput(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
    seconds: u32,
) -> Result<Outcome<ThroughputReport>, WorkloadError> {
    let args = vec![
        "throughput".into(),
        target.to_string(),
        "--seconds".into(),
        seconds.to_string(),
    ];
    client(
        place,
        &args,
        Duration::from_secs(seconds.into()) + RUN_MARGIN,
    )
}

/// A client started in the background; [`RunningClient::finish`] collects its report.
#[derive(Debug)]
pub struct RunningClient {
    args: Vec<String>,
    process: Process,
    stdout: Drained,
    stderr: Drained,
}

impl RunningClient {
    /// Waits (at most `timeout`) for the client to finish and parses its report.
    pub fn finish<R: DeserializeOwned>(
        mut self,
        timeout: Duration,
    ) -> Result<Outcome<R>, WorkloadError> {
        let status = self.process.wait_timeout(timeout)?;
        parse_outcome(
            &self.args,
            status.success(),
            self.stdout.finish(),
            self.stderr.finish(),
        )
    }
}

/// Starts `membrane-workload <args>` inside `place` without waiting for it.
pub fn spawn_client(
    place: &(impl Place + ?Sized),
    args: Vec<String>,
) -> Result<RunningClient, WorkloadError> {
    let mut command = workload_command(&args)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = process::spawn(command, place)?;
    let child = process.child_mut().expect("a new process has its child");
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    Ok(RunningClient {
        args,
        process,
        stdout,
        stderr,
    })
}

/// Starts a long-lived TCP stream to `target` exchanging a message every `interval`
/// for `duration`; finish it with [`RunningClient::finish`] as a
/// [`StreamReport`](crate::report::StreamReport).
pub fn spawn_stream(
    place: &(impl Place + ?Sized),
    target: SocketAddr,
    duration: Duration,
    interval: Duration,
) -> Result<RunningClient, WorkloadError> {
    let args = vec![
        "stream".into(),
        target.to_string(),
        "--duration".into(),
        duration.as_secs().max(1).to_string(),
        "--interval-ms".into(),
        interval.as_millis().max(1).to_string(),
    ];
    spawn_client(place, args)
}

/// The time to give [`RunningClient::finish`] for a stream of `duration`.
pub fn stream_timeout(duration: Duration) -> Duration {
    duration + OP_TIMEOUT + RUN_MARGIN
}

//! The node agent as a process of the test bed: its command line, start with a
//! readiness wait, stop, kill and restart, and its log.

use crate::binaries::{self, MissingBinary};
use crate::process::{self, Place, Process, ProcessError};
use ipnet::{Ipv4Net, Ipv6Net};
use membrane_api::{AgentStatus, ApplyReport, ApplyRequest, Client, ClientError, paths};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the agent gets to answer `GET /v1/status` as healthy after it starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the agent gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How many log lines [`Agent::log_tail`] shows in error messages.
const TAIL_LINES: usize = 40;

/// Errors of running the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent binary is not built.
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    /// The log file could not be opened.
    #[error("cannot open the agent log {path}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The agent process could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The agent exited before it became ready.
    #[error(
        "membrane-agent of node {node} exited ({status}) before it was ready; its log ends with:\n{log}"
    )]
    Exited {
        /// The node.
        node: String,
        /// How it exited.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// The agent did not become ready in time.
    #[error(
        "membrane-agent of node {node} was not healthy after {timeout:?} (last answer: {last}); its log ends with:\n{log}"
    )]
    NotReady {
        /// The node.
        node: String,
        /// The time it was given.
        timeout: Duration,
        /// The last status answer or error.
        last: String,
        /// The end of its log.
        log: String,
    },
    /// An API call failed.
    #[error("the local API of node {node}'s agent failed")]
    Api {
        /// The node.
        node: String,
        /// The client error.
        #[source]
        source: ClientError,
    },
}

/// Everything the agent is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// The node's name.
    pub node_name: String,
    /// The agent's state directory.
    pub state_dir: PathBuf,
    /// Path of the local API socket.
    pub socket: PathBuf,
    /// The node's bpffs pin directory.
    pub bpffs_dir: PathBuf,
    /// The node's IPv4 pod CIDR.
    pub ipv4_pod_cidr: Ipv4Net,
    /// The node's IPv6 pod CIDR.
    pub ipv6_pod_cidr: Ipv6Net,
    /// The uplink interface, inside the node's namespace.
    pub uplink: String,
    /// Where the agent writes the CNI network configuration.
    pub cni_conf_dir: PathBuf,
    /// The node's cgroup: the agent attaches the socket-level load balancer to it, so
    /// that the node's processes (in it) and pods (below it) get Service translation.
    pub cgroup_root: PathBuf,
    /// Further flags, appended as given (kvstore, routing mode...).
    pub extra_args: Vec<String>,
}

impl AgentConfig {
    /// The agent's command-line arguments.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: OsString| {
            args.push(OsString::from(name));
            args.push(value);
        };
        flag("--node-name", self.node_name.clone().into());
        flag("--state-dir", self.state_dir.clone().into());
        flag("--socket", self.socket.clone().into());
        flag("--bpffs-dir", self.bpffs_dir.clone().into());
        flag("--ipv4-pod-cidr", self.ipv4_pod_cidr.to_string().into());
        flag("--ipv6-pod-cidr", self.ipv6_pod_cidr.to_string().into());
        flag("--uplink", self.uplink.clone().into());
        flag("--cni-conf-dir", self.cni_conf_dir.clone().into());
        flag("--cgroup-root", self.cgroup_root.clone().into());
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }
}

/// The agent of one node: started, stopped and restarted with the same configuration,
/// state directory and pin directory, its output appended to one log file.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    log: PathBuf,
    process: Mutex<Option<Process>>,
}

impl Agent {
    /// An agent that is not running yet; its output goes to `log`.
    pub fn new(config: AgentConfig, log: PathBuf) -> Agent {
        Agent {
            config,
            log,
            process: Mutex::new(None),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A client of its local API.
    pub fn client(&self) -> Client {
        Client::new(&self.config.socket)
    }

    fn process(&self) -> std::sync::MutexGuard<'_, Option<Process>> {
        self.process
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the agent inside `place` (unless it runs already) and waits until it
    /// answers its status as healthy, at most [`READY_TIMEOUT`].
    pub fn start(&self, place: &(impl Place + ?Sized)) -> Result<AgentStatus, AgentError> {
        {
            let mut slot = self.process();
            if slot.is_none() {
                *slot = Some(self.spawn(place)?);
            }
        }
        self.wait_ready(READY_TIMEOUT)
    }

    fn spawn(&self, place: &(impl Place + ?Sized)) -> Result<Process, AgentError> {
        let binary = binaries::locate(binaries::AGENT)?;
        let log_err = |source| AgentError::Log {
            path: self.log.clone(),
            source,
        };
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(log_err)?;
        writeln!(
            log,
            "==== testbed: starting {} {:?}",
            binary.display(),
            self.config.args()
        )
        .map_err(log_err)?;
        let mut command = Command::new(binary);
        command
            .args(self.config.args())
            .env(
                "MEMBRANE_LOG",
                std::env::var("MEMBRANE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(log_err)?)
            .stderr(log);
        Ok(process::spawn(command, place)?)
    }

    /// Waits until the agent answers its status as healthy.
    fn wait_ready(&self, timeout: Duration) -> Result<AgentStatus, AgentError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status()? {
                return Err(AgentError::Exited {
                    node: self.config.node_name.clone(),
                    status,
                    log: self.log_tail(TAIL_LINES),
                });
            }
            let last = match self.status() {
                Ok(status) if status.healthy => return Ok(status),
                Ok(status) => format!("{status:?}"),
                Err(e) => error_chain(&e),
            };
            if Instant::now() >= deadline {
                return Err(AgentError::NotReady {
                    node: self.config.node_name.clone(),
                    timeout,
                    last,
                    log: self.log_tail(TAIL_LINES),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the agent exited, if it was started and has exited (it is then forgotten).
    fn exit_status(&self) -> Result<Option<ExitStatus>, AgentError> {
        let mut slot = self.process();
        let status = match slot.as_mut() {
            Some(process) => process.try_status()?,
            None => None,
        };
        if status.is_some() {
            *slot = None;
        }
        Ok(status)
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        match self.exit_status() {
            Ok(None) => self.process().as_ref().and_then(Process::pid),
            _ => None,
        }
    }

    /// Stops the agent gracefully: SIGTERM, then SIGKILL after [`STOP_GRACE`].
    /// Returns its exit status, or `None` if it had to be killed or was not running.
    pub fn stop(&self) -> Option<ExitStatus> {
        self.process()
            .take()
            .and_then(|mut process| process.terminate(STOP_GRACE))
    }

    /// Kills the agent with SIGKILL, as a crash would, leaving its pinned state behind.
    pub fn kill(&self) {
        if let Some(mut process) = self.process().take() {
            process.kill();
        }
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<AgentStatus, AgentError> {
        self.get(paths::STATUS)
    }

    /// `GET path` on the local API, decoded.
    pub fn get<T: serde::de::DeserializeOwned + Send>(&self, path: &str) -> Result<T, AgentError> {
        let client = self.client();
        block_on(async move { client.get(path).await }).map_err(|source| AgentError::Api {
            node: self.config.node_name.clone(),
            source,
        })
    }

    /// Applies `objects` (Kubernetes manifests as JSON) through the agent's objects API,
    /// as `membrane apply` does.
    pub fn apply(&self, objects: Vec<serde_json::Value>) -> Result<ApplyReport, AgentError> {
        let client = self.client();
        let request = ApplyRequest { objects };
        block_on(async move { client.post(paths::OBJECTS_APPLY, &request).await }).map_err(
            |source| AgentError::Api {
                node: self.config.node_name.clone(),
                source,
            },
        )
    }

    /// The last `lines` lines of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(text) => tail(&text, lines),
            Err(e) => format!("(cannot read {}: {e})", self.log.display()),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own, so that
/// callers may be inside another runtime or none.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime can always be built")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An error and its sources, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig {
            node_name: "node-1".into(),
            state_dir: "/tmp/s".into(),
            socket: "/tmp/s/agent.sock".into(),
            bpffs_dir: "/sys/fs/bpf/membrane/node-1".into(),
            ipv4_pod_cidr: "10.200.1.0/24".parse().unwrap(),
            ipv6_pod_cidr: "fd00:200:0:1::/64".parse().unwrap(),
            uplink: "uplink0".into(),
            cni_conf_dir: "/tmp/s/net.d".into(),
            cgroup_root: "/sys/fs/cgroup/node-1".into(),
            extra_args: Vec::new(),
        }
    }

    #[test]
    fn every_setting_becomes_a_flag_followed_by_its_value() {
        let args: Vec<String> = config()
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let pairs: Vec<(&str, &str)> = args
            .chunks(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("--node-name", "node-1"),
                ("--state-dir", "/tmp/s"),
                ("--socket", "/tmp/s/agent.sock"),
                ("--bpffs-dir", "/sys/fs/bpf/membrane/node-1"),
                ("--ipv4-pod-cidr", "10.200.1.0/24"),
                ("--ipv6-pod-cidr", "fd00:200:0:1::/64"),
                ("--uplink", "uplink0"),
                ("--cni-conf-dir", "/tmp/s/net.d"),
                ("--cgroup-root", "/sys/fs/cgroup/node-1"),
            ]
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_only() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\n", 5), "a");
    }

    #[test]
    fn an_error_chain_names_every_cause() {
        let inner = std::io::Error::other("refused");
        let outer = AgentError::Log {
            path: "/x".into(),
            source: inner,
        };
        assert_eq!(error_chain(&outer), "cannot open the agent log /x: refused");
    }
}

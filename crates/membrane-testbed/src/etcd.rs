//! A real etcd server (Debian's `etcd-server`) inside a test-bed namespace: its data
//! directory in a temp dir, listening on one address of that namespace, stopped and
//! restarted on the same data, killed and removed on drop.

use crate::netns::Netns;
use crate::process::{self, Place, Process, ProcessError};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The etcd binary, found on `PATH`.
pub const ETCD_BINARY: &str = "etcd";

/// The client port.
pub const CLIENT_PORT: u16 = 2379;

/// The peer port.
pub const PEER_PORT: u16 = 2380;

/// How long etcd gets to answer `/health` after it starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long etcd gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Errors of running etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The data directory or log could not be created.
    #[error("cannot prepare etcd's directory {path}")]
    Dir {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// etcd could not be started.
    #[error(
        "cannot start etcd (is Debian's etcd-server installed? `cargo xtask setup` installs it)"
    )]
    Process(#[from] ProcessError),
    /// etcd did not become healthy in time.
    #[error("etcd at {address} was not healthy after {timeout:?}; its log ends with:\n{log}")]
    NotReady {
        /// Its client address.
        address: SocketAddr,
        /// The time it was given.
        timeout: Duration,
        /// The end of its log.
        log: String,
    },
}

/// One etcd server of one member, in a namespace of the test bed.
#[derive(Debug)]
pub struct Etcd {
    address: Mutex<IpAddr>,
    dir: tempfile::TempDir,
    process: Mutex<Option<Process>>,
}

impl Etcd {
    /// Starts etcd inside `netns`, listening on `address` (an address of that namespace,
    /// such as its loopback's 127.0.0.1), and waits until it is healthy.
    pub fn start(netns: &Netns, address: IpAddr) -> Result<Etcd, EtcdError> {
        let dir = tempfile::Builder::new()
            .prefix("membrane-etcd-")
            .tempdir()
            .map_err(|source| EtcdError::Dir {
                path: std::env::temp_dir(),
                source,
            })?;
        let etcd = Etcd {
            address: Mutex::new(address),
            dir,
            process: Mutex::new(None),
        };
        etcd.start_again(netns)?;
        Ok(etcd)
    }

    /// The client URL, `http://<address>:2379`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client_address())
    }

    /// The client address.
    pub fn client_address(&self) -> SocketAddr {
        SocketAddr::new(self.address(), CLIENT_PORT)
    }

    fn address(&self) -> IpAddr {
        *self.address.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// etcd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Process>> {
        self.process.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts etcd again on the same data, listening on `address` from now on (stop it
    /// first), and waits until it is healthy: clients of the old address cannot reach it,
    /// as if cut off, while others change the data.
    pub fn start_again_on(&self, netns: &Netns, address: IpAddr) -> Result<(), EtcdError> {
        *self.address.lock().unwrap_or_else(|p| p.into_inner()) = address;
        self.start_again(netns)
    }

    /// Starts etcd again on the same data (unless it runs), and waits until it is healthy.
    pub fn start_again(&self, netns: &Netns) -> Result<(), EtcdError> {
        if self.slot().is_none() {
            let process = self.spawn(netns)?;
            *self.slot() = Some(process);
        }
        self.wait_healthy(netns)
    }

    fn spawn(&self, place: &impl Place) -> Result<Process, EtcdError> {
        let log_path = self.log_path();
        let log_err = |source| EtcdError::Dir {
            path: log_path.clone(),
            source,
        };
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(log_err)?;
        writeln!(log, "==== testbed: starting etcd").map_err(log_err)?;
        let host = match self.address() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let client = format!("http://{host}:{CLIENT_PORT}");
        let peer = format!("http://{host}:{PEER_PORT}");
        let mut command = Command::new(ETCD_BINARY);
        command
            .arg("--name=membrane-test")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=membrane-test={peer}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(log_err)?)
            .stderr(log);
        Ok(process::spawn(command, place)?)
    }

    fn wait_healthy(&self, netns: &Netns) -> Result<(), EtcdError> {
        let address = self.client_address();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let healthy = netns.run(|| health(address)).unwrap_or(false);
            if healthy {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EtcdError::NotReady {
                    address,
                    timeout: READY_TIMEOUT,
                    log: self.log_tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops etcd gracefully (SIGTERM); its data stays for [`Etcd::start_again`].
    pub fn stop(&self) {
        if let Some(mut process) = self.slot().take() {
            process.terminate(STOP_GRACE);
        }
    }

    /// Kills etcd with SIGKILL, as a crash would; its data stays.
    pub fn kill(&self) {
        if let Some(mut process) = self.slot().take() {
            process.kill();
        }
    }

    /// The last `lines` lines of etcd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when etcd at `address` answers `GET /health` with `"health":"true"`.
fn health(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

//! One probe: a TCP connection opened from inside a pod's network namespace (entered
//! by a thread of its own, which ends with the probe), with a timeout.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a probe ended.
#[derive(Debug)]
pub enum Outcome {
    /// Connected, after this long.
    Connected(Duration),
    /// The connection failed (refused, timed out, unreachable).
    Failed(String),
}

/// Opens a TCP connection to `target` from inside the network namespace at `netns`.
pub fn tcp(netns: &Path, target: SocketAddr, timeout: Duration) -> Outcome {
    let netns: PathBuf = netns.to_path_buf();
    let probe = std::thread::spawn(move || -> Outcome {
        let file = match File::open(&netns) {
            Ok(file) => file,
            Err(e) => {
                return Outcome::Failed(format!(
                    "cannot open the pod's network namespace {}: {e}",
                    netns.display()
                ));
            }
        };
        if let Err(e) = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET) {
            return Outcome::Failed(format!(
                "cannot enter the pod's network namespace {} (needs root): {e}",
                netns.display()
            ));
        }
        let started = Instant::now();
        match TcpStream::connect_timeout(&target, timeout) {
            Ok(_) => Outcome::Connected(started.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Outcome::Failed(format!("no answer within {timeout:?}"))
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    });
    probe
        .join()
        .unwrap_or_else(|_| Outcome::Failed("the probe thread panicked".into()))
}

//! Runs one probe with the workload binary in the client's place and says whether it
//! connected or was refused.

use crate::bed::Bed;
use crate::scenario::{Expect, Probe, What};
use membrane_testbed::report::CountReport;
use membrane_testbed::workload;
use std::net::SocketAddr;
use std::time::Duration;

/// Per-operation timeout when the probe is expected to connect: room for one lost SYN
/// on two busy cores.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3000);
/// Per-operation timeout when the probe is expected to be refused (dropped packets
/// only end by timing out).
const REFUSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// What the client process gets beyond its operation's timeout.
const PROCESS_MARGIN: Duration = Duration::from_secs(10);

/// What a probe did.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Connected or refused; `None` when the probe could not be run at all.
    pub result: Option<Expect>,
    /// The client's report or the error, for the printout.
    pub detail: String,
}

/// Runs `probe` once.
pub fn run(bed: &Bed<'_>, probe: &Probe) -> Seen {
    match try_run(bed, probe) {
        Ok(seen) => seen,
        Err(detail) => Seen {
            result: None,
            detail,
        },
    }
}

fn try_run(bed: &Bed<'_>, probe: &Probe) -> Result<Seen, String> {
    let from = bed.peer(&probe.from)?;
    let to = bed.peer(&probe.to)?.address(probe.family);
    let timeout = match probe.expect {
        Expect::Connected => CONNECT_TIMEOUT,
        Expect::Refused => REFUSE_TIMEOUT,
    };
    let (mode, target) = match probe.what {
        What::Tcp(port) => ("tcp", SocketAddr::new(to, port).to_string()),
        What::Udp(port) => ("udp", SocketAddr::new(to, port).to_string()),
        What::Http(port) => ("http", format!("http://{}/", SocketAddr::new(to, port))),
        What::Icmp => ("ping", to.to_string()),
    };
    let args: Vec<String> = vec![
        mode.into(),
        target,
        "--count".into(),
        "1".into(),
        "--timeout-ms".into(),
        timeout.as_millis().to_string(),
    ];
    let outcome = workload::client::<CountReport>(from.place, &args, timeout + PROCESS_MARGIN)
        .map_err(|e| format!("{e}"))?;
    let connected = outcome.success && outcome.report.ok == 1 && outcome.report.failed == 0;
    Ok(Seen {
        result: Some(if connected {
            Expect::Connected
        } else {
            Expect::Refused
        }),
        detail: match outcome.report.first_error {
            Some(error) => error,
            None => format!("ok={} failed={}", outcome.report.ok, outcome.report.failed),
        },
    })
}

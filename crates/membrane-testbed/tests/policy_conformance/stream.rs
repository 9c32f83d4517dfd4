//! Long-lived TCP connections opened before a scenario's policies are applied, and
//! whether they went on unbroken while the policies were enforced.

use crate::bed::Bed;
use crate::scenario::Stream;
use membrane_testbed::report::StreamReport;
use membrane_testbed::workload::{self, RunningClient};
use std::net::SocketAddr;
use std::time::Duration;

/// How long each connection runs: longer than applying the policies and a matching
/// probe matrix take.
const DURATION: Duration = Duration::from_secs(8);
/// Time between two echoed messages.
const INTERVAL: Duration = Duration::from_millis(100);
/// Time the connections get to be established before the policies are applied.
const SETTLE: Duration = Duration::from_millis(500);

/// A connection that is running.
pub struct Running {
    stream: Stream,
    client: Result<RunningClient, String>,
}

/// What a connection did.
pub struct StreamResult {
    /// The connection.
    pub stream: Stream,
    /// Its report, or why it could not run.
    pub report: Result<StreamReport, String>,
}

impl StreamResult {
    /// True when the connection exchanged messages and never broke.
    pub fn survived(&self) -> bool {
        self.report
            .as_ref()
            .is_ok_and(|r| !r.broke && r.errors == 0 && r.received > 0)
    }

    /// The report in one line.
    pub fn detail(&self) -> String {
        match &self.report {
            Ok(r) => format!(
                "sent={} received={} errors={} broke={} {}",
                r.sent,
                r.received,
                r.errors,
                r.broke,
                r.first_error.as_deref().unwrap_or("")
            ),
            Err(e) => e.clone(),
        }
    }
}

/// Opens every connection of `streams` and waits until they are established.
pub fn start(bed: &Bed<'_>, streams: Vec<Stream>) -> Vec<Running> {
    let running: Vec<Running> = streams
        .into_iter()
        .map(|stream| {
            let client = (|| {
                let from = bed.peer(&stream.from)?;
                let to = bed.peer(&stream.to)?.address(stream.family);
                workload::spawn_stream(
                    from.place,
                    SocketAddr::new(to, stream.port),
                    DURATION,
                    INTERVAL,
                )
                .map_err(|e| e.to_string())
            })();
            Running { stream, client }
        })
        .collect();
    if !running.is_empty() {
        std::thread::sleep(SETTLE);
    }
    running
}

/// Waits for every connection to end and collects its report.
pub fn finish(running: Vec<Running>) -> Vec<StreamResult> {
    running
        .into_iter()
        .map(|Running { stream, client }| StreamResult {
            stream,
            report: client.and_then(|client| {
                client
                    .finish::<StreamReport>(workload::stream_timeout(DURATION))
                    .map(|outcome| outcome.report)
                    .map_err(|e| e.to_string())
            }),
        })
        .collect()
}

//! What the observer reads from the datapath on a timer: the running count of events
//! the kernel could not write into the full ring buffer (turned into lost-event records)
//! and how full each map is (map pressure metrics).

use membrane_datapath::{Datapath, DatapathError, MapPressure};
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the kernel's lost-event count is read.
const LOST_INTERVAL: Duration = Duration::from_secs(1);

/// Map pressure is read every this many lost-event readings (walking the conntrack
/// map's keys costs more than reading one counter).
const PRESSURE_EVERY: u32 = 5;

/// One reading of the datapath.
struct Reading {
    lost: Result<u64, DatapathError>,
    pressure: Option<Result<Vec<MapPressure>, DatapathError>>,
}

/// Reads the datapath under its lock, off the async threads.
async fn read(datapath: &Arc<Mutex<Datapath>>, with_pressure: bool) -> Option<Reading> {
    let datapath = datapath.clone();
    tokio::task::spawn_blocking(move || {
        let datapath = datapath.lock().ok()?;
        Some(Reading {
            lost: datapath.lost_events(),
            pressure: with_pressure.then(|| datapath.map_pressure()),
        })
    })
    .await
    .ok()
    .flatten()
}

/// Reads the datapath on a timer until `token` is cancelled.
pub async fn run(
    datapath: Arc<Mutex<Datapath>>,
    pipeline: Arc<Pipeline>,
    metrics: Arc<ObserveMetrics>,
    token: CancellationToken,
) {
    for round in 0u32.. {
        let with_pressure = round.is_multiple_of(PRESSURE_EVERY);
        match read(&datapath, with_pressure).await {
            Some(reading) => {
                match reading.lost {
                    Ok(total) => pipeline.kernel_lost_total(total),
                    Err(error) => tracing::warn!(%error, "cannot read the datapath's lost events"),
                }
                match reading.pressure {
                    Some(Ok(maps)) => {
                        for map in maps {
                            metrics.set_map_pressure(map.map, map.entries, map.capacity);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "cannot read map pressure"),
                    None => {}
                }
            }
            None => tracing::warn!("the datapath lock is poisoned: no lost events or map pressure"),
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(LOST_INTERVAL) => {}
        }
    }
}

//! Flow observability in the agent: datapath events go through a bounded queue and
//! membrane-observe's pipeline into the flow store, which the Observer API serves on a
//! unix socket and on TCP (Hubble's port 4244 by default) with optional TLS or mutual
//! TLS. Losses in the kernel's ring buffer and in the queue become lost-event records.
//!
//! - [`config`]: the `observe` section;
//! - [`enrich`]: endpoints and Pods named for the decoder;
//! - [`services`]: Services named for the decoder, live;
//! - [`sampling`]: the kernel's lost-event count and map pressure, on a timer.

pub mod config;
pub mod enrich;
pub mod sampling;
pub mod services;

pub use config::{Listen, ObserveConfig};

use membrane_datapath::EventReader;
use membrane_observe::decode::{BootClock, Decoder};
use membrane_observe::directory::{ServiceDirectory, StaticDirectory};
use membrane_observe::error::{DecodeError, ServeError};
use membrane_observe::flow::LostSource;
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use membrane_observe::queue::EventQueue;
use membrane_observe::server;
use membrane_observe::service::{NodeInfo, ObserverService};
use membrane_observe::store::FlowStore;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How many queued events are decoded before the reader gets a turn again.
const DECODE_CHUNK: usize = 1024;

/// What can stop observability.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The decoder could not be set up.
    #[error("cannot set up flow decoding")]
    Decode(#[from] DecodeError),
    /// The Observer API could not be served.
    #[error("cannot serve the Observer API")]
    Serve(#[from] ServeError),
    /// Only one of the TLS certificate and key is configured.
    #[error("observe.tls-cert and observe.tls-key must be given together")]
    TlsIncomplete,
    /// Reading the datapath's events failed.
    #[error("reading flow events from the datapath failed")]
    Events(#[source] membrane_datapath::DatapathError),
}

/// The pipeline, store, metrics, directory and event queue of this node.
pub struct Observability {
    pipeline: Arc<Pipeline>,
    store: Arc<FlowStore>,
    metrics: Arc<ObserveMetrics>,
    directory: Arc<StaticDirectory>,
    queue: EventQueue,
}

impl Observability {
    /// Sets up observability for `node`, naming Services from `services`.
    pub fn new(
        config: &ObserveConfig,
        node: &str,
        services: Arc<dyn ServiceDirectory>,
    ) -> Result<Observability, ObserveError> {
        let directory = Arc::new(StaticDirectory::new());
        let decoder = Decoder::new(node, directory.clone(), services, BootClock::system()?);
        let store = FlowStore::new(config.max_flows, config.follow_buffer);
        let metrics = Arc::new(ObserveMetrics::new());
        let pipeline = Arc::new(Pipeline::new(decoder, store.clone(), metrics.clone()));
        Ok(Observability {
            pipeline,
            store,
            metrics,
            directory,
            queue: EventQueue::new(config.events_queue),
        })
    }

    /// The metrics, for the agent's `/metrics`.
    pub fn metrics(&self) -> &Arc<ObserveMetrics> {
        &self.metrics
    }

    /// The pipeline, for readings of the datapath's lost events.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The directory the decoder names endpoints from.
    pub fn directory(&self) -> &Arc<StaticDirectory> {
        &self.directory
    }

    /// Reads batches of events into the queue and decodes them from it until `token`
    /// is cancelled; events that find the queue full are reported as lost.
    pub async fn read_events(
        &self,
        mut reader: EventReader,
        token: CancellationToken,
    ) -> Result<(), ObserveError> {
        let read = async {
            let mut batch = Vec::new();
            loop {
                let malformed = reader
                    .next_batch(&mut batch)
                    .await
                    .map_err(ObserveError::Events)?;
                if malformed > 0 {
                    tracing::warn!(malformed, "skipped flow event records of the wrong size");
                }
                let dropped = self.queue.push(&batch);
                self.pipeline.lost(LostSource::EventsQueue, dropped as u64);
                batch.clear();
            }
        };
        let decode = async {
            let mut chunk = Vec::with_capacity(DECODE_CHUNK);
            loop {
                self.queue.pop(&mut chunk, DECODE_CHUNK).await;
                self.pipeline.ingest(&chunk);
                chunk.clear();
                // The reader shares this task: let it move the ring buffer along.
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            () = token.cancelled() => Ok(()),
            result = read => result,
            () = decode => Ok(()),
        }
    }

    /// Serves the Observer API on the unix socket (beside `api_socket` unless
    /// configured) and, unless turned off, on TCP, until `token` is cancelled.
    pub async fn serve(
        &self,
        config: &ObserveConfig,
        api_socket: &Path,
        node: &str,
        token: CancellationToken,
    ) -> Result<(), ObserveError> {
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ObserveError::TlsIncomplete);
        }
        let tls = config
            .tls()
            .map(|files| server::tls_config(&files))
            .transpose()?;
        let service = Arc::new(ObserverService::new(
            self.store.clone(),
            self.metrics.clone(),
            NodeInfo {
                name: node.to_string(),
                address: config
                    .listen
                    .address()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                tls_server_name: tls.as_ref().map(|_| node.to_string()),
            },
        ));
        let socket = config.socket.clone().unwrap_or_else(|| {
            api_socket
                .parent()
                .unwrap_or_else(|| Path::new("/"))
                .join("observer.sock")
        });
        let unix = server::bind_unix(&socket)?;
        tracing::info!(socket = %socket.display(), "serving the Observer API");
        let on_unix = server::serve_unix(unix, None, service.clone(), token.clone());
        match config.listen.address() {
            Some(address) => {
                let tcp = server::bind_tcp(address).await?;
                tracing::info!(%address, tls = tls.is_some(), "serving the Observer API over TCP");
                let on_tcp = server::serve_tcp(tcp, tls, service, token);
                tokio::try_join!(on_unix, on_tcp)?;
            }
            None => on_unix.await?,
        }
        Ok(())
    }
}

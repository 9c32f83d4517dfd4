//! The Observer gRPC service: GetFlows, ServerStatus, GetNodes and GetNamespaces over
//! the flow store, in Hubble's wire format.

use crate::api::flow as pbflow;
use crate::api::observer::observer_server::Observer;
use crate::api::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse,
    GetNodesRequest, GetNodesResponse, Namespace, Node, ServerStatusRequest, ServerStatusResponse,
    Tls, get_flows_response::ResponseTypes,
};
use crate::api::relay::NodeState;
use crate::api::timestamp;
use crate::flow::{Event, Lost, LostSource};
use crate::metrics::ObserveMetrics;
use crate::query::FlowQuery;
use crate::store::FlowStore;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The cluster name Hubble assumes when none is configured.
pub const DEFAULT_CLUSTER: &str = "default";

/// How many responses may wait for a slow client before the follower itself lags.
const RESPONSE_BUFFER: usize = 256;

/// This node as GetNodes describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Address of the TCP endpoint (`10.0.0.1:4244`), empty if none.
    pub address: String,
    /// TLS server name, when TCP is served with TLS.
    pub tls_server_name: Option<String>,
}

/// The Observer service of one node.
pub struct ObserverService {
    store: Arc<FlowStore>,
    metrics: Arc<ObserveMetrics>,
    node: NodeInfo,
}

impl ObserverService {
    /// A service over `store`, counting follower losses in `metrics`.
    pub fn new(store: Arc<FlowStore>, metrics: Arc<ObserveMetrics>, node: NodeInfo) -> Self {
        ObserverService {
            store,
            metrics,
            node,
        }
    }
}

/// The GetFlows response carrying `event`.
fn response(event: &Event, node_name: &str) -> GetFlowsResponse {
    let types = match event {
        Event::Flow(flow) => ResponseTypes::Flow(pbflow::Flow::from(flow.as_ref())),
        Event::Lost(lost) => ResponseTypes::LostEvents(pbflow::LostEvent::from(lost)),
    };
    GetFlowsResponse {
        response_types: Some(types),
        node_name: node_name.to_string(),
        time: Some(timestamp(event.time())),
    }
}

/// Version string reported to clients.
pub fn version() -> String {
    format!("membrane {}", env!("CARGO_PKG_VERSION"))
}

type FlowStream = Pin<Box<dyn Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = FlowStream;

    async fn get_flows(
        &self,
        request: Request<GetFlowsRequest>,
    ) -> Result<Response<FlowStream>, Status> {
        let query = FlowQuery::try_from(request.get_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (history, follower) = if query.follow {
            let (history, receiver) = self.store.snapshot_and_follow();
            (history, Some(receiver))
        } else {
            (self.store.snapshot(), None)
        };
        let (sender, receiver) = mpsc::channel(RESPONSE_BUFFER);
        let history: Vec<GetFlowsResponse> = query
            .from_history(history)
            .iter()
            .map(|e| response(e, &self.node.name))
            .collect();
        let follow = follower.map(|receiver| Follow {
            receiver,
            query,
            metrics: self.metrics.clone(),
            node_name: self.node.name.clone(),
        });
        tokio::spawn(async move {
            for response in history {
                if sender.send(Ok(response)).await.is_err() {
                    return;
                }
            }
            if let Some(follow) = follow {
                follow.run(sender).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get_nodes(
        &self,
        _request: Request<GetNodesRequest>,
    ) -> Result<Response<GetNodesResponse>, Status> {
        let status = self.store.status();
        Ok(Response::new(GetNodesResponse {
            nodes: vec![Node {
                name: self.node.name.clone(),
                version: version(),
                address: self.node.address.clone(),
                state: NodeState::NodeConnected as i32,
                tls: Some(Tls {
                    enabled: self.node.tls_server_name.is_some(),
                    server_name: self.node.tls_server_name.clone().unwrap_or_default(),
                }),
                uptime_ns: u64::try_from(status.uptime.as_nanos()).unwrap_or(u64::MAX),
                num_flows: status.num_flows,
                max_flows: status.max_flows,
                seen_flows: status.seen_flows,
            }],
        }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let namespaces = self
            .store
            .namespaces(SystemTime::now())
            .into_iter()
            .map(|namespace| Namespace {
                cluster: DEFAULT_CLUSTER.to_string(),
                namespace,
            })
            .collect();
        Ok(Response::new(GetNamespacesResponse { namespaces }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        let status = self.store.status();
        Ok(Response::new(ServerStatusResponse {
            num_flows: status.num_flows,
            max_flows: status.max_flows,
            seen_flows: status.seen_flows,
            uptime_ns: u64::try_from(status.uptime.as_nanos()).unwrap_or(u64::MAX),
            num_connected_nodes: Some(pbjson_types::UInt32Value { value: 1 }),
            num_unavailable_nodes: Some(pbjson_types::UInt32Value { value: 0 }),
            unavailable_nodes: Vec::new(),
            version: version(),
            flows_rate: status.flows_rate,
        }))
    }
}

/// A follower: new events, filtered, until the client leaves or `until` passes.
struct Follow {
    receiver: broadcast::Receiver<Event>,
    query: FlowQuery,
    metrics: Arc<ObserveMetrics>,
    node_name: String,
}

impl Follow {
    async fn run(mut self, sender: mpsc::Sender<Result<GetFlowsResponse, Status>>) {
        let deadline = self.query.until.map(|until| {
            let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::Instant::now() + wait
        });
        loop {
            let received = tokio::select! {
                received = self.receiver.recv() => received,
                () = sender.closed() => return,
                () = sleep_until(deadline) => return,
            };
            let event = match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.metrics.record_lost(LostSource::SlowFollower, missed);
                    Event::Lost(Lost {
                        source: LostSource::SlowFollower,
                        count: missed,
                        time: SystemTime::now(),
                    })
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if self.query.until.is_some_and(|until| event.time() > until) {
                return;
            }
            if !self.query.selects(&event) {
                continue;
            }
            if sender
                .send(Ok(response(&event, &self.node_name)))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

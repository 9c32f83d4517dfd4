//! Synthetic datapath events and an in-process Observer server on a unix socket.
#![allow(dead_code)] // Each test file uses part of the support.

use membrane_common::events::{ct_state, event_kind, observation_point};
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::proto;
use membrane_common::{CtKey, Family, FlowEvent};
use membrane_observe::api::observer::observer_client::ObserverClient;
use membrane_observe::client::{ServerAddress, connect};
use membrane_observe::decode::{BootClock, Decoder};
use membrane_observe::directory::{EndpointMeta, StaticDirectory};
use membrane_observe::flow::{ServiceName, Workload};
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use membrane_observe::server;
use membrane_observe::service::{NodeInfo, ObserverService};
use membrane_observe::store::FlowStore;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Wall-clock time of monotonic zero in the synthetic events: ten minutes before the
/// test started.
pub fn epoch() -> SystemTime {
    static EPOCH: std::sync::LazyLock<SystemTime> =
        std::sync::LazyLock::new(|| SystemTime::now() - Duration::from_secs(600));
    *EPOCH
}

/// Address 10.0.0.x.
pub fn v4(x: u8) -> [u8; 16] {
    membrane_common::tuple::v4_bytes([10, 0, 0, x])
}

/// A TCP trace event from 10.0.0.src to 10.0.0.dst, `ms` milliseconds after epoch.
pub fn tcp(ms: u64, src: u8, dst: u8, sport: u16, dport: u16, flags: u8) -> FlowEvent {
    FlowEvent {
        timestamp_ns: ms * 1_000_000,
        tuple: CtKey {
            saddr: v4(src),
            daddr: v4(dst),
            sport: sport.to_be(),
            dport: dport.to_be(),
            proto: proto::TCP,
            family: Family::V4,
            _pad: [0; 2],
        },
        xlated_daddr: [0; 16],
        xlated_dport: 0,
        src_endpoint: 0,
        dst_endpoint: 0,
        _pad0: 0,
        rev_nat_index: 0,
        src_identity: 0,
        dst_identity: 0,
        len: 60,
        ifindex: 7,
        kind: event_kind::TRACE,
        reason: reason::FORWARD_LOCAL,
        direction: direction::EGRESS,
        observation_point: observation_point::FROM_ENDPOINT,
        tcp_flags: flags,
        ct_state: ct_state::NEW,
        policy_match: 0,
        policy_verdict: 0,
        icmp_type: 0,
        icmp_code: 0,
        _pad: [0; 2],
    }
}

/// A drop of a TCP SYN for `reason`.
pub fn drop(ms: u64, src: u8, dst: u8, code: u8) -> FlowEvent {
    FlowEvent {
        kind: event_kind::DROP,
        reason: code,
        observation_point: observation_point::UNKNOWN,
        ..tcp(ms, src, dst, 40000, 80, 0x02)
    }
}

/// The directory of the synthetic cluster: 10.0.0.1 is shop/client-abc (endpoint 11,
/// identity 1001, app=client, Deployment client, host-side interface 111), 10.0.0.2 is shop/web-1 (endpoint 12,
/// identity 1002, app=web), 10.0.0.3 is other/db-0 (endpoint 13, identity 1003);
/// reverse-NAT index 5 is Service shop/web.
pub fn directory() -> Arc<StaticDirectory> {
    let dir = Arc::new(StaticDirectory::new());
    let pod =
        |id: u16, identity: u32, ns: &str, name: &str, app: &str, workload: &str| EndpointMeta {
            id,
            identity,
            namespace: ns.to_string(),
            pod_name: name.to_string(),
            labels: [("app".to_string(), app.to_string())].into(),
            workloads: vec![Workload {
                name: workload.to_string(),
                kind: "Deployment".to_string(),
            }],
            interface: u32::from(id) + 100,
        };
    let ip = |x| IpAddr::V4(Ipv4Addr::new(10, 0, 0, x));
    dir.insert_endpoint(
        pod(11, 1001, "shop", "client-abc", "client", "client"),
        &[ip(1)],
    );
    dir.insert_endpoint(pod(12, 1002, "shop", "web-1", "web", "web"), &[ip(2)]);
    dir.insert_endpoint(pod(13, 1003, "other", "db-0", "db", "db"), &[ip(3)]);
    dir.insert_service(
        5,
        ServiceName {
            namespace: "shop".to_string(),
            name: "web".to_string(),
        },
    );
    dir
}

/// A decoder for node `node1` over [`directory`].
pub fn decoder() -> Decoder {
    let dir = directory();
    Decoder::new("node1", dir.clone(), dir, BootClock::with_epoch(epoch()))
}

/// A running server and what feeds it.
pub struct Harness {
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<FlowStore>,
    pub metrics: Arc<ObserveMetrics>,
    pub socket: PathBuf,
    pub token: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A server keeping `capacity` flows, with followers allowed `follow_buffer` behind.
    pub async fn start(capacity: usize, follow_buffer: usize) -> Harness {
        Harness::start_with_tls(capacity, follow_buffer, None).await
    }

    /// The same, serving TLS on the unix socket.
    pub async fn start_with_tls(
        capacity: usize,
        follow_buffer: usize,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("observer.sock");
        let store = FlowStore::new(capacity, follow_buffer);
        let metrics = Arc::new(ObserveMetrics::new());
        let pipeline = Arc::new(Pipeline::new(decoder(), store.clone(), metrics.clone()));
        let service = Arc::new(ObserverService::new(
            store.clone(),
            metrics.clone(),
            NodeInfo {
                name: "node1".to_string(),
                address: String::new(),
                tls_server_name: None,
            },
        ));
        let listener = server::bind_unix(&socket).unwrap();
        let token = CancellationToken::new();
        tokio::spawn(server::serve_unix(listener, tls, service, token.clone()));
        Harness {
            pipeline,
            store,
            metrics,
            socket,
            token,
            _dir: dir,
        }
    }

    /// A client over the unix socket.
    pub async fn client(&self) -> ObserverClient<Channel> {
        connect(&ServerAddress::Unix(self.socket.clone()), None)
            .await
            .unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

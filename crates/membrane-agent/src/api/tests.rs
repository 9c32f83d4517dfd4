use super::*;
use crate::agent::{Agent, GATEWAY_V4, GATEWAY_V6};
use crate::cluster::Cluster;
use crate::endpoints::EndpointManager;
use crate::endpoints::memory::MemoryDatapath;
use crate::ipam::{Ipam, Pool};
use crate::node::memory::MemoryNetwork;
use crate::store::Store;
use membrane_api::{
    AgentStatus, AllocateRequest, Allocation, ApplyReport, ApplyRequest, AttachmentRef, Client,
    DeleteReport, DeleteRequest, Endpoint, EndpointRegistration, ErrorKind, GcReport, GcRequest,
    ListRequest, NodeInfo, ObjectRefWire, paths,
};
use membrane_state::{EmbeddedStore, Precondition, keys};
use std::sync::Arc;
use std::time::Duration;

type Empty = serde_json::Map<String, serde_json::Value>;

struct Served {
    dir: tempfile::TempDir,
    cluster: Arc<Cluster>,
    network: MemoryNetwork,
    client: Client,
    token: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), ApiError>>,
}

/// An agent over a /30 (two IPv4 addresses) served on a socket in a temp dir.
async fn serve_agent() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let network = MemoryNetwork::default();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let ipam = Ipam::new(
        store,
        Some(Pool::v4("10.7.0.0/30".parse().unwrap())),
        Pool::v6("fd00:7::/64".parse().unwrap()),
    )
    .unwrap();
    let manager = EndpointManager::new(
        ipam,
        MemoryDatapath::default(),
        network.clone(),
        Duration::from_secs(120),
    )
    .unwrap();
    let agent = Arc::new(Agent::new("node-a".to_string(), 1450, manager));
    let kvstore = EmbeddedStore::open(&dir.path().join("state"))
        .await
        .unwrap();
    let cluster = Arc::new(Cluster::new(Arc::new(kvstore)));
    let socket = dir.path().join("run/agent.sock");
    let listener = bind(&socket).await.unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        socket.clone(),
        router(agent, cluster.clone()),
        token.clone(),
    ));
    Served {
        dir,
        cluster,
        network,
        client: Client::new(&socket),
        token,
        server,
    }
}

fn attachment(id: &str) -> AttachmentRef {
    AttachmentRef {
        container_id: id.to_string(),
        ifname: "eth0".to_string(),
    }
}

fn request(id: &str, netns: &str) -> AllocateRequest {
    AllocateRequest {
        attachment: attachment(id),
        netns: netns.to_string(),
    }
}

#[tokio::test]
async fn the_api_serves_the_whole_endpoint_lifecycle() {
    let served = serve_agent().await;
    let client = &served.client;
    let netns = served.dir.path().to_str().unwrap();

    let status: AgentStatus = client.get(paths::STATUS).await.unwrap();
    assert_eq!(status.node, "node-a");
    assert!(status.healthy);
    assert_eq!(status.ipv4_pool.unwrap().free, 2);

    let allocation: Allocation = client
        .post(paths::IPAM_ALLOCATE, &request("a", netns))
        .await
        .unwrap();
    assert_eq!(allocation.ipv4, Some("10.7.0.1".parse().unwrap()));
    assert_eq!(
        (allocation.gateway_v4, allocation.gateway_v6),
        (GATEWAY_V4, GATEWAY_V6)
    );
    assert_eq!(allocation.mtu, 1450);

    served.network.add_link(10, "lxca");
    let registration = EndpointRegistration {
        attachment: attachment("a"),
        netns: netns.to_string(),
        host_ifname: "lxca".to_string(),
        host_ifindex: 10,
        host_mac: "02:00:00:00:00:01".to_string(),
        pod_mac: "02:00:00:00:00:02".to_string(),
        ipv4: allocation.ipv4,
        ipv6: allocation.ipv6,
        pod_namespace: None,
        pod_name: None,
    };
    let endpoint: Endpoint = client
        .post(paths::ENDPOINT_CREATE, &registration)
        .await
        .unwrap();
    assert_eq!(endpoint.registration, registration);
    let got: Endpoint = client
        .post(paths::ENDPOINT_GET, &attachment("a"))
        .await
        .unwrap();
    assert_eq!(got, endpoint);
    let all: Vec<Endpoint> = client.get(paths::ENDPOINT_LIST).await.unwrap();
    assert_eq!(all, vec![endpoint]);

    let _: Allocation = client
        .post(paths::IPAM_ALLOCATE, &request("b", netns))
        .await
        .unwrap();
    let report: GcReport = client
        .post(
            paths::GC,
            &GcRequest {
                valid: vec![attachment("a")],
            },
        )
        .await
        .unwrap();
    assert_eq!(report.released, vec![attachment("b")]);

    let _: Empty = client
        .post(paths::ENDPOINT_DELETE, &attachment("a"))
        .await
        .unwrap();
    let _: Empty = client
        .post(paths::ENDPOINT_DELETE, &attachment("a"))
        .await
        .unwrap();
    let _: Empty = client
        .post(paths::IPAM_RELEASE, &attachment("a"))
        .await
        .unwrap();
    let status: AgentStatus = client.get(paths::STATUS).await.unwrap();
    assert_eq!((status.endpoints, status.ipv4_pool.unwrap().used), (0, 0));

    served.token.cancel();
    served.server.await.unwrap().unwrap();
    assert!(
        !served.dir.path().join("run/agent.sock").exists(),
        "the socket is removed on shutdown"
    );
}

#[tokio::test]
async fn errors_come_back_as_typed_bodies_with_their_status() {
    let served = serve_agent().await;
    let client = &served.client;
    let netns = served.dir.path().to_str().unwrap();

    let err = client
        .post::<_, Endpoint>(paths::ENDPOINT_GET, &attachment("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            membrane_api::ClientError::Api {
                status: 404,
                kind: ErrorKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );

    let unregistered = EndpointRegistration {
        attachment: attachment("x"),
        netns: netns.to_string(),
        host_ifname: "lxcx".to_string(),
        host_ifindex: 3,
        host_mac: "02:00:00:00:00:01".to_string(),
        pod_mac: "02:00:00:00:00:02".to_string(),
        ipv4: None,
        ipv6: None,
        pod_namespace: None,
        pod_name: None,
    };
    let err = client
        .post::<_, Endpoint>(paths::ENDPOINT_CREATE, &unregistered)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            membrane_api::ClientError::Api {
                status: 400,
                kind: ErrorKind::InvalidRequest,
                ..
            }
        ),
        "{err:?}"
    );

    for id in ["a", "b"] {
        let _: Allocation = client
            .post(paths::IPAM_ALLOCATE, &request(id, netns))
            .await
            .unwrap();
    }
    let err = client
        .post::<_, Allocation>(paths::IPAM_ALLOCATE, &request("c", netns))
        .await
        .unwrap_err();
    match err {
        membrane_api::ClientError::Api {
            status,
            kind,
            message,
            ..
        } => {
            assert_eq!((status, kind), (507, ErrorKind::PoolExhausted));
            assert!(message.contains("10.7.0.0/30"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let err = client
        .post::<_, Allocation>(paths::IPAM_ALLOCATE, &serde_json::json!({"nope": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidRequest), "{err:?}");

    let err = client.get::<AgentStatus>("/v1/nothing").await.unwrap_err();
    assert!(
        matches!(
            err,
            membrane_api::ClientError::Api {
                status: 404,
                kind: ErrorKind::NotFound,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn binding_replaces_a_stale_socket_but_not_a_live_agent() {
    let served = serve_agent().await;
    let socket = served.dir.path().join("run/agent.sock");
    let err = bind(&socket).await.unwrap_err();
    assert!(matches!(err, ApiError::InUse { .. }), "{err:?}");
    served.server.abort();
    let _ = served.server.await;
    // The aborted server left its socket file behind, as a killed agent would.
    assert!(socket.exists());
    let _listener = bind(&socket).await.unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, SOCKET_MODE);
}

#[tokio::test]
async fn the_node_list_follows_the_records_in_the_kvstore() {
    let served = serve_agent().await;
    let token = CancellationToken::new();
    let reflecting = tokio::spawn({
        let (cluster, token) = (served.cluster.clone(), token.clone());
        async move { cluster.run(token).await }
    });
    let store = served.cluster.store().clone();
    let record = |name: &str, third: u8| NodeInfo {
        name: name.to_string(),
        addresses: vec![format!("10.99.{third}.1").parse().unwrap()],
        ipv4_pod_cidr: Some(format!("10.200.{third}.0/24").parse().unwrap()),
        ipv6_pod_cidr: None,
    };
    for (name, third) in [("b", 2), ("a", 1)] {
        let value = serde_json::to_vec(&record(name, third)).unwrap();
        store
            .put(&keys::node(name), value, Precondition::Any)
            .await
            .unwrap();
    }
    let listed = wait_for_nodes(&served.client, 2).await;
    assert_eq!(listed, [record("a", 1), record("b", 2)]);
    store
        .delete(&keys::node("a"), Precondition::Any)
        .await
        .unwrap();
    assert_eq!(wait_for_nodes(&served.client, 1).await, [record("b", 2)]);
    token.cancel();
    reflecting.await.unwrap();
}

/// `GET /v1/nodes` until it lists `count` nodes (at most 5 s).
async fn wait_for_nodes(client: &Client, count: usize) -> Vec<NodeInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let nodes: Vec<NodeInfo> = client.get(paths::NODES).await.unwrap();
        if nodes.len() == count {
            return nodes;
        }
        assert!(tokio::time::Instant::now() < deadline, "{nodes:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn namespace(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn service(name: &str, port: i64) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"ports": [{"port": port}], "selector": {"app": name}}
    })
}

async fn list(client: &Client, kind: Option<&str>, namespace: Option<&str>) -> Vec<String> {
    let request = ListRequest {
        kind: kind.map(str::to_string),
        namespace: namespace.map(str::to_string),
    };
    let listed: Vec<serde_json::Value> = client.post(paths::OBJECTS_LIST, &request).await.unwrap();
    listed
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn applied_objects_are_listed_reported_by_change_and_deleted() {
    let served = serve_agent().await;
    let client = &served.client;
    let apply = |objects: Vec<serde_json::Value>| async move {
        client
            .post::<_, ApplyReport>(paths::OBJECTS_APPLY, &ApplyRequest { objects })
            .await
    };
    let report = apply(vec![
        namespace("shop"),
        service("web", 80),
        service("db", 5432),
    ])
    .await
    .unwrap();
    assert_eq!(
        report.created,
        ["Namespace shop", "Service shop/web", "Service shop/db"]
    );
    assert_eq!(
        list(client, None, None).await,
        ["Namespace shop", "Service db", "Service web"]
    );
    assert_eq!(
        list(client, Some("Service"), Some("shop")).await,
        ["Service db", "Service web"]
    );
    assert!(list(client, None, Some("other")).await.is_empty());

    let report = apply(vec![namespace("shop"), service("web", 8080)])
        .await
        .unwrap();
    assert_eq!(report.unchanged, ["Namespace shop"]);
    assert_eq!(report.configured, ["Service shop/web"]);
    assert!(report.created.is_empty());

    let report: DeleteReport = client
        .post(
            paths::OBJECTS_DELETE,
            &DeleteRequest {
                refs: vec![
                    ObjectRefWire {
                        kind: "Service".into(),
                        namespace: Some("shop".into()),
                        name: "db".into(),
                    },
                    ObjectRefWire {
                        kind: "Service".into(),
                        namespace: Some("shop".into()),
                        name: "gone".into(),
                    },
                ],
            },
        )
        .await
        .unwrap();
    assert_eq!(report.deleted, ["Service shop/db"]);
    assert_eq!(report.not_found, ["Service shop/gone"]);
    assert_eq!(list(client, Some("Service"), None).await, ["Service web"]);
}

#[tokio::test]
async fn an_invalid_object_refuses_the_whole_set_and_names_the_field() {
    let served = serve_agent().await;
    let client = &served.client;
    let mut bad = service("api", 80);
    bad["spec"]["selectr"] = serde_json::json!({"app": "api"});
    let err = client
        .post::<_, ApplyReport>(
            paths::OBJECTS_APPLY,
            &ApplyRequest {
                objects: vec![namespace("shop"), service("web", 80), bad],
            },
        )
        .await
        .unwrap_err();
    match err {
        membrane_api::ClientError::Api {
            status,
            kind,
            message,
            ..
        } => {
            assert_eq!((status, kind), (400, ErrorKind::InvalidRequest));
            assert!(message.contains("Service shop/api"), "{message}");
            assert!(message.contains("spec.selectr"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        list(client, None, None).await.is_empty(),
        "nothing was stored"
    );
}

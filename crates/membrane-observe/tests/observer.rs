//! The Observer API end to end: a real tonic server on a unix socket fed with synthetic
//! datapath events, and a real client.

mod support;

use membrane_observe::api::flow as pb;
use membrane_observe::api::observer::get_flows_response::ResponseTypes;
use membrane_observe::api::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNodesRequest, ServerStatusRequest,
};
use membrane_observe::api::timestamp;
use membrane_observe::client::{ServerAddress, channel};
use membrane_observe::flow::LostSource;
use std::time::Duration;
use support::*;
use tokio_stream::StreamExt;
use tonic::Streaming;

/// Ingests TCP flows from client to web with destination ports `ports`, one per
/// millisecond starting at `start_ms`.
fn feed(h: &Harness, start_ms: u64, ports: std::ops::Range<u16>) {
    let events: Vec<_> = ports
        .enumerate()
        .map(|(i, port)| tcp(start_ms + i as u64, 1, 2, 40000, port, 0x02))
        .collect();
    assert_eq!(h.pipeline.ingest(&events), 0);
}

fn port_of(response: &GetFlowsResponse) -> Option<u32> {
    match &response.response_types {
        Some(ResponseTypes::Flow(flow)) => match flow.l4.as_ref()?.protocol.as_ref()? {
            pb::layer4::Protocol::Tcp(tcp) => Some(tcp.destination_port),
            _ => None,
        },
        _ => None,
    }
}

async fn collect(mut stream: Streaming<GetFlowsResponse>) -> Vec<GetFlowsResponse> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

async fn ports(h: &Harness, request: GetFlowsRequest) -> Vec<u32> {
    let stream = h
        .client()
        .await
        .get_flows(request)
        .await
        .unwrap()
        .into_inner();
    collect(stream).await.iter().filter_map(port_of).collect()
}

#[tokio::test]
async fn last_and_first_n_return_the_latest_and_earliest_flows_in_order() {
    let h = Harness::start(100, 64).await;
    feed(&h, 1, 1..11);
    let last = GetFlowsRequest {
        number: 3,
        ..Default::default()
    };
    assert_eq!(ports(&h, last).await, [8, 9, 10]);
    let first = GetFlowsRequest {
        number: 3,
        first: true,
        ..Default::default()
    };
    assert_eq!(ports(&h, first).await, [1, 2, 3]);
    let all = GetFlowsRequest::default();
    assert_eq!(ports(&h, all).await, (1..11).collect::<Vec<_>>());
}

#[tokio::test]
async fn flows_handed_over_out_of_time_order_are_stored_oldest_first() {
    let h = Harness::start(100, 64).await;
    // Two CPUs' packets can reach the ring buffer in the other order than their times.
    let events: Vec<_> = [(1, 1), (3, 3), (2, 2), (5, 5), (4, 4), (0, 9)]
        .into_iter()
        .map(|(ms, port)| tcp(ms, 1, 2, 40000, port, 0x02))
        .collect();
    assert_eq!(h.pipeline.ingest(&events), 0);
    let all = GetFlowsRequest::default();
    assert_eq!(ports(&h, all).await, [9, 1, 2, 3, 4, 5]);
    let last = GetFlowsRequest {
        number: 2,
        ..Default::default()
    };
    assert_eq!(ports(&h, last).await, [4, 5]);
}

#[tokio::test]
async fn ring_keeps_only_the_last_n_flows_and_counts_every_flow_seen() {
    let h = Harness::start(5, 64).await;
    feed(&h, 1, 1..21);
    assert_eq!(
        ports(&h, GetFlowsRequest::default()).await,
        [16, 17, 18, 19, 20]
    );
    let status = h
        .client()
        .await
        .server_status(ServerStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.num_flows, status.max_flows, status.seen_flows),
        (5, 5, 20)
    );
    assert_eq!(status.num_connected_nodes.unwrap().value, 1);
    assert!(status.version.starts_with("membrane "));
}

#[tokio::test]
async fn since_and_until_select_a_time_window_and_filters_apply() {
    let h = Harness::start(100, 64).await;
    feed(&h, 100, 1..11); // ports 1..=10 at 100..=109 ms
    let window = GetFlowsRequest {
        since: Some(timestamp(epoch() + Duration::from_millis(103))),
        until: Some(timestamp(epoch() + Duration::from_millis(105))),
        ..Default::default()
    };
    assert_eq!(ports(&h, window).await, [4, 5, 6]);
    let filtered = GetFlowsRequest {
        whitelist: vec![
            pb::FlowFilter {
                destination_port: vec!["2".into()],
                ..Default::default()
            },
            pb::FlowFilter {
                destination_port: vec!["7".into(), "8".into()],
                ..Default::default()
            },
        ],
        blacklist: vec![pb::FlowFilter {
            destination_port: vec!["8".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(ports(&h, filtered).await, [2, 7]);
    let last_matching = GetFlowsRequest {
        number: 1,
        whitelist: vec![pb::FlowFilter {
            destination_port: vec!["2".into(), "3".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(ports(&h, last_matching).await, [3]);
}

#[tokio::test]
async fn follow_streams_new_flows_after_the_last_n() {
    let h = Harness::start(100, 64).await;
    feed(&h, 1, 1..4);
    let request = GetFlowsRequest {
        number: 1,
        follow: true,
        blacklist: vec![pb::FlowFilter {
            destination_port: vec!["11".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut stream = h
        .client()
        .await
        .get_flows(request)
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(port_of(&first), Some(3));
    feed(&h, 10, 10..13);
    let mut followed = Vec::new();
    while followed.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("followed flows arrive")
            .unwrap()
            .unwrap();
        followed.extend(port_of(&next));
    }
    assert_eq!(followed, [10, 12]);
    assert_eq!(first.node_name, "node1");
}

#[tokio::test]
async fn follow_ends_when_until_has_passed() {
    let h = Harness::start(100, 64).await;
    let request = GetFlowsRequest {
        follow: true,
        until: Some(timestamp(
            std::time::SystemTime::now() + Duration::from_millis(300),
        )),
        ..Default::default()
    };
    let stream = h
        .client()
        .await
        .get_flows(request)
        .await
        .unwrap()
        .into_inner();
    let responses = tokio::time::timeout(Duration::from_secs(5), collect(stream))
        .await
        .expect("the stream ends by itself");
    assert!(responses.is_empty());
}

#[tokio::test]
async fn first_with_follow_and_bad_filters_are_invalid_arguments() {
    let h = Harness::start(10, 8).await;
    let mut client = h.client().await;
    let both = GetFlowsRequest {
        first: true,
        follow: true,
        ..Default::default()
    };
    let status = client.get_flows(both).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let bad = GetFlowsRequest {
        whitelist: vec![pb::FlowFilter {
            source_ip: vec!["not-an-ip".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let status = client.get_flows(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("source_ip"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn kernel_ring_buffer_losses_are_reported_as_lost_events_and_counted() {
    let h = Harness::start(100, 64).await;
    h.pipeline.kernel_lost_total(40); // the baseline: losses from before this observer
    feed(&h, 1, 1..3);
    h.pipeline.kernel_lost_total(70);
    let stream = h
        .client()
        .await
        .get_flows(GetFlowsRequest {
            whitelist: vec![pb::FlowFilter {
                verdict: vec![pb::Verdict::Dropped as i32],
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let responses = collect(stream).await;
    // The filter selects no flow, but lost-event records are never filtered out.
    assert_eq!(responses.len(), 1);
    let Some(ResponseTypes::LostEvents(lost)) = &responses[0].response_types else {
        panic!("expected a lost-event record, got {:?}", responses[0]);
    };
    assert_eq!(lost.source, pb::LostEventSource::PerfEventRingBuffer as i32);
    assert_eq!(lost.num_events_lost, 30);
    let mut text = String::new();
    h.metrics.encode(&mut text).unwrap();
    assert!(
        text.contains("membrane_lost_events_total{source=\"kernel_ring_buffer\"} 30"),
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_follower_is_told_exactly_how_many_events_it_missed() {
    const FLOOD: u64 = 3000;
    let h = Harness::start(10, 4).await;
    let request = GetFlowsRequest {
        follow: true,
        ..Default::default()
    };
    let mut stream = h
        .client()
        .await
        .get_flows(request)
        .await
        .unwrap()
        .into_inner();
    // The follower reads nothing while the flood goes in.
    let events: Vec<_> = (0..FLOOD)
        .map(|i| tcp(i, 1, 2, 40000, (i % 60000) as u16 + 1, 0x02))
        .collect();
    for chunk in events.chunks(100) {
        h.pipeline.ingest(chunk);
        tokio::task::yield_now().await;
    }
    let (mut flows, mut lost) = (0u64, 0u64);
    while flows + lost < FLOOD {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("every event is delivered or reported lost")
            .unwrap()
            .unwrap();
        match next.response_types.unwrap() {
            ResponseTypes::Flow(_) => flows += 1,
            ResponseTypes::LostEvents(l) => {
                assert_eq!(l.source, pb::LostEventSource::HubbleRingBuffer as i32);
                lost += l.num_events_lost;
            }
            ResponseTypes::NodeStatus(_) => panic!("no node status expected"),
        }
    }
    assert_eq!(flows + lost, FLOOD);
    assert!(lost > 0, "the flood overflowed the follower");
    let mut text = String::new();
    h.metrics.encode(&mut text).unwrap();
    assert!(
        text.contains(&format!(
            "membrane_lost_events_total{{source=\"{}\"}} {lost}",
            LostSource::SlowFollower.name()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn nodes_and_namespaces_describe_this_node_and_the_namespaces_seen() {
    let h = Harness::start(100, 64).await;
    h.pipeline.ingest(&[tcp(0, 1, 3, 1, 2, 0)]); // shop -> other
    let mut client = h.client().await;
    let nodes = client
        .get_nodes(GetNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "node1");
    assert_eq!(nodes[0].seen_flows, 1);
    assert_eq!(nodes[0].state, 1); // NODE_CONNECTED
    let namespaces = client
        .get_namespaces(GetNamespacesRequest {})
        .await
        .unwrap()
        .into_inner()
        .namespaces;
    let names: Vec<_> = namespaces.iter().map(|n| n.namespace.as_str()).collect();
    assert_eq!(names, ["other", "shop"]);
}

#[tokio::test]
async fn health_reports_the_observer_as_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let h = Harness::start(10, 8).await;
    let channel = channel(&ServerAddress::Unix(h.socket.clone()), None)
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let response = health
        .check(HealthCheckRequest {
            service: "observer.Observer".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status, ServingStatus::Serving as i32);
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.Such".to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

//! `membrane observe` as a user runs it, against a real Observer server on a unix
//! socket fed with synthetic datapath events.

use membrane_common::events::{ct_state, event_kind, observation_point};
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::{proto, v4_bytes};
use membrane_common::{CtKey, Family, FlowEvent};
use membrane_observe::decode::{BootClock, Decoder};
use membrane_observe::directory::{EndpointMeta, StaticDirectory};
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use membrane_observe::server;
use membrane_observe::service::{NodeInfo, ObserverService};
use membrane_observe::store::FlowStore;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// A TCP flow from 10.0.0.src to 10.0.0.dst:port, `secs` seconds before now.
fn event(secs_ago: u64, src: u8, dst: u8, port: u16, kind: u8, code: u8) -> FlowEvent {
    FlowEvent {
        timestamp_ns: (3600 - secs_ago) * 1_000_000_000,
        tuple: CtKey {
            saddr: v4_bytes([10, 0, 0, src]),
            daddr: v4_bytes([10, 0, 0, dst]),
            sport: 40000u16.to_be(),
            dport: port.to_be(),
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
        ifindex: 3,
        kind,
        reason: code,
        direction: direction::EGRESS,
        observation_point: observation_point::FROM_ENDPOINT,
        tcp_flags: 0x02,
        ct_state: ct_state::NEW,
        policy_match: 0,
        policy_verdict: 0,
        icmp_type: 0,
        icmp_code: 0,
        _pad: [0; 2],
    }
}

struct Observer {
    pipeline: Arc<Pipeline>,
    socket: PathBuf,
    token: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// An Observer whose ring holds, oldest first: shop/client -> shop/web:80 forwarded,
/// shop/client -> other/db:5432 forwarded, shop/web -> other/db:5432 dropped.
async fn observer() -> Observer {
    let dir = Arc::new(StaticDirectory::new());
    for (x, ns, pod, id) in [
        (1, "shop", "client", 1001),
        (2, "shop", "web", 1002),
        (3, "other", "db", 1003),
    ] {
        dir.insert_endpoint(
            EndpointMeta {
                id: u16::from(x),
                identity: id,
                namespace: ns.to_string(),
                pod_name: pod.to_string(),
                labels: [("app".to_string(), pod.to_string())].into(),
                workloads: Vec::new(),
                interface: 0,
            },
            &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, x))],
        );
    }
    // Monotonic zero an hour ago, so that the events are `secs_ago` old.
    let clock = BootClock::with_epoch(SystemTime::now() - Duration::from_secs(3600));
    let decoder = Decoder::new("node1", dir.clone(), dir, clock);
    let store = FlowStore::new(100, 64);
    let metrics = Arc::new(ObserveMetrics::new());
    let pipeline = Arc::new(Pipeline::new(decoder, store.clone(), metrics.clone()));
    pipeline.ingest(&[
        event(30, 1, 2, 80, event_kind::TRACE, reason::FORWARD_LOCAL),
        event(20, 1, 3, 5432, event_kind::TRACE, reason::FORWARD_LOCAL),
        event(
            10,
            2,
            3,
            5432,
            event_kind::DROP,
            reason::DROP_INVALID_SOURCE,
        ),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("observer.sock");
    let service = Arc::new(ObserverService::new(store, metrics, NodeInfo::default()));
    let listener = server::bind_unix(&socket).unwrap();
    let token = CancellationToken::new();
    tokio::spawn(server::serve_unix(listener, None, service, token.clone()));
    Observer {
        pipeline,
        socket,
        token,
        _dir: tmp,
    }
}

fn membrane(observer: &Observer, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_membrane"));
    command
        .arg("observe")
        .arg("--server")
        .arg(&observer.socket)
        .args(args)
        .env_remove("MEMBRANE_OBSERVER")
        .kill_on_drop(true);
    command
}

/// Runs to the end; returns stdout, and panics with stderr on failure.
async fn run(observer: &Observer, args: &[&str]) -> String {
    let out = membrane(observer, args).output().await.unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "membrane observe {args:?} failed: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn every_output_format_prints_the_last_flows() {
    let o = observer().await;
    let compact = run(&o, &["--last", "2"]).await;
    let lines: Vec<&str> = compact.lines().collect();
    assert_eq!(lines.len(), 2, "{compact}");
    assert!(
        lines[0].contains(
            "shop/client:40000 (ID:1001) -> other/db:5432 (ID:1003) from-endpoint FORWARDED"
        ),
        "{compact}"
    );
    assert!(
        lines[1].contains("shop/web:40000 (ID:1002) -> other/db:5432 (ID:1003) drop DROPPED"),
        "{compact}"
    );

    let table = run(&o, &["-o", "table"]).await;
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.starts_with("TIMESTAMP"), "{table}");

    let dict = run(&o, &["-o", "dict", "--last", "1"]).await;
    assert!(dict.contains("     VERDICT: DROPPED"), "{dict}");

    let json = run(&o, &["-o", "json", "--last", "1"]).await;
    let flow: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(flow["destination"]["pod_name"], "db");
    assert_eq!(flow["drop_reason_desc"], "INVALID_SOURCE_IP");

    let jsonpb = run(&o, &["-o", "jsonpb", "--first", "1"]).await;
    let response: serde_json::Value = serde_json::from_str(jsonpb.trim()).unwrap();
    assert_eq!(response["flow"]["destination"]["pod_name"], "web");
}

#[tokio::test]
async fn filters_select_flows_and_not_negates_only_the_next_filter() {
    let o = observer().await;
    let count = |out: String| out.lines().count();
    assert_eq!(count(run(&o, &["--namespace", "other"]).await), 2);
    assert_eq!(count(run(&o, &["--from-pod", "shop/client"]).await), 2);
    assert_eq!(
        count(run(&o, &["--to-pod", "web"]).await),
        0,
        "a bare pod name is in namespace default"
    );
    assert_eq!(
        count(run(&o, &["--to-port", "5432", "--verdict", "FORWARDED"]).await),
        1
    );
    assert_eq!(
        count(run(&o, &["--not", "--verdict", "DROPPED", "--to-port", "5432"]).await),
        1
    );
    assert_eq!(
        count(run(&o, &["--to-port", "5432", "--not", "--from-ip", "10.0.0.2"]).await),
        1
    );
    assert_eq!(count(run(&o, &["--label", "app=db"]).await), 2);
    assert_eq!(count(run(&o, &["--type", "drop"]).await), 1);
    assert_eq!(
        count(run(&o, &["--type", "trace:from-endpoint", "--protocol", "tcp"]).await),
        2
    );
    assert_eq!(
        count(run(&o, &["--from-ip", "10.0.0.0/30", "--to-ip", "10.0.0.2"]).await),
        1
    );
}

#[tokio::test]
async fn since_and_until_take_durations_and_rfc3339_times() {
    let o = observer().await;
    assert_eq!(run(&o, &["--since", "25s"]).await.lines().count(), 2);
    assert_eq!(
        run(&o, &["--since", "1h", "--until", "15s"])
            .await
            .lines()
            .count(),
        2
    );
    let later = humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(60)).to_string();
    assert_eq!(run(&o, &["--since", &later]).await.lines().count(), 0);
}

#[tokio::test]
async fn follow_prints_new_flows_as_they_arrive() {
    let o = observer().await;
    let mut child = membrane(&o, &["-f", "--to-port", "443"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The follower may connect after the first event: keep feeding until a line comes.
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            o.pipeline.ingest(&[event(
                0,
                1,
                2,
                443,
                event_kind::TRACE,
                reason::FORWARD_LOCAL,
            )]);
            tokio::select! {
                line = lines.next_line() => break line.unwrap().unwrap(),
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
    .await
    .expect("a followed flow is printed");
    assert!(line.contains("-> shop/web:443"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn bad_flags_and_an_unreachable_observer_are_reported() {
    let o = observer().await;
    let out = membrane(&o, &["--verdict", "MAYBE"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --verdict value \"MAYBE\""));
    let out = membrane(&o, &["--not"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--not must be followed"));
    let out = membrane(&o, &["--since", "yesterday-ish"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --since"));
    let out = Command::new(env!("CARGO_BIN_EXE_membrane"))
        .args(["observe", "--server", "/nonexistent/observer.sock"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/observer.sock"), "{stderr}");
}

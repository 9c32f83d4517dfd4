//! The metrics text parses in the Prometheus text format and its counters move with the
//! flows that go through the pipeline.

mod support;

use membrane_common::events::event_kind;
use membrane_common::metrics::reason;
use membrane_observe::flow::LostSource;
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use membrane_observe::store::FlowStore;
use std::sync::Arc;
use support::*;

fn scrape(metrics: &ObserveMetrics) -> prometheus_parse::Scrape {
    let mut text = String::new();
    metrics.encode(&mut text).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("unexpected value type for {name}"),
        })
        .unwrap_or(0.0)
}

#[test]
fn counters_move_with_flows_drops_policy_verdicts_services_losses_and_maps() {
    let metrics = Arc::new(ObserveMetrics::new());
    let pipeline = Pipeline::new(decoder(), FlowStore::new(10, 10), metrics.clone());
    let before = scrape(&metrics);
    assert_eq!(value(&before, "membrane_flows_processed_total", &[]), 0.0);

    let mut to_service = tcp(0, 1, 9, 40000, 80, 0x02);
    to_service.rev_nat_index = 5;
    to_service.len = 100;
    let mut verdict = tcp(0, 1, 2, 40000, 80, 0x02);
    verdict.kind = event_kind::POLICY_VERDICT;
    verdict.reason = reason::DROP_POLICY;
    verdict.policy_verdict = membrane_common::events::policy_verdict::DENIED;
    pipeline.ingest(&[
        to_service,
        to_service,
        drop(0, 1, 2, reason::DROP_NO_ROUTE),
        verdict,
    ]);
    pipeline.lost(LostSource::EventsQueue, 4);
    metrics.set_map_pressure("MEMBRANE_CT", 1500, 65536);

    let after = scrape(&metrics);
    let flows = [("verdict", "FORWARDED"), ("type", "trace")];
    assert_eq!(value(&after, "membrane_flows_processed_total", &flows), 2.0);
    assert_eq!(
        value(
            &after,
            "membrane_drops_total",
            &[("reason", "no_route"), ("direction", "egress")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "membrane_drops_total",
            &[("reason", "policy_denied")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "membrane_policy_verdicts_total",
            &[("verdict", "DROPPED")]
        ),
        1.0
    );
    let web = [("namespace", "shop"), ("service", "web")];
    assert_eq!(value(&after, "membrane_service_packets_total", &web), 2.0);
    assert_eq!(value(&after, "membrane_service_bytes_total", &web), 200.0);
    assert_eq!(
        value(
            &after,
            "membrane_lost_events_total",
            &[("source", "events_queue")]
        ),
        4.0
    );
    let ct = [("map", "MEMBRANE_CT")];
    assert_eq!(value(&after, "membrane_map_entries", &ct), 1500.0);
    assert_eq!(value(&after, "membrane_map_capacity", &ct), 65536.0);
}

//! Every output format of `membrane observe`, on a forwarded flow, a drop and a
//! lost-event record.

mod support;

use membrane_observe::api::flow as pb;
use membrane_observe::api::observer::GetFlowsResponse;
use membrane_observe::api::observer::get_flows_response::ResponseTypes;
use membrane_observe::api::timestamp;
use membrane_observe::print::{Format, Printer};
use support::*;

fn responses() -> Vec<GetFlowsResponse> {
    let d = decoder();
    let forwarded = d.decode(&tcp(1000, 1, 2, 40000, 80, 0x02)).unwrap();
    let dropped = d
        .decode(&drop(
            2000,
            1,
            2,
            membrane_common::metrics::reason::DROP_INVALID_SOURCE,
        ))
        .unwrap();
    let flow = |f: &membrane_observe::flow::Flow| GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(pb::Flow::from(f))),
        node_name: "node1".to_string(),
        time: Some(timestamp(f.time)),
    };
    vec![
        flow(&forwarded),
        flow(&dropped),
        GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(pb::LostEvent {
                source: pb::LostEventSource::HubbleRingBuffer as i32,
                num_events_lost: 7,
                ..Default::default()
            })),
            node_name: "node1".to_string(),
            time: Some(timestamp(epoch())),
        },
    ]
}

fn render(format: Format) -> String {
    let mut printer = Printer::new(Vec::new(), format);
    for r in responses() {
        printer.print(&r).unwrap();
    }
    String::from_utf8(printer.finish().unwrap()).unwrap()
}

#[test]
fn compact_prints_one_line_per_flow_with_pods_ports_identities_and_verdict() {
    let out = render(Format::Compact);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with(
            "[node1]: shop/client-abc:40000 (ID:1001) -> shop/web-1:80 (ID:1002) from-endpoint FORWARDED (TCP Flags: SYN; forward_local)"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" drop DROPPED (TCP Flags: SYN; invalid_source_address)"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "EVENTS LOST: HUBBLE_RING_BUFFER 7");
}

#[test]
fn table_aligns_columns_under_a_header() {
    let out = render(Format::Table);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("TIMESTAMP"));
    let column = |line: &str, word: &str| line.find(word).unwrap();
    assert_eq!(
        column(lines[0], "SOURCE"),
        column(lines[1], "shop/client-abc")
    );
    assert_eq!(column(lines[0], "VERDICT"), column(lines[2], "DROPPED"));
    assert!(lines[3].contains("EVENTS LOST: HUBBLE_RING_BUFFER 7"));
}

#[test]
fn dict_prints_a_block_of_named_fields_per_flow() {
    let out = render(Format::Dict);
    assert_eq!(out.matches("------------").count(), 3, "{out}");
    assert!(
        out.contains("      SOURCE: shop/client-abc:40000 (ID:1001)"),
        "{out}"
    );
    assert!(out.contains("     VERDICT: DROPPED"), "{out}");
    assert!(out.contains("        NODE: node1"), "{out}");
}

#[test]
fn json_prints_the_flow_and_jsonpb_the_response_in_proto3_json() {
    let json = render(Format::Json);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["verdict"], "FORWARDED");
    assert_eq!(first["source"]["pod_name"], "client-abc");
    assert_eq!(first["IP"]["source"], "10.0.0.1");
    assert_eq!(first["l4"]["TCP"]["destination_port"], 80);
    assert_eq!(first["event_type"]["type"], 4);
    let time = first["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339_weak(time).is_ok(), "{time}");
    let lost: serde_json::Value = serde_json::from_str(json.lines().nth(2).unwrap()).unwrap();
    assert_eq!(lost["lost_events"]["num_events_lost"], "7");

    let jsonpb = render(Format::JsonPb);
    let second: serde_json::Value = serde_json::from_str(jsonpb.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["node_name"], "node1");
    assert_eq!(second["flow"]["verdict"], "DROPPED");
    assert_eq!(second["flow"]["drop_reason_desc"], "INVALID_SOURCE_IP");
    // Every line decodes back into the same response.
    for (line, original) in jsonpb.lines().zip(responses()) {
        let back: GetFlowsResponse = serde_json::from_str(line).unwrap();
        assert_eq!(back, original);
    }
}

//! Wire compatibility with Hubble: a GetFlows request built byte by byte with the field
//! numbers of Hubble's public observer.proto (as the hubble CLI sends it) is served,
//! and the response bytes carry each field under Hubble's number and type.

mod support;

use membrane_observe::api::observer::{GetFlowsRequest, GetFlowsResponse};
use prost::Message;
use support::*;
use tokio_stream::StreamExt;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(field: u64, wire_type: u64, out: &mut Vec<u8>) {
    varint(field << 3 | wire_type, out);
}

fn bytes_field(field: u64, value: &[u8], out: &mut Vec<u8>) {
    tag(field, 2, out);
    varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn varint_field(field: u64, value: u64, out: &mut Vec<u8>) {
    tag(field, 0, out);
    varint(value, out);
}

/// The request `hubble observe --last 5 --from-pod shop/ --type trace
/// --not --verdict DROPPED` sends, with the field mask newer CLIs add.
fn hubble_request_bytes() -> Vec<u8> {
    let mut allow = Vec::new();
    bytes_field(2, b"shop/", &mut allow); // FlowFilter.source_pod
    let mut event_type = Vec::new();
    varint_field(1, 4, &mut event_type); // EventTypeFilter.type = trace
    bytes_field(6, &event_type, &mut allow); // FlowFilter.event_type
    let mut deny = Vec::new();
    varint_field(5, 2, &mut deny); // FlowFilter.verdict = DROPPED (packed would also do)
    let mut mask = Vec::new();
    bytes_field(1, b"source", &mut mask); // FieldMask.paths
    let mut experimental = Vec::new();
    bytes_field(1, &mask, &mut experimental); // Experimental.field_mask
    let mut request = Vec::new();
    varint_field(1, 5, &mut request); // number
    bytes_field(5, &deny, &mut request); // blacklist
    bytes_field(6, &allow, &mut request); // whitelist
    bytes_field(10, &mask, &mut request); // field_mask
    bytes_field(999, &experimental, &mut request); // experimental
    bytes_field(4242, b"a field from the future", &mut request); // unknown: skipped
    request
}

/// A decoded protobuf field: number and value.
#[derive(Debug)]
enum Value {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn read_varint(data: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = data[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

fn fields(data: &[u8]) -> Vec<(u64, Value)> {
    let (mut at, mut out) = (0, Vec::new());
    while at < data.len() {
        let key = read_varint(data, &mut at);
        let value = match key & 7 {
            0 => Value::Varint(read_varint(data, &mut at)),
            2 => {
                let len = read_varint(data, &mut at) as usize;
                at += len;
                Value::Bytes(data[at - len..at].to_vec())
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn field(fields: &[(u64, Value)], number: u64) -> &Value {
    &fields
        .iter()
        .find(|(n, _)| *n == number)
        .unwrap_or_else(|| panic!("field {number} missing from {fields:?}"))
        .1
}

fn message(value: &Value) -> Vec<(u64, Value)> {
    match value {
        Value::Bytes(b) => fields(b),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn string(value: &Value) -> String {
    match value {
        Value::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn number(value: &Value) -> u64 {
    match value {
        Value::Varint(v) => *v,
        other => panic!("expected a varint, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_as_the_hubble_cli_encodes_it_is_served_and_the_reply_has_hubbles_field_numbers()
{
    let request = GetFlowsRequest::decode(hubble_request_bytes().as_slice()).unwrap();
    assert_eq!(request.number, 5);
    assert_eq!(request.whitelist[0].source_pod, ["shop/"]);
    assert_eq!(request.whitelist[0].event_type[0].r#type, 4);
    assert_eq!(request.blacklist[0].verdict, [2]);
    assert_eq!(request.field_mask.as_ref().unwrap().paths, ["source"]);

    let h = Harness::start(100, 64).await;
    let mut reply = tcp(2, 2, 1, 80, 40000, 0x12);
    reply.ct_state = membrane_common::events::ct_state::REPLY;
    h.pipeline.ingest(&[
        tcp(1, 1, 2, 40000, 80, 0x02),
        drop(
            2,
            1,
            2,
            membrane_common::metrics::reason::DROP_INVALID_SOURCE,
        ),
        reply,
    ]);
    let mut stream = h
        .client()
        .await
        .get_flows(request)
        .await
        .unwrap()
        .into_inner();
    let mut responses: Vec<GetFlowsResponse> = Vec::new();
    while let Some(r) = stream.next().await {
        responses.push(r.unwrap());
    }
    // Both forwarded flows come from a pod in shop; the drop is on the deny-list.
    assert_eq!(responses.len(), 2);

    let bytes = responses[0].encode_to_vec();
    let top = fields(&bytes);
    assert_eq!(string(field(&top, 1000)), "node1"); // GetFlowsResponse.node_name
    let time = message(field(&top, 1001)); // GetFlowsResponse.time
    assert!(number(field(&time, 1)) > 1_700_000_000); // Timestamp.seconds
    let flow = message(field(&top, 1)); // GetFlowsResponse.flow
    assert_eq!(number(field(&flow, 2)), 1); // Flow.verdict = FORWARDED
    assert_eq!(string(field(&flow, 11)), "node1"); // Flow.node_name
    assert_eq!(number(field(&flow, 10)), 1); // Flow.Type = L3_L4
    assert_eq!(number(field(&flow, 22)), 2); // Flow.traffic_direction = EGRESS
    assert_eq!(number(field(&flow, 24)), 5); // Flow.trace_observation_point = FROM_ENDPOINT
    let event_type = message(field(&flow, 19)); // Flow.event_type
    assert_eq!(number(field(&event_type, 1)), 4); // CiliumEventType.type = trace
    let is_reply = message(field(&flow, 26)); // Flow.is_reply (BoolValue)
    assert!(is_reply.is_empty() || number(field(&is_reply, 1)) == 0);
    let ip = message(field(&flow, 5)); // Flow.IP
    assert_eq!(string(field(&ip, 1)), "10.0.0.1");
    assert_eq!(string(field(&ip, 2)), "10.0.0.2");
    assert_eq!(number(field(&ip, 3)), 1); // IPVersion.IPv4
    let l4 = message(field(&flow, 6)); // Flow.l4
    let tcp = message(field(&l4, 1)); // Layer4.TCP
    assert_eq!(number(field(&tcp, 1)), 40000);
    assert_eq!(number(field(&tcp, 2)), 80);
    let flags = message(field(&tcp, 3)); // TCP.flags
    assert_eq!(number(field(&flags, 2)), 1); // TCPFlags.SYN
    let source = message(field(&flow, 8)); // Flow.source
    assert_eq!(number(field(&source, 1)), 11); // Endpoint.ID
    assert_eq!(number(field(&source, 2)), 1001); // Endpoint.identity
    assert_eq!(string(field(&source, 3)), "shop"); // Endpoint.namespace
    assert_eq!(string(field(&source, 5)), "client-abc"); // Endpoint.pod_name
    let workload = message(field(&source, 6)); // Endpoint.workloads
    assert_eq!(string(field(&workload, 1)), "client");
    assert_eq!(string(field(&workload, 2)), "Deployment");
    let destination = message(field(&flow, 9)); // Flow.destination
    assert_eq!(string(field(&destination, 5)), "web-1");

    let reply = message(field(&fields(&responses[1].encode_to_vec()), 1));
    let is_reply = message(field(&reply, 26));
    assert_eq!(number(field(&is_reply, 1)), 1);
}

//! Output of `membrane observe`: Hubble's formats `compact` (one line per flow),
//! `table`, `dict` (one block per flow), `json` (the flow in proto3 JSON) and `jsonpb`
//! (the whole GetFlows response in proto3 JSON). The printer reads the wire messages the
//! client received: it sits on the client edge of the API.

use crate::api::flow::{self as pb, layer4::Protocol};
use crate::api::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use crate::api::system_time;
use crate::flow::{ObservationPoint, Verdict, monitor_type};
use std::io::Write;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per flow.
    Compact,
    /// Aligned columns with a header.
    Table,
    /// `KEY: value` blocks.
    Dict,
    /// The flow as proto3 JSON, one per line.
    Json,
    /// The GetFlows response as proto3 JSON, one per line.
    JsonPb,
}

impl Format {
    /// Parses `compact`, `table`, `dict`, `json` or `jsonpb`.
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "compact" => Format::Compact,
            "table" => Format::Table,
            "dict" => Format::Dict,
            "json" => Format::Json,
            "jsonpb" => Format::JsonPb,
            _ => return None,
        })
    }
}

fn time(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.and_then(system_time).map_or_else(
        || "-".to_string(),
        |t| humantime::format_rfc3339_millis(t).to_string(),
    )
}

fn reserved_name(identity: u32) -> Option<&'static str> {
    use membrane_common::identity::*;
    Some(match identity {
        HOST => "host",
        WORLD => "world",
        UNMANAGED => "unmanaged",
        HEALTH => "health",
        INIT => "init",
        REMOTE_NODE => "remote-node",
        KUBE_APISERVER => "kube-apiserver",
        INGRESS => "ingress",
        _ => return None,
    })
}

fn ports(flow: &pb::Flow) -> (Option<u32>, Option<u32>) {
    match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        Some(Protocol::Sctp(s)) => (Some(s.source_port), Some(s.destination_port)),
        _ => (None, None),
    }
}

/// `ns/pod:port (ID:identity)` or `ip:port (world)`.
fn side(endpoint: Option<&pb::Endpoint>, ip: &str, port: Option<u32>) -> String {
    let e = endpoint.cloned().unwrap_or_default();
    let who = if e.pod_name.is_empty() {
        if ip.contains(':') && port.is_some() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        }
    } else {
        format!("{}/{}", e.namespace, e.pod_name)
    };
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let identity = match reserved_name(e.identity) {
        Some(name) => format!(" ({name})"),
        None if e.identity != 0 => format!(" (ID:{})", e.identity),
        None => String::new(),
    };
    format!("{who}{port}{identity}")
}

fn verdict(flow: &pb::Flow) -> &'static str {
    Verdict::from_hubble(flow.verdict).map_or("UNKNOWN", Verdict::name)
}

/// `to-endpoint`, `drop`, `policy-verdict`, `trace-sock`.
fn event_name(flow: &pb::Flow) -> String {
    match flow.event_type.as_ref().map(|t| t.r#type) {
        Some(monitor_type::TRACE) => ObservationPoint::from_hubble(flow.trace_observation_point)
            .name()
            .to_string(),
        Some(monitor_type::DROP) => "drop".to_string(),
        Some(monitor_type::POLICY_VERDICT) => "policy-verdict".to_string(),
        Some(monitor_type::TRACE_SOCK) => "trace-sock".to_string(),
        Some(other) => other.to_string(),
        None => "unknown".to_string(),
    }
}

fn l4_summary(flow: &pb::Flow) -> String {
    match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(Protocol::Tcp(t)) => {
            let f = t.flags.unwrap_or_default();
            let names: Vec<&str> = [
                (f.syn, "SYN"),
                (f.fin, "FIN"),
                (f.rst, "RST"),
                (f.psh, "PSH"),
                (f.ack, "ACK"),
                (f.urg, "URG"),
                (f.ece, "ECE"),
                (f.cwr, "CWR"),
                (f.ns, "NS"),
            ]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, n)| n)
            .collect();
            format!("TCP Flags: {}", names.join(", "))
        }
        Some(Protocol::Udp(_)) => "UDP".to_string(),
        Some(Protocol::IcmPv4(i)) => format!("ICMPv4 type {} code {}", i.r#type, i.code),
        Some(Protocol::IcmPv6(i)) => format!("ICMPv6 type {} code {}", i.r#type, i.code),
        Some(Protocol::Sctp(_)) => "SCTP".to_string(),
        None => "no L4".to_string(),
    }
}

/// The one-line summary: L4 details, then Membrane's outcome name.
fn summary(flow: &pb::Flow) -> String {
    let mut text = l4_summary(flow);
    if !flow.summary.is_empty() {
        text.push_str("; ");
        text.push_str(&flow.summary);
    }
    text
}

fn endpoints(flow: &pb::Flow) -> (String, String) {
    let ip = flow.ip.clone().unwrap_or_default();
    let (sport, dport) = ports(flow);
    (
        side(flow.source.as_ref(), &ip.source, sport),
        side(flow.destination.as_ref(), &ip.destination, dport),
    )
}

fn lost_line(lost: &pb::LostEvent) -> String {
    let source = pb::LostEventSource::try_from(lost.source)
        .map_or_else(|_| lost.source.to_string(), |s| s.as_str_name().to_string());
    format!("EVENTS LOST: {source} {}", lost.num_events_lost)
}

/// Writes responses in one format.
pub struct Printer<W: Write> {
    out: W,
    format: Format,
    rows: Vec<[String; 6]>,
}

/// Why printing failed.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// Writing failed.
    #[error("cannot write the output")]
    Io(#[from] std::io::Error),
    /// A message could not be rendered as JSON.
    #[error("cannot render a flow as JSON")]
    Json(#[from] serde_json::Error),
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W, format: Format) -> Printer<W> {
        Printer {
            out,
            format,
            rows: Vec::new(),
        }
    }

    /// Prints (or, for tables, collects) one response.
    pub fn print(&mut self, response: &GetFlowsResponse) -> Result<(), PrintError> {
        let Some(types) = &response.response_types else {
            return Ok(());
        };
        match self.format {
            Format::JsonPb => {
                serde_json::to_writer(&mut self.out, response)?;
                writeln!(self.out)?;
            }
            Format::Json => {
                match types {
                    ResponseTypes::Flow(flow) => serde_json::to_writer(&mut self.out, flow)?,
                    ResponseTypes::LostEvents(lost) => serde_json::to_writer(
                        &mut self.out,
                        &serde_json::json!({ "lost_events": lost }),
                    )?,
                    ResponseTypes::NodeStatus(status) => serde_json::to_writer(
                        &mut self.out,
                        &serde_json::json!({ "node_status": status }),
                    )?,
                }
                writeln!(self.out)?;
            }
            Format::Compact => match types {
                ResponseTypes::Flow(flow) => {
                    let (src, dst) = endpoints(flow);
                    writeln!(
                        self.out,
                        "{} [{}]: {src} -> {dst} {} {} ({})",
                        time(flow.time.as_ref()),
                        flow.node_name,
                        event_name(flow),
                        verdict(flow),
                        summary(flow),
                    )?;
                }
                ResponseTypes::LostEvents(lost) => writeln!(self.out, "{}", lost_line(lost))?,
                ResponseTypes::NodeStatus(status) => {
                    writeln!(self.out, "NODE STATUS: {}", status.message)?;
                }
            },
            Format::Dict => match types {
                ResponseTypes::Flow(flow) => {
                    let (src, dst) = endpoints(flow);
                    writeln!(self.out, "------------")?;
                    for (key, value) in [
                        ("TIMESTAMP", time(flow.time.as_ref())),
                        ("NODE", flow.node_name.clone()),
                        ("SOURCE", src),
                        ("DESTINATION", dst),
                        ("TYPE", event_name(flow)),
                        ("VERDICT", verdict(flow).to_string()),
                        ("SUMMARY", summary(flow)),
                    ] {
                        writeln!(self.out, "{key:>12}: {value}")?;
                    }
                }
                ResponseTypes::LostEvents(lost) => {
                    writeln!(self.out, "------------\n{}", lost_line(lost))?;
                }
                ResponseTypes::NodeStatus(status) => {
                    writeln!(self.out, "------------\nNODE STATUS: {}", status.message)?;
                }
            },
            Format::Table => match types {
                ResponseTypes::Flow(flow) => {
                    let (src, dst) = endpoints(flow);
                    self.rows.push([
                        time(flow.time.as_ref()),
                        src,
                        dst,
                        event_name(flow),
                        verdict(flow).to_string(),
                        summary(flow),
                    ]);
                }
                ResponseTypes::LostEvents(lost) => {
                    self.rows.push([
                        time(response.time.as_ref()),
                        String::new(),
                        String::new(),
                        "lost".to_string(),
                        String::new(),
                        lost_line(lost),
                    ]);
                }
                ResponseTypes::NodeStatus(_) => {}
            },
        }
        Ok(())
    }

    /// Flushes what was printed so far (tables are printed by `finish`).
    pub fn flush(&mut self) -> Result<(), PrintError> {
        Ok(self.out.flush()?)
    }

    /// Writes what is still collected (the table) and flushes.
    pub fn finish(mut self) -> Result<W, PrintError> {
        if self.format == Format::Table {
            let header = [
                "TIMESTAMP",
                "SOURCE",
                "DESTINATION",
                "TYPE",
                "VERDICT",
                "SUMMARY",
            ]
            .map(String::from);
            let mut widths = [0usize; 6];
            for row in std::iter::once(&header).chain(&self.rows) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            for row in std::iter::once(&header).chain(&self.rows) {
                let line: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(cell, w)| format!("{cell:<w$}"))
                    .collect();
                writeln!(self.out, "{}", line.join("   ").trim_end())?;
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

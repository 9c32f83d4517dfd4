//! `membrane policy trace`: what the policy decides for a packet between two pods (or a
//! pod and an address), and the rule or rules that decided it, computed by the agent
//! from the entries it programs.

use crate::error::CliError;
use membrane_api::Client;
use membrane_api::policy::{POLICY_TRACE, TraceDecision, TraceReport, TraceRequest};
use std::io::Write;

/// Explain network policy decisions.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Trace a packet: the sender's egress and the receiver's ingress decision.
    #[command(
        after_help = "Examples:\n  membrane policy trace --from shop/client --to shop/web --port 80/TCP\n  membrane policy trace --from shop/web --to 192.0.2.10 --port 443\n  membrane policy trace --from shop/a --to shop/b --port 8/ICMP -o json"
    )]
    Trace(TraceArgs),
}

/// What to trace.
#[derive(Debug, clap::Args)]
struct TraceArgs {
    /// The sender: NAMESPACE/POD or an address.
    #[arg(long, value_name = "NS/POD|IP")]
    from: String,
    /// The receiver: NAMESPACE/POD or an address.
    #[arg(long, value_name = "NS/POD|IP")]
    to: String,
    /// Destination port and protocol (TCP when omitted), or ICMP type: 80/TCP, 53/UDP,
    /// 8/ICMP, 128/ICMPv6.
    #[arg(long, value_name = "PORT[/PROTO]", value_parser = parse_port)]
    port: (u16, String),
    /// Output: text or json.
    #[arg(short, long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
}

/// `80/TCP` → (80, "TCP"); a bare number is TCP.
fn parse_port(text: &str) -> Result<(u16, String), String> {
    let (port, protocol) = text.split_once('/').unwrap_or((text, "TCP"));
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{port:?} is not a port number (0-65535)"))?;
    let protocol = match protocol.to_ascii_uppercase().as_str() {
        "TCP" => "TCP",
        "UDP" => "UDP",
        "SCTP" => "SCTP",
        "ICMP" => "ICMP",
        "ICMPV6" => "ICMPv6",
        _ => {
            return Err(format!(
                "{protocol:?} is not TCP, UDP, SCTP, ICMP or ICMPv6"
            ));
        }
    };
    Ok((port, protocol.to_string()))
}

/// Runs the subcommand.
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Trace(args) => {
            let request = TraceRequest {
                from: args.from,
                to: args.to,
                port: args.port.0,
                protocol: args.port.1,
            };
            let report: TraceReport = client.post(POLICY_TRACE, &request).await?;
            let mut out = std::io::stdout().lock();
            if args.output == "json" {
                serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                write_trace(&mut out, &request, &report)?;
            }
            Ok(())
        }
    }
}

/// The verdict first, then each side's decision and its rules.
fn write_trace(
    out: &mut impl Write,
    request: &TraceRequest,
    report: &TraceReport,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} -> {} {}/{}: {}",
        request.from,
        request.to,
        request.port,
        request.protocol,
        report.verdict.to_uppercase()
    )?;
    for (side, peer) in [("from", &report.from), ("to", &report.to)] {
        let place = if peer.local {
            "on this node"
        } else {
            "not on this node"
        };
        writeln!(
            out,
            "  {side:<4} {} (identity {}, {place})",
            peer.name, peer.identity
        )?;
    }
    let sides = [
        ("egress", &report.from.name, &report.egress),
        ("ingress", &report.to.name, &report.ingress),
    ];
    for (direction, name, decision) in sides {
        match decision {
            None => writeln!(out, "  {direction} at {name}: no policy (not a pod)")?,
            Some(decision) => write_decision(out, direction, name, decision)?,
        }
    }
    Ok(())
}

fn write_decision(
    out: &mut impl Write,
    direction: &str,
    name: &str,
    decision: &TraceDecision,
) -> std::io::Result<()> {
    let how = match (decision.verdict.as_str(), decision.rules.is_empty()) {
        ("not-enforced", _) => "not enforced: no policy selects it for this direction".to_string(),
        ("allowed", _) => format!("allowed ({} match)", decision.matched),
        (verdict, true) => format!("{verdict}: no rule allows it (default deny)"),
        (verdict, false) => format!("{verdict} by a deny rule"),
    };
    writeln!(out, "  {direction} at {name}: {how}")?;
    for rule in &decision.rules {
        writeln!(out, "    rule {}: {}", rule.id, rule.rule)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_api::policy::{TracePeer, TraceRule};

    #[test]
    fn ports_parse_with_and_without_protocol() {
        assert_eq!(parse_port("80").unwrap(), (80, "TCP".to_string()));
        assert_eq!(parse_port("53/udp").unwrap(), (53, "UDP".to_string()));
        assert_eq!(
            parse_port("128/icmpv6").unwrap(),
            (128, "ICMPv6".to_string())
        );
        assert!(parse_port("70000/TCP").unwrap_err().contains("not a port"));
        assert!(parse_port("80/QUIC").unwrap_err().contains("QUIC"));
    }

    #[test]
    fn a_trace_prints_the_verdict_and_the_deciding_rules() {
        let request = TraceRequest {
            from: "shop/client".into(),
            to: "shop/web".into(),
            port: 80,
            protocol: "TCP".into(),
        };
        let report = TraceReport {
            verdict: "denied".into(),
            from: TracePeer {
                name: "shop/client".into(),
                identity: 301,
                local: true,
            },
            to: TracePeer {
                name: "shop/web".into(),
                identity: 300,
                local: false,
            },
            egress: Some(TraceDecision {
                verdict: "not-enforced".into(),
                matched: "none".into(),
                rules: vec![],
            }),
            ingress: Some(TraceDecision {
                verdict: "denied".into(),
                matched: "none".into(),
                rules: vec![TraceRule {
                    id: 7,
                    rule: "CiliumNetworkPolicy shop/p spec.ingressDeny[0]".into(),
                }],
            }),
        };
        let mut out = Vec::new();
        write_trace(&mut out, &request, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("shop/client -> shop/web 80/TCP: DENIED"),
            "{text}"
        );
        assert!(
            text.contains("ingress at shop/web: denied by a deny rule"),
            "{text}"
        );
        assert!(
            text.contains("rule 7: CiliumNetworkPolicy shop/p spec.ingressDeny[0]"),
            "{text}"
        );
        assert!(
            text.contains("egress at shop/client: not enforced"),
            "{text}"
        );
    }
}

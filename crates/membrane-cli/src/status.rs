//! `membrane status`: the agent's health and a summary of what it manages.

use crate::error::CliError;
use crate::output::{self, Format};
use membrane_api::{AgentStatus, Client, PoolStatus, paths};
use std::io::Write;

/// Show the agent's health and what it manages, one line per component.
///
/// Exits non-zero when the agent reports it is not healthy.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  membrane status\n  membrane status -o json")]
pub struct Args {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// Asks the agent for its status and prints it.
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    let status: AgentStatus = client.get(paths::STATUS).await?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Table => write_summary(&mut out, &status)?,
        Format::Json => output::json(&mut out, &status)?,
        Format::Yaml => output::yaml(&mut out, &status)?,
    }
    if status.healthy {
        Ok(())
    } else {
        Err(CliError::Unhealthy { node: status.node })
    }
}

fn write_summary(out: &mut impl Write, status: &AgentStatus) -> std::io::Result<()> {
    let health = if status.healthy {
        "Ok"
    } else {
        "Not healthy (datapath not loaded or not serving)"
    };
    writeln!(out, "{:<12}{}", "Node:", status.node)?;
    writeln!(out, "{:<12}{health}", "Agent:")?;
    writeln!(out, "{:<12}{}", "Endpoints:", status.endpoints)?;
    writeln!(
        out,
        "{:<12}{}",
        "IPAM IPv4:",
        pool(status.ipv4_pool.as_ref())
    )?;
    writeln!(
        out,
        "{:<12}{}",
        "IPAM IPv6:",
        pool(status.ipv6_pool.as_ref())
    )?;
    Ok(())
}

fn pool(pool: Option<&PoolStatus>) -> String {
    match pool {
        Some(p) => format!("{}, {} used, {} free", p.cidr, p.used, p.free),
        None => "not configured".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_has_a_line_per_component() {
        let status = AgentStatus {
            node: "node-1".into(),
            healthy: true,
            endpoints: 3,
            ipv4_pool: Some(PoolStatus {
                cidr: "10.200.1.0/24".into(),
                used: 3,
                free: 250,
            }),
            ipv6_pool: None,
        };
        let mut out = Vec::new();
        write_summary(&mut out, &status).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Node:       node-1\nAgent:      Ok\nEndpoints:  3\nIPAM IPv4:  10.200.1.0/24, 3 used, 250 free\nIPAM IPv6:  not configured\n"
        );
    }
}

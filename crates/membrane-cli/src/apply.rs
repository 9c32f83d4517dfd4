//! `membrane apply`: create or update objects from manifests, all or nothing.

use crate::error::CliError;
use crate::manifests::Sources;
use membrane_api::{ApplyReport, ApplyRequest, Client, paths};
use membrane_model::Object;
use std::io::Write;

/// Create or update the objects of manifests.
///
/// Every manifest is parsed and validated here first (unknown fields, bad selectors,
/// CIDRs, ports...); if any is wrong, nothing is sent. Then all objects go to the agent
/// in one request, which stores all of them or none.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane apply -f web.yaml\n  membrane apply -f policies/ -f services.json\n  membrane apply -R -f examples/\n  cat policy.yaml | membrane apply -f -"
)]
pub struct Args {
    #[command(flatten)]
    sources: Sources,
}

/// Parses, validates, applies and prints one line per object.
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    let objects = args.sources.load()?;
    let request = ApplyRequest {
        objects: objects.iter().map(Object::to_value).collect(),
    };
    let report: ApplyReport = client.post(paths::OBJECTS_APPLY, &request).await?;
    let mut out = std::io::stdout().lock();
    write_report(&mut out, &objects, &report)?;
    Ok(())
}

/// kubectl's lines: `service/web created`, `ciliumnetworkpolicy.cilium.io/allow
/// configured`, in the order the objects were given.
fn write_report(
    out: &mut impl Write,
    objects: &[Object],
    report: &ApplyReport,
) -> Result<(), CliError> {
    for object in objects {
        let reference = object.object_ref();
        let display = reference.to_string();
        let verb = if report.created.contains(&display) {
            "created"
        } else if report.configured.contains(&display) {
            "configured"
        } else if report.unchanged.contains(&display) {
            "unchanged"
        } else {
            "sent (the agent did not say what it did)"
        };
        writeln!(
            out,
            "{}/{} {verb}",
            reference.kind.resource(),
            reference.name
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_gets_the_verb_the_agent_reported() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: allow}\nspec: {endpointSelector: {}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
        let objects = membrane_model::parse_manifests(text, "t").unwrap();
        let report = ApplyReport {
            created: vec!["Service default/web".into()],
            configured: vec!["CiliumNetworkPolicy default/allow".into()],
            unchanged: vec!["Node n1".into()],
        };
        let mut out = Vec::new();
        write_report(&mut out, &objects, &report).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "service/web created\nciliumnetworkpolicy.cilium.io/allow configured\nnode/n1 unchanged\n"
        );
    }
}

//! `membrane delete`: delete the objects named in manifests.

use crate::error::CliError;
use crate::manifests::Sources;
use membrane_api::{Client, DeleteReport, DeleteRequest, ObjectRefWire, paths};
use membrane_model::{Object, ObjectRef};
use std::io::Write;

/// Delete the objects named in manifests.
///
/// The manifests are parsed and validated like `apply` does; the objects they name
/// (kind, namespace, name) are deleted in one request.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane delete -f web.yaml\n  membrane delete -f policies/\n  membrane delete --ignore-not-found -f old.yaml"
)]
pub struct Args {
    #[command(flatten)]
    sources: Sources,

    /// Succeed even if some objects did not exist.
    #[arg(long)]
    ignore_not_found: bool,
}

/// Deletes, prints one line per deleted object, and fails if some did not exist
/// (unless `--ignore-not-found`).
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    let refs: Vec<ObjectRef> = args
        .sources
        .load()?
        .iter()
        .map(Object::object_ref)
        .collect();
    let request = DeleteRequest {
        refs: refs
            .iter()
            .map(|r| ObjectRefWire {
                kind: r.kind.to_string(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            })
            .collect(),
    };
    let report: DeleteReport = client.post(paths::OBJECTS_DELETE, &request).await?;
    let missing = write_report(&mut std::io::stdout().lock(), &refs, &report)?;
    if missing.is_empty() || args.ignore_not_found {
        Ok(())
    } else {
        Err(CliError::NotFound { objects: missing })
    }
}

/// Prints `service "web" deleted` lines; returns the objects that were not found.
fn write_report(
    out: &mut impl Write,
    refs: &[ObjectRef],
    report: &DeleteReport,
) -> Result<Vec<String>, CliError> {
    let mut missing = Vec::new();
    for reference in refs {
        let display = reference.to_string();
        let resource = reference.kind.resource();
        if report.deleted.contains(&display) {
            writeln!(out, "{resource} \"{}\" deleted", reference.name)?;
        } else {
            missing.push(format!("{resource}/{}", reference.name));
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_model::Kind;

    #[test]
    fn deleted_objects_are_printed_and_missing_ones_returned() {
        let refs = vec![
            ObjectRef {
                kind: Kind::Service,
                namespace: Some("default".into()),
                name: "web".into(),
            },
            ObjectRef {
                kind: Kind::NetworkPolicy,
                namespace: Some("default".into()),
                name: "gone".into(),
            },
        ];
        let report = DeleteReport {
            deleted: vec!["Service default/web".into()],
            not_found: vec!["NetworkPolicy default/gone".into()],
        };
        let mut out = Vec::new();
        let missing = write_report(&mut out, &refs, &report).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "service \"web\" deleted\n");
        assert_eq!(missing, ["networkpolicy.networking.k8s.io/gone"]);
    }
}

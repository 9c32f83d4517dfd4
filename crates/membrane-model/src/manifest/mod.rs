//! Strict parsing of manifest text into validated objects, all or nothing.

mod decode;
mod documents;
mod error;

pub use error::{ManifestError, Position, Problem};

use crate::object::Object;
use crate::validate::{normalize, validate};
use documents::{Document, expand_list, split};

/// Parses and validates every object in `text`: multi-document YAML (`---`), or JSON
/// (one object, an array of objects, or a `v1` `List` with `items`; YAML `List`s are
/// expanded too). `source_name` names the text in messages (a path, or `-`).
///
/// Strict: a document of an unknown `apiVersion`/`kind`, an unknown field anywhere, a
/// value of the wrong type, or a semantic error (name, labels, selectors, CIDRs, ports,
/// protocols, per-kind rules) fails the call, and the error lists every problem of
/// every document, each naming its document, its object and the JSON path of the field.
/// On success, every namespaced object has a namespace (`default` when absent).
pub fn parse_manifests(text: &str, source_name: &str) -> Result<Vec<Object>, ManifestError> {
    parse_documents(split(text, source_name)?)
}

/// Like [`parse_manifests`], for manifests already read as JSON values (the objects of
/// an API request, say); the n-th value is document n of `source_name`.
pub fn parse_manifest_values(
    values: Vec<serde_json::Value>,
    source_name: &str,
) -> Result<Vec<Object>, ManifestError> {
    let documents = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| Document {
            position: Position {
                source_name: source_name.to_string(),
                document: i + 1,
                item: None,
            },
            value,
        })
        .collect();
    parse_documents(documents)
}

fn parse_documents(documents: Vec<Document>) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for document in documents {
        let expanded = expand_list(document);
        problems.extend(
            expanded
                .problems
                .into_iter()
                .map(|(position, field, violation)| Problem {
                    position,
                    object: None,
                    field,
                    violation,
                }),
        );
        for Document { position, value } in expanded.documents {
            let header = match decode::header(&value) {
                Ok(header) => header,
                Err((field, violation)) => {
                    problems.push(Problem {
                        position,
                        object: None,
                        field,
                        violation,
                    });
                    continue;
                }
            };
            let (object, mut found) = decode::decode(header.kind, value);
            if let Some(mut object) = object {
                normalize(&mut object);
                found.extend(validate(&object));
                objects.push(object);
            }
            problems.extend(found.into_iter().map(|(field, violation)| Problem {
                position: position.clone(),
                object: Some(header.description.clone()),
                field,
                violation,
            }));
        }
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(ManifestError::Invalid { problems })
    }
}

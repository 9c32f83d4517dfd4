//! Splits manifest text into documents: multi-document YAML, or JSON (one object or an
//! array of objects); `v1` `List` documents are expanded into their items.

use super::error::{ManifestError, Position};
use crate::validate::Violation;
use serde::Deserialize;
use serde_json::Value;

/// One document, not yet interpreted.
pub struct Document {
    /// Where it came from.
    pub position: Position,
    /// Its content.
    pub value: Value,
}

/// Reads every document of `text`. Empty YAML documents (only comments, or nothing
/// between two `---`) are skipped but still counted, so numbers match the file.
pub fn split(text: &str, source_name: &str) -> Result<Vec<Document>, ManifestError> {
    let at = |document| Position {
        source_name: source_name.to_string(),
        document,
        item: None,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|source| ManifestError::Json {
            source_name: source_name.to_string(),
            source,
        })?;
        return Ok(match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, value)| Document {
                    position: at(i + 1),
                    value,
                })
                .collect(),
            value => vec![Document {
                position: at(1),
                value,
            }],
        });
    }
    let mut documents = Vec::new();
    for (i, yaml) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(yaml).map_err(|source| ManifestError::Yaml {
            source_name: source_name.to_string(),
            document: i + 1,
            source,
        })?;
        if !value.is_null() {
            documents.push(Document {
                position: at(i + 1),
                value,
            });
        }
    }
    Ok(documents)
}

/// What expanding a document gave: the documents to decode, and problems of the
/// `List` wrapper itself.
pub struct Expanded {
    /// The document itself, or the items of a `List`.
    pub documents: Vec<Document>,
    /// Problems of the `List` wrapper (unknown fields, `items` not a list): its position,
    /// the field and what is wrong.
    pub problems: Vec<(Position, String, Violation)>,
}

/// If `document` is a `v1` `List`, its items become documents of their own.
pub fn expand_list(document: Document) -> Expanded {
    let is_list = document.value.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && document.value.get("kind").and_then(Value::as_str) == Some("List");
    let (position, map) = match document.value {
        Value::Object(map) if is_list => (document.position, map),
        value => {
            return Expanded {
                documents: vec![Document {
                    position: document.position,
                    value,
                }],
                problems: Vec::new(),
            };
        }
    };
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in map {
        match (key.as_str(), value) {
            ("apiVersion" | "kind" | "metadata", _) => {}
            ("items", Value::Array(items)) => {
                documents.extend(items.into_iter().enumerate().map(|(i, value)| Document {
                    position: Position {
                        item: Some(i),
                        ..position.clone()
                    },
                    value,
                }));
            }
            ("items", _) => problems.push((
                position.clone(),
                key,
                Violation::Malformed {
                    message: "expected a list of objects".to_string(),
                },
            )),
            _ => problems.push((position.clone(), key, Violation::UnknownField)),
        }
    }
    Expanded {
        documents,
        problems,
    }
}

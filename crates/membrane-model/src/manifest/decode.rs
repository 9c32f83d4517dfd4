//! Strict decoding of one document into an [`Object`]: its kind from `apiVersion` and
//! `kind`, then the kind's type, with every unknown field reported by its path.
//!
//! k8s-openapi's types skip unknown fields silently; `serde_ignored` sees each skipped
//! field, and `serde_path_to_error` gives the path of a value of the wrong type. Our own
//! Cilium types go through the same decoder, so every kind reports alike.

use crate::cilium::UNSUPPORTED_FIELDS;
use crate::kind::Kind;
use crate::object::{Object, ObjectRef};
use crate::validate::{Violation, push_key};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A document's kind and the name it gives itself, read before decoding so that every
/// problem can name the object.
pub struct Header {
    /// The kind.
    pub kind: Kind,
    /// `Kind namespace/name` (namespace defaulted), or `Kind (no name)`.
    pub description: String,
}

/// Reads `apiVersion` and `kind`, which must name a kind Membrane knows.
pub fn header(value: &Value) -> Result<Header, (String, Violation)> {
    let Value::Object(map) = value else {
        return Err((
            String::new(),
            Violation::NotAnObject {
                found: type_name(value),
            },
        ));
    };
    let text = |field: &str| match map.get(field) {
        None => Err((field.to_string(), Violation::Required)),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err((
            field.to_string(),
            Violation::Malformed {
                message: format!("expected a string, found {}", type_name(other)),
            },
        )),
    };
    let api_version = text("apiVersion")?;
    let kind_name = text("kind")?;
    let kind = Kind::from_type(api_version, kind_name).ok_or_else(|| {
        (
            "kind".to_string(),
            Violation::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind_name.to_string(),
            },
        )
    })?;
    let meta = map.get("metadata");
    let field = |name| meta.and_then(|m| m.get(name)).and_then(Value::as_str);
    let description = match field("name") {
        Some(name) => ObjectRef {
            kind,
            namespace: kind.is_namespaced().then(|| {
                field("namespace")
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or("default")
                    .to_string()
            }),
            name: name.to_string(),
        }
        .to_string(),
        None => format!("{kind} (no name)"),
    };
    Ok(Header { kind, description })
}

/// Decodes a document of a known kind: the object, unless a value has the wrong type,
/// and every problem found (unknown fields, then the first value of the wrong type).
pub fn decode(kind: Kind, value: Value) -> (Option<Object>, Vec<(String, Violation)>) {
    let cilium = matches!(
        kind,
        Kind::CiliumNetworkPolicy | Kind::CiliumClusterwideNetworkPolicy
    );
    let mut problems = Vec::new();
    let object = match kind {
        Kind::Node => strict(value, cilium, &mut problems).map(Object::Node),
        Kind::Namespace => strict(value, cilium, &mut problems).map(Object::Namespace),
        Kind::Pod => strict(value, cilium, &mut problems).map(Object::Pod),
        Kind::Service => strict(value, cilium, &mut problems).map(Object::Service),
        Kind::EndpointSlice => strict(value, cilium, &mut problems).map(Object::EndpointSlice),
        Kind::NetworkPolicy => strict(value, cilium, &mut problems).map(Object::NetworkPolicy),
        Kind::CiliumNetworkPolicy => {
            strict(value, cilium, &mut problems).map(Object::CiliumNetworkPolicy)
        }
        Kind::CiliumClusterwideNetworkPolicy => {
            strict(value, cilium, &mut problems).map(Object::CiliumClusterwideNetworkPolicy)
        }
    };
    (object, problems)
}

fn strict<T: DeserializeOwned>(
    value: Value,
    cilium: bool,
    problems: &mut Vec<(String, Violation)>,
) -> Option<Box<T>> {
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(deserializer, |path| {
            problems.push(ignored_field(&path, cilium));
        })
    };
    match result {
        Ok(object) => Some(Box::new(object)),
        Err(err) => {
            problems.push((
                render_tracked(&track.path()),
                Violation::Malformed {
                    message: err.to_string(),
                },
            ));
            None
        }
    }
}

/// The path of a skipped field, and whether it is a typo or a Cilium field Membrane
/// does not support yet.
fn ignored_field(path: &serde_ignored::Path<'_>, cilium: bool) -> (String, Violation) {
    let mut rendered = String::new();
    render_ignored(path, &mut rendered);
    let unsupported = cilium
        && matches!(path, serde_ignored::Path::Map { key, .. } if UNSUPPORTED_FIELDS.contains(&key.as_str()));
    let violation = if unsupported {
        Violation::UnsupportedField
    } else {
        Violation::UnknownField
    };
    (rendered, violation)
}

fn render_ignored(path: &serde_ignored::Path<'_>, out: &mut String) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            render_ignored(parent, out);
            out.push_str(&format!("[{index}]"));
        }
        Path::Map { parent, key } => {
            render_ignored(parent, out);
            push_key(out, key);
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => render_ignored(parent, out),
    }
}

fn render_tracked(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

//! Objects in the kvstore: stored as the JSON of [`membrane_model::Object`] under
//! `/membrane/v1/objects/<ObjectRef::key()>`. Apply and delete validate everything first
//! and then write every object in one transaction, so a set is applied whole or not at all.

use super::reflector::{DecodeError, Reflector};
use membrane_api::{ApplyReport, DeleteReport, ListRequest, ObjectRefWire};
use membrane_model::{Kind, ManifestError, Object, ObjectRef, UnknownKind};
use membrane_state::{Op, Precondition, Store, StoreError, keys};

/// Source name of the objects of an API request, in validation messages.
const REQUEST_SOURCE: &str = "request";

/// How often an apply or delete is tried again when another writer changed one of its
/// objects between the read and the transaction.
const ATTEMPTS: usize = 3;

/// Errors of object operations.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// An object of the request is invalid: nothing was written.
    #[error("nothing was applied")]
    Invalid {
        /// Every problem of every object.
        #[source]
        source: ManifestError,
    },
    /// A kind of the request is unknown.
    #[error("unknown kind in the request")]
    UnknownKind {
        /// The parse error.
        #[source]
        source: UnknownKind,
    },
    /// The request names one object twice.
    #[error("the request names {object} twice")]
    Duplicate {
        /// The object.
        object: String,
    },
    /// The kvstore refused or failed.
    #[error("kvstore ({store}): {operation} failed")]
    Store {
        /// The store, described.
        store: String,
        /// What was being done.
        operation: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// The store key of an object.
pub fn key(object_ref: &ObjectRef) -> String {
    keys::object(
        object_ref.kind.as_str(),
        object_ref.namespace.as_deref().unwrap_or(""),
        &object_ref.name,
    )
}

/// A key that does not name an object.
#[derive(Debug, thiserror::Error)]
#[error("{key} is not an object key")]
pub struct NotAnObjectKey {
    key: String,
}

/// Decodes a stored object: its kind comes from the key.
pub fn decode(key: &str, value: &[u8]) -> Result<Object, DecodeError> {
    let (kind, _, _) = keys::parse_object(key).ok_or_else(|| NotAnObjectKey {
        key: key.to_string(),
    })?;
    let kind: Kind = kind.parse()?;
    Ok(Object::from_json(kind, value)?)
}

fn store_error(
    store: &dyn Store,
    operation: &'static str,
) -> impl FnOnce(StoreError) -> ObjectsError {
    let store = store.describe();
    move |source| ObjectsError::Store {
        store,
        operation,
        source,
    }
}

/// Validates every object (as `membrane_model::parse_manifest_values` does for files),
/// then stores them all in one transaction: each is created, configured or unchanged.
pub async fn apply(
    store: &dyn Store,
    manifests: Vec<serde_json::Value>,
) -> Result<ApplyReport, ObjectsError> {
    let objects = membrane_model::parse_manifest_values(manifests, REQUEST_SOURCE)
        .map_err(|source| ObjectsError::Invalid { source })?;
    let mut seen = std::collections::HashSet::new();
    for object in &objects {
        let object_ref = object.object_ref();
        if !seen.insert(object_ref.clone()) {
            return Err(ObjectsError::Duplicate {
                object: object_ref.to_string(),
            });
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut report = ApplyReport::default();
        let mut ops = Vec::new();
        for object in &objects {
            let object_ref = object.object_ref();
            let key = key(&object_ref);
            let bytes = object.to_json();
            let current = store
                .get(&key)
                .await
                .map_err(store_error(store, "reading an object"))?;
            match current {
                None => {
                    report.created.push(object_ref.to_string());
                    ops.push(Op::put(key, bytes, Precondition::Absent));
                }
                Some(item) if item.value == bytes => report.unchanged.push(object_ref.to_string()),
                Some(item) => {
                    report.configured.push(object_ref.to_string());
                    ops.push(Op::put(
                        key,
                        bytes,
                        Precondition::Revision(item.mod_revision),
                    ));
                }
            }
        }
        match store.transaction(ops).await {
            Ok(_) => return Ok(report),
            Err(StoreError::Conflict { .. }) if attempt < ATTEMPTS => continue,
            Err(error) => return Err(store_error(store, "applying objects")(error)),
        }
    }
}

/// Deletes every named object that exists, in one transaction.
pub async fn delete(
    store: &dyn Store,
    refs: Vec<ObjectRefWire>,
) -> Result<DeleteReport, ObjectsError> {
    let refs: Vec<ObjectRef> = refs
        .into_iter()
        .map(|wire| {
            let kind: Kind = wire.kind.parse()?;
            Ok(ObjectRef {
                kind,
                namespace: wire.namespace.filter(|_| kind.is_namespaced()),
                name: wire.name,
            })
        })
        .collect::<Result<_, UnknownKind>>()
        .map_err(|source| ObjectsError::UnknownKind { source })?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut report = DeleteReport::default();
        let mut ops = Vec::new();
        for object_ref in &refs {
            let key = key(object_ref);
            if ops.iter().any(|op: &Op| op.key() == key) {
                continue;
            }
            match store
                .get(&key)
                .await
                .map_err(store_error(store, "reading an object"))?
            {
                Some(item) => {
                    report.deleted.push(object_ref.to_string());
                    ops.push(Op::delete(key, Precondition::Revision(item.mod_revision)));
                }
                None => report.not_found.push(object_ref.to_string()),
            }
        }
        match store.transaction(ops).await {
            Ok(_) => return Ok(report),
            Err(StoreError::Conflict { .. }) if attempt < ATTEMPTS => continue,
            Err(error) => return Err(store_error(store, "deleting objects")(error)),
        }
    }
}

/// The stored objects of a kind and namespace (each optional), as complete manifests in
/// kind, namespace and name order. While the store is unreachable, the cache answers.
pub async fn list(
    store: &dyn Store,
    cache: &Reflector<Object>,
    request: &ListRequest,
) -> Result<Vec<serde_json::Value>, ObjectsError> {
    let kind: Option<Kind> = request
        .kind
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|source| ObjectsError::UnknownKind { source })?;
    let prefix = match (kind, request.namespace.as_deref()) {
        (Some(kind), Some(namespace)) if kind.is_namespaced() => {
            keys::objects_in_namespace(kind.as_str(), namespace)
        }
        (Some(kind), _) => keys::objects_of_kind(kind.as_str()),
        (None, _) => keys::OBJECTS.to_string(),
    };
    let objects: Vec<Object> = match store.list(&prefix).await {
        Ok(listing) => listing
            .items
            .iter()
            .filter_map(|item| decode(&item.key, &item.value).ok())
            .collect(),
        Err(error @ StoreError::Unavailable { .. }) => {
            tracing::warn!(%error, "listing objects from the cache");
            cache
                .under(&prefix)
                .into_iter()
                .map(|(_, object)| object)
                .collect()
        }
        Err(error) => return Err(store_error(store, "listing objects")(error)),
    };
    Ok(objects
        .into_iter()
        .filter(
            |object| match (&request.namespace, object.object_ref().namespace) {
                (None, _) => true,
                (Some(wanted), Some(namespace)) => *wanted == namespace,
                (Some(_), None) => false,
            },
        )
        .map(|object| object.to_value())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_the_store_layout_over_the_model_s_key() {
        for object_ref in [
            ObjectRef {
                kind: Kind::Service,
                namespace: Some("shop".into()),
                name: "web".into(),
            },
            ObjectRef {
                kind: Kind::Node,
                namespace: None,
                name: "node1".into(),
            },
        ] {
            let key = key(&object_ref);
            assert_eq!(key, format!("{}{}", keys::OBJECTS, object_ref.key()));
            let (kind, _, _) = keys::parse_object(&key).unwrap();
            assert_eq!(kind, object_ref.kind.as_str());
        }
    }
}

//! Objects in the kvstore: stored as the JSON of [`membrane_model::Object`] under
//! `/membrane/v1/objects/<ObjectRef::key()>`.

use super::reflector::DecodeError;
use membrane_model::{Object, ObjectRef};
use membrane_state::keys;

/// The store key of an object.
pub fn key(object_ref: &ObjectRef) -> String {
    format!("{}{}", keys::OBJECTS, object_ref.key())
}

/// Decodes a stored object: its kind comes from the key.
pub fn decode(key: &str, value: &[u8]) -> Result<Object, DecodeError> {
    let suffix = keys::suffix(key, keys::OBJECTS).unwrap_or(key);
    let object_ref = ObjectRef::from_key(suffix)?;
    Ok(Object::from_json(object_ref.kind, value)?)
}

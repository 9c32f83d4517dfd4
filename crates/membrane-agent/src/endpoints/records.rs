//! The endpoint tables: `endpoints` (attachment → [`Endpoint`] as JSON) and
//! `endpoint_ids` (id → attachment), which keeps ids unique on the node.

use super::EndpointError;
use crate::store::{AttachmentKey, Store, StoreError, attachment_key, take_free_key};
use membrane_api::{AttachmentRef, Endpoint, EndpointRegistration};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

const ENDPOINTS: TableDefinition<AttachmentKey, &str> = TableDefinition::new("endpoints");
const ENDPOINT_IDS: TableDefinition<u128, AttachmentKey> = TableDefinition::new("endpoint_ids");
const ID_CURSOR: &str = "endpoint_id";

/// Creates the tables if they are missing.
pub fn create_tables(store: &Store) -> Result<(), StoreError> {
    store.write("creating the endpoint tables", |txn| {
        txn.open_table(ENDPOINTS)
            .map_err(StoreError::db("opening the endpoints"))?;
        txn.open_table(ENDPOINT_IDS)
            .map_err(StoreError::db("opening the endpoint ids"))?;
        Ok(())
    })
}

/// Records a new endpoint for `registration` with the next free id (ids run from 1;
/// 0 means "no endpoint" to the datapath).
pub fn insert(
    txn: &WriteTransaction,
    registration: EndpointRegistration,
) -> Result<Endpoint, EndpointError> {
    let mut ids = txn
        .open_table(ENDPOINT_IDS)
        .map_err(StoreError::db("opening the endpoint ids"))?;
    let id = take_free_key(txn, &ids, ID_CURSOR, 1..=u16::MAX as u128)?
        .ok_or(EndpointError::IdsExhausted)?;
    let endpoint = Endpoint {
        id: id as u16,
        registration,
    };
    let key = attachment_key(&endpoint.registration.attachment);
    ids.insert(id, key)
        .map_err(StoreError::db("recording an endpoint id"))?;
    let json = serde_json::to_string(&endpoint).expect("endpoints serialize");
    txn.open_table(ENDPOINTS)
        .map_err(StoreError::db("opening the endpoints"))?
        .insert(key, json.as_str())
        .map_err(StoreError::db("recording an endpoint"))?;
    Ok(endpoint)
}

/// Removes the endpoint of `attachment`, if any; returns it.
pub fn remove(
    txn: &WriteTransaction,
    attachment: &AttachmentRef,
) -> Result<Option<Endpoint>, StoreError> {
    let mut endpoints = txn
        .open_table(ENDPOINTS)
        .map_err(StoreError::db("opening the endpoints"))?;
    let Some(endpoint) = get_in(&endpoints, attachment)? else {
        return Ok(None);
    };
    endpoints
        .remove(attachment_key(attachment))
        .map_err(StoreError::db("removing an endpoint"))?;
    txn.open_table(ENDPOINT_IDS)
        .map_err(StoreError::db("opening the endpoint ids"))?
        .remove(endpoint.id as u128)
        .map_err(StoreError::db("freeing an endpoint id"))?;
    Ok(Some(endpoint))
}

/// The endpoint of `attachment`, if any.
pub fn get(store: &Store, attachment: &AttachmentRef) -> Result<Option<Endpoint>, StoreError> {
    store.read("reading an endpoint", |txn| {
        let table = txn
            .open_table(ENDPOINTS)
            .map_err(StoreError::db("opening the endpoints"))?;
        get_in(&table, attachment)
    })
}

/// Every endpoint, ordered by attachment.
pub fn list(store: &Store) -> Result<Vec<Endpoint>, StoreError> {
    store.read("listing endpoints", |txn| {
        let table = txn
            .open_table(ENDPOINTS)
            .map_err(StoreError::db("opening the endpoints"))?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(StoreError::db("listing endpoints"))? {
            let (key, value) = entry.map_err(StoreError::db("listing endpoints"))?;
            let (container_id, ifname) = key.value();
            all.push(decode(&format!("{container_id}/{ifname}"), value.value())?);
        }
        Ok(all)
    })
}

fn get_in(
    table: &impl ReadableTable<AttachmentKey<'static>, &'static str>,
    attachment: &AttachmentRef,
) -> Result<Option<Endpoint>, StoreError> {
    let value = table
        .get(attachment_key(attachment))
        .map_err(StoreError::db("reading an endpoint"))?;
    let key = || format!("{}/{}", attachment.container_id, attachment.ifname);
    value.map(|v| decode(&key(), v.value())).transpose()
}

fn decode(key: &str, json: &str) -> Result<Endpoint, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        table: "endpoints",
        key: key.to_string(),
        source,
    })
}

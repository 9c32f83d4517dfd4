//! Stable numbers for the datapath: a backend id per backend (address, port, protocol)
//! and a reverse-NAT index per frontend (address, port, protocol), kept in the agent's
//! state database so that a restarted agent finds the pinned maps numbered as it left
//! them. A released number is handed out again only after the rest of its range had
//! its turn (the store's cursors).
//!
//! Both kinds of number are 32 bits wide in the datapath. Numbers are stored as `u128`
//! keys, so the 16-bit reverse-NAT indexes of earlier versions load unchanged.

use super::model::{BackendAddr, FrontendAddr};
use crate::store::{Store, StoreError, take_free_key};
use redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Backend id → the backend (JSON).
const BACKEND_IDS: TableDefinition<u128, &str> = TableDefinition::new("lb_backend_ids");
/// Reverse-NAT index → the frontend (JSON).
const REV_NAT_INDEXES: TableDefinition<u128, &str> = TableDefinition::new("lb_rev_nat_indexes");
const BACKEND_CURSOR: &str = "lb_backend_id";
const REV_NAT_CURSOR: &str = "lb_rev_nat_index";
/// Backend ids; 0 means "no backend" in a service slot.
const BACKEND_RANGE: RangeInclusive<u128> = 1..=u32::MAX as u128;
/// Reverse-NAT indexes; 0 means "not translated" in conntrack.
const REV_NAT_RANGE: RangeInclusive<u128> = 1..=u32::MAX as u128;

/// The numbers in use, mirrored in memory.
#[derive(Debug)]
pub struct Allocator {
    store: Store,
    backends: BTreeMap<BackendAddr, u32>,
    frontends: BTreeMap<FrontendAddr, u32>,
    /// The reverse-NAT indexes handed out ([`REV_NAT_RANGE`]; narrower in tests).
    rev_nat_range: RangeInclusive<u128>,
}

impl Allocator {
    /// Reads the numbers an earlier run handed out (creating the tables if needed).
    pub fn load(store: Store) -> Result<Allocator, StoreError> {
        store.write("creating the load-balancing tables", |txn| {
            txn.open_table(BACKEND_IDS)
                .map_err(StoreError::db("opening the backend ids"))?;
            txn.open_table(REV_NAT_INDEXES)
                .map_err(StoreError::db("opening the reverse-NAT indexes"))?;
            Ok::<_, StoreError>(())
        })?;
        let (backends, frontends) = store.read("reading the load-balancing numbers", |txn| {
            let backends = read_table(txn, BACKEND_IDS, "lb_backend_ids")?;
            let frontends = read_table(txn, REV_NAT_INDEXES, "lb_rev_nat_indexes")?;
            Ok::<_, StoreError>((backends, frontends))
        })?;
        Ok(Allocator {
            store,
            backends: backends.into_iter().map(|(id, b)| (b, id as u32)).collect(),
            frontends: frontends
                .into_iter()
                .map(|(index, f)| (f, index as u32))
                .collect(),
            rev_nat_range: REV_NAT_RANGE,
        })
    }

    /// Every backend with its id.
    pub fn backends(&self) -> &BTreeMap<BackendAddr, u32> {
        &self.backends
    }

    /// Every frontend with its reverse-NAT index.
    pub fn frontends(&self) -> &BTreeMap<FrontendAddr, u32> {
        &self.frontends
    }

    /// The id of `backend`, if it has one.
    pub fn backend_id(&self, backend: &BackendAddr) -> Option<u32> {
        self.backends.get(backend).copied()
    }

    /// The reverse-NAT index of `frontend`, if it has one.
    pub fn rev_nat_index(&self, frontend: &FrontendAddr) -> Option<u32> {
        self.frontends.get(frontend).copied()
    }

    /// Numbers every backend and frontend given that has none yet, in one transaction.
    /// When a range runs out, the rest stay without a number (the caller reports them).
    pub fn allocate<'a>(
        &mut self,
        backends: impl IntoIterator<Item = &'a BackendAddr>,
        frontends: impl IntoIterator<Item = &'a FrontendAddr>,
    ) -> Result<(), StoreError> {
        let backends: Vec<BackendAddr> = backends
            .into_iter()
            .filter(|b| !self.backends.contains_key(b))
            .copied()
            .collect();
        let frontends: Vec<FrontendAddr> = frontends
            .into_iter()
            .filter(|f| !self.frontends.contains_key(f))
            .copied()
            .collect();
        if backends.is_empty() && frontends.is_empty() {
            return Ok(());
        }
        let rev_nat_range = self.rev_nat_range.clone();
        let (new_backends, new_frontends) =
            self.store
                .write("numbering backends and frontends", |txn| {
                    let new_backends =
                        take_all(txn, BACKEND_IDS, BACKEND_CURSOR, BACKEND_RANGE, &backends)?;
                    let new_frontends = take_all(
                        txn,
                        REV_NAT_INDEXES,
                        REV_NAT_CURSOR,
                        rev_nat_range,
                        &frontends,
                    )?;
                    Ok::<_, StoreError>((new_backends, new_frontends))
                })?;
        self.backends
            .extend(new_backends.into_iter().map(|(b, id)| (b, id as u32)));
        self.frontends.extend(
            new_frontends
                .into_iter()
                .map(|(f, index)| (f, index as u32)),
        );
        Ok(())
    }

    /// Gives back the numbers of `backends` and `frontends`, in one transaction.
    pub fn release<'a>(
        &mut self,
        backends: impl IntoIterator<Item = &'a BackendAddr>,
        frontends: impl IntoIterator<Item = &'a FrontendAddr>,
    ) -> Result<(), StoreError> {
        let backends: Vec<(BackendAddr, u32)> = backends
            .into_iter()
            .filter_map(|b| Some((*b, self.backend_id(b)?)))
            .collect();
        let frontends: Vec<(FrontendAddr, u32)> = frontends
            .into_iter()
            .filter_map(|f| Some((*f, self.rev_nat_index(f)?)))
            .collect();
        if backends.is_empty() && frontends.is_empty() {
            return Ok(());
        }
        self.store
            .write("releasing backend ids and frontend indexes", |txn| {
                let mut table = txn
                    .open_table(BACKEND_IDS)
                    .map_err(StoreError::db("opening the backend ids"))?;
                for (_, id) in &backends {
                    table
                        .remove(u128::from(*id))
                        .map_err(StoreError::db("releasing a backend id"))?;
                }
                let mut table = txn
                    .open_table(REV_NAT_INDEXES)
                    .map_err(StoreError::db("opening the reverse-NAT indexes"))?;
                for (_, index) in &frontends {
                    table
                        .remove(u128::from(*index))
                        .map_err(StoreError::db("releasing a reverse-NAT index"))?;
                }
                Ok::<_, StoreError>(())
            })?;
        for (backend, _) in backends {
            self.backends.remove(&backend);
        }
        for (frontend, _) in frontends {
            self.frontends.remove(&frontend);
        }
        Ok(())
    }
}

/// Takes a free number of `range` for each of `items` and records it; stops early when
/// the range is exhausted.
fn take_all<T: Serialize + Copy>(
    txn: &redb::WriteTransaction,
    definition: TableDefinition<u128, &str>,
    cursor: &str,
    range: RangeInclusive<u128>,
    items: &[T],
) -> Result<Vec<(T, u128)>, StoreError> {
    let mut table = txn
        .open_table(definition)
        .map_err(StoreError::db("opening a numbering table"))?;
    let mut taken = Vec::with_capacity(items.len());
    for item in items {
        let Some(number) = take_free_key(txn, &table, cursor, range.clone())? else {
            break;
        };
        let json = serde_json::to_string(item).expect("addresses serialize");
        table
            .insert(number, json.as_str())
            .map_err(StoreError::db("recording a number"))?;
        taken.push((*item, number));
    }
    Ok(taken)
}

/// Every record of a numbering table.
fn read_table<T: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    definition: TableDefinition<u128, &str>,
    name: &'static str,
) -> Result<Vec<(u128, T)>, StoreError> {
    let table = txn
        .open_table(definition)
        .map_err(StoreError::db("opening a numbering table"))?;
    let mut records = Vec::new();
    for entry in table
        .iter()
        .map_err(StoreError::db("reading a numbering table"))?
    {
        let (number, json) = entry.map_err(StoreError::db("reading a numbering table"))?;
        let value = serde_json::from_str(json.value()).map_err(|source| StoreError::Corrupt {
            table: name,
            key: number.value().to_string(),
            source,
        })?;
        records.push((number.value(), value));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::model::Protocol;

    fn backend(last: u8) -> BackendAddr {
        BackendAddr {
            addr: [10, 0, 0, last].into(),
            port: 80,
            proto: Protocol::Tcp,
        }
    }

    fn frontend(last: u8) -> FrontendAddr {
        FrontendAddr {
            addr: [10, 96, 0, last].into(),
            port: 80,
            proto: Protocol::Udp,
        }
    }

    #[test]
    fn numbers_are_stable_survive_a_reopen_and_are_reused_only_after_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut allocator = Allocator::load(Store::open(dir.path()).unwrap()).unwrap();
        allocator
            .allocate(&[backend(1), backend(2)], &[frontend(1)])
            .unwrap();
        let (one, two) = (
            allocator.backend_id(&backend(1)).unwrap(),
            allocator.backend_id(&backend(2)).unwrap(),
        );
        assert_ne!(one, two);
        assert_ne!(one, 0);
        let index = allocator.rev_nat_index(&frontend(1)).unwrap();
        assert_ne!(index, 0);
        // Asking again changes nothing.
        allocator.allocate(&[backend(1)], &[frontend(1)]).unwrap();
        assert_eq!(allocator.backend_id(&backend(1)), Some(one));

        allocator.release(&[backend(1)], &[]).unwrap();
        allocator.allocate(&[backend(3), backend(1)], &[]).unwrap();
        assert_ne!(
            allocator.backend_id(&backend(3)),
            Some(one),
            "not reused at once"
        );
        assert_ne!(allocator.backend_id(&backend(1)), Some(one), "a new id");

        let before = (allocator.backends().clone(), allocator.frontends().clone());
        drop(allocator);
        let reopened = Allocator::load(Store::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            (reopened.backends().clone(), reopened.frontends().clone()),
            before
        );
        assert_eq!(reopened.rev_nat_index(&frontend(1)), Some(index));
    }

    #[test]
    fn recorded_indexes_load_whether_they_fit_sixteen_bits_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let allocator = Allocator::load(Store::open(dir.path()).unwrap()).unwrap();
        // An index of an earlier (16-bit) version and one past 65,535, as recorded.
        allocator
            .store
            .write("recording", |txn| {
                let mut table = txn.open_table(REV_NAT_INDEXES).unwrap();
                for (index, last) in [(7u128, 1), (100_000, 2)] {
                    let json = serde_json::to_string(&frontend(last)).unwrap();
                    table.insert(index, json.as_str()).unwrap();
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        drop(allocator);
        let mut reopened = Allocator::load(Store::open(dir.path()).unwrap()).unwrap();
        assert_eq!(reopened.rev_nat_index(&frontend(1)), Some(7));
        assert_eq!(reopened.rev_nat_index(&frontend(2)), Some(100_000));
        reopened.allocate(&[], &[frontend(3)]).unwrap();
        let new = reopened.rev_nat_index(&frontend(3)).unwrap();
        assert!(new != 7 && new != 100_000, "{new} is taken");
    }

    #[test]
    fn exhausted_indexes_leave_the_rest_unnumbered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut allocator = Allocator::load(store).unwrap();
        // A range of 1,000 (the real one has 2^32 - 1), filled directly but for one.
        allocator.rev_nat_range = 1..=1000;
        allocator
            .store
            .write("filling", |txn| {
                let mut table = txn.open_table(REV_NAT_INDEXES).unwrap();
                for index in 2..=1000 {
                    let json = serde_json::to_string(&FrontendAddr {
                        port: index as u16,
                        ..frontend(200)
                    })
                    .unwrap();
                    table.insert(index, json.as_str()).unwrap();
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        allocator
            .allocate(&[], &[frontend(1), frontend(2)])
            .unwrap();
        assert_eq!(allocator.rev_nat_index(&frontend(1)), Some(1));
        assert_eq!(allocator.rev_nat_index(&frontend(2)), None);
    }
}

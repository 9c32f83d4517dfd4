//! Host-scope IPAM: hands out one address per family from the node's pod CIDRs to each
//! attachment, persisted in the state database so a restart never hands one out twice.
//!
//! Tables: `ipam_allocations` (attachment → [`AllocationRecord`] as JSON) and, per family,
//! `ipam_v4_owners` / `ipam_v6_owners` (address → attachment), which make uniqueness a
//! property of the key space. A per-pool cursor (in the store's `cursors` table) makes
//! the search start after the last address handed out, so a freed address is reused only
//! once the pool has wrapped around.

mod pool;

pub use pool::Pool;

use crate::store::{
    AttachmentKey, Store, StoreError, attachment_from_key, attachment_key, now_unix_secs,
    take_free_key,
};
use membrane_api::{AttachmentRef, PoolStatus};
use pool::addr_value;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

const ALLOCATIONS: TableDefinition<AttachmentKey, &str> = TableDefinition::new("ipam_allocations");
const V4_OWNERS: TableDefinition<u128, AttachmentKey> = TableDefinition::new("ipam_v4_owners");
const V6_OWNERS: TableDefinition<u128, AttachmentKey> = TableDefinition::new("ipam_v6_owners");

/// Errors of IPAM.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Every address of a pool is handed out.
    #[error("the pod address pool {pool} is exhausted")]
    PoolExhausted {
        /// The pool's CIDR.
        pool: ipnet::IpNet,
    },
    /// The state database failed.
    #[error(transparent)]
    Store {
        /// The store error.
        #[from]
        source: StoreError,
    },
}

/// What IPAM keeps about one attachment's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    /// The IPv4 address, if the node has an IPv4 pool.
    pub ipv4: Option<Ipv4Addr>,
    /// The IPv6 address, if the node has an IPv6 pool.
    pub ipv6: Option<Ipv6Addr>,
    /// The pod's network namespace path, checked to find leaks.
    pub netns: String,
    /// When the addresses were handed out (seconds since the Unix epoch).
    pub allocated_at: u64,
}

/// The node's address pools over the state database.
#[derive(Clone, Debug)]
pub struct Ipam {
    store: Store,
    v4: Option<Pool>,
    v6: Option<Pool>,
}

impl Ipam {
    /// IPAM over `store` with the node's pools (at least one should be set).
    pub fn new(store: Store, v4: Option<Pool>, v6: Option<Pool>) -> Result<Ipam, IpamError> {
        store.write("creating the IPAM tables", |txn| {
            open(txn, ALLOCATIONS)?;
            open(txn, V4_OWNERS)?;
            open(txn, V6_OWNERS)?;
            Ok::<_, IpamError>(())
        })?;
        Ok(Ipam { store, v4, v6 })
    }

    /// Hands out addresses to `attachment`, or returns the ones it already has.
    pub fn allocate(
        &self,
        attachment: &AttachmentRef,
        netns: &str,
    ) -> Result<AllocationRecord, IpamError> {
        self.store.write("allocating addresses", |txn| {
            if let Some(existing) = get_in(&open(txn, ALLOCATIONS)?, attachment)? {
                return Ok(existing);
            }
            let key = attachment_key(attachment);
            let ipv4 = match self.v4 {
                Some(pool) => Some(Ipv4Addr::from(take_free(txn, V4_OWNERS, &pool, key)? as u32)),
                None => None,
            };
            let ipv6 = match self.v6 {
                Some(pool) => Some(Ipv6Addr::from(take_free(txn, V6_OWNERS, &pool, key)?)),
                None => None,
            };
            let record = AllocationRecord {
                ipv4,
                ipv6,
                netns: netns.to_string(),
                allocated_at: now_unix_secs(),
            };
            let json = serde_json::to_string(&record).expect("records serialize");
            open(txn, ALLOCATIONS)?
                .insert(key, json.as_str())
                .map_err(StoreError::db("writing an allocation"))?;
            Ok(record)
        })
    }

    /// The addresses of `attachment`, if it has any.
    pub fn get(&self, attachment: &AttachmentRef) -> Result<Option<AllocationRecord>, IpamError> {
        self.store.read("reading an allocation", |txn| {
            let table = txn
                .open_table(ALLOCATIONS)
                .map_err(StoreError::db("opening the allocations"))?;
            get_in(&table, attachment)
        })
    }

    /// Every allocation, by attachment.
    pub fn list(&self) -> Result<Vec<(AttachmentRef, AllocationRecord)>, IpamError> {
        self.store.read("listing allocations", |txn| {
            let table = txn
                .open_table(ALLOCATIONS)
                .map_err(StoreError::db("opening the allocations"))?;
            let mut all = Vec::new();
            for entry in table
                .iter()
                .map_err(StoreError::db("listing allocations"))?
            {
                let (key, value) = entry.map_err(StoreError::db("listing allocations"))?;
                let attachment = attachment_from_key(key.value());
                all.push((attachment.clone(), decode(&attachment, value.value())?));
            }
            Ok(all)
        })
    }

    /// Releases the addresses of `attachment` within `txn`; returns what was released.
    pub fn release_in(
        &self,
        txn: &WriteTransaction,
        attachment: &AttachmentRef,
    ) -> Result<Option<AllocationRecord>, IpamError> {
        let mut allocations = open(txn, ALLOCATIONS)?;
        let Some(record) = get_in(&allocations, attachment)? else {
            return Ok(None);
        };
        allocations
            .remove(attachment_key(attachment))
            .map_err(StoreError::db("removing an allocation"))?;
        if let Some(a) = record.ipv4 {
            free(txn, V4_OWNERS, addr_value(a.into()), attachment)?;
        }
        if let Some(a) = record.ipv6 {
            free(txn, V6_OWNERS, addr_value(a.into()), attachment)?;
        }
        Ok(Some(record))
    }

    /// Releases the addresses of `attachment` in a transaction of its own. Idempotent.
    pub fn release(
        &self,
        attachment: &AttachmentRef,
    ) -> Result<Option<AllocationRecord>, IpamError> {
        self.store.write("releasing addresses", |txn| {
            self.release_in(txn, attachment)
        })
    }

    /// Used and free addresses of the IPv4 and IPv6 pools.
    pub fn usage(&self) -> Result<(Option<PoolStatus>, Option<PoolStatus>), IpamError> {
        self.store.read("counting used addresses", |txn| {
            let status = |pool: Option<Pool>, def| -> Result<Option<PoolStatus>, IpamError> {
                let Some(pool) = pool else { return Ok(None) };
                let table = txn
                    .open_table(def)
                    .map_err(StoreError::db("opening the owners"))?;
                let mut used: u128 = 0;
                for entry in table
                    .range(pool.range())
                    .map_err(StoreError::db("counting used addresses"))?
                {
                    entry.map_err(StoreError::db("counting used addresses"))?;
                    used += 1;
                }
                let free = pool.size() - used;
                Ok(Some(PoolStatus {
                    cidr: pool.cidr().to_string(),
                    used: u64::try_from(used).unwrap_or(u64::MAX),
                    free: u64::try_from(free).unwrap_or(u64::MAX),
                }))
            };
            Ok((status(self.v4, V4_OWNERS)?, status(self.v6, V6_OWNERS)?))
        })
    }

    /// The store IPAM keeps its tables in.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn open<'txn, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'txn WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<redb::Table<'txn, K, V>, StoreError> {
    txn.open_table(def)
        .map_err(StoreError::db("opening an IPAM table"))
}

fn get_in(
    table: &impl ReadableTable<AttachmentKey<'static>, &'static str>,
    attachment: &AttachmentRef,
) -> Result<Option<AllocationRecord>, IpamError> {
    let value = table
        .get(attachment_key(attachment))
        .map_err(StoreError::db("reading an allocation"))?;
    value.map(|v| decode(attachment, v.value())).transpose()
}

fn decode(attachment: &AttachmentRef, json: &str) -> Result<AllocationRecord, IpamError> {
    serde_json::from_str(json).map_err(|source| {
        StoreError::Corrupt {
            table: "ipam_allocations",
            key: format!("{}/{}", attachment.container_id, attachment.ifname),
            source,
        }
        .into()
    })
}

/// Takes the first free address of `pool` after its cursor for `owner`.
fn take_free(
    txn: &WriteTransaction,
    owners_def: TableDefinition<u128, AttachmentKey>,
    pool: &Pool,
    owner: AttachmentKey<'_>,
) -> Result<u128, IpamError> {
    let mut owners = open(txn, owners_def)?;
    let cursor_name = format!("ipam:{}", pool.cidr());
    let Some(addr) = take_free_key(txn, &owners, &cursor_name, pool.range())? else {
        return Err(IpamError::PoolExhausted { pool: pool.cidr() });
    };
    owners
        .insert(addr, owner)
        .map_err(StoreError::db("recording an address owner"))?;
    Ok(addr)
}

/// Frees `addr` if `attachment` owns it.
fn free(
    txn: &WriteTransaction,
    owners_def: TableDefinition<u128, AttachmentKey>,
    addr: u128,
    attachment: &AttachmentRef,
) -> Result<(), StoreError> {
    let mut owners = open(txn, owners_def)?;
    let owned = owners
        .get(addr)
        .map_err(StoreError::db("reading an address owner"))?
        .is_some_and(|owner| attachment_from_key(owner.value()) == *attachment);
    if owned {
        owners
            .remove(addr)
            .map_err(StoreError::db("freeing an address"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Stores cluster state and streams its changes: an embedded redb store on one machine, or
//! etcd across many.
//!
//! Both backends implement one [`Store`]: string keys, byte values and revisions, with
//! compare-and-swap preconditions, all-or-nothing transactions, leases that remove a dead
//! node's keys, and a [`watch`](Store::watch) stream that resumes across reconnects without
//! losing or repeating a change. The key layout of the cluster lives in [`keys`], and
//! [`allocate_unique`] hands out pod CIDRs and [`allocate_identity`] identity numbers so
//! that two nodes racing never get the same one; [`IdentityCollector`] removes identities
//! no node has used for a grace period.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod allocate;
pub mod backoff;
pub mod embedded;
mod error;
pub mod etcd;
mod identity;
pub mod keys;
mod store;
mod watch;

pub use allocate::{Claimed, allocate_unique};
pub use backoff::Backoff;
pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use etcd::EtcdStore;
pub use identity::{
    AllocatedIdentity, IDENTITY_RANGE, IdentityCollector, IdentityUser, allocate_identity,
    labels_hash, record_identity_use, release_identity_use,
};
pub use store::{
    Event, Item, LeaseId, Listing, Op, Precondition, Revision, Store, WatchEvent, WatchStream,
};

//! What the policy component writes into the datapath, as a trait: policy entries of the
//! shared LPM trie and CIDR identities in the ipcache. Implemented by the shared
//! [`membrane_datapath::Datapath`] and, in unit tests, by an in-memory recorder.

use crate::agent::lock;
use ipnet::IpNet;
use membrane_datapath::{Datapath, DatapathError, PolicyRule};
use membrane_policy::{Direction, Entry, EntryKey};
use std::sync::{Arc, Mutex};

/// The datapath operations of policy.
pub trait PolicyMaps: Send + 'static {
    /// The datapath's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Writes one entry of endpoint `endpoint` (replacing what the key held).
    fn write_entry(
        &mut self,
        endpoint: u16,
        key: &EntryKey,
        entry: &Entry,
    ) -> Result<(), Self::Error>;

    /// Writes entries of endpoint `endpoint` (replacing what their keys held), in order.
    /// On failure, returns how many of the first entries may have been written (to be
    /// undone) and the error.
    fn write_entries(
        &mut self,
        endpoint: u16,
        entries: &[(EntryKey, Entry)],
    ) -> Result<(), (usize, Box<Self::Error>)> {
        for (written, (key, entry)) in entries.iter().enumerate() {
            self.write_entry(endpoint, key, entry)
                .map_err(|error| (written, Box::new(error)))?;
        }
        Ok(())
    }

    /// Removes one entry; absent is fine.
    fn remove_entry(&mut self, endpoint: u16, key: &EntryKey) -> Result<(), Self::Error>;

    /// Maps `prefix` to the node-local CIDR identity `identity` (no tunnel endpoint).
    fn upsert_cidr(&mut self, prefix: IpNet, identity: u32) -> Result<(), Self::Error>;

    /// Removes the ipcache entry of `prefix`.
    fn remove_cidr(&mut self, prefix: IpNet) -> Result<(), Self::Error>;
}

/// The datapath's rule for exactly one compiled key (its port prefix as a range, which
/// the datapath turns back into that one prefix).
pub fn rule_of(endpoint: u16, key: &EntryKey, entry: &Entry) -> PolicyRule {
    PolicyRule {
        endpoint_id: endpoint,
        direction: match key.direction {
            Direction::Ingress => membrane_datapath::Direction::Ingress,
            Direction::Egress => membrane_datapath::Direction::Egress,
        },
        identity: (key.identity != 0).then_some(key.identity),
        l4: (key.proto != 0).then(|| (key.proto, key.ports())),
        deny: entry.deny,
        rule_id: entry.rule_id,
    }
}

impl PolicyMaps for Arc<Mutex<Datapath>> {
    type Error = DatapathError;

    fn write_entry(
        &mut self,
        endpoint: u16,
        key: &EntryKey,
        entry: &Entry,
    ) -> Result<(), DatapathError> {
        lock(self).write_policy(&rule_of(endpoint, key, entry))
    }

    /// One batch under one lock.
    fn write_entries(
        &mut self,
        endpoint: u16,
        entries: &[(EntryKey, Entry)],
    ) -> Result<(), (usize, Box<DatapathError>)> {
        let rules: Vec<PolicyRule> = entries
            .iter()
            .map(|(key, entry)| rule_of(endpoint, key, entry))
            .collect();
        lock(self).write_policies(&rules)
    }

    fn remove_entry(&mut self, endpoint: u16, key: &EntryKey) -> Result<(), DatapathError> {
        let placeholder = Entry {
            deny: false,
            rule_id: 0,
        };
        lock(self).remove_policy(&rule_of(endpoint, key, &placeholder))
    }

    fn upsert_cidr(&mut self, prefix: IpNet, identity: u32) -> Result<(), DatapathError> {
        lock(self).upsert_ipcache(prefix, identity, None)
    }

    fn remove_cidr(&mut self, prefix: IpNet) -> Result<(), DatapathError> {
        lock(self).remove_ipcache(prefix)
    }
}

/// An in-memory datapath recording policy entries and CIDR identities.
#[cfg(test)]
pub mod memory {
    use super::*;
    use std::collections::BTreeMap;

    /// What the recorder holds.
    #[derive(Debug, Default)]
    pub struct Recorded {
        /// Entries by endpoint and key.
        pub entries: BTreeMap<(u16, EntryKey), Entry>,
        /// CIDR identities.
        pub cidrs: BTreeMap<IpNet, u32>,
        /// Writes and removals made.
        pub operations: usize,
        /// Entry writes the map still takes before it refuses them as full (none: no
        /// limit).
        pub room: Option<usize>,
    }

    /// The in-memory maps; clones share the record.
    #[derive(Clone, Debug, Default)]
    pub struct MemoryMaps(pub Arc<Mutex<Recorded>>);

    /// A write refused once [`Recorded::room`] ran out, as a full map refuses it
    /// (ENOSPC).
    #[derive(Debug, thiserror::Error)]
    #[error("the in-memory policy map refused the write")]
    pub struct Refused(#[source] std::io::Error);

    impl PolicyMaps for MemoryMaps {
        type Error = Refused;

        fn write_entry(
            &mut self,
            endpoint: u16,
            key: &EntryKey,
            entry: &Entry,
        ) -> Result<(), Refused> {
            let mut state = self.0.lock().unwrap();
            match &mut state.room {
                Some(0) => return Err(Refused(std::io::Error::from_raw_os_error(28))),
                Some(room) => *room -= 1,
                None => {}
            }
            state.operations += 1;
            state.entries.insert((endpoint, *key), *entry);
            Ok(())
        }

        fn remove_entry(&mut self, endpoint: u16, key: &EntryKey) -> Result<(), Refused> {
            let mut state = self.0.lock().unwrap();
            state.operations += 1;
            state.entries.remove(&(endpoint, *key));
            Ok(())
        }

        fn upsert_cidr(&mut self, prefix: IpNet, identity: u32) -> Result<(), Refused> {
            self.0.lock().unwrap().cidrs.insert(prefix, identity);
            Ok(())
        }

        fn remove_cidr(&mut self, prefix: IpNet) -> Result<(), Refused> {
            self.0.lock().unwrap().cidrs.remove(&prefix);
            Ok(())
        }
    }
}

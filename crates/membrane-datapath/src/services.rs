//! Programming Services: backends, frontends with their slots, reverse NAT and Maglev
//! tables. Every update touches only the entries of the Service it is about.

use crate::batch;
use crate::error::DatapathError;
use crate::maps::{Maps, addr_bytes, ignore_missing};
use membrane_common::lb::{backend_flags, scope};
use membrane_common::{Backend, MaglevKey, RevNat, ServiceKey, ServiceValue, map_names};
use std::net::IpAddr;

/// One Service frontend: where clients connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frontend {
    /// The address; for NodePort, the unspecified address of the family (matches every
    /// node address).
    pub addr: IpAddr,
    /// The port.
    pub port: u16,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// True for the internal-scope entry of a frontend with two scopes.
    pub internal: bool,
}

impl Frontend {
    fn key(&self, slot: u16) -> ServiceKey {
        let (addr, family) = addr_bytes(self.addr);
        ServiceKey {
            addr,
            port: self.port.to_be(),
            proto: self.proto,
            family,
            slot,
            scope: if self.internal {
                scope::INTERNAL
            } else {
                scope::EXTERNAL
            },
            _pad: 0,
        }
    }
}

/// A backend as the datapath stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Terminating: existing connections only.
    pub terminating: bool,
    /// Runs on this node.
    pub local: bool,
}

/// The backends map's value for `spec`.
fn backend(spec: &BackendSpec) -> Backend {
    let (addr, family) = addr_bytes(spec.addr);
    let mut flags = 0;
    if spec.terminating {
        flags |= backend_flags::TERMINATING;
    }
    if spec.local {
        flags |= backend_flags::LOCAL;
    }
    Backend {
        addr,
        port: spec.port.to_be(),
        proto: spec.proto,
        family,
        flags,
        _pad: [0; 3],
    }
}

/// The reverse-NAT map's value for `frontend`: what replies are rewritten back to.
fn rev_nat(frontend: &Frontend) -> RevNat {
    let (addr, family) = addr_bytes(frontend.addr);
    RevNat {
        addr,
        port: frontend.port.to_be(),
        family,
        _pad: 0,
    }
}

/// Everything the datapath needs for one frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The frontend.
    pub frontend: Frontend,
    /// Reverse-NAT index (unique per frontend address and port on the node, non-zero).
    pub rev_nat_index: u32,
    /// `membrane_common::lb::service_flags` bits.
    pub flags: u16,
    /// Session affinity timeout in seconds.
    pub affinity_timeout_s: u32,
    /// Backend ids taking new connections.
    pub active: Vec<u32>,
    /// Backend ids draining (terminating endpoints).
    pub terminating: Vec<u32>,
}

/// One frontend of a batch, with its slot counts and what packets could see of its
/// previous version.
struct Plan<'a> {
    spec: &'a ServiceSpec,
    /// Active backends.
    count: u16,
    /// Terminating backends written after them.
    terminating: u16,
    /// Slots visible before the write (the previous service entry's count).
    visible_before: u16,
}

impl Plan<'_> {
    /// Backend slots written: `count` active then the terminating ones.
    fn slots(&self) -> u16 {
        self.count + self.terminating
    }

    /// The slot entries of this frontend, slot 1 first.
    fn slot_entries(&self) -> impl Iterator<Item = (ServiceKey, ServiceValue)> + '_ {
        let ids = self.spec.active.iter().chain(self.spec.terminating.iter());
        (1..=self.slots()).zip(ids).map(|(slot, id)| {
            let value = ServiceValue {
                backend_id: *id,
                count: 0,
                terminating: 0,
                rev_nat_index: self.spec.rev_nat_index,
                flags: 0,
                _pad: 0,
                affinity_timeout_s: 0,
                _pad2: 0,
            };
            (self.spec.frontend.key(slot), value)
        })
    }

    /// The service entry (slot 0) that makes the slots visible.
    fn head(&self) -> ServiceValue {
        ServiceValue {
            backend_id: 0,
            count: self.count,
            terminating: self.terminating,
            rev_nat_index: self.spec.rev_nat_index,
            flags: self.spec.flags,
            _pad: 0,
            affinity_timeout_s: self.spec.affinity_timeout_s,
            _pad2: 0,
        }
    }
}

impl Maps {
    /// Writes (or replaces) backends, in one batch; on failure the backends before the
    /// refused one are written.
    pub fn upsert_backends(
        &mut self,
        backends: &[(u32, BackendSpec)],
    ) -> Result<(), DatapathError> {
        let ids: Vec<u32> = backends.iter().map(|(id, _)| *id).collect();
        let values: Vec<Backend> = backends.iter().map(|(_, spec)| backend(spec)).collect();
        batch::update_unordered(&self.backends, &ids, &values).map_err(|source| {
            DatapathError::Map {
                map: map_names::BACKENDS,
                operation: "insert",
                source,
            }
        })
    }

    /// Removes a backend; absent ones are fine.
    pub fn remove_backend(&mut self, id: u32) -> Result<(), DatapathError> {
        ignore_missing(self.backends.remove(&id)).map_err(|source| DatapathError::Map {
            map: map_names::BACKENDS,
            operation: "remove",
            source,
        })
    }

    /// Writes (or replaces) frontends with one batch per map: every backend slot first,
    /// then the reverse-NAT entries, then the service entries that make the slots
    /// visible (in the order given, so an internal scope listed before its external one
    /// is complete first), and last removes slots left over from larger previous
    /// versions. A packet never sees a count larger than the slots written, and only
    /// the given frontends' entries are written.
    ///
    /// On failure (a full map, above all) the frontends whose service entry was written
    /// stay written; the slots no packet can see are removed again (best effort; the
    /// write's own error is reported), so a full map keeps its room for what fits.
    pub fn upsert_services(&mut self, specs: &[&ServiceSpec]) -> Result<(), DatapathError> {
        let err = |map, source| DatapathError::Map {
            map,
            operation: "insert",
            source,
        };
        // An empty map holds no previous version of any frontend: a node's first full
        // sync skips one lookup per frontend (100,000 syscalls at 100,000 Services).
        let empty = self.services.keys().next().is_none();
        let mut plans = Vec::with_capacity(specs.len());
        for spec in specs {
            let count =
                u16::try_from(spec.active.len()).map_err(|_| DatapathError::InvalidOption {
                    option: "service backends",
                    reason: format!(
                        "{} backends for frontend {}:{} is more than 65535",
                        spec.active.len(),
                        spec.frontend.addr,
                        spec.frontend.port
                    ),
                })?;
            let previous = if empty {
                None
            } else {
                self.services.get(&spec.frontend.key(0), 0).ok()
            };
            plans.push(Plan {
                spec,
                count,
                terminating: u16::try_from(spec.terminating.len())
                    .unwrap_or(u16::MAX)
                    .min(u16::MAX - count),
                visible_before: previous.map_or(0, |old| old.count.saturating_add(old.terminating)),
            });
        }
        let (keys, values): (Vec<_>, Vec<_>) = plans.iter().flat_map(Plan::slot_entries).unzip();
        if let Err(source) = batch::update_unordered(&self.services, &keys, &values) {
            self.forget_invisible(&plans);
            return Err(err(map_names::SERVICES, source));
        }
        let (keys, values): (Vec<u32>, Vec<RevNat>) = plans
            .iter()
            .filter(|plan| !plan.spec.frontend.internal)
            .map(|plan| (plan.spec.rev_nat_index, rev_nat(&plan.spec.frontend)))
            .unzip();
        if let Err(source) = batch::update_unordered(&self.rev_nat, &keys, &values) {
            self.forget_invisible(&plans);
            return Err(err(map_names::REV_NAT, source));
        }
        let (keys, values): (Vec<_>, Vec<_>) = plans
            .iter()
            .map(|plan| (plan.spec.frontend.key(0), plan.head()))
            .unzip();
        if let Err(partial) = batch::update(&self.services, &keys, &values) {
            self.forget_invisible(&plans[partial.written..]);
            return Err(err(map_names::SERVICES, partial.source));
        }
        for plan in plans
            .iter()
            .filter(|plan| plan.visible_before > plan.slots())
        {
            for slot in (plan.slots() + 1)..=plan.visible_before {
                ignore_missing(self.services.remove(&plan.spec.frontend.key(slot))).map_err(
                    |source| DatapathError::Map {
                        map: map_names::SERVICES,
                        operation: "remove",
                        source,
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Removes the slot entries of `plans` beyond what their frontend's previous service
    /// entry made visible: slots of a failed write that no packet can see (written or
    /// not: the slot batches write in no set order). Best effort.
    fn forget_invisible(&mut self, plans: &[Plan<'_>]) {
        let entries = plans
            .iter()
            .flat_map(|plan| plan.slot_entries().map(move |(key, _)| (plan, key)));
        for (plan, key) in entries {
            if key.slot > plan.visible_before {
                let _ = self.services.remove(&key);
            }
        }
    }

    /// Removes a frontend, its slots, its reverse NAT (external scope) and its Maglev
    /// table of `maglev_size` positions.
    pub fn remove_service(
        &mut self,
        frontend: &Frontend,
        maglev_size: u32,
    ) -> Result<(), DatapathError> {
        let err = |operation, source| DatapathError::Map {
            map: map_names::SERVICES,
            operation,
            source,
        };
        let Ok(head) = self.services.get(&frontend.key(0), 0) else {
            return Ok(());
        };
        ignore_missing(self.services.remove(&frontend.key(0))).map_err(|e| err("remove", e))?;
        for slot in 1..=head.count.saturating_add(head.terminating) {
            ignore_missing(self.services.remove(&frontend.key(slot)))
                .map_err(|e| err("remove", e))?;
        }
        if !frontend.internal {
            ignore_missing(self.rev_nat.remove(&head.rev_nat_index)).map_err(|source| {
                DatapathError::Map {
                    map: map_names::REV_NAT,
                    operation: "remove",
                    source,
                }
            })?;
            self.remove_maglev(head.rev_nat_index, maglev_size)?;
        }
        Ok(())
    }

    /// Writes the Maglev table of the Service with `rev_nat_index`.
    pub fn write_maglev(&mut self, rev_nat_index: u32, table: &[u32]) -> Result<(), DatapathError> {
        let keys: Vec<MaglevKey> = (0..table.len() as u32)
            .map(|position| MaglevKey {
                rev_nat_index,
                position,
            })
            .collect();
        batch::update(&self.maglev, &keys, table).map_err(|partial| DatapathError::Map {
            map: map_names::MAGLEV,
            operation: "insert",
            source: partial.source,
        })
    }

    fn remove_maglev(&mut self, rev_nat_index: u32, size: u32) -> Result<(), DatapathError> {
        for position in 0..size {
            let key = MaglevKey {
                rev_nat_index,
                position,
            };
            ignore_missing(self.maglev.remove(&key)).map_err(|source| DatapathError::Map {
                map: map_names::MAGLEV,
                operation: "remove",
                source,
            })?;
        }
        Ok(())
    }

    /// Number of entries in the services map (slots included).
    pub fn service_entries(&self) -> usize {
        self.services.keys().filter_map(Result::ok).count()
    }
}

//! Programming Services: backends, frontends with their slots, reverse NAT and Maglev
//! tables. Every update touches only the entries of the Service it is about.

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

/// Everything the datapath needs for one frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The frontend.
    pub frontend: Frontend,
    /// Reverse-NAT index (unique per frontend address and port on the node, non-zero).
    pub rev_nat_index: u16,
    /// `membrane_common::lb::service_flags` bits.
    pub flags: u16,
    /// Session affinity timeout in seconds.
    pub affinity_timeout_s: u32,
    /// Backend ids taking new connections.
    pub active: Vec<u32>,
    /// Backend ids draining (terminating endpoints).
    pub terminating: Vec<u32>,
}

impl Maps {
    /// Writes (or replaces) a backend.
    pub fn upsert_backend(&mut self, id: u32, spec: &BackendSpec) -> Result<(), DatapathError> {
        let (addr, family) = addr_bytes(spec.addr);
        let mut flags = 0;
        if spec.terminating {
            flags |= backend_flags::TERMINATING;
        }
        if spec.local {
            flags |= backend_flags::LOCAL;
        }
        let value = Backend {
            addr,
            port: spec.port.to_be(),
            proto: spec.proto,
            family,
            flags,
            _pad: [0; 3],
        };
        self.backends
            .insert(id, value, 0)
            .map_err(|source| DatapathError::Map {
                map: map_names::BACKENDS,
                operation: "insert",
                source,
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

    /// Writes a frontend: backend slots first, then the service entry that makes them
    /// visible, then removes slots left over from a larger previous version. A packet
    /// never sees a count larger than the slots written.
    pub fn upsert_service(&mut self, spec: &ServiceSpec) -> Result<(), DatapathError> {
        let err = |operation, source| DatapathError::Map {
            map: map_names::SERVICES,
            operation,
            source,
        };
        let count = u16::try_from(spec.active.len()).map_err(|_| DatapathError::InvalidOption {
            option: "service backends",
            reason: format!(
                "{} backends for one frontend is more than 65535",
                spec.active.len()
            ),
        })?;
        let terminating = u16::try_from(spec.terminating.len())
            .unwrap_or(u16::MAX)
            .min(u16::MAX - count);
        let previous = self.services.get(&spec.frontend.key(0), 0).ok();
        let mut written = 0;
        if let Err(e) = self.write_frontend(spec, count, terminating, &mut written) {
            // Slots beyond the previous version's are not visible: give their room back
            // (best effort; the write's own error is the one reported), so a full map
            // keeps its room for the Services that fit.
            let visible = previous.map_or(0, |old| old.count.saturating_add(old.terminating));
            for leftover in (visible + 1)..=written {
                let _ = self.services.remove(&spec.frontend.key(leftover));
            }
            return Err(e);
        }
        if let Some(old) = previous {
            for slot in (count + terminating + 1)..=(old.count.saturating_add(old.terminating)) {
                ignore_missing(self.services.remove(&spec.frontend.key(slot)))
                    .map_err(|e| err("remove", e))?;
            }
        }
        Ok(())
    }

    /// Writes the backend slots (counting them in `written`), the reverse NAT and then
    /// the service entry that makes the slots visible.
    fn write_frontend(
        &mut self,
        spec: &ServiceSpec,
        count: u16,
        terminating: u16,
        written: &mut u16,
    ) -> Result<(), DatapathError> {
        let err = |operation, source| DatapathError::Map {
            map: map_names::SERVICES,
            operation,
            source,
        };
        for (i, id) in spec
            .active
            .iter()
            .chain(spec.terminating.iter().take(terminating as usize))
            .enumerate()
        {
            let slot = ServiceValue {
                backend_id: *id,
                count: 0,
                terminating: 0,
                rev_nat_index: spec.rev_nat_index,
                flags: 0,
                affinity_timeout_s: 0,
            };
            self.services
                .insert(spec.frontend.key(i as u16 + 1), slot, 0)
                .map_err(|e| err("insert", e))?;
            *written = i as u16 + 1;
        }
        let (addr, family) = addr_bytes(spec.frontend.addr);
        let rev = RevNat {
            addr,
            port: spec.frontend.port.to_be(),
            family,
            _pad: 0,
        };
        if !spec.frontend.internal {
            self.rev_nat
                .insert(spec.rev_nat_index, rev, 0)
                .map_err(|source| DatapathError::Map {
                    map: map_names::REV_NAT,
                    operation: "insert",
                    source,
                })?;
        }
        let head = ServiceValue {
            backend_id: 0,
            count,
            terminating,
            rev_nat_index: spec.rev_nat_index,
            flags: spec.flags,
            affinity_timeout_s: spec.affinity_timeout_s,
        };
        self.services
            .insert(spec.frontend.key(0), head, 0)
            .map_err(|e| err("insert", e))
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
    pub fn write_maglev(&mut self, rev_nat_index: u16, table: &[u32]) -> Result<(), DatapathError> {
        for (position, id) in table.iter().enumerate() {
            let key = MaglevKey {
                rev_nat_index,
                _pad: 0,
                position: position as u32,
            };
            self.maglev
                .insert(key, *id, 0)
                .map_err(|source| DatapathError::Map {
                    map: map_names::MAGLEV,
                    operation: "insert",
                    source,
                })?;
        }
        Ok(())
    }

    fn remove_maglev(&mut self, rev_nat_index: u16, size: u32) -> Result<(), DatapathError> {
        for position in 0..size {
            let key = MaglevKey {
                rev_nat_index,
                _pad: 0,
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

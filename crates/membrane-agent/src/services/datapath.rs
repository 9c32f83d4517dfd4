//! What the services reconciler needs from the eBPF datapath, as a trait: implemented by
//! [`membrane_datapath::Datapath`], by a shared datapath behind a mutex (each call
//! takes the lock on its own, so endpoint work is held up for one batch at most, never
//! for a whole pass), and in unit tests by an in-memory map set.
//!
//! Writes come in batches (the datapath writes a batch with a few syscalls, not one per
//! map entry); a batch that fails has written a prefix of its items, each whole, and
//! left the rest as they were.

use crate::agent::lock;
use membrane_datapath::{BackendSpec, Datapath, DatapathError, Frontend, ServiceSpec};
use std::sync::{Arc, Mutex};

/// The datapath operations Services are programmed with.
pub trait ServiceDatapath: Send + 'static {
    /// The datapath's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Writes (or replaces) each backend `(id, spec)`, in order.
    fn upsert_backends(&mut self, backends: &[(u32, BackendSpec)]) -> Result<(), Self::Error>;

    /// Removes backend `id`; absent ones are fine.
    fn remove_backend(&mut self, id: u32) -> Result<(), Self::Error>;

    /// Writes frontend scopes with their slots (and their Maglev tables, `names`
    /// naming the active backends in order); a scope is visible once complete, in the
    /// order given.
    fn upsert_services(
        &mut self,
        services: &[(ServiceSpec, Vec<Vec<u8>>)],
    ) -> Result<(), Self::Error>;

    /// Removes one scope of a frontend and everything it owns; absent ones are fine.
    fn remove_service(&mut self, frontend: &Frontend) -> Result<(), Self::Error>;

    /// The map `error` found full, if that is why it failed.
    fn full_map(error: &Self::Error) -> Option<&'static str>;
}

impl ServiceDatapath for Datapath {
    type Error = DatapathError;

    fn upsert_backends(&mut self, backends: &[(u32, BackendSpec)]) -> Result<(), DatapathError> {
        Datapath::upsert_backends(self, backends)
    }

    fn remove_backend(&mut self, id: u32) -> Result<(), DatapathError> {
        Datapath::remove_backend(self, id)
    }

    fn upsert_services(
        &mut self,
        services: &[(ServiceSpec, Vec<Vec<u8>>)],
    ) -> Result<(), DatapathError> {
        Datapath::upsert_services(
            self,
            services
                .iter()
                .map(|(spec, names)| (spec, names.as_slice())),
        )
    }

    fn remove_service(&mut self, frontend: &Frontend) -> Result<(), DatapathError> {
        Datapath::remove_service(self, frontend)
    }

    fn full_map(error: &DatapathError) -> Option<&'static str> {
        match error {
            DatapathError::Map { map, source, .. } if is_map_full(source) => Some(map),
            _ => None,
        }
    }
}

impl<T: ServiceDatapath> ServiceDatapath for Arc<Mutex<T>> {
    type Error = T::Error;

    fn upsert_backends(&mut self, backends: &[(u32, BackendSpec)]) -> Result<(), T::Error> {
        lock(self).upsert_backends(backends)
    }

    fn remove_backend(&mut self, id: u32) -> Result<(), T::Error> {
        lock(self).remove_backend(id)
    }

    fn upsert_services(
        &mut self,
        services: &[(ServiceSpec, Vec<Vec<u8>>)],
    ) -> Result<(), T::Error> {
        lock(self).upsert_services(services)
    }

    fn remove_service(&mut self, frontend: &Frontend) -> Result<(), T::Error> {
        lock(self).remove_service(frontend)
    }

    fn full_map(error: &T::Error) -> Option<&'static str> {
        T::full_map(error)
    }
}

/// True when `error` (or one of its sources) says a map has no room: the kernel's
/// E2BIG for a full hash map, ENOSPC, or ENOMEM for maps allocated on demand.
pub fn is_map_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ArgumentListTooLong
                    | std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::OutOfMemory
            )
        {
            return true;
        }
        next = current.source();
    }
    false
}

/// An in-memory datapath with map capacities, for unit tests of the reconciler.
#[cfg(test)]
pub mod memory {
    use super::*;
    use std::collections::BTreeMap;

    /// A write refused because a map is full (E2BIG, as the kernel says).
    #[derive(Debug, thiserror::Error)]
    #[error("insert into {map} refused")]
    pub struct Refused {
        map: &'static str,
        #[source]
        source: std::io::Error,
    }

    impl Refused {
        fn full(map: &'static str) -> Refused {
            Refused {
                map,
                source: std::io::Error::from_raw_os_error(7),
            }
        }
    }

    /// A frontend scope as the map keys it: address, port, protocol, internal.
    pub type ScopeKey = (std::net::IpAddr, u16, u8, bool);

    /// The maps, and what was done to them.
    #[derive(Debug, Default)]
    pub struct Maps {
        /// Backends by id.
        pub backends: BTreeMap<u32, BackendSpec>,
        /// Frontend scopes with their spec and Maglev names.
        pub services: BTreeMap<ScopeKey, (ServiceSpec, Vec<Vec<u8>>)>,
        /// Capacity of the services map in entries (a head and one per slot).
        pub service_capacity: usize,
        /// Capacity of the backends map.
        pub backend_capacity: usize,
        /// Every write and removal, in order.
        pub log: Vec<String>,
    }

    impl Maps {
        /// Entries the services map holds.
        pub fn service_entries(&self) -> usize {
            self.services
                .values()
                .map(|(s, _)| 1 + s.active.len() + s.terminating.len())
                .sum()
        }
    }

    /// The in-memory datapath; clones share the maps.
    #[derive(Clone, Debug)]
    pub struct MemoryDatapath(pub Arc<Mutex<Maps>>);

    impl MemoryDatapath {
        /// Maps of the given capacities.
        pub fn with_capacity(service_capacity: usize, backend_capacity: usize) -> Self {
            MemoryDatapath(Arc::new(Mutex::new(Maps {
                service_capacity,
                backend_capacity,
                ..Maps::default()
            })))
        }

        /// The maps.
        pub fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
            self.0.lock().unwrap()
        }
    }

    fn key(f: &Frontend) -> ScopeKey {
        (f.addr, f.port, f.proto, f.internal)
    }

    impl ServiceDatapath for MemoryDatapath {
        type Error = Refused;

        fn upsert_backends(&mut self, backends: &[(u32, BackendSpec)]) -> Result<(), Refused> {
            let mut maps = self.maps();
            for (id, spec) in backends {
                if !maps.backends.contains_key(id) && maps.backends.len() >= maps.backend_capacity {
                    return Err(Refused::full("backends"));
                }
                maps.log.push(format!("upsert backend {id}"));
                maps.backends.insert(*id, *spec);
            }
            Ok(())
        }

        fn remove_backend(&mut self, id: u32) -> Result<(), Refused> {
            let mut maps = self.maps();
            maps.log.push(format!("remove backend {id}"));
            maps.backends.remove(&id);
            Ok(())
        }

        fn upsert_services(
            &mut self,
            services: &[(ServiceSpec, Vec<Vec<u8>>)],
        ) -> Result<(), Refused> {
            let mut maps = self.maps();
            for (spec, names) in services {
                let previous = maps
                    .services
                    .get(&key(&spec.frontend))
                    .map_or(0, |(s, _)| 1 + s.active.len() + s.terminating.len());
                let wanted = 1 + spec.active.len() + spec.terminating.len();
                if maps.service_entries() - previous + wanted > maps.service_capacity {
                    return Err(Refused::full("services"));
                }
                let f = spec.frontend;
                maps.log.push(format!(
                    "upsert service {}:{}/{}{}",
                    f.addr,
                    f.port,
                    f.proto,
                    if f.internal { " internal" } else { "" }
                ));
                maps.services
                    .insert(key(&spec.frontend), (spec.clone(), names.clone()));
            }
            Ok(())
        }

        fn remove_service(&mut self, frontend: &Frontend) -> Result<(), Refused> {
            let mut maps = self.maps();
            if maps.services.remove(&key(frontend)).is_some() {
                maps.log.push(format!(
                    "remove service {}:{}/{}{}",
                    frontend.addr,
                    frontend.port,
                    frontend.proto,
                    if frontend.internal { " internal" } else { "" }
                ));
            }
            Ok(())
        }

        fn full_map(error: &Refused) -> Option<&'static str> {
            is_map_full(error).then_some(error.map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("map write failed")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn a_full_map_is_recognised_through_the_error_chain() {
        assert!(is_map_full(&Wrapped(std::io::Error::from_raw_os_error(7))));
        assert!(is_map_full(&Wrapped(std::io::Error::from_raw_os_error(28))));
        assert!(!is_map_full(&Wrapped(std::io::Error::from_raw_os_error(1))));
        assert!(!is_map_full(&std::fmt::Error));
    }
}

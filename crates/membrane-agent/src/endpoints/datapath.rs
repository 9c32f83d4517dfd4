//! What the endpoint manager needs from the eBPF datapath, as a trait: implemented by
//! [`membrane_datapath::Datapath`] and, in unit tests, by an in-memory recorder.

use crate::agent::lock;
use membrane_datapath::{CtStats, Datapath, DatapathError, EndpointSpec};

/// The datapath operations the agent drives.
pub trait NodeDatapath: Send + 'static {
    /// The datapath's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Attaches the endpoint's program and writes its map entries. Idempotent.
    fn attach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), Self::Error>;

    /// Rewrites the endpoint's map entries (identity, policy flags) without touching its
    /// program.
    fn write_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), Self::Error>;

    /// Rewrites the map entries of many endpoints, as [`NodeDatapath::write_endpoint`]
    /// does for each; returns the endpoints that failed, with their errors.
    fn write_endpoints(&mut self, endpoints: &[EndpointSpec]) -> Vec<(u16, Self::Error)> {
        endpoints
            .iter()
            .filter_map(|endpoint| Some((endpoint.id, self.write_endpoint(endpoint).err()?)))
            .collect()
    }

    /// Removes the endpoint's map entries and program. Idempotent.
    fn detach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), Self::Error>;

    /// Deletes idle conntrack entries; reports what the table held and what expired.
    fn collect_conntrack(&mut self) -> Result<CtStats, Self::Error>;
}

impl NodeDatapath for Datapath {
    type Error = DatapathError;

    fn attach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        Datapath::attach_endpoint(self, endpoint)
    }

    fn write_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        Datapath::write_endpoint(self, endpoint)
    }

    /// One batch (see [`Datapath::write_endpoints`]).
    fn write_endpoints(&mut self, endpoints: &[EndpointSpec]) -> Vec<(u16, DatapathError)> {
        Datapath::write_endpoints(self, endpoints)
    }

    fn detach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        Datapath::detach_endpoint(self, endpoint)
    }

    fn collect_conntrack(&mut self) -> Result<CtStats, DatapathError> {
        Datapath::collect_conntrack(self)
    }
}

/// A datapath shared with other components (the ipcache, Services): each call takes the
/// lock on its own.
impl<T: NodeDatapath> NodeDatapath for std::sync::Arc<std::sync::Mutex<T>> {
    type Error = T::Error;

    fn attach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), T::Error> {
        lock(self).attach_endpoint(endpoint)
    }

    fn write_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), T::Error> {
        lock(self).write_endpoint(endpoint)
    }

    /// Under one lock.
    fn write_endpoints(&mut self, endpoints: &[EndpointSpec]) -> Vec<(u16, T::Error)> {
        lock(self).write_endpoints(endpoints)
    }

    fn detach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), T::Error> {
        lock(self).detach_endpoint(endpoint)
    }

    fn collect_conntrack(&mut self) -> Result<CtStats, T::Error> {
        lock(self).collect_conntrack()
    }
}

/// An in-memory datapath that records what is attached, for unit tests of the manager.
#[cfg(test)]
pub mod memory {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// The recorder's injected failure.
    #[derive(Debug, thiserror::Error)]
    #[error("injected datapath failure")]
    pub struct InjectedFailure;

    /// What the recorder holds; shared so a test can look while the manager owns it.
    #[derive(Debug, Default)]
    pub struct Recorded {
        /// Attached endpoints by id.
        pub attached: BTreeMap<u16, EndpointSpec>,
        /// How many attach calls were made.
        pub attach_calls: usize,
        /// Fail the next attach calls.
        pub fail_attach: bool,
        /// Fail the next detach calls.
        pub fail_detach: bool,
    }

    /// The in-memory datapath.
    #[derive(Clone, Debug, Default)]
    pub struct MemoryDatapath(pub Arc<Mutex<Recorded>>);

    impl NodeDatapath for MemoryDatapath {
        type Error = InjectedFailure;

        fn attach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), InjectedFailure> {
            let mut state = self.0.lock().unwrap();
            state.attach_calls += 1;
            if state.fail_attach {
                return Err(InjectedFailure);
            }
            state.attached.insert(endpoint.id, endpoint.clone());
            Ok(())
        }

        fn write_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), InjectedFailure> {
            let mut state = self.0.lock().unwrap();
            if let Some(attached) = state.attached.get_mut(&endpoint.id) {
                *attached = endpoint.clone();
            }
            Ok(())
        }

        fn detach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), InjectedFailure> {
            let mut state = self.0.lock().unwrap();
            if state.fail_detach {
                return Err(InjectedFailure);
            }
            state.attached.remove(&endpoint.id);
            Ok(())
        }

        fn collect_conntrack(&mut self) -> Result<CtStats, InjectedFailure> {
            Ok(CtStats::default())
        }
    }
}

//! Service names for the decoder, read live from what the services component publishes:
//! a flow decoded right after a Service is programmed is named too (a copy refreshed on
//! a timer would miss the first connections, the only ones reported when aggregated).

use crate::services::Services;
use membrane_api::ServiceFrontend;
use membrane_common::tuple::proto;
use membrane_observe::directory::{Frontend, ServiceDirectory};
use membrane_observe::flow::ServiceName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The index of one published list of frontends.
struct Index {
    /// The list it was built from (compared by pointer: each publication is a new one).
    from: Arc<Vec<ServiceFrontend>>,
    by_rev_nat: HashMap<u32, ServiceName>,
    by_frontend: HashMap<Frontend, ServiceName>,
}

impl Index {
    /// Indexes the Services (hostPort frontends, owned by Pods, are not Services).
    fn new(from: Arc<Vec<ServiceFrontend>>) -> Index {
        let mut index = Index {
            by_rev_nat: HashMap::new(),
            by_frontend: HashMap::new(),
            from,
        };
        for f in index.from.iter().filter(|f| f.owner_kind == "Service") {
            let name = ServiceName {
                namespace: f.namespace.clone(),
                name: f.name.clone(),
            };
            if let Some(protocol) = protocol_number(&f.protocol) {
                index
                    .by_frontend
                    .insert((f.address, f.port, protocol), name.clone());
            }
            if let Some(rev_nat) = f.rev_nat_index {
                index.by_rev_nat.insert(rev_nat, name);
            }
        }
        index
    }
}

/// The IP protocol number of a Kubernetes protocol name.
fn protocol_number(name: &str) -> Option<u8> {
    match name {
        "TCP" => Some(proto::TCP),
        "UDP" => Some(proto::UDP),
        _ => None,
    }
}

/// Looks Services up by reverse-NAT index in the services component's latest list,
/// re-indexing only when a new list is published.
pub struct ServiceNames {
    services: Arc<Services>,
    index: Mutex<Index>,
}

impl ServiceNames {
    /// Names from `services`.
    pub fn new(services: Arc<Services>) -> ServiceNames {
        ServiceNames {
            index: Mutex::new(Index::new(services.frontends())),
            services,
        }
    }
}

impl ServiceNames {
    /// Looks `find` up in the index of the latest list, re-indexing if it is new.
    fn lookup(&self, find: impl FnOnce(&Index) -> Option<ServiceName>) -> Option<ServiceName> {
        let latest = self.services.frontends();
        let mut cached = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&cached.from, &latest) {
            *cached = Index::new(latest);
        }
        find(&cached)
    }
}

impl ServiceDirectory for ServiceNames {
    fn by_rev_nat(&self, index: u32) -> Option<ServiceName> {
        self.lookup(|i| i.by_rev_nat.get(&index).cloned())
    }

    fn by_frontend(&self, frontend: Frontend) -> Option<ServiceName> {
        self.lookup(|i| i.by_frontend.get(&frontend).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontend(kind: &str, name: &str, rev_nat_index: Option<u32>) -> ServiceFrontend {
        ServiceFrontend {
            owner_kind: kind.to_string(),
            namespace: "shop".to_string(),
            name: name.to_string(),
            kind: "ClusterIP".to_string(),
            address: "10.96.0.10".parse().unwrap(),
            port: 80,
            protocol: "TCP".to_string(),
            rev_nat_index,
            algorithm: "random".to_string(),
            affinity_timeout_secs: None,
            backends: Vec::new(),
            internal_backends: None,
            programmed: true,
            error: None,
        }
    }

    #[test]
    fn services_are_named_by_reverse_nat_index_and_frontend_and_host_ports_are_not_services() {
        let index = Index::new(Arc::new(vec![
            frontend("Service", "web", Some(3)),
            frontend("Pod", "web-0", Some(4)),
        ]));
        let web = ServiceName {
            namespace: "shop".to_string(),
            name: "web".to_string(),
        };
        assert_eq!(index.by_rev_nat.len(), 1);
        assert_eq!(index.by_rev_nat[&3], web);
        let address = "10.96.0.10".parse().unwrap();
        assert_eq!(index.by_frontend[&(address, 80, proto::TCP)], web);
        assert!(!index.by_frontend.contains_key(&(address, 80, proto::UDP)));
    }

    #[test]
    fn an_empty_component_names_nothing() {
        let names = ServiceNames::new(Arc::new(Services::default()));
        assert_eq!(names.by_rev_nat(1), None);
        let frontend = ("10.96.0.10".parse().unwrap(), 80, proto::TCP);
        assert_eq!(names.by_frontend(frontend), None);
    }
}

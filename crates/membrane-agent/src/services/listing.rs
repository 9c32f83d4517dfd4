//! The node's frontends as the local API shows them: the desired state, with the
//! numbers the datapath uses and whether it holds exactly that.

use super::datapath::ServiceDatapath;
use super::model::{BackendAddr, Backends, DesiredState};
use super::reconciler::Reconciler;
use membrane_api::{ServiceBackend, ServiceFrontend};
use membrane_common::lb::service_flags;

/// Every desired frontend, in address order.
pub fn frontends<D: ServiceDatapath>(
    desired: &DesiredState,
    reconciler: &Reconciler<D>,
) -> Vec<ServiceFrontend> {
    let allocator = reconciler.allocator();
    let backends = |scope: &Backends| -> Vec<ServiceBackend> {
        let one = |backend: &BackendAddr, terminating: bool| ServiceBackend {
            id: allocator.backend_id(backend),
            address: backend.addr,
            port: backend.port,
            terminating,
            local: desired.backends.get(backend).is_some_and(|s| s.local),
        };
        scope
            .active
            .iter()
            .map(|b| one(b, false))
            .chain(scope.terminating.iter().map(|b| one(b, true)))
            .collect()
    };
    desired
        .frontends
        .iter()
        .map(|(addr, want)| {
            let programmed = reconciler.applied(addr) == Some(want);
            ServiceFrontend {
                owner_kind: want.owner.kind.to_string(),
                namespace: want.owner.namespace.clone(),
                name: want.owner.name.clone(),
                kind: want.kind.as_str().to_string(),
                address: addr.addr,
                port: addr.port,
                protocol: addr.proto.as_str().to_string(),
                rev_nat_index: allocator.rev_nat_index(addr),
                algorithm: if want.flags & service_flags::MAGLEV != 0 {
                    "maglev"
                } else {
                    "random"
                }
                .to_string(),
                affinity_timeout_secs: (want.flags & service_flags::AFFINITY != 0)
                    .then_some(want.affinity_timeout_s),
                backends: backends(&want.backends),
                internal_backends: want.internal.as_ref().map(backends),
                programmed,
                error: (!programmed)
                    .then(|| reconciler.failure(&want.owner).map(str::to_string))
                    .flatten(),
            }
        })
        .collect()
}

//! Reserved security identities, as Cilium numbers them.

/// The local node (its own processes and addresses).
pub const HOST: u32 = 1;
/// Anything outside the cluster.
pub const WORLD: u32 = 2;
/// Endpoints not managed by Membrane.
pub const UNMANAGED: u32 = 3;
/// Health-checking endpoints.
pub const HEALTH: u32 = 4;
/// Endpoints whose identity is not resolved yet.
pub const INIT: u32 = 5;
/// Other nodes of the cluster.
pub const REMOTE_NODE: u32 = 6;
/// The Kubernetes API server.
pub const KUBE_APISERVER: u32 = 7;
/// The ingress proxy.
pub const INGRESS: u32 = 8;
/// First identity allocated for label sets.
pub const FIRST_ALLOCATED: u32 = 256;

/// The name of a reserved identity, as Cilium's `reserved:<name>` label spells it.
pub const fn reserved_name(id: u32) -> Option<&'static str> {
    Some(match id {
        HOST => "host",
        WORLD => "world",
        UNMANAGED => "unmanaged",
        HEALTH => "health",
        INIT => "init",
        REMOTE_NODE => "remote-node",
        KUBE_APISERVER => "kube-apiserver",
        INGRESS => "ingress",
        _ => return None,
    })
}

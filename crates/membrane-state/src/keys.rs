//! The key layout of the cluster state, spelled once for every component and backend.
//!
//! ```text
//! /membrane/v1/objects/<Kind>/<namespace>/<name>   applied Kubernetes and Cilium objects
//! /membrane/v1/nodes/<name>                        node records, attached to the node's lease
//! /membrane/v1/pod-cidrs/<cidr>                    pod CIDR claims: the owning node
//! /membrane/v1/identities/id/<n>                   identity number -> its labels
//! /membrane/v1/identities/labels/<hash>            labels hash -> identity number
//! /membrane/v1/identities/users/<n>/<node>         node uses identity n (on its lease)
//! /membrane/v1/ipcache/<ip>                        pod address -> identity and node
//! ```
//!
//! Cluster-scoped objects use an empty namespace segment (`…/objects/Node//node-1`), so
//! every object key has the same number of segments.

use std::fmt::Display;

/// Root of everything Membrane stores.
pub const ROOT: &str = "/membrane/v1/";
/// Prefix of applied objects.
pub const OBJECTS: &str = "/membrane/v1/objects/";
/// Prefix of node records.
pub const NODES: &str = "/membrane/v1/nodes/";
/// Prefix of pod CIDR claims.
pub const POD_CIDRS: &str = "/membrane/v1/pod-cidrs/";
/// Prefix of identity numbers.
pub const IDENTITY_IDS: &str = "/membrane/v1/identities/id/";
/// Prefix of identity label hashes.
pub const IDENTITY_LABELS: &str = "/membrane/v1/identities/labels/";
/// Prefix of the records of which node uses which identity.
pub const IDENTITY_USERS: &str = "/membrane/v1/identities/users/";
/// Prefix of ipcache entries.
pub const IPCACHE: &str = "/membrane/v1/ipcache/";

/// The key of an object: `namespace` is empty for cluster-scoped kinds.
pub fn object(kind: &str, namespace: &str, name: &str) -> String {
    format!("{OBJECTS}{kind}/{namespace}/{name}")
}

/// The prefix of every object of `kind`.
pub fn objects_of_kind(kind: &str) -> String {
    format!("{OBJECTS}{kind}/")
}

/// The prefix of every object of `kind` in `namespace`.
pub fn objects_in_namespace(kind: &str, namespace: &str) -> String {
    format!("{OBJECTS}{kind}/{namespace}/")
}

/// The kind, namespace and name an object key names, or `None` if it is not one.
pub fn parse_object(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(OBJECTS)?;
    let mut parts = rest.splitn(3, '/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    (!kind.is_empty() && !name.is_empty() && !name.contains('/')).then_some((kind, namespace, name))
}

/// The key of node `name`'s record.
pub fn node(name: &str) -> String {
    format!("{NODES}{name}")
}

/// The key of a pod CIDR claim.
pub fn pod_cidr(cidr: impl Display) -> String {
    format!("{POD_CIDRS}{cidr}")
}

/// The key of identity number `id`.
pub fn identity_id(id: u32) -> String {
    format!("{IDENTITY_IDS}{id}")
}

/// The key of the identity of a labels hash.
pub fn identity_labels(hash: &str) -> String {
    format!("{IDENTITY_LABELS}{hash}")
}

/// The key recording that `node` uses identity `id`.
pub fn identity_user(id: u32, node: &str) -> String {
    format!("{IDENTITY_USERS}{id}/{node}")
}

/// The identity number a user record's key names, or `None` if it is not one.
pub fn parse_identity_user(key: &str) -> Option<u32> {
    let (id, node) = key.strip_prefix(IDENTITY_USERS)?.split_once('/')?;
    (!node.is_empty() && !node.contains('/'))
        .then(|| id.parse().ok())
        .flatten()
}

/// The key of a pod address in the ipcache.
pub fn ipcache(ip: std::net::IpAddr) -> String {
    format!("{IPCACHE}{ip}")
}

/// The part of `key` after `prefix`, if `key` is under it.
pub fn suffix<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip_including_cluster_scoped_ones() {
        let key = object("NetworkPolicy", "default", "deny-all");
        assert_eq!(key, "/membrane/v1/objects/NetworkPolicy/default/deny-all");
        assert_eq!(
            parse_object(&key),
            Some(("NetworkPolicy", "default", "deny-all"))
        );
        let cluster = object("CiliumClusterwideNetworkPolicy", "", "x");
        assert_eq!(
            parse_object(&cluster),
            Some(("CiliumClusterwideNetworkPolicy", "", "x"))
        );
        assert!(key.starts_with(&objects_in_namespace("NetworkPolicy", "default")));
        assert!(key.starts_with(&objects_of_kind("NetworkPolicy")));
    }

    #[test]
    fn keys_that_are_not_objects_do_not_parse_as_objects() {
        assert_eq!(parse_object("/membrane/v1/nodes/a"), None);
        assert_eq!(parse_object("/membrane/v1/objects/Pod/ns"), None);
        assert_eq!(parse_object("/membrane/v1/objects/Pod/ns/"), None);
        assert_eq!(parse_object("/membrane/v1/objects/Pod/ns/a/b"), None);
    }

    #[test]
    fn every_key_lives_under_the_root_and_its_own_prefix() {
        assert_eq!(node("n1"), "/membrane/v1/nodes/n1");
        assert_eq!(
            pod_cidr("10.200.1.0/24"),
            "/membrane/v1/pod-cidrs/10.200.1.0/24"
        );
        assert_eq!(identity_id(256), "/membrane/v1/identities/id/256");
        assert_eq!(
            identity_labels("ab12"),
            "/membrane/v1/identities/labels/ab12"
        );
        assert_eq!(
            identity_user(300, "n1"),
            "/membrane/v1/identities/users/300/n1"
        );
        assert_eq!(parse_identity_user(&identity_user(300, "n1")), Some(300));
        assert_eq!(
            parse_identity_user("/membrane/v1/identities/users/300"),
            None
        );
        assert_eq!(parse_identity_user(&identity_id(300)), None);
        assert_eq!(
            ipcache("fd00::1".parse().unwrap()),
            "/membrane/v1/ipcache/fd00::1"
        );
        for prefix in [
            OBJECTS,
            NODES,
            POD_CIDRS,
            IDENTITY_IDS,
            IDENTITY_LABELS,
            IDENTITY_USERS,
            IPCACHE,
        ] {
            assert!(prefix.starts_with(ROOT) && prefix.ends_with('/'));
        }
        assert_eq!(suffix(&node("n1"), NODES), Some("n1"));
    }
}

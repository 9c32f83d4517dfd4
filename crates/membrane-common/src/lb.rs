//! Service load balancing: frontends, backends, reverse NAT, session affinity, Maglev
//! and the socket-level reverse translation.
//!
//! A Service frontend (address, port, protocol, scope) owns slots in the services map:
//! slot 0 holds the [`ServiceValue`] with the number of active backends; slots
//! `1..=count` name one active backend each, and terminating backends follow in slots
//! `count+1..=count+terminating` so that their existing connections still resolve.
//! Selection is O(1) in the number of Services.

use crate::tuple::IpAddrBytes;

/// Key of the services map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// Frontend address.
    pub addr: IpAddrBytes,
    /// Frontend port (network byte order).
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// 0 for the service entry, `1..` for backend slots.
    pub slot: u16,
    /// A [`scope`] constant.
    pub scope: u8,
    /// Padding, always zero.
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<ServiceKey>() == 24);

/// Frontend scopes: with `externalTrafficPolicy`/`internalTrafficPolicy: Local` a
/// frontend has a second entry listing only the node's own backends.
pub mod scope {
    /// Traffic from outside the cluster (NodePort, LoadBalancer, externalIPs), or the
    /// only scope when both policies are Cluster.
    pub const EXTERNAL: u8 = 0;
    /// Traffic from inside the cluster (pods and host processes).
    pub const INTERNAL: u8 = 1;
}

/// Value of the services map: the service entry (slot 0) or a backend slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceValue {
    /// Slot > 0: the backend's id. Slot 0: unused (0).
    pub backend_id: u32,
    /// Slot 0: number of active backends.
    pub count: u16,
    /// Slot 0: number of terminating backends after the active ones.
    pub terminating: u16,
    /// Index of the frontend in the reverse-NAT map (also names the Service in
    /// affinity and Maglev keys).
    pub rev_nat_index: u32,
    /// [`service_flags`] bits.
    pub flags: u16,
    /// Padding, always zero.
    pub _pad: u16,
    /// Session affinity timeout in seconds (with [`service_flags::AFFINITY`]).
    pub affinity_timeout_s: u32,
    /// Padding, always zero (keeps the value a multiple of 8 bytes).
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<ServiceValue>() == 24);

/// Bits of [`ServiceValue::flags`].
pub mod service_flags {
    /// `sessionAffinity: ClientIP`.
    pub const AFFINITY: u16 = 1 << 0;
    /// Backends are chosen through the Service's Maglev table.
    pub const MAGLEV: u16 = 1 << 1;
    /// The frontend is reachable from outside the node (NodePort, LoadBalancer,
    /// externalIPs); ClusterIPs are not.
    pub const EXTERNAL: u16 = 1 << 2;
    /// A second, internal-scope entry exists for this frontend.
    pub const TWO_SCOPES: u16 = 1 << 3;
    /// A NodePort frontend: the key's address is zero and matches every node address.
    pub const NODEPORT: u16 = 1 << 4;
}

/// A backend (an endpoint of a Service).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Backend address.
    pub addr: IpAddrBytes,
    /// Backend port (network byte order).
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// [`backend_flags`] bits.
    pub flags: u8,
    /// Padding, always zero.
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<Backend>() == 24);

/// Bits of [`Backend::flags`].
pub mod backend_flags {
    /// The endpoint is terminating: keeps existing connections, gets no new ones.
    pub const TERMINATING: u8 = 1 << 0;
    /// The backend runs on this node.
    pub const LOCAL: u8 = 1 << 1;
}

/// What replies of a translated connection are rewritten back to: the frontend.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevNat {
    /// Frontend address.
    pub addr: IpAddrBytes,
    /// Frontend port (network byte order).
    pub port: u16,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// Padding, always zero.
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<RevNat>() == 20);

/// Key of the session-affinity map: one client of one Service.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    /// Client address (for socket LB of host processes: the socket cookie's bytes).
    pub client: IpAddrBytes,
    /// The Service's reverse-NAT index.
    pub rev_nat_index: u32,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// Padding, always zero.
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<AffinityKey>() == 24);

/// Value of the session-affinity map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffinityValue {
    /// The backend the client sticks to.
    pub backend_id: u32,
    /// Padding, always zero.
    pub _pad: u32,
    /// `bpf_ktime_get_ns` of the last use.
    pub last_used_ns: u64,
}
const _: () = assert!(core::mem::size_of::<AffinityValue>() == 16);

/// Key of the Maglev map: one position of one Service's lookup table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaglevKey {
    /// The Service's reverse-NAT index.
    pub rev_nat_index: u32,
    /// Position in the table, `0..table_size`.
    pub position: u32,
}
const _: () = assert!(core::mem::size_of::<MaglevKey>() == 8);

/// Key of the socket reverse-translation map (UDP replies to a translated send).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockRevKey {
    /// The socket's cookie.
    pub cookie: u64,
    /// The backend address the socket sent to.
    pub addr: IpAddrBytes,
    /// The backend port (network byte order).
    pub port: u16,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// Padding, always zero.
    pub _pad: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<SockRevKey>() == 32);

//! Connection tracking: finds or creates the entry of a packet's connection.

use crate::maps::CT;
use crate::packet::{Packet, tcp_flags};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use membrane_common::ct::ct_flags;
use membrane_common::metrics::reason;
use membrane_common::tuple::proto;
use membrane_common::{CtEntry, CtKey};

/// Which way a packet travels relative to its connection's first packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Same direction as the first packet.
    Original,
    /// The reply direction.
    Reply,
}

/// Where a new connection comes from.
pub struct Origin {
    /// Host-side interface of the opening endpoint, 0 if none.
    pub ifindex: u32,
    /// Security identity of the source, 0 if unknown.
    pub identity: u32,
    /// Reverse-NAT index of the Service frontend the packet was translated from, 0 if
    /// none.
    pub rev_nat_index: u32,
}

/// What tracking found: the packet's direction and the connection's reverse-NAT index,
/// packed in one register (the index in the low 32 bits, the direction above).
#[derive(Clone, Copy)]
pub struct Tracked(u64);

impl Tracked {
    const REPLY: u64 = 1 << 63;
    const NEW: u64 = 1 << 62;

    /// True when this packet created the connection's entry.
    #[inline(always)]
    pub fn is_new(self) -> bool {
        self.0 & Self::NEW != 0
    }

    /// True when the packet travels in the reply direction.
    #[inline(always)]
    pub fn is_reply(self) -> bool {
        self.0 & Self::REPLY != 0
    }

    /// The connection's reverse-NAT index (0: not a Service connection).
    #[inline(always)]
    pub fn rev_nat_index(self) -> u32 {
        self.0 as u32
    }
}

/// True for a TCP SYN without ACK: the first packet of a new connection, never part of
/// an existing one (retransmissions of it included).
#[inline(always)]
fn opens_connection(pkt: &Packet) -> bool {
    pkt.key.proto == proto::TCP
        && pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
}

/// Creates (or replaces) the entry of a new connection opened by `pkt`.
#[inline(always)]
fn open(pkt: &Packet, len: u32, origin: &Origin, now: u64) -> Result<Tracked, u8> {
    let entry = CtEntry {
        created_ns: now,
        last_seen_ns: now,
        packets_fwd: 1,
        bytes_fwd: len as u64,
        packets_rev: 0,
        bytes_rev: 0,
        flags: tcp_state(0, pkt, Dir::Original),
        src_ifindex: origin.ifindex,
        src_identity: origin.identity,
        rev_nat_index: origin.rev_nat_index,
        backend_id: 0,
        _pad2: 0,
    };
    CT.insert(&pkt.key, &entry, 0)
        .map_err(|_| reason::DROP_MAP_FULL)?;
    Ok(Tracked(Tracked::NEW | u64::from(origin.rev_nat_index)))
}

/// Looks up `pkt`'s connection in either direction; when absent, creates it (original
/// direction) if an `origin` is given. A TCP SYN opening a connection on the tuple of an
/// old one (a reused client port, perhaps through another Service to the same backend)
/// replaces the old entry: nothing of the earlier connection (its Service, its identity)
/// carries over. Updates counters and TCP state.
#[inline(never)]
pub fn track(pkt: &Packet, len: u32, origin: Option<&Origin>) -> Result<Tracked, u8> {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let fwd = &pkt.key;
    let (dir, entry) = if let Some(e) = CT.get_ptr_mut(fwd) {
        match origin {
            Some(origin) if opens_connection(pkt) => return open(pkt, len, origin, now),
            _ => (Dir::Original, e),
        }
    } else {
        let rev = fwd.reversed();
        if let Some(e) = CT.get_ptr_mut(&rev) {
            (Dir::Reply, e)
        } else if let Some(origin) = origin {
            return open(pkt, len, origin, now);
        } else {
            return Ok(Tracked(0));
        }
    };
    // SAFETY: the pointer comes from a successful lookup in an LRU hash; the entry may be
    // updated concurrently by another CPU, which only makes the counters approximate.
    unsafe {
        (*entry).last_seen_ns = now;
        if dir == Dir::Original {
            (*entry).packets_fwd += 1;
            (*entry).bytes_fwd += len as u64;
        } else {
            (*entry).packets_rev += 1;
            (*entry).bytes_rev += len as u64;
        }
        (*entry).flags = tcp_state((*entry).flags, pkt, dir);
        let reply = if dir == Dir::Reply { Tracked::REPLY } else { 0 };
        Ok(Tracked(reply | u64::from((*entry).rev_nat_index)))
    }
}

/// Marks a connection as masqueraded.
#[inline(always)]
pub fn mark_snat(key: &CtKey) {
    if let Some(e) = CT.get_ptr_mut(key) {
        // SAFETY: pointer from a successful lookup; a single flag bit is set.
        unsafe { (*e).flags |= ct_flags::SNAT };
    }
}

#[inline(always)]
fn tcp_state(mut flags: u32, pkt: &Packet, dir: Dir) -> u32 {
    if dir == Dir::Reply {
        flags |= ct_flags::ESTABLISHED;
    }
    if pkt.key.proto != proto::TCP {
        return flags;
    }
    let f = pkt.tcp_flags;
    if f & tcp_flags::SYN != 0 {
        flags |= if dir == Dir::Original {
            ct_flags::SYN_FWD
        } else {
            ct_flags::SYN_REV
        };
    }
    if f & tcp_flags::FIN != 0 {
        flags |= if dir == Dir::Original {
            ct_flags::FIN_FWD
        } else {
            ct_flags::FIN_REV
        };
    }
    if f & tcp_flags::RST != 0 {
        flags |= ct_flags::RST;
    }
    flags
}

/// Removes the connection of `key` (either direction), so that its next packet is
/// tracked and decided anew.
#[inline(always)]
pub fn forget(key: &CtKey) {
    let _ = CT.remove(key);
}

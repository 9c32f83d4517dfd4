//! Masquerading: source NAT to the node's address on the way out, and the reverse
//! translation of replies.

use crate::ct::mark_snat;
use crate::frame::Frame;
use crate::maps::NAT;
use crate::packet::Packet;
use crate::rewrite::{End, set_addr, set_port};
use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_loop};
use core::ffi::c_void;
use membrane_common::metrics::reason;
use membrane_common::{CtKey, DatapathConfig, NatEntry};

/// How many candidate ports are tried before giving up on a new translation.
const PORT_TRIES: u32 = 32;

/// The tuple a reply carries at the node once `orig` leaves as `node:port`.
#[inline(always)]
fn reply_key(orig: &CtKey, node: &[u8; 16], port: u16, is_echo: bool) -> CtKey {
    CtKey {
        saddr: orig.daddr,
        daddr: *node,
        sport: if is_echo { port } else { orig.dport },
        dport: port,
        proto: orig.proto,
        family: orig.family,
        _pad: [0; 2],
    }
}

/// Translates `pkt`'s source to `node`, reusing the connection's translation or
/// allocating a port from the configured range.
#[inline(never)]
pub fn snat<F: Frame>(
    ctx: &F,
    pkt: &mut Packet,
    cfg: &DatapathConfig,
    node: &[u8; 16],
) -> Result<(), u8> {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: plain read of a value copied out immediately.
    let port = if let Some(e) = unsafe { NAT.get(&pkt.key) } {
        e.port
    } else {
        let port = allocate_port(pkt, cfg, node, now)?;
        let egress = NatEntry {
            addr: *node,
            port,
            _pad: [0; 6],
            created_ns: now,
        };
        if NAT.insert(&pkt.key, &egress, 0).is_err() {
            let _ = NAT.remove(&reply_key(&pkt.key, node, port, pkt.is_echo));
            return Err(reason::DROP_MAP_FULL);
        }
        port
    };
    mark_snat(&pkt.key);
    let orig_sport = pkt.key.sport;
    set_addr(ctx, pkt, End::Source, node)?;
    if port != orig_sport {
        set_port(ctx, pkt, End::Source, port)?;
    }
    Ok(())
}

/// State of a port search, shared with the `bpf_loop` callback through a pointer.
#[repr(C)]
struct PortSearch {
    /// The reply tuple being claimed; its ports change with each candidate.
    reply: CtKey,
    /// The reply entry's value: back to the pod's address and port.
    back: NatEntry,
    /// First port of the range.
    min: u32,
    /// Number of ports in the range.
    span: u32,
    /// The claimed port (network byte order), 0 while none.
    found: u16,
    /// 1 for ICMP echo (the identifier is both "ports").
    is_echo: u8,
    /// Padding.
    _pad: u8,
}

/// Tries to claim `port` for the search: inserts its reply entry unless one exists.
#[inline(always)]
fn claim(search: &mut PortSearch, port: u16) -> bool {
    search.reply.dport = port;
    if search.is_echo != 0 {
        search.reply.sport = port;
    }
    if NAT
        .insert(&search.reply, &search.back, BPF_NOEXIST as u64)
        .is_ok()
    {
        search.found = port;
        true
    } else {
        false
    }
}

/// One `bpf_loop` iteration: a random port of the range. Returns 1 (stop) once claimed.
/// As a loop callback it is verified once, however many tries are allowed.
extern "C" fn try_random_port(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer to the caller's PortSearch.
    let search = unsafe { &mut *(ctx as *mut PortSearch) };
    let port = ((search.min + random_below(search.span)) as u16).to_be();
    claim(search, port) as i64
}

/// Claims a free port by inserting the reply entry with `BPF_NOEXIST`: the original
/// source port first when it lies in the range, then random ports of the range.
#[inline(never)]
fn allocate_port(pkt: &Packet, cfg: &DatapathConfig, node: &[u8; 16], now: u64) -> Result<u16, u8> {
    let orig = &pkt.key;
    let min = cfg.nat_port_min as u32;
    let max = cfg.nat_port_max as u32;
    if min == 0 || max < min {
        return Err(reason::DROP_NAT_NO_PORT);
    }
    let mut search = PortSearch {
        reply: reply_key(orig, node, orig.sport, pkt.is_echo),
        back: NatEntry {
            addr: orig.saddr,
            port: orig.sport,
            _pad: [0; 6],
            created_ns: now,
        },
        min,
        span: max - min + 1,
        found: 0,
        is_echo: pkt.is_echo as u8,
        _pad: 0,
    };
    let first = u16::from_be(orig.sport) as u32;
    if first >= min && first <= max && claim(&mut search, orig.sport) {
        return Ok(search.found);
    }
    // SAFETY: the callback is a BPF function taking (index, ctx); ctx points at `search`,
    // which outlives the call.
    unsafe {
        bpf_loop(
            PORT_TRIES,
            try_random_port as *mut c_void,
            &mut search as *mut PortSearch as *mut c_void,
            0,
        );
    }
    if search.found != 0 {
        Ok(search.found)
    } else {
        Err(reason::DROP_NAT_NO_PORT)
    }
}

/// A random number below `span` (0 when `span` is 0), without a panicking remainder.
#[inline(always)]
fn random_below(span: u32) -> u32 {
    // SAFETY: bpf_get_prandom_u32 has no preconditions.
    unsafe { bpf_get_prandom_u32() }
        .checked_rem(span)
        .unwrap_or(0)
}

/// If `pkt` is a reply to a masqueraded connection, translates its destination back
/// to the pod and returns true.
#[inline(never)]
pub fn reverse_snat<F: Frame>(ctx: &F, pkt: &mut Packet) -> Result<bool, u8> {
    // SAFETY: plain read of a value copied out immediately.
    let Some(back) = (unsafe { NAT.get(&pkt.key) }).copied() else {
        return Ok(false);
    };
    set_addr(ctx, pkt, End::Destination, &back.addr)?;
    if back.port != pkt.key.dport {
        set_port(ctx, pkt, End::Destination, back.port)?;
    }
    Ok(true)
}

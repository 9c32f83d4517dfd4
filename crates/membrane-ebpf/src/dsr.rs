//! Direct server return for TCP Services reached from outside (`--bpf-lb-mode dsr`,
//! native routing).
//!
//! The node that balances a request to a backend on another node does not source-NAT
//! it: the client's address reaches the backend. The connection's SYN carries the
//! frontend it was sent to: IPv4 in an IP option (type [`OPT_TYPE`], 8 bytes: type,
//! length, port, address, the layout Cilium uses), IPv6 in a Destination Options header
//! (option [`OPT6_TYPE`]: address, port). The backend's node reads it on delivery and
//! remembers it in the NAT map under the reply's tuple; the backend's replies then
//! leave its node with the frontend as their source, straight to the client, never
//! through the balancing node. The receiving stack skips both (an unknown IPv4 option
//! is ignored; the IPv6 option's type says "skip if unknown").

use crate::ct::Tracked;
use crate::frame::Frame;
use crate::maps::{CT, NAT, REV_NAT};
use crate::packet::{ETH_HLEN, Packet, tcp_flags};
use crate::rewrite::{End, set_addr, set_port};
use aya_ebpf::bindings::bpf_adj_room_mode::BPF_ADJ_ROOM_NET;
use aya_ebpf::helpers::{bpf_csum_diff, bpf_ktime_get_ns};
use aya_ebpf::programs::TcContext;
use membrane_common::config::{config_flags, routing_mode};
use membrane_common::ct::ct_flags;
use membrane_common::metrics::reason;
use membrane_common::tuple::proto;
use membrane_common::{DatapathConfig, NatEntry};

/// The option's type: copied on fragmentation, class 0, number 26.
const OPT_TYPE: u8 = 0x9a;
/// The option's length in bytes (a multiple of 4, so no padding follows it).
const OPT_LEN: usize = 8;
/// The IPv4 header without options.
const IPV4_HLEN: usize = 20;
/// Offset of the IPv4 header checksum.
const IPV4_CSUM: usize = ETH_HLEN + 10;
/// The IPv6 header.
const IPV6_HLEN: usize = 40;
/// The IPv6 option's type: the two high bits 00 make a node that does not know it skip it.
const OPT6_TYPE: u8 = 0x1b;
/// The option's data: the address and the port.
const OPT6_LEN: usize = 18;
/// The Destination Options header holding it: next header, length, the option, and
/// two Pad1 bytes to a multiple of 8.
const EXT6_LEN: usize = 24;
/// IPv6 next-header value of a Destination Options header.
const IPPROTO_DSTOPTS: u8 = 60;

/// True when a request to a backend on another node goes by DSR: the mode is on, the
/// nodes route natively, and the packet is TCP without IPv4 options or IPv6 extension
/// headers of its own.
#[inline(always)]
pub fn applies(pkt: &Packet, cfg: &DatapathConfig) -> bool {
    let plain = if pkt.is_v4() {
        ETH_HLEN + IPV4_HLEN
    } else {
        ETH_HLEN + IPV6_HLEN
    };
    cfg.flags & config_flags::DSR != 0
        && cfg.routing_mode == routing_mode::NATIVE
        && pkt.key.proto == proto::TCP
        && pkt.l4 == plain
}

/// Adds the frontend of `rev_nat_index` (a node port's is the node's address) as an
/// IPv4 option to a connection's SYN; other packets of the connection go unchanged.
/// Returns 0 or the drop reason.
#[inline(never)]
pub fn add_option(
    ctx: &TcContext,
    pkt: &mut Packet,
    rev_nat_index: u32,
    cfg: &DatapathConfig,
) -> u8 {
    if pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) != tcp_flags::SYN {
        return 0;
    }
    // SAFETY: the value is copied at once.
    let Some(frontend) = (unsafe { REV_NAT.get(&rev_nat_index) }).copied() else {
        return reason::DROP_BACKEND_MISSING;
    };
    let addr = if frontend.addr != [0; 16] {
        &frontend.addr
    } else if pkt.is_v4() {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    };
    let inserted = if pkt.is_v4() {
        insert_option(ctx, pkt, addr, frontend.port)
    } else {
        insert_extension(ctx, pkt, addr, frontend.port)
    };
    match inserted {
        Ok(()) => 0,
        Err(code) => code,
    }
}

#[inline(always)]
fn insert_option(ctx: &TcContext, pkt: &mut Packet, addr: &[u8; 16], port: u16) -> Result<(), u8> {
    let fail = |_| reason::DROP_REWRITE_FAILED;
    // Version/IHL and TOS, and the total length: read before the room moves the payload.
    let first: u16 = Frame::load(ctx, ETH_HLEN)?;
    let tot_len: u16 = Frame::load(ctx, ETH_HLEN + 2)?;
    ctx.adjust_room(OPT_LEN as i32, BPF_ADJ_ROOM_NET, 0)
        .map_err(fail)?;
    let [p0, p1] = port.to_ne_bytes();
    let mut option: [u8; OPT_LEN] = [
        OPT_TYPE,
        OPT_LEN as u8,
        p0,
        p1,
        addr[0],
        addr[1],
        addr[2],
        addr[3],
    ];
    Frame::store(ctx, ETH_HLEN + IPV4_HLEN, &option)?;
    let [v, tos] = first.to_ne_bytes();
    let new_first = u16::from_ne_bytes([v + (OPT_LEN / 4) as u8, tos]);
    let new_tot_len = (u16::from_be(tot_len) + OPT_LEN as u16).to_be();
    Frame::store(ctx, ETH_HLEN, &new_first)?;
    Frame::store(ctx, ETH_HLEN + 2, &new_tot_len)?;
    ctx.l3_csum_replace(IPV4_CSUM, first as u64, new_first as u64, 2)
        .map_err(fail)?;
    ctx.l3_csum_replace(IPV4_CSUM, tot_len as u64, new_tot_len as u64, 2)
        .map_err(fail)?;
    // SAFETY: the buffer is an 8-byte stack array, as the size passed says; no `from`.
    let sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            option.as_mut_ptr().cast(),
            OPT_LEN as u32,
            0,
        )
    };
    if sum < 0 {
        return Err(reason::DROP_REWRITE_FAILED);
    }
    ctx.l3_csum_replace(IPV4_CSUM, 0, sum as u64, 0)
        .map_err(fail)?;
    pkt.l4 += OPT_LEN;
    pkt.tot_len += OPT_LEN as u16;
    Ok(())
}

/// Inserts the Destination Options header naming the frontend after the IPv6 header.
#[inline(always)]
fn insert_extension(
    ctx: &TcContext,
    pkt: &mut Packet,
    addr: &[u8; 16],
    port: u16,
) -> Result<(), u8> {
    let payload_len: u16 = Frame::load(ctx, ETH_HLEN + 4)?;
    ctx.adjust_room(EXT6_LEN as i32, BPF_ADJ_ROOM_NET, 0)
        .map_err(|_| reason::DROP_REWRITE_FAILED)?;
    let mut ext = [0u8; EXT6_LEN];
    ext[0] = proto::TCP;
    ext[1] = (EXT6_LEN / 8 - 1) as u8;
    ext[2] = OPT6_TYPE;
    ext[3] = OPT6_LEN as u8;
    ext[4..20].copy_from_slice(addr);
    ext[20..22].copy_from_slice(&port.to_ne_bytes());
    Frame::store(ctx, ETH_HLEN + IPV6_HLEN, &ext)?;
    let payload_len = (u16::from_be(payload_len) + EXT6_LEN as u16).to_be();
    Frame::store(ctx, ETH_HLEN + 4, &payload_len)?;
    Frame::store(ctx, ETH_HLEN + 6, &IPPROTO_DSTOPTS)?;
    // The TCP checksum's pseudo-header holds the upper-layer length and protocol, which
    // do not change.
    pkt.l4 += EXT6_LEN;
    Ok(())
}

/// The frontend a DSR request names, as (address, port).
#[inline(always)]
fn frontend_of<F: Frame>(ctx: &F, pkt: &Packet) -> Option<([u8; 16], u16)> {
    if pkt.key.proto != proto::TCP {
        return None;
    }
    if !pkt.is_v4() {
        if pkt.l4 != ETH_HLEN + IPV6_HLEN + EXT6_LEN {
            return None;
        }
        let ext: [u8; EXT6_LEN] = ctx.load(ETH_HLEN + IPV6_HLEN).ok()?;
        if ext[2] != OPT6_TYPE || ext[3] != OPT6_LEN as u8 {
            return None;
        }
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&ext[4..20]);
        return Some((addr, u16::from_ne_bytes([ext[20], ext[21]])));
    }
    if pkt.l4 != ETH_HLEN + IPV4_HLEN + OPT_LEN {
        return None;
    }
    let option: [u8; OPT_LEN] = ctx.load(ETH_HLEN + IPV4_HLEN).ok()?;
    if option[0] != OPT_TYPE || option[1] != OPT_LEN as u8 {
        return None;
    }
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&option[4..8]);
    Some((addr, u16::from_ne_bytes([option[2], option[3]])))
}

/// On the backend's node: if `pkt` (a request being delivered to a local backend)
/// names its frontend, remembers it under the reply's tuple and marks the connection,
/// so that [`reverse`] rewrites the replies and the collector removes the entry with
/// the connection.
#[inline(never)]
pub fn remember<F: Frame>(ctx: &F, pkt: &Packet) -> u8 {
    let Some((addr, port)) = frontend_of(ctx, pkt) else {
        return 0;
    };
    let entry = NatEntry {
        addr,
        port,
        _pad: [0; 6],
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        created_ns: unsafe { bpf_ktime_get_ns() },
    };
    if NAT.insert(&pkt.key.reversed(), &entry, 0).is_err() {
        return reason::DROP_MAP_FULL;
    }
    if let Some(e) = CT.get_ptr_mut(&pkt.key) {
        // SAFETY: pointer from a successful lookup; a single flag bit is set.
        unsafe { (*e).flags |= ct_flags::DSR };
    }
    0
}

/// On the backend's node: gives a reply of a DSR connection its frontend as source.
#[inline(always)]
pub fn reverse<F: Frame>(ctx: &F, pkt: &mut Packet, tracked: Tracked) -> Result<(), u8> {
    if !tracked.is_reply() || pkt.key.proto != proto::TCP {
        return Ok(());
    }
    // SAFETY: plain read of a value copied out immediately.
    let Some(frontend) = (unsafe { NAT.get(&pkt.key) }).copied() else {
        return Ok(());
    };
    set_addr(ctx, pkt, End::Source, &frontend.addr)?;
    if frontend.port != pkt.key.sport {
        set_port(ctx, pkt, End::Source, frontend.port)?;
    }
    Ok(())
}

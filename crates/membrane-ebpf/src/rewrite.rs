//! Header rewrites with checksum updates (through the kernel's helpers at tc, in place
//! at XDP: see [`crate::frame`]).

use crate::frame::Frame;
use crate::packet::{ETH_HLEN, Packet};
use aya_ebpf::bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR};
use aya_ebpf::helpers::bpf_csum_diff;
use membrane_common::metrics::reason;
use membrane_common::tuple::proto;

const IPV4_CSUM: usize = ETH_HLEN + 10;
const IPV4_TTL: usize = ETH_HLEN + 8;
const IPV6_HOP_LIMIT: usize = ETH_HLEN + 7;

/// Which end of the tuple a rewrite touches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The source address or port.
    Source,
    /// The destination address or port.
    Destination,
}

/// Offset of the L4 checksum, and the extra flags its updates need.
#[inline(always)]
fn l4_csum(pkt: &Packet) -> Option<(usize, u64)> {
    match pkt.key.proto {
        proto::TCP => Some((pkt.l4 + 16, 0)),
        proto::UDP => Some((pkt.l4 + 6, BPF_F_MARK_MANGLED_0 as u64)),
        proto::ICMP | proto::ICMPV6 => Some((pkt.l4 + 2, 0)),
        _ => None,
    }
}

/// Rewrites the source or destination address, fixing the IPv4 header checksum and
/// the L4 checksum's pseudo-header part (ICMPv4 has none).
#[inline(always)]
pub fn set_addr<F: Frame>(ctx: &F, pkt: &mut Packet, end: End, new: &[u8; 16]) -> Result<(), u8> {
    match rewrite_addr(ctx, pkt, end, new) {
        0 => Ok(()),
        code => Err(code),
    }
}

/// [`set_addr`] in a call of its own, returning 0 or the drop reason: a scalar result
/// leaves the return register defined (a `Result` is returned through memory, and the
/// verifier refuses a function that happens to exit with a stack pointer there).
#[inline(never)]
fn rewrite_addr<F: Frame>(ctx: &F, pkt: &mut Packet, end: End, new: &[u8; 16]) -> u8 {
    match write_addr(ctx, pkt, end, new) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

#[inline(always)]
fn write_addr<F: Frame>(ctx: &F, pkt: &mut Packet, end: End, new: &[u8; 16]) -> Result<(), u8> {
    if pkt.is_v4() {
        let off = ETH_HLEN + if end == End::Source { 12 } else { 16 };
        let old: u32 = ctx.load(off)?;
        let new4 = u32::from_ne_bytes([new[0], new[1], new[2], new[3]]);
        ctx.l3_csum_replace(IPV4_CSUM, old as u64, new4 as u64, 4)?;
        if pkt.key.proto != proto::ICMP {
            if let Some((csum, extra)) = l4_csum(pkt) {
                let flags = BPF_F_PSEUDO_HDR as u64 | extra | 4;
                ctx.l4_csum_replace(csum, old as u64, new4 as u64, flags)?;
            }
        }
        ctx.store(off, &new4)?;
    } else {
        let off = ETH_HLEN + if end == End::Source { 8 } else { 24 };
        let mut old: [u32; 4] = ctx.load(off)?;
        let mut new6: [u32; 4] = [0; 4];
        let mut i = 0;
        while i < 4 {
            new6[i] =
                u32::from_ne_bytes([new[i * 4], new[i * 4 + 1], new[i * 4 + 2], new[i * 4 + 3]]);
            i += 1;
        }
        if let Some((csum, extra)) = l4_csum(pkt) {
            // SAFETY: both buffers are 16-byte stack arrays, as the sizes passed say.
            let diff = unsafe { bpf_csum_diff(old.as_mut_ptr(), 16, new6.as_mut_ptr(), 16, 0) };
            if diff < 0 {
                return Err(reason::DROP_REWRITE_FAILED);
            }
            let flags = BPF_F_PSEUDO_HDR as u64 | extra;
            ctx.l4_csum_replace(csum, 0, diff as u64, flags)?;
        }
        ctx.store(off, &new6)?;
    }
    if end == End::Source {
        pkt.key.saddr = *new;
    } else {
        pkt.key.daddr = *new;
    }
    Ok(())
}

/// Rewrites the source or destination port (network byte order). For ICMP echo the
/// identifier is rewritten instead, whichever end is asked for.
#[inline(always)]
pub fn set_port<F: Frame>(ctx: &F, pkt: &mut Packet, end: End, new: u16) -> Result<(), u8> {
    let off = if pkt.is_echo {
        pkt.l4 + 4
    } else if end == End::Source {
        pkt.l4
    } else {
        pkt.l4 + 2
    };
    let old: u16 = ctx.load(off)?;
    if let Some((csum, extra)) = l4_csum(pkt) {
        ctx.l4_csum_replace(csum, old as u64, new as u64, extra | 2)?;
    }
    ctx.store(off, &new)?;
    if pkt.is_echo {
        pkt.key.sport = new;
        pkt.key.dport = new;
    } else if end == End::Source {
        pkt.key.sport = new;
    } else {
        pkt.key.dport = new;
    }
    Ok(())
}

/// Writes the Ethernet source and destination addresses.
#[inline(always)]
pub fn set_macs<F: Frame>(ctx: &F, src: &[u8; 6], dst: &[u8; 6]) -> Result<(), u8> {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(dst);
    macs[6..].copy_from_slice(src);
    ctx.store(0, &macs)
}

/// Decrements the IPv4 TTL or IPv6 hop limit, as a router does before forwarding.
#[inline(always)]
pub fn dec_ttl<F: Frame>(ctx: &F, pkt: &Packet) -> Result<(), u8> {
    if pkt.ttl <= 1 {
        return Err(reason::DROP_TTL_EXCEEDED);
    }
    let ttl = pkt.ttl - 1;
    if pkt.is_v4() {
        // TTL and protocol share one 16-bit checksum word.
        let old = u16::from_ne_bytes([pkt.ttl, pkt.key.proto]);
        let new = u16::from_ne_bytes([ttl, pkt.key.proto]);
        ctx.l3_csum_replace(IPV4_CSUM, old as u64, new as u64, 2)?;
        ctx.store(IPV4_TTL, &ttl)
    } else {
        ctx.store(IPV6_HOP_LIMIT, &ttl)
    }
}

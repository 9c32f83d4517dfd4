//! Refusing a new connection at once instead of letting it time out: the packet is turned,
//! in place, into an ICMP "port unreachable" (IPv4 type 3 code 3, ICMPv6 type 1 code 4)
//! from the address it was sent to back to its sender, quoting its headers as RFC 792 and
//! RFC 4443 ask, and sent back out of the interface it arrived on. The sender's kernel
//! fails a TCP connect or a connected UDP socket with ECONNREFUSED.

use crate::packet::{ETH_HLEN, Packet};
use aya_ebpf::helpers::{bpf_csum_diff, bpf_redirect, bpf_skb_change_tail};
use aya_ebpf::programs::TcContext;
use membrane_common::tuple::proto;

const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const ICMP_HLEN: usize = 8;
/// Bytes of the offending packet's transport header quoted after its IP header.
const QUOTED_L4: usize = 8;
/// The quote of an IPv4 packet: its header and 8 bytes of transport header.
const QUOTE_V4: usize = IPV4_HLEN + QUOTED_L4;
/// The quote of an IPv6 packet: its header and 8 bytes of transport header.
const QUOTE_V6: usize = IPV6_HLEN + QUOTED_L4;

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_PORT_UNREACH: u8 = 3;
const ICMPV6_DEST_UNREACH: u8 = 1;
const ICMPV6_PORT_UNREACH: u8 = 4;
const DEFAULT_TTL: u8 = 64;

/// Folds a one's-complement sum into the 16-bit checksum field value. `bpf_csum_diff`
/// sums the buffer as native-endian words, so the result is stored with native byte order.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The one's-complement sum of `bytes` (a multiple of 4 long), plus `seed`.
#[inline(always)]
fn sum<const N: usize>(bytes: &[u8; N], seed: u32) -> Result<u64, ()> {
    // SAFETY: `bytes` is a valid stack buffer of N bytes; the helper only reads it.
    let s = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            bytes.as_ptr() as *mut u32,
            N as u32,
            seed,
        )
    };
    if s < 0 { Err(()) } else { Ok(s as u64) }
}

/// Swaps the Ethernet addresses so the frame goes back where it came from.
#[inline(always)]
fn swap_macs(ctx: &TcContext) -> Result<(), ()> {
    let eth: [u8; 12] = ctx.load(0).map_err(|_| ())?;
    let mut swapped = [0u8; 12];
    swapped[..6].copy_from_slice(&eth[6..]);
    swapped[6..].copy_from_slice(&eth[..6]);
    ctx.store(0, &swapped, 0).map_err(|_| ())
}

/// Resizes the packet to `len` bytes (Ethernet included).
#[inline(always)]
fn resize(ctx: &TcContext, len: usize) -> Result<(), ()> {
    // SAFETY: the context pointer is the program's own skb.
    let r = unsafe { bpf_skb_change_tail(ctx.skb.skb, len as u32, 0) };
    if r == 0 { Ok(()) } else { Err(()) }
}

/// Rewrites an IPv4 TCP or UDP packet without IP options into the ICMP error.
#[inline(never)]
fn to_icmp4(ctx: &TcContext, pkt: &Packet) -> Result<(), ()> {
    if pkt.l4 != ETH_HLEN + IPV4_HLEN {
        return Err(());
    }
    // IP header, ICMP header, then the quote.
    let mut out = [0u8; IPV4_HLEN + ICMP_HLEN + QUOTE_V4];
    let quote: [u8; QUOTE_V4] = ctx.load(ETH_HLEN).map_err(|_| ())?;
    out[IPV4_HLEN + ICMP_HLEN..].copy_from_slice(&quote);
    out[IPV4_HLEN] = ICMP_DEST_UNREACH;
    out[IPV4_HLEN + 1] = ICMP_PORT_UNREACH;
    let mut icmp = [0u8; ICMP_HLEN + QUOTE_V4];
    icmp.copy_from_slice(&out[IPV4_HLEN..]);
    let csum = fold(sum(&icmp, 0)?).to_ne_bytes();
    out[IPV4_HLEN + 2] = csum[0];
    out[IPV4_HLEN + 3] = csum[1];

    let total = (IPV4_HLEN + ICMP_HLEN + QUOTE_V4) as u16;
    let mut ip = [0u8; IPV4_HLEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = DEFAULT_TTL;
    ip[9] = proto::ICMP;
    // From the address the refused packet was sent to, back to its sender.
    ip[12..16].copy_from_slice(&pkt.key.daddr[..4]);
    ip[16..20].copy_from_slice(&pkt.key.saddr[..4]);
    let csum = fold(sum(&ip, 0)?).to_ne_bytes();
    ip[10] = csum[0];
    ip[11] = csum[1];
    out[..IPV4_HLEN].copy_from_slice(&ip);

    resize(ctx, ETH_HLEN + out.len())?;
    ctx.store(ETH_HLEN, &out, 0).map_err(|_| ())
}

/// Rewrites an IPv6 TCP or UDP packet without extension headers into the ICMPv6 error.
#[inline(never)]
fn to_icmp6(ctx: &TcContext, pkt: &Packet) -> Result<(), ()> {
    if pkt.l4 != ETH_HLEN + IPV6_HLEN {
        return Err(());
    }
    let mut icmp = [0u8; ICMP_HLEN + QUOTE_V6];
    let quote: [u8; QUOTE_V6] = ctx.load(ETH_HLEN).map_err(|_| ())?;
    icmp[ICMP_HLEN..].copy_from_slice(&quote);
    icmp[0] = ICMPV6_DEST_UNREACH;
    icmp[1] = ICMPV6_PORT_UNREACH;
    let payload = (ICMP_HLEN + QUOTE_V6) as u32;

    // The pseudo-header: source, destination, upper-layer length, next header.
    let mut pseudo = [0u8; 40];
    pseudo[..16].copy_from_slice(&pkt.key.daddr);
    pseudo[16..32].copy_from_slice(&pkt.key.saddr);
    pseudo[32..36].copy_from_slice(&payload.to_be_bytes());
    pseudo[39] = proto::ICMPV6;
    let partial = sum(&pseudo, 0)?;
    let csum = fold(sum(&icmp, partial as u32)?).to_ne_bytes();
    icmp[2] = csum[0];
    icmp[3] = csum[1];

    let mut ip = [0u8; IPV6_HLEN];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    ip[6] = proto::ICMPV6;
    ip[7] = DEFAULT_TTL;
    ip[8..24].copy_from_slice(&pkt.key.daddr);
    ip[24..40].copy_from_slice(&pkt.key.saddr);

    resize(ctx, ETH_HLEN + IPV6_HLEN + icmp.len())?;
    ctx.store(ETH_HLEN, &ip, 0).map_err(|_| ())?;
    ctx.store(ETH_HLEN + IPV6_HLEN, &icmp, 0).map_err(|_| ())
}

/// Turns `pkt`, which arrived on `ifindex`, into a port-unreachable error to its sender
/// and returns the redirect that sends it back out of that interface. `Err` when the
/// packet cannot be turned (IP options, extension headers, a failed resize): the caller
/// then drops it as before.
#[inline(always)]
pub fn port_unreachable(ctx: &TcContext, pkt: &Packet, ifindex: u32) -> Result<i32, ()> {
    if pkt.key.proto != proto::TCP && pkt.key.proto != proto::UDP {
        return Err(());
    }
    if pkt.is_v4() {
        to_icmp4(ctx, pkt)?;
    } else {
        to_icmp6(ctx, pkt)?;
    }
    swap_macs(ctx)?;
    // Egress of the interface the packet came in on: into the pod for a pod's veth, back
    // onto the wire for the uplink.
    // SAFETY: bpf_redirect has no preconditions.
    Ok(unsafe { bpf_redirect(ifindex, 0) } as i32)
}

//! Parsing Ethernet + IPv4/IPv6 + TCP/UDP/ICMP headers into a [`Packet`].

use aya_ebpf::programs::TcContext;
use membrane_common::metrics::reason;
use membrane_common::tuple::proto;
use membrane_common::{CtKey, Family};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;

/// ICMPv4 echo request / reply types.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMPv4 echo reply type.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo request type.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply type.
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// TCP flag bits (byte 13 of the header).
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
}

/// What the programs need to know about a packet.
pub struct Packet {
    /// Offset of the L4 header.
    pub l4: usize,
    /// The packet's 5-tuple (ICMP echo: the identifier in both ports).
    pub key: CtKey,
    /// TCP flags, 0 for other protocols.
    pub tcp_flags: u8,
    /// ICMP type, 0 for other protocols.
    pub icmp_type: u8,
    /// True for an ICMP or ICMPv6 echo request or reply.
    pub is_echo: bool,
    /// True for an IPv4 fragment (any but an unfragmented packet).
    pub is_fragment: bool,
    /// IPv4 total length (for FIB lookups).
    pub tot_len: u16,
}

impl Packet {
    /// True for IPv4.
    #[inline(always)]
    pub fn is_v4(&self) -> bool {
        self.key.family == Family::V4
    }
}

/// Outcome of parsing.
pub enum Parsed {
    /// An IPv4 or IPv6 packet the datapath handles.
    Ip(Packet),
    /// Not IP (ARP, say), or an IPv6 packet with extension headers before L4:
    /// handed to the stack untouched.
    Other,
}

/// Parses the packet in `ctx`; `Err` carries a drop reason.
#[inline(always)]
pub fn parse(ctx: &TcContext) -> Result<Parsed, u8> {
    let ethertype = u16::from_be(ctx.load::<u16>(12).map_err(|_| reason::DROP_INVALID_PACKET)?);
    let l3 = ETH_HLEN;
    let mut key = CtKey {
        saddr: [0; 16],
        daddr: [0; 16],
        sport: 0,
        dport: 0,
        proto: 0,
        family: 0,
        _pad: [0; 2],
    };
    let l4;
    let mut is_fragment = false;
    let mut tot_len = 0;
    match ethertype {
        ETH_P_IP => {
            let vihl = ctx.load::<u8>(l3).map_err(|_| reason::DROP_INVALID_PACKET)?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(reason::DROP_INVALID_PACKET);
            }
            tot_len = u16::from_be(ctx.load::<u16>(l3 + 2).map_err(|_| reason::DROP_INVALID_PACKET)?);
            let frag = u16::from_be(ctx.load::<u16>(l3 + 6).map_err(|_| reason::DROP_INVALID_PACKET)?);
            // More-fragments flag or a non-zero offset.
            is_fragment = frag & 0x3fff != 0;
            key.proto = ctx.load::<u8>(l3 + 9).map_err(|_| reason::DROP_INVALID_PACKET)?;
            let s: [u8; 4] = ctx.load(l3 + 12).map_err(|_| reason::DROP_INVALID_PACKET)?;
            let d: [u8; 4] = ctx.load(l3 + 16).map_err(|_| reason::DROP_INVALID_PACKET)?;
            key.saddr[..4].copy_from_slice(&s);
            key.daddr[..4].copy_from_slice(&d);
            key.family = Family::V4;
            l4 = l3 + ihl;
        }
        ETH_P_IPV6 => {
            key.proto = ctx.load::<u8>(l3 + 6).map_err(|_| reason::DROP_INVALID_PACKET)?;
            key.saddr = ctx.load(l3 + 8).map_err(|_| reason::DROP_INVALID_PACKET)?;
            key.daddr = ctx.load(l3 + 24).map_err(|_| reason::DROP_INVALID_PACKET)?;
            key.family = Family::V6;
            l4 = l3 + IPV6_HLEN;
        }
        _ => return Ok(Parsed::Other),
    }

    let mut pkt = Packet {
        l4,
        key,
        tcp_flags: 0,
        icmp_type: 0,
        is_echo: false,
        is_fragment,
        tot_len,
    };
    if pkt.is_fragment {
        return Ok(Parsed::Ip(pkt));
    }
    match pkt.key.proto {
        proto::TCP | proto::UDP => {
            pkt.key.sport = ctx.load::<u16>(l4).map_err(|_| reason::DROP_INVALID_PACKET)?;
            pkt.key.dport = ctx.load::<u16>(l4 + 2).map_err(|_| reason::DROP_INVALID_PACKET)?;
            if pkt.key.proto == proto::TCP {
                pkt.tcp_flags = ctx.load::<u8>(l4 + 13).map_err(|_| reason::DROP_INVALID_PACKET)?;
            }
        }
        proto::ICMP | proto::ICMPV6 => {
            if (pkt.key.proto == proto::ICMP) != pkt.is_v4() {
                return Err(reason::DROP_INVALID_PACKET);
            }
            pkt.icmp_type = ctx.load::<u8>(l4).map_err(|_| reason::DROP_INVALID_PACKET)?;
            pkt.is_echo = matches!(
                (pkt.key.proto, pkt.icmp_type),
                (proto::ICMP, ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY)
                    | (proto::ICMPV6, ICMPV6_ECHO_REQUEST | ICMPV6_ECHO_REPLY)
            );
            if pkt.is_echo {
                let id = ctx.load::<u16>(l4 + 4).map_err(|_| reason::DROP_INVALID_PACKET)?;
                pkt.key.sport = id;
                pkt.key.dport = id;
            }
        }
        _ if !pkt.is_v4() => return Ok(Parsed::Other),
        _ => {}
    }
    Ok(Parsed::Ip(pkt))
}

/// True when `addr` (16-byte form) lies in `prefix`/`len`.
#[inline(always)]
pub fn in_prefix(addr: &[u8; 16], prefix: &[u8; 16], len: u8) -> bool {
    if len == 0 {
        return false;
    }
    let full = (len / 8) as usize;
    let mut i = 0;
    while i < 16 {
        if i < full {
            if addr[i] != prefix[i] {
                return false;
            }
        } else if i == full {
            let bits = len % 8;
            if bits != 0 {
                let mask = 0xffu8 << (8 - bits);
                if addr[i] & mask != prefix[i] & mask {
                    return false;
                }
            }
            return true;
        }
        i += 1;
    }
    true
}

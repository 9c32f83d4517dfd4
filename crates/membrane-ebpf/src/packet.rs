//! Parsing Ethernet + IPv4/IPv6 + TCP/UDP/ICMP headers into a [`Packet`].

use crate::frame::Frame;
use membrane_common::metrics::reason;
use membrane_common::tuple::proto;
use membrane_common::{CtKey, Family};

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HLEN: usize = 40;
/// IPv6 next-header value of a Destination Options header.
const IPPROTO_DSTOPTS: u8 = 60;
/// The longest Destination Options header the parser steps over.
const DSTOPTS_MAX: usize = 32;

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
    /// ACK.
    pub const ACK: u8 = 0x10;
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
    /// ICMP code, 0 for other protocols.
    pub icmp_code: u8,
    /// IPv4 TTL or IPv6 hop limit as received.
    pub ttl: u8,
    /// True for an ICMP or ICMPv6 echo request or reply.
    pub is_echo: bool,
    /// True for an IPv4 fragment (any but an unfragmented packet).
    pub is_fragment: bool,
    /// IPv4 total length (for FIB lookups).
    pub tot_len: u16,
}

impl Packet {
    /// A packet with every field zero, to be filled by a parse.
    pub const EMPTY: Packet = Packet {
        l4: 0,
        key: CtKey {
            saddr: [0; 16],
            daddr: [0; 16],
            sport: 0,
            dport: 0,
            proto: 0,
            family: 0,
            _pad: [0; 2],
        },
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        ttl: 0,
        is_echo: false,
        is_fragment: false,
        tot_len: 0,
    };

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

/// Bytes of headers the parser reads directly: Ethernet, an IPv4 header with options
/// or an IPv6 header, and the first 20 bytes of L4.
const HEADERS_MAX: u32 = (ETH_HLEN + 60 + 20) as u32;

/// A pointer to a `T` at `offset` in the packet's linear data, if it lies inside.
#[inline(always)]
fn ptr_at<T, F: Frame>(ctx: &F, offset: usize) -> Result<*const T, u8> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(reason::DROP_INVALID_PACKET);
    }
    Ok((start + offset) as *const T)
}

/// Reads a `T` at `offset` with direct packet access (no helper call).
#[inline(always)]
fn read<T: Copy, F: Frame>(ctx: &F, offset: usize) -> Result<T, u8> {
    // SAFETY: ptr_at checked that the whole `T` lies within [data, data_end).
    ptr_at::<T, F>(ctx, offset).map(|p| unsafe { core::ptr::read_unaligned(p) })
}

/// Parses the packet in `ctx`; `Err` carries a drop reason.
#[inline(always)]
pub fn parse<F: Frame>(ctx: &F) -> Result<Parsed, u8> {
    // Headers of locally generated traffic may not be linear; pull them in.
    ctx.pull(HEADERS_MAX);
    // Whole headers are read at once: one bounds check each, and no single-byte reads
    // (LLVM turns those into comparisons the verifier cannot use).
    let eth: [u8; ETH_HLEN] = read(ctx, 0)?;
    let ethertype = u16::from_be_bytes([eth[12], eth[13]]);
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
    let mut l4;
    let ttl;
    let mut is_fragment = false;
    let mut tot_len = 0;
    match ethertype {
        ETH_P_IP => {
            let ip: [u8; 20] = read(ctx, l3)?;
            let ihl = ((ip[0] & 0x0f) as usize) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 {
                return Err(reason::DROP_INVALID_PACKET);
            }
            tot_len = u16::from_be_bytes([ip[2], ip[3]]);
            // More-fragments flag or a non-zero offset.
            is_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
            ttl = ip[8];
            key.proto = ip[9];
            key.saddr[..4].copy_from_slice(&ip[12..16]);
            key.daddr[..4].copy_from_slice(&ip[16..20]);
            key.family = Family::V4;
            l4 = l3 + ihl;
        }
        ETH_P_IPV6 => {
            let ip: [u8; IPV6_HLEN] = read(ctx, l3)?;
            key.proto = ip[6];
            ttl = ip[7];
            key.saddr.copy_from_slice(&ip[8..24]);
            key.daddr.copy_from_slice(&ip[24..40]);
            key.family = Family::V6;
            l4 = l3 + IPV6_HLEN;
            if key.proto == IPPROTO_DSTOPTS {
                // One short Destination Options header (direct server return names its
                // frontend there) is stepped over; longer or further ones go to the stack.
                let ext: [u8; 2] = read(ctx, l4)?;
                let len = (usize::from(ext[1]) + 1) * 8;
                if len > DSTOPTS_MAX {
                    return Ok(Parsed::Other);
                }
                key.proto = ext[0];
                l4 += len;
            }
        }
        _ => return Ok(Parsed::Other),
    }

    let mut pkt = Packet {
        l4,
        key,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        ttl,
        is_echo: false,
        is_fragment,
        tot_len,
    };
    if pkt.is_fragment {
        return Ok(Parsed::Ip(pkt));
    }
    match pkt.key.proto {
        proto::TCP => {
            let tcp: [u8; 14] = read(ctx, l4)?;
            pkt.key.sport = u16::from_ne_bytes([tcp[0], tcp[1]]);
            pkt.key.dport = u16::from_ne_bytes([tcp[2], tcp[3]]);
            pkt.tcp_flags = tcp[13];
        }
        // SCTP's common header starts with the ports as UDP's does.
        proto::UDP | proto::SCTP => {
            let udp: [u8; 8] = read(ctx, l4)?;
            pkt.key.sport = u16::from_ne_bytes([udp[0], udp[1]]);
            pkt.key.dport = u16::from_ne_bytes([udp[2], udp[3]]);
        }
        proto::ICMP | proto::ICMPV6 => {
            if (pkt.key.proto == proto::ICMP) != pkt.is_v4() {
                return Err(reason::DROP_INVALID_PACKET);
            }
            let icmp: [u8; 8] = read(ctx, l4)?;
            pkt.icmp_type = icmp[0];
            pkt.icmp_code = icmp[1];
            pkt.is_echo = matches!(
                (pkt.key.proto, pkt.icmp_type),
                (proto::ICMP, ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY)
                    | (proto::ICMPV6, ICMPV6_ECHO_REQUEST | ICMPV6_ECHO_REPLY)
            );
            if pkt.is_echo {
                let id = u16::from_ne_bytes([icmp[4], icmp[5]]);
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

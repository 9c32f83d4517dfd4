//! XDP acceleration of Services reached from outside the cluster (NodePort,
//! LoadBalancer, external IPs) on the node's uplink.
//!
//! When the connection's backend is on another node and is reached back out of the
//! interface the request came in on, the request is translated (DNAT to the backend,
//! SNAT to this node, as the tc path does) and sent straight back out with `XDP_TX`
//! before the kernel allocates an skb; the backend's replies, which come back to this
//! node because of the SNAT, are translated back and sent out to the client the same
//! way. Everything else (local backends, tunnel mode, a Service without backends, a
//! neighbour not yet resolved, the node's own traffic) passes to the tc programs
//! untouched, so XDP only ever shortens a path the tc programs would take anyway: both
//! share the conntrack, NAT and Service maps. With direct server return (see
//! [`crate::dsr`]) the SYN goes through tc, which adds the DSR option, and the
//! connection's later packets leave here without source NAT.

use crate::ct::{Origin, track};
use crate::dsr;
use crate::events;
use crate::forward::{Route, endpoint, lookup_to};
use crate::frame::Frame;
use crate::maps::NAT;
use crate::metrics::count;
use crate::nat::{reverse_snat, snat};
use crate::packet::{Packet, Parsed, parse, tcp_flags};
use crate::programs::config;
use crate::rewrite::{End, dec_ttl, set_addr, set_macs, set_port};
use crate::service;
use crate::tunnel::ipcache;
use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS, XDP_TX};
use aya_ebpf::macros::xdp;
use aya_ebpf::programs::XdpContext;
use membrane_common::DatapathConfig;
use membrane_common::identity;
use membrane_common::metrics::{direction, reason};

/// What the program did with a packet. (A fieldless enum, not an `Option` of a reason:
/// every bit of the result is defined, which the verifier needs to follow it.)
#[derive(Clone, Copy)]
enum Outcome {
    /// Not accelerated: the tc program takes it, untouched.
    Pass,
    /// A request translated and sent back out.
    Service,
    /// A reply translated back and sent back out.
    ReverseNat,
}

/// XDP on the uplink (see the module's documentation).
#[xdp]
pub fn xdp_from_netdev(ctx: XdpContext) -> u32 {
    events::reset();
    let (action, code) = match try_xdp_from_netdev(&ctx) {
        Ok(Outcome::Service) => (XDP_TX, reason::XDP_SERVICE),
        Ok(Outcome::ReverseNat) => (XDP_TX, reason::XDP_REVERSE_NAT),
        // Not ours: the tc program counts and reports it.
        Ok(Outcome::Pass) => return XDP_PASS,
        Err(drop) => (XDP_DROP, drop),
    };
    report(code, Frame::len(&ctx));
    action
}

/// Counts and reports what the program did, in a call of its own: its temporaries then
/// do not sit on the stack under the Service code's calls (the verifier allows 512
/// bytes in all).
#[inline(never)]
fn report(code: u8, len: u32) {
    count(code, direction::INGRESS, len);
    events::submit(code, direction::INGRESS, config().map_or(0, |c| c.flags));
}

#[inline(always)]
fn try_xdp_from_netdev(ctx: &XdpContext) -> Result<Outcome, u8> {
    let mut pkt = Packet::EMPTY;
    if !parse_into(ctx, &mut pkt) {
        return Ok(Outcome::Pass);
    }
    let Ok(cfg) = config() else {
        return Ok(Outcome::Pass);
    };
    // SAFETY: ctx.ctx is the program's context pointer, valid for the whole run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if pkt.key.daddr == *node_address(&pkt, cfg) {
        // A reply to a connection translated here, or a request to a node port.
        if let accelerated @ (Outcome::Service | Outcome::ReverseNat) =
            reply(ctx, &mut pkt, cfg, ifindex)?
        {
            return Ok(accelerated);
        }
    }
    request(ctx, &mut pkt, cfg, ifindex)
}

/// Parses the frame into `pkt`: true for an unfragmented IP packet. A call of its own
/// (writing through a pointer: a BPF function cannot return a structure), so that the
/// parser's temporaries leave the stack before the Service code's calls need it.
#[inline(never)]
fn parse_into(ctx: &XdpContext, pkt: &mut Packet) -> bool {
    match parse(ctx) {
        Ok(Parsed::Ip(parsed)) if !parsed.is_fragment => {
            *pkt = parsed;
            true
        }
        _ => false,
    }
}

/// This node's address of `pkt`'s family.
#[inline(always)]
fn node_address<'a>(pkt: &Packet, cfg: &'a DatapathConfig) -> &'a [u8; 16] {
    if pkt.is_v4() {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    }
}

/// The next hop's MACs when `daddr` is reached back out of `ifindex` with a resolved
/// neighbour; `None` for any other route.
#[inline(always)]
fn same_way_out(
    ctx: &XdpContext,
    pkt: &Packet,
    daddr: &[u8; 16],
    ifindex: u32,
) -> Option<([u8; 6], [u8; 6])> {
    match lookup_to(ctx, pkt, daddr, ifindex) {
        Route::Out {
            ifindex: out,
            macs: Some(macs),
        } if out == ifindex => Some(macs),
        _ => None,
    }
}

/// A request to a Service frontend whose backend is on another node, back out the way
/// it came: DNAT, conntrack, SNAT, out. The translation is done first (the Service
/// code is shared with tc, and pins the backend in conntrack); when the backend turns
/// out to be local or routed elsewhere, the destination is put back and tc takes the
/// packet, finding the same pinned backend.
#[inline(always)]
fn request(
    ctx: &XdpContext,
    pkt: &mut Packet,
    cfg: &DatapathConfig,
    ifindex: u32,
) -> Result<Outcome, u8> {
    let (frontend, frontend_port) = (pkt.key.daddr, pkt.key.dport);
    let rev_nat_index = match service::dnat(ctx, pkt, cfg, false) {
        Ok(0) => return Ok(Outcome::Pass),
        Ok(index) => index,
        // A Service without backends: tc refuses it with an ICMP error.
        Err(reason::DROP_NO_BACKEND) => return Ok(Outcome::Pass),
        Err(drop) => return Err(drop),
    };
    // With direct server return the SYN gets its option at tc (XDP cannot grow the
    // header in place); the connection's other packets go out here untranslated at
    // the source.
    let dsr = dsr::applies(pkt, cfg);
    let syn = pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
    let out = match endpoint(&pkt.key.daddr, pkt.key.family) {
        Some(_) => None,
        None if dsr && syn => None,
        None => same_way_out(ctx, pkt, &pkt.key.daddr, ifindex),
    };
    let Some((smac, dmac)) = out else {
        set_addr(ctx, pkt, End::Destination, &frontend)?;
        if pkt.key.dport != frontend_port {
            set_port(ctx, pkt, End::Destination, frontend_port)?;
        }
        return Ok(Outcome::Pass);
    };
    events::begin(pkt, Frame::len(ctx), ifindex);
    events::translated(pkt, rev_nat_index);
    let source = ipcache(&pkt.key.saddr, pkt.key.family).map_or(identity::WORLD, |e| e.identity);
    events::source(0, source);
    let tracked = track(
        pkt,
        Frame::len(ctx),
        Some(&Origin {
            ifindex: 0,
            identity: source,
            rev_nat_index,
        }),
    )?;
    events::tracked(tracked);
    if !dsr {
        snat(ctx, pkt, cfg, node_address(pkt, cfg))?;
    }
    dec_ttl(ctx, pkt)?;
    set_macs(ctx, &smac, &dmac)?;
    Ok(Outcome::Service)
}

/// A reply to this node's address on a connection translated here, whose client is
/// reached back out the way the reply came: reverse SNAT, conntrack, reverse DNAT, out.
#[inline(never)]
fn reply(
    ctx: &XdpContext,
    pkt: &mut Packet,
    cfg: &DatapathConfig,
    ifindex: u32,
) -> Result<Outcome, u8> {
    // SAFETY: plain read of a value copied out immediately.
    let Some(back) = (unsafe { NAT.get(&pkt.key) }).copied() else {
        return Ok(Outcome::Pass);
    };
    let Some((smac, dmac)) = same_way_out(ctx, pkt, &back.addr, ifindex) else {
        return Ok(Outcome::Pass);
    };
    events::begin(pkt, Frame::len(ctx), ifindex);
    reverse_snat(ctx, pkt)?;
    let tracked = track(pkt, Frame::len(ctx), None)?;
    events::tracked(tracked);
    if tracked.rev_nat_index() == 0 {
        // Masqueraded traffic of a pod on this node is delivered by tc, never here
        // (its route is the pod's veth); a translated connection always has an index.
        return Err(reason::DROP_BACKEND_MISSING);
    }
    service::reverse(ctx, pkt, tracked, cfg)?;
    dec_ttl(ctx, pkt)?;
    set_macs(ctx, &smac, &dmac)?;
    Ok(Outcome::ReverseNat)
}

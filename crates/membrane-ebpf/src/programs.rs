//! The program entry points: thin wrappers that turn every `Err` into a counted drop.

use crate::ct::{Origin, track};
use crate::dsr;
use crate::events;
use crate::forward::{Route, endpoint, lookup, redirect_out, to_endpoint};
use crate::maps::CONFIG;
use crate::metrics::count;
use crate::nat::{reverse_snat, snat};
use crate::packet::{Packet, Parsed, in_prefix, parse};
use crate::policy;
use crate::reject;
use crate::rewrite::dec_ttl;
use crate::service;
use crate::tunnel::{identity_from_vni, ipcache, set_tunnel_key, to_overlay};
use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT};
use aya_ebpf::macros::classifier;
use aya_ebpf::programs::TcContext;
use membrane_common::DatapathConfig;
use membrane_common::config::{config_flags, routing_mode};
use membrane_common::identity;
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::proto;

/// What a program decided, before it becomes a tc verdict.
struct Verdict {
    /// The tc action to return.
    action: i32,
    /// The reason counted in the metrics map.
    reason: u8,
}

#[inline(always)]
fn finish(ctx: &TcContext, dir: u8, res: Result<Verdict, u8>) -> i32 {
    let (action, code) = match res {
        Ok(v) => (v.action, v.reason),
        Err(drop) => (TC_ACT_SHOT as i32, drop),
    };
    count(code, dir, ctx.len());
    events::submit(code, dir, CONFIG.get(0).map_or(0, |c| c.flags));
    action
}

#[inline(always)]
fn ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: ctx.skb.skb is the program's context pointer, valid for the whole run.
    unsafe { (*ctx.skb.skb).ifindex }
}

/// The datapath's configuration, once the agent has written it.
#[inline(always)]
pub fn config() -> Result<&'static DatapathConfig, u8> {
    match CONFIG.get(0) {
        Some(c) if c.flags & config_flags::VALID != 0 => Ok(c),
        _ => Err(reason::DROP_NO_CONFIG),
    }
}

/// `skb->pkt_type` of a frame addressed to this host.
const PACKET_HOST: u32 = 0;

const PASS: Verdict = Verdict {
    action: TC_ACT_OK as i32,
    reason: reason::TO_STACK,
};

/// A new connection to a Service without a ready backend: refused at once with an ICMP
/// port unreachable sent back where it came from (dropped when the packet cannot carry
/// one), counted and reported as a drop for that reason either way.
#[inline(always)]
fn refuse(ctx: &TcContext, pkt: &Packet, ifindex: u32) -> Result<Verdict, u8> {
    match reject::port_unreachable(ctx, pkt, ifindex) {
        Ok(action) => Ok(Verdict {
            action,
            reason: reason::DROP_NO_BACKEND,
        }),
        Err(()) => Err(reason::DROP_NO_BACKEND),
    }
}

/// tc ingress on a pod's host-side veth: traffic leaving the pod.
#[classifier]
pub fn from_container(ctx: TcContext) -> i32 {
    events::reset();
    let res = try_from_container(&ctx);
    finish(&ctx, direction::EGRESS, res)
}

#[inline(always)]
fn try_from_container(ctx: &TcContext) -> Result<Verdict, u8> {
    let mut pkt = match parse(ctx)? {
        Parsed::Ip(pkt) => pkt,
        Parsed::Other => return Ok(PASS),
    };
    let cfg = config()?;
    let ifindex = ifindex(ctx);
    // IPv6 link-local and multicast (neighbour discovery, router solicitations) stay
    // between the pod and its host-side veth.
    if !pkt.is_v4() && (pkt.key.saddr[0] == 0xfe || pkt.key.daddr[0] == 0xff) {
        return Ok(PASS);
    }
    events::begin(&pkt, ctx.len(), ifindex);
    let src = match endpoint(&pkt.key.saddr, pkt.key.family) {
        Some(src) if src.ifindex == ifindex => src,
        _ => return Err(reason::DROP_INVALID_SOURCE),
    };
    events::source(src.endpoint_id, src.identity);
    if pkt.is_fragment {
        // Fragments carry no ports: only same-node delivery by address is possible.
        return match endpoint(&pkt.key.daddr, pkt.key.family) {
            Some(ep) => Ok(Verdict {
                action: to_endpoint(ctx, &pkt, ep)?,
                reason: reason::FORWARD_LOCAL,
            }),
            None => Err(reason::DROP_FRAGMENT),
        };
    }
    let rev_nat_index = match service::dnat(ctx, &mut pkt, cfg, true) {
        Err(reason::DROP_NO_BACKEND) => return refuse(ctx, &pkt, ifindex),
        other => other?,
    };
    events::translated(&pkt, rev_nat_index);
    let tracked = track(
        &pkt,
        ctx.len(),
        Some(&Origin {
            ifindex,
            identity: src.identity,
            rev_nat_index,
        }),
    )?;
    events::tracked(tracked);
    service::reverse(ctx, &mut pkt, tracked, cfg)?;
    dsr::reverse(ctx, &mut pkt, tracked)?;
    let dst = endpoint(&pkt.key.daddr, pkt.key.family);
    if tracked.is_new() {
        // The sender's egress policy, then (same node) the receiver's ingress policy.
        let peer = match dst {
            Some(ep) => ep.identity,
            None => {
                let peer =
                    ipcache(&pkt.key.daddr, pkt.key.family).map_or(identity::WORLD, |e| e.identity);
                events::destination(0, peer);
                peer
            }
        };
        policy::enforce(&pkt, src, direction::EGRESS, peer)?;
        if let Some(ep) = dst {
            policy::enforce(&pkt, ep, direction::INGRESS, src.identity)?;
        }
    }
    if let Some(ep) = dst {
        events::destination(ep.endpoint_id, ep.identity);
        return Ok(Verdict {
            action: to_endpoint(ctx, &pkt, ep)?,
            reason: reason::FORWARD_LOCAL,
        });
    }
    forward_off_node(
        ctx,
        &mut pkt,
        cfg,
        ifindex,
        src.identity,
        !tracked.is_reply(),
    )
}

/// Sends a packet whose destination is not on this node on its way: through the tunnel
/// to the node hosting it (tunnel mode), or by the FIB, masquerading it when it leaves
/// the cluster through the masquerade device and `may_masquerade` (never for replies,
/// whose source was already translated back to what the peer expects).
#[inline(always)]
fn forward_off_node(
    ctx: &TcContext,
    pkt: &mut Packet,
    cfg: &DatapathConfig,
    ifindex: u32,
    identity: u32,
    may_masquerade: bool,
) -> Result<Verdict, u8> {
    if cfg.routing_mode == routing_mode::TUNNEL {
        if let Some(remote) = ipcache(&pkt.key.daddr, pkt.key.family) {
            if remote.tunnel_family != 0 {
                dec_ttl(ctx, pkt)?;
                let action = to_overlay(ctx, remote, identity, cfg.tunnel_ifindex)?;
                return Ok(Verdict {
                    action,
                    reason: reason::TO_OVERLAY,
                });
            }
        }
    }
    match lookup(ctx, pkt, ifindex) {
        Route::Local | Route::None => Ok(PASS),
        Route::Out { ifindex: out, macs } => {
            if may_masquerade && out == cfg.masq_ifindex && wants_masquerade(pkt, cfg) {
                masquerade(ctx, pkt, cfg)?;
                Ok(Verdict {
                    action: redirect_out(ctx, pkt, out, macs)?,
                    reason: reason::MASQUERADE,
                })
            } else {
                Ok(Verdict {
                    action: redirect_out(ctx, pkt, out, macs)?,
                    reason: reason::FORWARD_FIB,
                })
            }
        }
    }
}

/// Source-NATs a packet leaving through the masquerade device.
#[inline(always)]
fn masquerade(ctx: &TcContext, pkt: &mut Packet, cfg: &DatapathConfig) -> Result<(), u8> {
    if !pkt.is_echo && pkt.key.proto != proto::TCP && pkt.key.proto != proto::UDP {
        return Err(reason::DROP_NAT_UNSUPPORTED);
    }
    let node = if pkt.is_v4() {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    };
    snat(ctx, pkt, cfg, node)
}

#[inline(always)]
fn wants_masquerade(pkt: &Packet, cfg: &DatapathConfig) -> bool {
    if pkt.is_v4() {
        cfg.flags & config_flags::MASQUERADE_V4 != 0
            && !in_prefix(&pkt.key.daddr, &cfg.non_masq_ipv4, cfg.non_masq_ipv4_len)
    } else {
        cfg.flags & config_flags::MASQUERADE_V6 != 0
            && !in_prefix(&pkt.key.daddr, &cfg.non_masq_ipv6, cfg.non_masq_ipv6_len)
    }
}

/// tc ingress on the node's uplink: replies to masqueraded connections are translated
/// back and delivered to their pod; packets for a local pod (native routing from another
/// node) are delivered to it; everything else goes to the stack.
#[classifier]
pub fn from_netdev(ctx: TcContext) -> i32 {
    events::reset();
    let res = try_from_netdev(&ctx);
    finish(&ctx, direction::INGRESS, res)
}

#[inline(always)]
fn try_from_netdev(ctx: &TcContext) -> Result<Verdict, u8> {
    let mut pkt = match parse(ctx) {
        Ok(Parsed::Ip(pkt)) if !pkt.is_fragment => pkt,
        // Whatever this datapath does not own is the stack's business, malformed or not.
        _ => return Ok(PASS),
    };
    let cfg = config()?;
    let ifindex = ifindex(ctx);
    let node = if pkt.is_v4() {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    };
    events::begin(&pkt, ctx.len(), ifindex);
    if pkt.key.daddr == *node && reverse_snat(ctx, &mut pkt)? {
        // A reply to a masqueraded connection, or to a Service connection this node
        // source-NATed towards a backend on another node.
        let tracked = track(&pkt, ctx.len(), None)?;
        events::tracked(tracked);
        service::reverse(ctx, &mut pkt, tracked, cfg)?;
        return match endpoint(&pkt.key.daddr, pkt.key.family) {
            Some(ep) => Ok(Verdict {
                action: to_endpoint(ctx, &pkt, ep)?,
                reason: reason::REVERSE_NAT,
            }),
            None => forward_off_node(ctx, &mut pkt, cfg, ifindex, identity::HOST, false),
        };
    }
    // NodePort, LoadBalancer and external IPs: a Service frontend reached from outside.
    let rev_nat_index = match service::dnat(ctx, &mut pkt, cfg, false) {
        Err(reason::DROP_NO_BACKEND) => return refuse(ctx, &pkt, ifindex),
        other => other?,
    };
    if rev_nat_index != 0 {
        events::translated(&pkt, rev_nat_index);
        let identity =
            ipcache(&pkt.key.saddr, pkt.key.family).map_or(identity::WORLD, |e| e.identity);
        events::source(0, identity);
        let tracked = track(
            &pkt,
            ctx.len(),
            Some(&Origin {
                ifindex: 0,
                identity,
                rev_nat_index,
            }),
        )?;
        events::tracked(tracked);
        if let Some(ep) = endpoint(&pkt.key.daddr, pkt.key.family) {
            events::destination(ep.endpoint_id, ep.identity);
            if tracked.is_new() {
                policy::enforce(&pkt, ep, direction::INGRESS, identity)?;
            }
            return Ok(Verdict {
                action: to_endpoint(ctx, &pkt, ep)?,
                reason: reason::SERVICE_EXTERNAL,
            });
        }
        if dsr::applies(&pkt, cfg) {
            // The backend answers the client itself; the SYN names the frontend.
            match dsr::add_option(ctx, &mut pkt, rev_nat_index, cfg) {
                0 => {}
                code => return Err(code),
            }
        } else {
            // The backend is on another node: its reply must come back through us.
            snat(ctx, &mut pkt, cfg, node)?;
        }
        return forward_off_node(ctx, &mut pkt, cfg, ifindex, identity::REMOTE_NODE, false);
    }
    let Some(ep) = endpoint(&pkt.key.daddr, pkt.key.family) else {
        // Traffic for the node itself: the stack's business, not a flow of ours.
        events::reset();
        return Ok(PASS);
    };
    let identity = ipcache(&pkt.key.saddr, pkt.key.family).map_or(identity::WORLD, |e| e.identity);
    events::source(0, identity);
    events::destination(ep.endpoint_id, ep.identity);
    let tracked = track(
        &pkt,
        ctx.len(),
        Some(&Origin {
            ifindex: 0,
            identity,
            rev_nat_index: 0,
        }),
    )?;
    events::tracked(tracked);
    if tracked.is_new() {
        policy::enforce(&pkt, ep, direction::INGRESS, identity)?;
        // A direct-server-return request another node balanced to this backend.
        match dsr::remember(ctx, &pkt) {
            0 => {}
            code => return Err(code),
        }
    }
    // A remote backend's reply to a local client of a Service.
    service::reverse(ctx, &mut pkt, tracked, cfg)?;
    Ok(Verdict {
        action: to_endpoint(ctx, &pkt, ep)?,
        reason: reason::FROM_NETWORK,
    })
}

/// tc egress on the tunnel device. Pods' packets arrive here already carrying their
/// tunnel metadata (set before the redirect) and pass untouched. The node's own packets
/// to pods of other nodes (routed to the tunnel device by the agent) get it here: the
/// node hosting the destination, and the remote-node identity, which is what the node
/// is to the receiver.
#[classifier]
pub fn host_to_overlay(ctx: TcContext) -> i32 {
    if identity_from_vni(&ctx).is_ok() {
        return TC_ACT_OK as i32;
    }
    events::reset();
    let res = try_host_to_overlay(&ctx);
    finish(&ctx, direction::EGRESS, res)
}

#[inline(always)]
fn try_host_to_overlay(ctx: &TcContext) -> Result<Verdict, u8> {
    let pkt = match parse(ctx)? {
        Parsed::Ip(pkt) => pkt,
        Parsed::Other => return Ok(PASS),
    };
    // The device's own IPv6 link-local and multicast chatter: nowhere to tunnel it.
    if !pkt.is_v4() && (pkt.key.saddr[0] == 0xfe || pkt.key.daddr[0] == 0xff) {
        return Ok(PASS);
    }
    events::begin(&pkt, ctx.len(), ifindex(ctx));
    events::source(0, identity::HOST);
    let remote = match ipcache(&pkt.key.daddr, pkt.key.family) {
        Some(remote) if remote.tunnel_family != 0 => remote,
        _ => return Err(reason::DROP_NO_ROUTE),
    };
    events::destination(0, remote.identity);
    set_tunnel_key(ctx, remote, identity::REMOTE_NODE)?;
    Ok(Verdict {
        action: TC_ACT_OK as i32,
        reason: reason::TO_OVERLAY,
    })
}

/// tc ingress on the tunnel device: decapsulated packets for a local pod are delivered
/// to it, their connection recording the sender's identity from the VNI; the rest goes
/// to the stack.
#[classifier]
pub fn from_overlay(ctx: TcContext) -> i32 {
    events::reset();
    let res = try_from_overlay(&ctx);
    finish(&ctx, direction::INGRESS, res)
}

#[inline(always)]
fn try_from_overlay(ctx: &TcContext) -> Result<Verdict, u8> {
    let mut pkt = match parse(ctx)? {
        Parsed::Ip(pkt) => pkt,
        Parsed::Other => return Ok(PASS),
    };
    let cfg = config()?;
    events::begin(&pkt, ctx.len(), ifindex(ctx));
    let identity = identity_from_vni(ctx)?;
    events::source(0, identity);
    let Some(ep) = endpoint(&pkt.key.daddr, pkt.key.family) else {
        return Ok(PASS);
    };
    events::destination(ep.endpoint_id, ep.identity);
    if !pkt.is_fragment {
        let tracked = track(
            &pkt,
            ctx.len(),
            Some(&Origin {
                ifindex: 0,
                identity,
                rev_nat_index: 0,
            }),
        )?;
        events::tracked(tracked);
        if tracked.is_new() {
            // The receiver's ingress policy, against the identity the sender's node put
            // in the VNI.
            policy::enforce(&pkt, ep, direction::INGRESS, identity)?;
        }
        // A remote backend's reply to a local client of a Service.
        service::reverse(ctx, &mut pkt, tracked, cfg)?;
    }
    // The inner frame was addressed to whatever MAC the sender chose; it is for us now.
    ctx.change_type(PACKET_HOST)
        .map_err(|_| reason::DROP_REWRITE_FAILED)?;
    Ok(Verdict {
        action: to_endpoint(ctx, &pkt, ep)?,
        reason: reason::FROM_OVERLAY,
    })
}

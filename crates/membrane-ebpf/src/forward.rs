//! Forwarding decisions: delivery to a local pod, FIB lookups and redirects.

use crate::frame::Frame;
use crate::maps::ENDPOINTS;
use crate::packet::Packet;
use crate::rewrite::{dec_ttl, set_macs};
use aya_ebpf::bindings::{
    BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_REDIRECT, bpf_fib_lookup,
};
use aya_ebpf::helpers::{
    bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_neigh, bpf_redirect_peer,
};
use aya_ebpf::programs::TcContext;
use membrane_common::metrics::reason;
use membrane_common::{EndpointInfo, EndpointKey};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The local endpoint owning `addr`, if any.
#[inline(always)]
pub fn endpoint(addr: &[u8; 16], family: u8) -> Option<&'static EndpointInfo> {
    let key = EndpointKey {
        addr: *addr,
        family,
        _pad: [0; 3],
    };
    // SAFETY: endpoint entries are only replaced whole by the agent; a concurrent update
    // can at worst make this packet use the old or the new delivery target.
    unsafe { ENDPOINTS.get(&key) }
}

/// Delivers the packet into the pod behind `ep` with `bpf_redirect_peer`.
#[inline(always)]
pub fn to_endpoint(ctx: &TcContext, pkt: &Packet, ep: &EndpointInfo) -> Result<i32, u8> {
    dec_ttl(ctx, pkt)?;
    set_macs(ctx, &ep.host_mac, &ep.pod_mac)?;
    // SAFETY: bpf_redirect_peer only records the target; it has no memory arguments.
    let ret = unsafe { bpf_redirect_peer(ep.ifindex, 0) };
    if ret == TC_ACT_REDIRECT as i64 {
        Ok(TC_ACT_REDIRECT as i32)
    } else {
        Err(reason::DROP_NO_ROUTE)
    }
}

/// Result of a FIB lookup for a packet about to be routed.
pub enum Route {
    /// The destination is this node: hand the packet to the stack.
    Local,
    /// Out of `ifindex`, with the neighbour's MAC known (`Some`) or to be resolved.
    Out {
        ifindex: u32,
        macs: Option<([u8; 6], [u8; 6])>,
    },
    /// No usable route (unreachable, prohibited, forwarding disabled...).
    None,
}

/// Looks the packet's destination up in the node's FIB, as received on `ifindex`.
#[inline(always)]
pub fn lookup<F: Frame>(ctx: &F, pkt: &Packet, ifindex: u32) -> Route {
    lookup_to(ctx, pkt, &pkt.key.daddr, ifindex)
}

/// Looks `daddr` up in the node's FIB for `pkt` (its source, ports, protocol and
/// length), as received on `ifindex`: where the packet would go once sent to `daddr`.
#[inline(never)]
pub fn lookup_to<F: Frame>(ctx: &F, pkt: &Packet, daddr: &[u8; 16], ifindex: u32) -> Route {
    // SAFETY: bpf_fib_lookup is plain old data (integers, arrays and unions of them).
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.l4_protocol = pkt.key.proto;
    params.sport = pkt.key.sport;
    params.dport = pkt.key.dport;
    params.ifindex = ifindex;
    if pkt.is_v4() {
        params.family = AF_INET;
        params.__bindgen_anon_1.tot_len = pkt.tot_len;
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([
            pkt.key.saddr[0],
            pkt.key.saddr[1],
            pkt.key.saddr[2],
            pkt.key.saddr[3],
        ]);
        params.__bindgen_anon_4.ipv4_dst =
            u32::from_ne_bytes([daddr[0], daddr[1], daddr[2], daddr[3]]);
    } else {
        params.family = AF_INET6;
        let mut s = [0u32; 4];
        let mut d = [0u32; 4];
        let mut i = 0;
        while i < 4 {
            s[i] = u32::from_ne_bytes([
                pkt.key.saddr[i * 4],
                pkt.key.saddr[i * 4 + 1],
                pkt.key.saddr[i * 4 + 2],
                pkt.key.saddr[i * 4 + 3],
            ]);
            d[i] = u32::from_ne_bytes([
                daddr[i * 4],
                daddr[i * 4 + 1],
                daddr[i * 4 + 2],
                daddr[i * 4 + 3],
            ]);
            i += 1;
        }
        params.__bindgen_anon_3.ipv6_src = s;
        params.__bindgen_anon_4.ipv6_dst = d;
    }
    let size = core::mem::size_of::<bpf_fib_lookup>() as i32;
    // SAFETY: params is a properly sized, initialised bpf_fib_lookup on our stack.
    let ret = unsafe { fib_lookup(ctx.as_ptr(), &mut params, size, 0) };
    match ret as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => Route::Out {
            ifindex: params.ifindex,
            macs: Some((params.smac, params.dmac)),
        },
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::Out {
            ifindex: params.ifindex,
            macs: None,
        },
        // NOT_FWDED: the destination is local (or the route is not a forwarding one).
        4 => Route::Local,
        _ => Route::None,
    }
}

/// Sends the packet out of `ifindex` (egress), filling the MACs from the FIB result or
/// letting the kernel resolve the neighbour.
#[inline(always)]
pub fn redirect_out(
    ctx: &TcContext,
    pkt: &Packet,
    ifindex: u32,
    macs: Option<([u8; 6], [u8; 6])>,
) -> Result<i32, u8> {
    dec_ttl(ctx, pkt)?;
    // SAFETY: the redirect helpers only record the target; the neighbour variant gets a
    // null parameter pointer with length 0, which the kernel documents as "use the FIB".
    let ret = unsafe {
        match macs {
            Some((smac, dmac)) => {
                set_macs(ctx, &smac, &dmac)?;
                bpf_redirect(ifindex, 0)
            }
            None => bpf_redirect_neigh(ifindex, core::ptr::null_mut(), 0, 0),
        }
    };
    if ret == TC_ACT_REDIRECT as i64 {
        Ok(TC_ACT_REDIRECT as i32)
    } else {
        Err(reason::DROP_NO_ROUTE)
    }
}

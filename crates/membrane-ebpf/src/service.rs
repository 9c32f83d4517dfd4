//! Per-packet Service translation for traffic the socket hooks did not translate: DNAT
//! of a new connection to a backend (pinned by a Service conntrack entry), and the
//! reverse translation of replies back to the frontend.

use crate::ct::Tracked;
use crate::events;
use crate::frame::Frame;
use crate::lb::{lookup_service, select_backend};
use crate::maps::{BACKENDS, CT, REV_NAT};
use crate::packet::{Packet, tcp_flags};
use crate::rewrite::{End, set_addr, set_port};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use membrane_common::ct::ct_flags;
use membrane_common::lb::service_flags;
use membrane_common::metrics::reason;
use membrane_common::tuple::proto;
use membrane_common::{CtEntry, CtKey, DatapathConfig, ServiceKey};

/// If `pkt` goes to a Service frontend, rewrites its destination to the connection's
/// backend and returns the frontend's reverse-NAT index; 0 when it is not for a Service.
/// From outside the node (`from_inside` false) only frontends meant to be reachable
/// from outside count (NodePort, LoadBalancer, external IPs).
#[inline(never)]
pub fn dnat<F: Frame>(
    ctx: &F,
    pkt: &mut Packet,
    cfg: &DatapathConfig,
    from_inside: bool,
) -> Result<u32, u8> {
    if pkt.key.proto != proto::TCP && pkt.key.proto != proto::UDP {
        return Ok(0);
    }
    let mut key = ServiceKey {
        addr: pkt.key.daddr,
        port: pkt.key.dport,
        proto: pkt.key.proto,
        family: pkt.key.family,
        slot: 0,
        scope: 0,
        _pad: 0,
    };
    let node = if pkt.is_v4() {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    };
    let Some(svc) = lookup_service(&mut key, node, from_inside) else {
        return Ok(0);
    };
    if !from_inside && svc.flags & service_flags::EXTERNAL == 0 {
        return Ok(0);
    }
    events::service(svc.rev_nat_index);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let pinned = match CT.get_ptr_mut(&pkt.key) {
        // SAFETY: pointer from a successful lookup; plain field accesses.
        Some(e) if unsafe { (*e).flags } & ct_flags::SERVICE != 0 => unsafe {
            (*e).last_seen_ns = now;
            (*e).packets_fwd += 1;
            if pkt.tcp_flags & tcp_flags::SYN == 0 {
                // Past the handshake: keep the pin as long as an established connection.
                (*e).flags |= ct_flags::ESTABLISHED;
            }
            Some((*e).backend_id)
        },
        _ => None,
    };
    // A pinned backend that vanished (removed from the Service) gets the flow re-balanced.
    // SAFETY: backend entries are replaced whole by the agent; values are copied at once.
    let backend = match pinned.and_then(|id| unsafe { BACKENDS.get(&id) }.copied()) {
        Some(b) => b,
        None => {
            let id = select_backend(
                &mut key,
                svc,
                &pkt.key,
                &pkt.key.saddr,
                cfg.maglev_table_size,
            )?;
            pin(&pkt.key, svc.rev_nat_index, id)?;
            // SAFETY: as above.
            unsafe { BACKENDS.get(&id) }
                .copied()
                .ok_or(reason::DROP_BACKEND_MISSING)?
        }
    };
    let rev_nat_index = svc.rev_nat_index;
    set_addr(ctx, pkt, End::Destination, &backend.addr)?;
    if backend.port != pkt.key.dport {
        set_port(ctx, pkt, End::Destination, backend.port)?;
    }
    Ok(rev_nat_index)
}

/// Pins `backend_id` to the connection of `key` with a Service conntrack entry. A call
/// of its own, so that the entry's bytes are on the stack only while it runs (the
/// programs calling `dnat` are near the verifier's 512-byte stack limit).
#[inline(never)]
fn pin(key: &CtKey, rev_nat_index: u32, backend_id: u32) -> Result<(), u8> {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let entry = CtEntry {
        created_ns: now,
        last_seen_ns: now,
        packets_fwd: 1,
        bytes_fwd: 0,
        packets_rev: 0,
        bytes_rev: 0,
        flags: ct_flags::SERVICE,
        src_ifindex: 0,
        src_identity: 0,
        rev_nat_index,
        backend_id,
        _pad2: 0,
    };
    CT.insert(key, &entry, 0).map_err(|_| reason::DROP_MAP_FULL)
}

/// Rewrites the source of a reply on a translated connection back to its frontend (for
/// a NodePort, the node's address of the packet's family).
#[inline(never)]
pub fn reverse<F: Frame>(
    ctx: &F,
    pkt: &mut Packet,
    tracked: Tracked,
    cfg: &DatapathConfig,
) -> Result<(), u8> {
    if !tracked.is_reply() || tracked.rev_nat_index() == 0 {
        return Ok(());
    }
    // SAFETY: the value is copied at once.
    let Some(frontend) = (unsafe { REV_NAT.get(&tracked.rev_nat_index()) }).copied() else {
        return Err(reason::DROP_BACKEND_MISSING);
    };
    let addr = if frontend.addr != [0; 16] {
        &frontend.addr
    } else if pkt.is_v4() {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    };
    set_addr(ctx, pkt, End::Source, addr)?;
    if frontend.port != pkt.key.sport {
        set_port(ctx, pkt, End::Source, frontend.port)?;
    }
    Ok(())
}

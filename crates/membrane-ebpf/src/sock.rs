//! Socket-level load balancing (cgroup sock_addr hooks): a connected socket's
//! destination is translated once at `connect`, unconnected UDP at each `sendmsg`;
//! `recvmsg` and `getpeername` show the Service frontend again, so applications never
//! see the backend's address.

use crate::events::{self, SockTranslation};
use crate::lb::{lookup_service, select_backend};
use crate::maps::{CONFIG, NETNS_ENDPOINTS, SOCK_REV_NAT};
use crate::metrics::count;
use aya_ebpf::bindings::bpf_sock_addr;
use aya_ebpf::helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_set_retval};
use aya_ebpf::macros::cgroup_sock_addr;
use aya_ebpf::programs::SockAddrContext;
use membrane_common::events::event_flags;
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::{proto, v4_bytes};
use membrane_common::{CtKey, Family, RevNat, ServiceKey, SockRevKey};

/// Verdicts of sock_addr programs.
const ALLOW: i32 = 1;
const REJECT: i32 = 0;
/// `ECONNREFUSED` (Linux).
const ECONNREFUSED: i32 = 111;

/// The socket's destination as the application gave it.
#[inline(always)]
fn user_addr(sa: &bpf_sock_addr, family: u8) -> [u8; 16] {
    if family == Family::V4 {
        v4_bytes(sa.user_ip4.to_ne_bytes())
    } else {
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 4 {
            let w = sa.user_ip6[i].to_ne_bytes();
            out[i * 4..i * 4 + 4].copy_from_slice(&w);
            i += 1;
        }
        out
    }
}

/// Writes the socket's destination.
#[inline(always)]
fn set_user_addr(sa: &mut bpf_sock_addr, family: u8, addr: &[u8; 16], port: u16) {
    if family == Family::V4 {
        sa.user_ip4 = u32::from_ne_bytes([addr[0], addr[1], addr[2], addr[3]]);
    } else {
        let mut i = 0;
        while i < 4 {
            sa.user_ip6[i] = u32::from_ne_bytes([
                addr[i * 4],
                addr[i * 4 + 1],
                addr[i * 4 + 2],
                addr[i * 4 + 3],
            ]);
            i += 1;
        }
    }
    sa.user_port = port as u32;
}

/// Translates a Service frontend destination to a backend and remembers the way back.
/// `Err` means the frontend has no backend: the socket call is refused at once.
#[inline(always)]
fn translate(ctx: &SockAddrContext, family: u8, connect: bool) -> Result<(), u8> {
    // SAFETY: the context pointer is valid for the program's run.
    let sa = unsafe { &mut *ctx.sock_addr };
    let l4 = sa.protocol as u8;
    if l4 != proto::TCP && l4 != proto::UDP {
        return Ok(());
    }
    let Some(cfg) = CONFIG.get(0) else {
        return Ok(());
    };
    let frontend = user_addr(sa, family);
    let port = sa.user_port as u16;
    let mut key = ServiceKey {
        addr: frontend,
        port,
        proto: l4,
        family,
        slot: 0,
        scope: 0,
        _pad: 0,
    };
    let node = if family == Family::V4 {
        &cfg.node_ipv4
    } else {
        &cfg.node_ipv6
    };
    let Some(svc) = lookup_service(&mut key, node, true) else {
        return Ok(());
    };
    // Affinity at the socket layer is per network namespace (the client's pod).
    // SAFETY: the helpers take the program's context.
    let netns = unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) };
    let mut client = [0u8; 16];
    client[..8].copy_from_slice(&netns.to_ne_bytes());
    let flow = CtKey {
        saddr: client,
        daddr: frontend,
        sport: 0,
        dport: port,
        proto: l4,
        family,
        _pad: [0; 2],
    };
    let id = select_backend(&mut key, svc, &flow, &client, cfg.maglev_table_size)?;
    let Some(backend) = crate::lb::usable_backend(id) else {
        return Err(reason::DROP_BACKEND_MISSING);
    };
    // SAFETY: as above.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let rev_key = SockRevKey {
        cookie,
        addr: backend.addr,
        port: backend.port,
        family,
        _pad: [0; 5],
    };
    let frontend_rev = RevNat {
        addr: frontend,
        port,
        family,
        _pad: 0,
    };
    SOCK_REV_NAT
        .insert(&rev_key, &frontend_rev, 0)
        .map_err(|_| reason::DROP_MAP_FULL)?;
    set_user_addr(sa, family, &backend.addr, backend.port);
    count(reason::SOCK_LB, direction::EGRESS, 0);
    // A connection is reported once, at connect; datagrams of unconnected sockets only
    // when every packet is to be reported.
    let flags = cfg.flags;
    if flags & event_flags::NO_TRACE == 0 && (connect || flags & event_flags::ALL != 0) {
        // SAFETY: the value is copied at once.
        let pod = unsafe { NETNS_ENDPOINTS.get(&netns) }.copied();
        let src = match pod {
            Some(p) if family == Family::V4 => v4_bytes(p.ipv4),
            Some(p) => p.ipv6,
            None => [0; 16],
        };
        events::socket_translated(&SockTranslation {
            endpoint: pod.map_or((0, 0), |p| (p.endpoint_id, p.identity)),
            src: &src,
            dst: &frontend,
            dport: port,
            backend: &backend.addr,
            backend_port: backend.port,
            rev_nat_index: svc.rev_nat_index,
            proto: l4,
            family,
        });
    }
    Ok(())
}

/// Shows the frontend instead of the backend a translated socket talks to.
#[inline(always)]
fn reverse(ctx: &SockAddrContext, family: u8) {
    // SAFETY: the context pointer is valid for the program's run.
    let sa = unsafe { &mut *ctx.sock_addr };
    // SAFETY: the helper takes the program's context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let key = SockRevKey {
        cookie,
        addr: user_addr(sa, family),
        port: sa.user_port as u16,
        family,
        _pad: [0; 5],
    };
    // SAFETY: the value is copied at once.
    if let Some(frontend) = unsafe { SOCK_REV_NAT.get(&key) }.copied() {
        set_user_addr(sa, family, &frontend.addr, frontend.port);
    }
}

#[inline(always)]
fn forward(ctx: &SockAddrContext, family: u8, connect: bool) -> i32 {
    match translate(ctx, family, connect) {
        Ok(()) => ALLOW,
        Err(drop) => {
            count(drop, direction::EGRESS, 0);
            if drop == reason::DROP_NO_BACKEND {
                // The caller sees "connection refused", as from a closed port, instead
                // of the hook's default EPERM.
                // SAFETY: bpf_set_retval has no preconditions in cgroup programs.
                unsafe { bpf_set_retval(-ECONNREFUSED) };
            }
            REJECT
        }
    }
}

/// `connect()` of IPv4 sockets.
#[cgroup_sock_addr(connect4)]
pub fn sock_connect4(ctx: SockAddrContext) -> i32 {
    forward(&ctx, Family::V4, true)
}

/// `connect()` of IPv6 sockets.
#[cgroup_sock_addr(connect6)]
pub fn sock_connect6(ctx: SockAddrContext) -> i32 {
    forward(&ctx, Family::V6, true)
}

/// `sendmsg()` of unconnected IPv4 UDP sockets.
#[cgroup_sock_addr(sendmsg4)]
pub fn sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    forward(&ctx, Family::V4, false)
}

/// `sendmsg()` of unconnected IPv6 UDP sockets.
#[cgroup_sock_addr(sendmsg6)]
pub fn sock_sendmsg6(ctx: SockAddrContext) -> i32 {
    forward(&ctx, Family::V6, false)
}

/// `recvmsg()` of IPv4 UDP sockets: replies appear to come from the frontend.
#[cgroup_sock_addr(recvmsg4)]
pub fn sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, Family::V4);
    ALLOW
}

/// `recvmsg()` of IPv6 UDP sockets.
#[cgroup_sock_addr(recvmsg6)]
pub fn sock_recvmsg6(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, Family::V6);
    ALLOW
}

/// `getpeername()` of IPv4 sockets: the frontend, not the backend.
#[cgroup_sock_addr(getpeername4)]
pub fn sock_getpeername4(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, Family::V4);
    ALLOW
}

/// `getpeername()` of IPv6 sockets.
#[cgroup_sock_addr(getpeername6)]
pub fn sock_getpeername6(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, Family::V6);
    ALLOW
}

//! The ipcache lookup and the VXLAN tunnel: encapsulation metadata on the way out, the
//! sender's identity from the VNI on the way in.

use crate::maps::IPCACHE;
use aya_ebpf::bindings::{BPF_F_TUNINFO_IPV6, TC_ACT_REDIRECT, bpf_tunnel_key};
use aya_ebpf::helpers::{bpf_redirect, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::programs::TcContext;
use membrane_common::metrics::reason;
use membrane_common::{Family, IPCACHE_PREFIX_BITS, IpcacheAddr, IpcacheEntry};

/// VNIs are 24 bits wide: identities above this cannot be carried.
const VNI_MASK: u32 = 0x00ff_ffff;
/// TTL of the outer header.
const OUTER_TTL: u8 = 64;

/// The ipcache entry covering `addr`, if any.
#[inline(always)]
pub fn ipcache(addr: &[u8; 16], family: u8) -> Option<&'static IpcacheEntry> {
    let bits = if family == Family::V4 { 32 } else { 128 };
    let key = Key::new(
        IPCACHE_PREFIX_BITS + bits,
        IpcacheAddr {
            family,
            _pad: [0; 3],
            addr: *addr,
        },
    );
    IPCACHE.get(&key)
}

/// Sets the tunnel metadata (remote node, identity as VNI) and redirects the packet to
/// the collect-metadata tunnel device.
#[inline(never)]
pub fn to_overlay(
    ctx: &TcContext,
    remote: &IpcacheEntry,
    identity: u32,
    tunnel_ifindex: u32,
) -> Result<i32, u8> {
    set_tunnel_key(ctx, remote, identity)?;
    // SAFETY: bpf_redirect only records the target.
    let ret = unsafe { bpf_redirect(tunnel_ifindex, 0) };
    if ret == TC_ACT_REDIRECT as i64 {
        Ok(TC_ACT_REDIRECT as i32)
    } else {
        Err(reason::DROP_NO_ROUTE)
    }
}

/// Sets the tunnel metadata of the packet: the remote node's underlay address, and the
/// sender's identity as VNI.
#[inline(never)]
pub fn set_tunnel_key(ctx: &TcContext, remote: &IpcacheEntry, identity: u32) -> Result<(), u8> {
    // SAFETY: bpf_tunnel_key is plain old data.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    key.tunnel_id = identity & VNI_MASK;
    key.tunnel_ttl = OUTER_TTL;
    let ep = &remote.tunnel_endpoint;
    let flags = if remote.tunnel_family == Family::V4 {
        // The helper takes the IPv4 remote in host byte order.
        key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes([ep[0], ep[1], ep[2], ep[3]]);
        0
    } else {
        let mut words = [0u32; 4];
        let mut i = 0;
        while i < 4 {
            words[i] = u32::from_ne_bytes([ep[i * 4], ep[i * 4 + 1], ep[i * 4 + 2], ep[i * 4 + 3]]);
            i += 1;
        }
        key.__bindgen_anon_1.remote_ipv6 = words;
        BPF_F_TUNINFO_IPV6 as u64
    };
    let size = core::mem::size_of::<bpf_tunnel_key>() as u32;
    // SAFETY: key is an initialised bpf_tunnel_key of the size passed.
    if unsafe { bpf_skb_set_tunnel_key(ctx.skb.skb, &mut key, size, flags) } != 0 {
        return Err(reason::DROP_TUNNEL);
    }
    Ok(())
}

/// The source identity carried in the VNI of a decapsulated packet.
#[inline(always)]
pub fn identity_from_vni(ctx: &TcContext) -> Result<u32, u8> {
    // SAFETY: bpf_tunnel_key is plain old data.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    let size = core::mem::size_of::<bpf_tunnel_key>() as u32;
    // SAFETY: key is a bpf_tunnel_key of the size passed; the kernel fills it. The IPv4
    // form is asked first; an IPv6 underlay needs the flag.
    let mut ret = unsafe { bpf_skb_get_tunnel_key(ctx.skb.skb, &mut key, size, 0) };
    if ret != 0 {
        // SAFETY: as above.
        ret = unsafe {
            bpf_skb_get_tunnel_key(ctx.skb.skb, &mut key, size, BPF_F_TUNINFO_IPV6 as u64)
        };
    }
    if ret != 0 {
        return Err(reason::DROP_TUNNEL);
    }
    Ok(key.tunnel_id & VNI_MASK)
}

//! Service load balancing shared by the socket hooks and the per-packet path: frontend
//! lookup (with scopes and the NodePort wildcard) and backend selection (random,
//! Maglev, session affinity).

use crate::maps::{AFFINITY, BACKENDS, MAGLEV, SERVICES};
use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns};
use membrane_common::lb::{backend_flags, scope, service_flags};
use membrane_common::metrics::reason;
use membrane_common::{
    AffinityKey, AffinityValue, Backend, CtKey, MaglevKey, ServiceKey, ServiceValue,
};

/// Finds the frontend named by `key` (address, port, protocol, family; slot and scope
/// are set here). A miss on one of the node's own addresses falls back to the NodePort
/// wildcard (address zero). Traffic from inside the cluster uses the internal-scope
/// entry where the frontend has one.
#[inline(always)]
pub fn lookup_service(
    key: &mut ServiceKey,
    node_addr: &[u8; 16],
    from_inside: bool,
) -> Option<&'static ServiceValue> {
    key.slot = 0;
    key.scope = scope::EXTERNAL;
    // SAFETY: service entries are replaced whole by the agent; values are read at once.
    let mut found = unsafe { SERVICES.get(&*key) };
    if found.is_none() && key.addr == *node_addr {
        key.addr = [0; 16];
        // SAFETY: as above.
        found = unsafe { SERVICES.get(&*key) }.filter(|s| s.flags & service_flags::NODEPORT != 0);
        if found.is_none() {
            key.addr = *node_addr;
        }
    }
    let svc = found?;
    if from_inside && svc.flags & service_flags::TWO_SCOPES != 0 {
        key.scope = scope::INTERNAL;
        // SAFETY: as above.
        if let Some(internal) = unsafe { SERVICES.get(&*key) } {
            return Some(internal);
        }
        key.scope = scope::EXTERNAL;
    }
    Some(svc)
}

/// The backend `id`, if it exists and takes new connections.
#[inline(always)]
pub fn usable_backend(id: u32) -> Option<&'static Backend> {
    // SAFETY: backend entries are replaced whole by the agent.
    unsafe { BACKENDS.get(&id) }.filter(|b| b.flags & backend_flags::TERMINATING == 0)
}

/// A 32-bit hash of a flow, for Maglev (the same flow always lands on the same
/// position). Mixes the tuple a 32-bit word at a time: cheap for the verifier.
#[inline(always)]
fn flow_hash(flow: &CtKey) -> u32 {
    #[inline(always)]
    fn mix(h: u32, w: u32) -> u32 {
        (h ^ w).wrapping_mul(0x9e37_79b1).rotate_left(13)
    }
    #[inline(always)]
    fn word(a: &[u8; 16], i: usize) -> u32 {
        u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]])
    }
    let mut h = 0x811c_9dc5;
    h = mix(h, word(&flow.saddr, 0));
    h = mix(h, word(&flow.saddr, 4));
    h = mix(h, word(&flow.saddr, 8));
    h = mix(h, word(&flow.saddr, 12));
    h = mix(h, word(&flow.daddr, 0));
    h = mix(h, word(&flow.daddr, 4));
    h = mix(h, word(&flow.daddr, 8));
    h = mix(h, word(&flow.daddr, 12));
    h = mix(h, (flow.sport as u32) << 16 | flow.dport as u32);
    h = mix(h, flow.proto as u32);
    h ^ (h >> 16)
}

/// Chooses a backend for a new connection `flow` of `client` to the frontend `key`.
#[inline(never)]
pub fn select_backend(
    key: &mut ServiceKey,
    svc: &ServiceValue,
    flow: &CtKey,
    client: &[u8; 16],
    maglev_size: u32,
) -> Result<u32, u8> {
    if svc.count == 0 {
        return Err(reason::DROP_NO_BACKEND);
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let affinity = AffinityKey {
        client: *client,
        rev_nat_index: svc.rev_nat_index,
        family: key.family,
        _pad: [0; 3],
    };
    if svc.flags & service_flags::AFFINITY != 0 {
        if let Some(a) = AFFINITY.get_ptr_mut(&affinity) {
            // SAFETY: pointer from a successful lookup; plain field accesses.
            unsafe {
                let fresh = now.saturating_sub((*a).last_used_ns)
                    <= svc.affinity_timeout_s as u64 * 1_000_000_000;
                if fresh && usable_backend((*a).backend_id).is_some() {
                    (*a).last_used_ns = now;
                    return Ok((*a).backend_id);
                }
            }
        }
    }
    let id = if svc.flags & service_flags::MAGLEV != 0 && maglev_size != 0 {
        let position = flow_hash(flow).checked_rem(maglev_size).unwrap_or(0);
        let mkey = MaglevKey {
            rev_nat_index: svc.rev_nat_index,
            position,
        };
        // SAFETY: the value is copied at once.
        unsafe { MAGLEV.get(&mkey) }
            .copied()
            .ok_or(reason::DROP_BACKEND_MISSING)?
    } else {
        // SAFETY: bpf_get_prandom_u32 has no preconditions.
        let pick = unsafe { bpf_get_prandom_u32() }
            .checked_rem(svc.count as u32)
            .unwrap_or(0);
        key.slot = pick as u16 + 1;
        // SAFETY: the value is copied at once.
        let id = unsafe { SERVICES.get(&*key) }.map(|s| s.backend_id);
        key.slot = 0;
        id.ok_or(reason::DROP_BACKEND_MISSING)?
    };
    if svc.flags & service_flags::AFFINITY != 0 {
        let value = AffinityValue {
            backend_id: id,
            _pad: 0,
            last_used_ns: now,
        };
        let _ = AFFINITY.insert(&affinity, &value, 0);
    }
    Ok(id)
}

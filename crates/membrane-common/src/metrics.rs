//! Per-CPU counters of what the datapath did with packets, by reason and direction.

/// Number of slots in the metrics array: every reason code in both directions.
pub const METRICS_SLOTS: u32 = 256 * 2;

/// Index of the metrics array slot counting `reason` in `direction`.
pub const fn metrics_index(reason: u8, direction: u8) -> u32 {
    (reason as u32) * 2 + (direction as u32 & 1)
}

/// Counter values (one per CPU in the map; userspace sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsValue {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<MetricsValue>() == 16);

/// Traffic direction, relative to the endpoint or node.
pub mod direction {
    /// Leaving a pod.
    pub const EGRESS: u8 = 0;
    /// Entering a pod or the node.
    pub const INGRESS: u8 = 1;
}

/// What happened to a packet. Values below [`reason::DROP_FIRST`] are forwarding
/// outcomes; the rest are drop reasons.
pub mod reason {
    /// Redirected to a local pod (same-node forwarding in eBPF).
    pub const FORWARD_LOCAL: u8 = 0;
    /// Passed to the node's network stack (traffic for the node itself).
    pub const TO_STACK: u8 = 1;
    /// Masqueraded and redirected to the uplink.
    pub const MASQUERADE: u8 = 2;
    /// A reply to a masqueraded connection, translated back and delivered to its pod.
    pub const REVERSE_NAT: u8 = 3;
    /// Redirected by a FIB lookup to another device.
    pub const FORWARD_FIB: u8 = 4;
    /// Encapsulated to another node through the tunnel device.
    pub const TO_OVERLAY: u8 = 5;
    /// Decapsulated from another node and delivered to a local pod.
    pub const FROM_OVERLAY: u8 = 6;
    /// Arrived from the network for a local pod (native routing) and delivered.
    pub const FROM_NETWORK: u8 = 7;
    /// A socket's destination was translated from a Service frontend to a backend.
    pub const SOCK_LB: u8 = 8;
    /// Traffic from outside to a Service frontend, translated and delivered to a local
    /// backend.
    pub const SERVICE_EXTERNAL: u8 = 9;
    /// XDP on the uplink: a request from outside to a Service frontend translated to a
    /// backend on another node and sent straight back out (NodePort acceleration).
    pub const XDP_SERVICE: u8 = 10;
    /// XDP on the uplink: a backend's reply on such a connection translated back to the
    /// frontend and sent straight back out to the client.
    pub const XDP_REVERSE_NAT: u8 = 11;
    /// First drop reason; everything from here on is a drop.
    pub const DROP_FIRST: u8 = 128;
    /// Truncated or malformed packet.
    pub const DROP_INVALID_PACKET: u8 = 128;
    /// A protocol the datapath does not handle from pods.
    pub const DROP_UNSUPPORTED_L3: u8 = 129;
    /// Source address is not the sending pod's (spoofing).
    pub const DROP_INVALID_SOURCE: u8 = 130;
    /// No free port for masquerading.
    pub const DROP_NAT_NO_PORT: u8 = 131;
    /// A map update failed (map full).
    pub const DROP_MAP_FULL: u8 = 132;
    /// A checksum or header rewrite failed.
    pub const DROP_REWRITE_FAILED: u8 = 133;
    /// The FIB lookup found no route.
    pub const DROP_NO_ROUTE: u8 = 134;
    /// The datapath configuration has not been written yet.
    pub const DROP_NO_CONFIG: u8 = 135;
    /// An IP fragment the datapath cannot track.
    pub const DROP_FRAGMENT: u8 = 136;
    /// A packet that cannot be masqueraded (an ICMP type other than echo).
    pub const DROP_NAT_UNSUPPORTED: u8 = 137;
    /// The TTL or hop limit ran out while forwarding.
    pub const DROP_TTL_EXCEEDED: u8 = 138;
    /// Setting or reading the tunnel metadata failed.
    pub const DROP_TUNNEL: u8 = 139;
    /// A Service frontend with no ready backend.
    pub const DROP_NO_BACKEND: u8 = 140;
    /// A backend slot names a backend that does not exist (an update in progress).
    pub const DROP_BACKEND_MISSING: u8 = 141;
    /// Denied by policy: an explicit deny rule.
    pub const DROP_POLICY_DENY: u8 = 142;
    /// Denied by policy: the endpoint enforces policy and no rule allows the peer.
    pub const DROP_POLICY: u8 = 143;
    /// Not a packet outcome: an event could not be written to the full ring buffer.
    pub const EVENT_LOST: u8 = 255;

    /// Human-readable name of a reason code, for metrics and CLI output.
    pub const fn name(code: u8) -> &'static str {
        match code {
            FORWARD_LOCAL => "forward_local",
            TO_STACK => "to_stack",
            MASQUERADE => "masquerade",
            REVERSE_NAT => "reverse_nat",
            FORWARD_FIB => "forward_fib",
            TO_OVERLAY => "to_overlay",
            FROM_OVERLAY => "from_overlay",
            FROM_NETWORK => "from_network",
            SOCK_LB => "socket_lb_translated",
            SERVICE_EXTERNAL => "service_from_outside",
            XDP_SERVICE => "xdp_service_to_network",
            XDP_REVERSE_NAT => "xdp_reverse_nat_to_network",
            DROP_INVALID_PACKET => "invalid_packet",
            DROP_UNSUPPORTED_L3 => "unsupported_l3_protocol",
            DROP_INVALID_SOURCE => "invalid_source_address",
            DROP_NAT_NO_PORT => "nat_no_free_port",
            DROP_MAP_FULL => "map_full",
            DROP_REWRITE_FAILED => "rewrite_failed",
            DROP_NO_ROUTE => "no_route",
            DROP_NO_CONFIG => "no_config",
            DROP_FRAGMENT => "fragment",
            DROP_NAT_UNSUPPORTED => "nat_unsupported_protocol",
            DROP_TTL_EXCEEDED => "ttl_exceeded",
            DROP_TUNNEL => "tunnel_metadata",
            DROP_NO_BACKEND => "service_without_backend",
            DROP_BACKEND_MISSING => "backend_missing",
            DROP_POLICY_DENY => "policy_denied_by_deny_rule",
            DROP_POLICY => "policy_denied",
            EVENT_LOST => "event_lost",
            _ => "unknown",
        }
    }
}

//! The Services every path programs: Service `i` has the ClusterIP `10.96.0.1 + i`, port
//! 80/TCP, and ten backend entries of its own, entry `j` resolving to backend address `j`.

use crate::topology::{BACKEND_PORT, BACKENDS, backend_addr};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The Services' port.
pub const SERVICE_PORT: u16 = 80;

/// First ClusterIP.
const FIRST_CLUSTER_IP: u32 = u32::from_be_bytes([10, 96, 0, 1]);

/// The ClusterIP of Service `i`.
pub fn cluster_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(FIRST_CLUSTER_IP + i)
}

/// Service `i`'s frontend.
pub fn frontend(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(cluster_ip(i)), SERVICE_PORT)
}

/// Where the backend entries of every Service resolve to, in entry order.
pub fn backends() -> impl Iterator<Item = SocketAddr> {
    (0..BACKENDS).map(|j| SocketAddr::new(IpAddr::V4(backend_addr(j)), BACKEND_PORT))
}

/// The id of entry `j` of Service `i` (unique over every Service, from 1).
pub fn backend_id(i: u32, j: u8) -> u32 {
    i * u32::from(BACKENDS) + u32::from(j) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_thousand_cluster_ips_stay_in_the_service_cidr() {
        assert_eq!(cluster_ip(0), Ipv4Addr::new(10, 96, 0, 1));
        let last = cluster_ip(100_000);
        let cidr: ipnet::Ipv4Net = "10.96.0.0/12".parse().unwrap();
        assert!(cidr.contains(&last), "{last}");
    }

    #[test]
    fn backend_ids_never_repeat_between_services() {
        assert_eq!(backend_id(0, 9) + 1, backend_id(1, 0));
    }
}

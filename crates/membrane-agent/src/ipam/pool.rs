//! Address arithmetic of one pool: which addresses of a CIDR may be handed out.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// One address pool: a CIDR and the range of its addresses that may be handed out, as
/// integers (IPv4 addresses are widened to `u128` so both families share the code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    cidr: IpNet,
    first: u128,
    last: u128,
}

impl Pool {
    /// The pool of an IPv4 CIDR: every address but the network and broadcast addresses
    /// (a /31 or /32 has neither, RFC 3021).
    pub fn v4(cidr: Ipv4Net) -> Pool {
        let cidr = cidr.trunc();
        let (mut first, mut last) = (
            u32::from(cidr.network()) as u128,
            u32::from(cidr.broadcast()) as u128,
        );
        if cidr.prefix_len() < 31 {
            first += 1;
            last -= 1;
        }
        Pool {
            cidr: IpNet::V4(cidr),
            first,
            last,
        }
    }

    /// The pool of an IPv6 CIDR: every address but the subnet-router anycast address (the
    /// all-zero host part). `None` when nothing is left (a /128).
    pub fn v6(cidr: Ipv6Net) -> Option<Pool> {
        let cidr = cidr.trunc();
        if cidr.prefix_len() == 128 {
            return None;
        }
        let first = u128::from(cidr.network()) + 1;
        let last = u128::from(cidr.broadcast());
        Some(Pool {
            cidr: IpNet::V6(cidr),
            first,
            last,
        })
    }

    /// The pool's CIDR.
    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    /// The addresses handed out, as integers.
    pub fn range(&self) -> RangeInclusive<u128> {
        self.first..=self.last
    }

    /// How many addresses the pool hands out in all (saturating for a pool spanning all
    /// of IPv6, the only one whose size does not fit).
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }
}

/// The integer of the address `addr`, as pools count.
pub fn addr_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Pool {
        Pool::v4(s.parse().unwrap())
    }

    fn val(s: &str) -> u128 {
        addr_value(s.parse().unwrap())
    }

    #[test]
    fn ipv4_pool_skips_network_and_broadcast() {
        let pool = v4("10.1.0.0/24");
        assert_eq!(pool.range(), val("10.1.0.1")..=val("10.1.0.254"));
        assert_eq!(pool.size(), 254);
    }

    #[test]
    fn ipv4_pool_of_a_slash_31_uses_both_addresses() {
        let pool = v4("10.1.0.0/31");
        assert_eq!(pool.range(), val("10.1.0.0")..=val("10.1.0.1"));
    }

    #[test]
    fn ipv4_pool_truncates_host_bits_of_the_cidr() {
        assert_eq!(v4("10.1.0.77/24"), v4("10.1.0.0/24"));
    }

    #[test]
    fn ipv6_pool_skips_the_subnet_router_anycast_address() {
        let pool = Pool::v6("fd00:1::/120".parse().unwrap()).unwrap();
        assert_eq!(pool.range(), val("fd00:1::1")..=val("fd00:1::ff"));
        assert_eq!(pool.size(), 255);
        assert!(Pool::v6("fd00::1/128".parse().unwrap()).is_none());
    }
}

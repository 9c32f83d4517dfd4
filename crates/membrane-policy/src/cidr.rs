//! Node-local CIDR identities: one number per distinct prefix that policies name
//! (`except` prefixes included, so that the ipcache's longest match tells them apart),
//! from 2^24 upward, kept stable for prefixes that stay in use. A `/0` has no identity
//! of its own: addresses no other entry covers are `world`.

use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

/// The first node-local CIDR identity: above every cluster identity (24 bits).
pub const FIRST_CIDR_IDENTITY: u32 = 1 << 24;

/// Numbers for `prefixes`: the previous number where there was one, else the lowest
/// free number from [`FIRST_CIDR_IDENTITY`]. `/0` prefixes get none.
pub fn allocate(
    prefixes: &BTreeSet<IpNet>,
    previous: &BTreeMap<IpNet, u32>,
) -> BTreeMap<IpNet, u32> {
    let wanted = prefixes.iter().filter(|p| p.prefix_len() > 0);
    let mut out: BTreeMap<IpNet, u32> = wanted
        .clone()
        .filter_map(|p| Some((*p, *previous.get(p)?)))
        .collect();
    let mut used: BTreeSet<u32> = out.values().copied().collect();
    let mut next = FIRST_CIDR_IDENTITY;
    for prefix in wanted {
        if out.contains_key(prefix) {
            continue;
        }
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        out.insert(*prefix, next);
    }
    out
}

/// Whether `inner` lies inside `outer` (same family).
pub fn within(inner: &IpNet, outer: &IpNet) -> bool {
    outer.contains(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn numbers_start_at_two_to_the_24_and_survive_recompiles() {
        let first = allocate(
            &[net("10.0.0.0/8"), net("10.1.0.0/16")].into(),
            &BTreeMap::new(),
        );
        assert_eq!(first[&net("10.0.0.0/8")], FIRST_CIDR_IDENTITY);
        assert_eq!(first[&net("10.1.0.0/16")], FIRST_CIDR_IDENTITY + 1);
        let second = allocate(&[net("10.1.0.0/16"), net("192.168.0.0/16")].into(), &first);
        assert_eq!(second[&net("10.1.0.0/16")], FIRST_CIDR_IDENTITY + 1);
        assert_eq!(second[&net("192.168.0.0/16")], FIRST_CIDR_IDENTITY);
        assert_eq!(second.len(), 2);
    }

    #[test]
    fn the_default_route_has_no_cidr_identity() {
        assert!(allocate(&[net("0.0.0.0/0"), net("::/0")].into(), &BTreeMap::new()).is_empty());
    }
}

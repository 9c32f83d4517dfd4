//! From allow and deny items (peer identity, protocol, port range) to the LPM entries of
//! one endpoint. The datapath looks up the longest port prefix per fixed part
//! (direction, protocol, identity), so a deny range is cut out of every allow range of
//! the same fixed part here: the longest match can then never hide a deny.

use crate::output::{Direction, Entry, EntryKey};
use membrane_common::policy::port_prefixes;
use std::collections::BTreeMap;

/// One allow or deny for one peer identity (0: any) and protocol (0: any, with the
/// full port range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// Ingress or egress.
    pub direction: Direction,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Peer identity, 0 for any.
    pub identity: u32,
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
    /// Deny.
    pub deny: bool,
    /// The rule.
    pub rule_id: u32,
}

/// The entries of `items`: denies as given, allows minus the denies of the same fixed
/// part. Where two items of the same kind produce the same key, the lower rule id is kept.
pub fn build(mut items: Vec<Item>) -> BTreeMap<EntryKey, Entry> {
    items.sort_by_key(|i| {
        (
            i.rule_id,
            i.direction,
            i.proto,
            i.identity,
            i.first,
            i.last,
            i.deny,
        )
    });
    let mut denied: BTreeMap<(Direction, u8, u32), Vec<(u16, u16)>> = BTreeMap::new();
    for item in items.iter().filter(|i| i.deny) {
        denied
            .entry((item.direction, item.proto, item.identity))
            .or_default()
            .push((item.first, item.last));
    }
    let mut entries = BTreeMap::new();
    for item in items.iter().filter(|i| i.deny) {
        insert(&mut entries, item, item.first, item.last);
    }
    for item in items.iter().filter(|i| !i.deny) {
        let holes = denied
            .get(&(item.direction, item.proto, item.identity))
            .map_or(&[][..], Vec::as_slice);
        for (first, last) in subtract((item.first, item.last), holes) {
            insert(&mut entries, item, first, last);
        }
    }
    entries
}

/// Adds the prefixes of `first..=last` for `item`, keeping existing keys.
fn insert(entries: &mut BTreeMap<EntryKey, Entry>, item: &Item, first: u16, last: u16) {
    for (port, prefix_bits) in port_prefixes(first, last) {
        let key = EntryKey {
            direction: item.direction,
            proto: item.proto,
            identity: item.identity,
            port,
            prefix_bits,
        };
        entries.entry(key).or_insert(Entry {
            deny: item.deny,
            rule_id: item.rule_id,
        });
    }
}

/// `range` without any of `holes`, as sorted disjoint ranges.
pub fn subtract(range: (u16, u16), holes: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut pieces = vec![(u32::from(range.0), u32::from(range.1))];
    for &(lo, hi) in holes {
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        pieces = pieces
            .into_iter()
            .flat_map(|(a, b)| {
                if hi < a || lo > b {
                    return vec![(a, b)];
                }
                let mut kept = Vec::new();
                if lo > a {
                    kept.push((a, lo - 1));
                }
                if hi < b {
                    kept.push((hi + 1, b));
                }
                kept
            })
            .collect();
    }
    pieces
        .into_iter()
        .map(|(a, b)| (a as u16, b as u16))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(identity: u32, first: u16, last: u16, deny: bool, rule_id: u32) -> Item {
        Item {
            direction: Direction::Ingress,
            proto: 6,
            identity,
            first,
            last,
            deny,
            rule_id,
        }
    }

    #[test]
    fn a_deny_inside_an_allow_range_is_cut_out_of_it() {
        let entries = build(vec![
            item(300, 0, 65535, false, 1),
            item(300, 80, 80, true, 2),
        ]);
        let deny_80 = entries
            .iter()
            .find(|(k, _)| k.port == 80 && k.prefix_bits == 16)
            .unwrap();
        assert!(deny_80.1.deny);
        assert!(
            entries
                .iter()
                .filter(|(_, e)| !e.deny)
                .all(|(k, _)| !k.ports().contains(&80))
        );
        assert!(
            entries
                .iter()
                .filter(|(_, e)| !e.deny)
                .any(|(k, _)| k.ports().contains(&81))
        );
    }

    #[test]
    fn the_same_key_from_two_rules_keeps_the_lower_rule_id() {
        let entries = build(vec![
            item(300, 80, 80, false, 9),
            item(300, 80, 80, false, 4),
        ]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries.values().next().unwrap().rule_id, 4);
    }

    proptest! {
        /// Emulating the longest-prefix lookup over the built entries gives deny exactly
        /// where some deny covers the port, allow where only allows do, nothing elsewhere.
        #[test]
        fn longest_match_gives_deny_over_allow(
            ranges in proptest::collection::vec((0u16..200, 0u16..200, any::<bool>()), 1..6),
            port in 0u16..200,
        ) {
            let items: Vec<Item> = ranges
                .iter()
                .enumerate()
                .map(|(n, (a, b, deny))| item(300, *a.min(b), *a.max(b), *deny, n as u32 + 1))
                .collect();
            let entries = build(items.clone());
            let longest = entries
                .iter()
                .filter(|(k, _)| k.ports().contains(&port))
                .max_by_key(|(k, _)| k.prefix_bits)
                .map(|(_, e)| e.deny);
            let covered = |deny: bool| items.iter().any(|i| i.deny == deny && (i.first..=i.last).contains(&port));
            let expected = if covered(true) { Some(true) } else if covered(false) { Some(false) } else { None };
            prop_assert_eq!(longest, expected);
        }
    }
}

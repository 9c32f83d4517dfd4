//! Peers resolved to identity numbers, once per clause and compilation.

use crate::cidr::within;
use crate::clause::Peers;
use crate::universe::{CLUSTER_RESERVED, Selection, Universe};
use ipnet::IpNet;
use membrane_common::identity;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Who a clause's peers are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Every peer (the wildcard identity 0).
    Any,
    /// These identities.
    Set(BTreeSet<u32>),
}

/// What peers resolve against.
pub struct Resolver<'a> {
    /// The allocated identities.
    pub universe: &'a Universe,
    /// The CIDR identities of this compilation.
    pub cidr_identities: &'a BTreeMap<IpNet, u32>,
    /// Every pod address and its identity.
    pub pod_addresses: &'a BTreeMap<IpAddr, u32>,
}

impl Resolver<'_> {
    /// The identities `peers` stands for, narrowed to those matching every one of
    /// `requires`.
    pub fn resolve(&self, peers: &Peers, requires: &[Selection]) -> Resolved {
        let set: BTreeSet<u32> = match peers {
            Peers::Any if requires.is_empty() => return Resolved::Any,
            Peers::Any => self.universe.allocated().collect(),
            Peers::Selected(selection) => self.universe.select(selection),
            Peers::Cluster => CLUSTER_RESERVED
                .into_iter()
                .chain(self.universe.allocated())
                .collect(),
            unlabelled => self.unlabelled(unlabelled),
        };
        if requires.is_empty() {
            return Resolved::Set(set);
        }
        let required: Vec<BTreeSet<u32>> =
            requires.iter().map(|s| self.universe.select(s)).collect();
        Resolved::Set(
            set.into_iter()
                .filter(|n| required.iter().all(|r| r.contains(n)))
                .collect(),
        )
    }

    /// Whether identity `number` is in the set [`Resolver::resolve`] gives for `peers`
    /// and `requires` (the same answer for one identity, so a changed identity updates
    /// a resolved set without resolving it again). Not for [`Resolved::Any`].
    pub fn admits(&self, peers: &Peers, requires: &[Selection], number: u32) -> bool {
        let labels = self.universe.get(number);
        let peer = match peers {
            Peers::Any => labels.is_some(),
            Peers::Selected(selection) => labels.is_some_and(|l| selection.matches(l)),
            Peers::Cluster => labels.is_some() || CLUSTER_RESERVED.contains(&number),
            unlabelled => self.unlabelled(unlabelled).contains(&number),
        };
        peer && requires
            .iter()
            .all(|r| labels.is_some_and(|l| r.matches(l)))
    }

    /// Whether the identities `peers` and `requires` stand for depend on the labels of
    /// allocated identities (else a changed identity cannot change them).
    pub fn reads_labels(peers: &Peers, requires: &[Selection]) -> bool {
        !requires.is_empty() || matches!(peers, Peers::Selected(_) | Peers::Cluster)
    }

    /// The identities of peers not chosen by labels: reserved ones, `world` and CIDR
    /// identities, pods by address.
    fn unlabelled(&self, peers: &Peers) -> BTreeSet<u32> {
        match peers {
            Peers::Any | Peers::Selected(_) | Peers::Cluster | Peers::Nothing => BTreeSet::new(),
            Peers::Reserved(number) => [*number].into(),
            Peers::World { ipv4, ipv6 } => std::iter::once(identity::WORLD)
                .chain(
                    self.cidr_identities
                        .iter()
                        .filter(|(prefix, _)| match prefix {
                            IpNet::V4(_) => *ipv4,
                            IpNet::V6(_) => *ipv6,
                        })
                        .map(|(_, number)| *number),
                )
                .collect(),
            Peers::Cidr { cidr, except, pods } => self.cidr(cidr, except, *pods),
        }
    }

    /// The CIDR identities inside `cidr` and outside every `except` (plus `world` for a
    /// `/0`), and with `pods` the identities of pods addressed there.
    fn cidr(&self, cidr: &IpNet, except: &[IpNet], pods: bool) -> BTreeSet<u32> {
        let excluded = |inner: &IpNet| except.iter().any(|e| within(inner, e));
        let mut out: BTreeSet<u32> = self
            .cidr_identities
            .iter()
            .filter(|(prefix, _)| within(prefix, cidr) && !excluded(prefix))
            .map(|(_, number)| *number)
            .collect();
        if cidr.prefix_len() == 0 {
            out.insert(identity::WORLD);
        }
        if pods {
            out.extend(
                self.pod_addresses
                    .iter()
                    .filter(|(addr, _)| {
                        let host = IpNet::from(**addr);
                        within(&host, cidr) && !excluded(&host)
                    })
                    .map(|(_, number)| *number),
            );
        }
        out
    }
}

//! Map capacities: what each load-dependent map is sized for, applied before the object
//! is loaded, checked against maps already pinned, and what the maps cost the kernel.

use crate::error::DatapathError;
use crate::layout::open_pinned;
use aya::EbpfLoader;
use membrane_common::map_names;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

/// Capacities of the maps whose size depends on the node's load. The defaults are the
/// sizes the eBPF object declares; every field can be raised (or lowered) at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// Conntrack entries (LRU).
    pub conntrack: u32,
    /// NAT entries (LRU; two per masqueraded connection).
    pub nat: u32,
    /// Endpoint entries (two per dual-stack pod).
    pub endpoints: u32,
    /// ipcache prefixes (allocated on demand).
    pub ipcache: u32,
    /// Services map entries: one per frontend scope plus one per backend slot, so
    /// 100,000 Services of 10 backends need 1,100,000.
    pub services: u32,
    /// Backends.
    pub backends: u32,
    /// Reverse-NAT entries (one per external-scope frontend).
    pub rev_nat: u32,
    /// Session-affinity entries (LRU; one per client of a ClientIP Service).
    pub affinity: u32,
    /// Maglev table positions, summed over every Maglev Service (each takes the
    /// Maglev table size).
    pub maglev: u32,
    /// Socket reverse-translation entries (LRU; one per UDP socket and backend).
    pub sock_rev_nat: u32,
    /// Policy entries (allocated on demand).
    pub policy: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            conntrack: 262_144,
            nat: 262_144,
            endpoints: 16_384,
            ipcache: 65_536,
            services: 262_144,
            backends: 262_144,
            rev_nat: 65_536,
            affinity: 65_536,
            maglev: 65_536,
            sock_rev_nat: 65_536,
            policy: 1 << 20,
        }
    }
}

impl MapSizes {
    /// Sizes that hold `services` Services of `backends` backends each (one scope per
    /// frontend), with every other map at its default.
    pub fn for_services(services: u32, backends: u32) -> MapSizes {
        let defaults = MapSizes::default();
        let slots = services.saturating_mul(backends.saturating_add(1));
        MapSizes {
            services: slots.max(defaults.services),
            backends: services.saturating_mul(backends).max(defaults.backends),
            rev_nat: services.max(defaults.rev_nat),
            ..defaults
        }
    }

    /// Every map with its name and requested capacity.
    pub fn entries(&self) -> [(&'static str, u32); 12] {
        [
            (map_names::CT, self.conntrack),
            (map_names::NAT, self.nat),
            (map_names::ENDPOINTS, self.endpoints),
            // One entry per pod, as the endpoints map has one per pod address.
            (map_names::NETNS_ENDPOINTS, self.endpoints),
            (map_names::IPCACHE, self.ipcache),
            (map_names::SERVICES, self.services),
            (map_names::BACKENDS, self.backends),
            (map_names::REV_NAT, self.rev_nat),
            (map_names::AFFINITY, self.affinity),
            (map_names::MAGLEV, self.maglev),
            (map_names::SOCK_REV_NAT, self.sock_rev_nat),
            (map_names::POLICY, self.policy),
        ]
    }

    /// Rejects a zero capacity, naming the map.
    pub fn validate(&self) -> Result<(), DatapathError> {
        match self.entries().iter().find(|(_, size)| *size == 0) {
            Some((name, _)) => Err(DatapathError::InvalidOption {
                option: "map_sizes",
                reason: format!("map {name} cannot have 0 entries"),
            }),
            None => Ok(()),
        }
    }

    /// Sets every capacity on the loader (before the object is loaded).
    pub(crate) fn apply(&self, loader: &mut EbpfLoader<'_>) {
        for (name, size) in self.entries() {
            loader.map_max_entries(name, size);
        }
    }

    /// Fails when a map already pinned under `pin_dir` (which a load would adopt as it
    /// is) has another capacity than asked for: resizing means removing the pin, which
    /// drops the map's entries, so it is left to the operator.
    pub(crate) fn check_pinned(&self, pin_dir: &Path) -> Result<(), DatapathError> {
        for (name, size) in self.entries() {
            let path = pin_dir.join(name);
            if !path.exists() {
                continue;
            }
            let pinned = open_pinned(&path)?.1.max_entries();
            if pinned != size {
                return Err(DatapathError::InvalidOption {
                    option: "map_sizes",
                    reason: format!(
                        "map {name} is pinned at {} with {pinned} entries but {size} were asked for; \
                         remove the pin (its entries are lost) or ask for {pinned}",
                        path.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Kernel memory of one map, as the kernel accounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapMemory {
    /// The map's name.
    pub map: &'static str,
    /// Its capacity.
    pub capacity: u32,
    /// Bytes charged for it (`memlock` in its fdinfo): preallocated maps are charged
    /// for their full capacity, on-demand ones for what they hold.
    pub bytes: u64,
}

/// The kernel memory of every sized map pinned under `pin_dir`.
pub fn pinned_memory(pin_dir: &Path) -> Result<Vec<MapMemory>, DatapathError> {
    let names = MapSizes::default().entries().map(|(name, _)| name);
    let mut memory = Vec::with_capacity(names.len());
    for name in names {
        let path = pin_dir.join(name);
        let (map, info) = open_pinned(&path)?;
        let capacity = info.max_entries();
        let fdinfo = format!("/proc/self/fdinfo/{}", map.fd().as_fd().as_raw_fd());
        let text = std::fs::read_to_string(&fdinfo)
            .map_err(|source| DatapathError::Fdinfo { map: name, source })?;
        let bytes = text
            .lines()
            .find_map(|line| line.strip_prefix("memlock:"))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| DatapathError::Fdinfo {
                map: name,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("no memlock line in {fdinfo}"),
                ),
            })?;
        memory.push(MapMemory {
            map: name,
            capacity,
            bytes,
        });
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_a_hundred_thousand_services_of_ten_backends_hold_every_entry() {
        let sizes = MapSizes::for_services(100_000, 10);
        assert_eq!(sizes.services, 1_100_000);
        assert_eq!(sizes.backends, 1_000_000);
        assert_eq!(sizes.rev_nat, 100_000);
        assert_eq!(sizes.conntrack, MapSizes::default().conntrack);
    }

    #[test]
    fn small_service_counts_keep_the_defaults() {
        assert_eq!(MapSizes::for_services(10, 10), MapSizes::default());
    }

    #[test]
    fn a_zero_capacity_is_rejected_naming_the_map() {
        let sizes = MapSizes {
            backends: 0,
            ..MapSizes::default()
        };
        let error = sizes.validate().unwrap_err().to_string();
        assert!(error.contains("MEMBRANE_BACKENDS"), "{error}");
    }
}

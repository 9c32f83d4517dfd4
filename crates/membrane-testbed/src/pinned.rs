//! Reads a node's pinned datapath maps straight from bpffs: the endpoint entries tests
//! assert on and the packet counters the demo shows.

use aya::maps::{HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray};
use membrane_common::ct::{CtEntry, CtKey};
use membrane_common::metrics::{direction, reason};
use membrane_common::{EndpointInfo, EndpointKey, Family, METRICS_SLOTS, MetricsValue, map_names};
use membrane_common::{IpcacheAddr, IpcacheEntry};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Errors of reading pinned maps.
#[derive(Debug, thiserror::Error)]
pub enum PinnedError {
    /// The map could not be opened or read.
    #[error("cannot read pinned map {path}")]
    Map {
        /// The pinned map.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<MapError>,
    },
}

fn open(pin_dir: &Path, name: &str) -> Result<(PathBuf, Map), PinnedError> {
    let path = pin_dir.join(name);
    let err = |source| PinnedError::Map {
        path: path.clone(),
        source: Box::new(source),
    };
    let data = MapData::from_pin(&path).map_err(err)?;
    let map = Map::from_map_data(data).map_err(err)?;
    Ok((path, map))
}

/// The address an endpoint key stands for.
pub fn key_address(key: &EndpointKey) -> Option<IpAddr> {
    match key.family {
        Family::V4 => {
            let [a, b, c, d, ..] = key.addr;
            Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
        }
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(key.addr))),
        _ => None,
    }
}

/// The pod addresses in the endpoints map.
pub fn endpoint_addresses(pin_dir: &Path) -> Result<Vec<IpAddr>, PinnedError> {
    let (path, map) = open(pin_dir, map_names::ENDPOINTS)?;
    let err = |source| PinnedError::Map {
        path: path.clone(),
        source: Box::new(source),
    };
    let endpoints: HashMap<MapData, EndpointKey, EndpointInfo> =
        HashMap::try_from(map).map_err(err)?;
    let keys: Vec<EndpointKey> = endpoints.keys().collect::<Result<_, _>>().map_err(err)?;
    Ok(keys.iter().filter_map(key_address).collect())
}

/// Every conntrack entry of the node's datapath, read from its pinned `MEMBRANE_CT`.
pub fn conntrack_entries(pin_dir: &Path) -> Result<Vec<(CtKey, CtEntry)>, PinnedError> {
    let (path, map) = open(pin_dir, map_names::CT)?;
    let err = |source| PinnedError::Map {
        path: path.clone(),
        source: Box::new(source),
    };
    let ct: HashMap<MapData, CtKey, CtEntry> = HashMap::try_from(map).map_err(err)?;
    ct.iter().collect::<Result<_, _>>().map_err(err)
}

/// Every address in the node's pinned `MEMBRANE_IPCACHE` with its identity (prefixes
/// are reported by their first address).
pub fn ipcache_identities(pin_dir: &Path) -> Result<Vec<(IpAddr, u32)>, PinnedError> {
    let (path, map) = open(pin_dir, map_names::IPCACHE)?;
    let err = |source| PinnedError::Map {
        path: path.clone(),
        source: Box::new(source),
    };
    let trie: LpmTrie<MapData, IpcacheAddr, IpcacheEntry> = LpmTrie::try_from(map).map_err(err)?;
    let mut found = Vec::new();
    for item in trie.iter() {
        let (key, entry) = item.map_err(err)?;
        let data = key.data();
        let address = key_address(&EndpointKey {
            addr: data.addr,
            family: data.family,
            _pad: [0; 3],
        });
        found.extend(address.map(|ip| (ip, entry.identity)));
    }
    Ok(found)
}

/// One non-zero packet counter of the datapath, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// What happened (`forward_local`, `masquerade`, a drop reason...).
    pub reason: &'static str,
    /// True for drop reasons.
    pub is_drop: bool,
    /// `egress` (leaving a pod) or `ingress`.
    pub direction: &'static str,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Every non-zero packet counter, in reason order.
pub fn counters(pin_dir: &Path) -> Result<Vec<Counter>, PinnedError> {
    let (path, map) = open(pin_dir, map_names::METRICS)?;
    let err = |source| PinnedError::Map {
        path: path.clone(),
        source: Box::new(source),
    };
    let metrics: PerCpuArray<MapData, MetricsValue> = PerCpuArray::try_from(map).map_err(err)?;
    let mut rows = Vec::new();
    for index in 0..METRICS_SLOTS {
        let values = metrics.get(&index, 0).map_err(err)?;
        let (packets, bytes) = values
            .iter()
            .fold((0, 0), |(p, b), v| (p + v.packets, b + v.bytes));
        if packets == 0 {
            continue;
        }
        let code = (index / 2) as u8;
        rows.push(Counter {
            reason: reason::name(code),
            is_drop: code >= reason::DROP_FIRST,
            direction: if index % 2 == u32::from(direction::EGRESS) {
                "egress"
            } else {
                "ingress"
            },
            packets,
            bytes,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_common::tuple::v4_bytes;

    #[test]
    fn endpoint_keys_turn_back_into_addresses_of_their_family() {
        let v4 = EndpointKey {
            addr: v4_bytes([10, 200, 1, 7]),
            family: Family::V4,
            _pad: [0; 3],
        };
        assert_eq!(key_address(&v4), Some("10.200.1.7".parse().unwrap()));
        let ip: Ipv6Addr = "fd00:200:0:1::7".parse().unwrap();
        let v6 = EndpointKey {
            addr: ip.octets(),
            family: Family::V6,
            _pad: [0; 3],
        };
        assert_eq!(key_address(&v6), Some(IpAddr::V6(ip)));
        let junk = EndpointKey {
            addr: [0; 16],
            family: 9,
            _pad: [0; 3],
        };
        assert_eq!(key_address(&junk), None);
    }
}

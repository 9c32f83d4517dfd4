//! Map pressure: how full each of the datapath's bounded maps is, for the agent's
//! metrics (a full map makes the datapath refuse new connections, Services or peers).

use crate::error::DatapathError;
use crate::maps::Maps;
use aya::Pod;
use aya::maps::{IterableMap, MapError};
use membrane_common::map_names;

/// How full one map is at one reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPressure {
    /// The map's short name as metrics label it (`conntrack`, `services`...).
    pub map: &'static str,
    /// Entries at the reading.
    pub entries: u64,
    /// The map's capacity (its max entries).
    pub capacity: u64,
}

/// Reads one map: its capacity from the kernel, its entries by walking its keys (keys
/// removed during the walk, as LRU maps do, are skipped rather than failing it).
fn read<K: Pod, V, M: IterableMap<K, V>>(
    label: &'static str,
    name: &'static str,
    map: &M,
    keys: impl Iterator<Item = Result<K, MapError>>,
) -> Result<MapPressure, DatapathError> {
    let info = map.map().info().map_err(|source| DatapathError::Map {
        map: name,
        operation: "read info",
        source,
    })?;
    Ok(MapPressure {
        map: label,
        entries: keys.filter_map(Result::ok).count() as u64,
        capacity: u64::from(info.max_entries()),
    })
}

impl Maps {
    /// The fill level of every bounded map the agent writes or the datapath fills.
    pub fn pressure(&self) -> Result<Vec<MapPressure>, DatapathError> {
        Ok(vec![
            read(
                "services",
                map_names::SERVICES,
                &self.services,
                self.services.keys(),
            )?,
            read(
                "backends",
                map_names::BACKENDS,
                &self.backends,
                self.backends.keys(),
            )?,
            read(
                "rev_nat",
                map_names::REV_NAT,
                &self.rev_nat,
                self.rev_nat.keys(),
            )?,
            read(
                "maglev",
                map_names::MAGLEV,
                &self.maglev,
                self.maglev.keys(),
            )?,
            read("conntrack", map_names::CT, &self.ct, self.ct.keys())?,
            read("nat", map_names::NAT, &self.nat, self.nat.keys())?,
            read(
                "ipcache",
                map_names::IPCACHE,
                &self.ipcache,
                self.ipcache.keys(),
            )?,
            read(
                "endpoints",
                map_names::ENDPOINTS,
                &self.endpoints,
                self.endpoints.keys(),
            )?,
            read(
                "policy",
                map_names::POLICY,
                &self.policy,
                self.policy.keys(),
            )?,
        ])
    }
}

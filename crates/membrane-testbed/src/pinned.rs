//! Reads a node's pinned datapath maps straight from bpffs (through
//! `membrane_datapath::PinnedMaps`): the entries tests assert on and the packet counters.

use aya::maps::{HashMap, Map, MapData, MapError};
use membrane_common::ct::{CtEntry, CtKey};
use membrane_common::map_names;
use membrane_datapath::{DatapathError, PinnedMaps};
use std::net::IpAddr;
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
    /// The pinned maps could not be read.
    #[error("cannot read the pinned maps in {dir}")]
    Datapath {
        /// The pin directory.
        dir: PathBuf,
        /// The datapath error.
        #[source]
        source: Box<DatapathError>,
    },
}

fn pins(
    pin_dir: &Path,
) -> Result<(PinnedMaps, impl Fn(DatapathError) -> PinnedError), PinnedError> {
    let err = {
        let dir = pin_dir.to_path_buf();
        move |source| PinnedError::Datapath {
            dir: dir.clone(),
            source: Box::new(source),
        }
    };
    let maps = PinnedMaps::open(pin_dir).map_err(&err)?;
    Ok((maps, err))
}

/// The pod addresses in the endpoints map.
pub fn endpoint_addresses(pin_dir: &Path) -> Result<Vec<IpAddr>, PinnedError> {
    let (maps, err) = pins(pin_dir)?;
    Ok(maps
        .endpoints()
        .map_err(err)?
        .into_iter()
        .map(|row| row.address)
        .collect())
}

/// Every conntrack entry of the node's datapath, read from its pinned `MEMBRANE_CT`,
/// with its raw key.
pub fn conntrack_entries(pin_dir: &Path) -> Result<Vec<(CtKey, CtEntry)>, PinnedError> {
    let path = pin_dir.join(map_names::CT);
    let err = |source| PinnedError::Map {
        path: path.clone(),
        source: Box::new(source),
    };
    let data = MapData::from_pin(&path).map_err(err)?;
    let map = Map::from_map_data(data).map_err(err)?;
    let ct: HashMap<MapData, CtKey, CtEntry> = HashMap::try_from(map).map_err(err)?;
    ct.iter().collect::<Result<_, _>>().map_err(err)
}

/// Every address in the node's pinned `MEMBRANE_IPCACHE` with its identity (prefixes
/// are reported by their first address).
pub fn ipcache_identities(pin_dir: &Path) -> Result<Vec<(IpAddr, u32)>, PinnedError> {
    let (maps, err) = pins(pin_dir)?;
    Ok(maps
        .ipcache()
        .map_err(err)?
        .into_iter()
        .map(|row| (row.prefix.addr(), row.identity))
        .collect())
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
    let (maps, err) = pins(pin_dir)?;
    Ok(maps
        .counters()
        .map_err(err)?
        .into_iter()
        .map(|c| Counter {
            reason: c.reason_name,
            is_drop: c.is_drop,
            direction: c.direction,
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect())
}

//! The layout of each pinned map (its type and its key and value sizes) checked against
//! the object's definition before a load. The loader adopts a pinned map as it is, so a
//! map pinned by a datapath whose entries looked different would be read with the wrong
//! shape by the new programs; such a pin is removed, and the load creates the map afresh
//! (its old entries cannot be read by the new programs anyway).

use crate::error::DatapathError;
use aya::maps::{MapData, MapError, MapInfo};
use aya_obj::maps::PinningType;
use std::fmt;
use std::path::Path;

/// What a map's entries look like to the programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    /// The kernel's map type number (`BPF_MAP_TYPE_*`).
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
}

impl fmt::Display for MapLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {}, {}-byte keys, {}-byte values",
            self.map_type, self.key_size, self.value_size
        )
    }
}

/// A pinned map whose pin was removed because its layout was not the object's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplacedMap {
    /// The map's name (and pin file).
    pub map: String,
    /// The layout of the map that was pinned.
    pub pinned: MapLayout,
    /// The layout the object defines, which the load creates.
    pub object: MapLayout,
}

impl fmt::Display for ReplacedMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "map {} was pinned with {} but the datapath needs {}",
            self.map, self.pinned, self.object
        )
    }
}

/// Removes the pin of every map under `pin_dir` that `object` pins by name with another
/// layout; returns what it removed.
pub(crate) fn replace_incompatible(
    object: &[u8],
    pin_dir: &Path,
) -> Result<Vec<ReplacedMap>, DatapathError> {
    let parsed = aya_obj::Object::parse(object).map_err(|e| DatapathError::Object(Box::new(e)))?;
    let mut replaced = Vec::new();
    for (name, map) in &parsed.maps {
        let path = pin_dir.join(name);
        if map.pinning() != PinningType::ByName || !path.exists() {
            continue;
        }
        let wanted = MapLayout {
            map_type: map.map_type(),
            key_size: map.key_size(),
            value_size: map.value_size(),
        };
        let pinned = pinned_layout(&path)?;
        if pinned == wanted {
            continue;
        }
        std::fs::remove_file(&path).map_err(|source| DatapathError::Unpin {
            path: path.clone(),
            source,
        })?;
        replaced.push(ReplacedMap {
            map: name.clone(),
            pinned,
            object: wanted,
        });
    }
    replaced.sort_by(|a, b| a.map.cmp(&b.map));
    Ok(replaced)
}

/// The layout of the map pinned at `path`.
fn pinned_layout(path: &Path) -> Result<MapLayout, DatapathError> {
    let (_, info) = open_pinned(path)?;
    Ok(MapLayout {
        map_type: info
            .map_type()
            .map_err(pinned_map_error(path, "read the type of"))? as u32,
        key_size: info.key_size(),
        value_size: info.value_size(),
    })
}

/// The map pinned at `path` and the kernel's description of it.
pub(crate) fn open_pinned(path: &Path) -> Result<(MapData, MapInfo), DatapathError> {
    let map = MapData::from_pin(path).map_err(pinned_map_error(path, "open"))?;
    let info = map
        .info()
        .map_err(pinned_map_error(path, "read the info of"))?;
    Ok((map, info))
}

/// The error of `operation` failing on the map pinned at `path`.
fn pinned_map_error(
    path: &Path,
    operation: &'static str,
) -> impl FnOnce(MapError) -> DatapathError {
    move |source| DatapathError::PinnedMap {
        path: path.to_path_buf(),
        operation,
        source: Box::new(source),
    }
}

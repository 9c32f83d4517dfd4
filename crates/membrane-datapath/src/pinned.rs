//! Read-only access to a node's pinned maps, for inspection tools (`membrane bpf`,
//! `membrane status`): works without the agent, as root, from the pin directory alone.
//! Entries come back decoded: addresses as [`IpAddr`], ports in host byte order.

use crate::error::DatapathError;
use crate::maps::{ReasonCounter, read_counters, to_ip as address};
use crate::pressure::MapPressure;
use aya::Pod;
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray};
use ipnet::IpNet;
use membrane_common::ct::{CtEntry, CtKey};
use membrane_common::lb::{Backend, MaglevKey, RevNat, ServiceKey, ServiceValue};
use membrane_common::nat::NatEntry;
use membrane_common::policy::{POLICY_FIXED_BITS, PolicyEntry, PolicyKey};
use membrane_common::{DatapathConfig, EndpointInfo, EndpointKey, MetricsValue, map_names};
use membrane_common::{IPCACHE_PREFIX_BITS, IpcacheAddr, IpcacheEntry};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// A connection's tuple, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Source port (ICMP echo: the identifier).
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (ICMP echo: the identifier).
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

impl From<&CtKey> for Tuple {
    fn from(key: &CtKey) -> Tuple {
        Tuple {
            src: address(&key.saddr, key.family),
            sport: u16::from_be(key.sport),
            dst: address(&key.daddr, key.family),
            dport: u16::from_be(key.dport),
            proto: key.proto,
        }
    }
}

/// One slot of a Service frontend (slot 0 is the frontend itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceSlot {
    /// Frontend address (unspecified for a NodePort: every node address).
    pub address: IpAddr,
    /// Frontend port.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// `membrane_common::lb::scope` constant.
    pub scope: u8,
    /// 0 for the frontend, `1..` for its backends.
    pub slot: u16,
    /// The entry (backend id in slots, counts and flags in slot 0).
    pub value: ServiceValue,
}

/// One backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendEntry {
    /// Backend id.
    pub id: u32,
    /// Address.
    pub address: IpAddr,
    /// Port.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// `membrane_common::lb::backend_flags`.
    pub flags: u8,
}

/// One masquerade translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatMapping {
    /// The tuple as it arrives.
    pub tuple: Tuple,
    /// The address it is rewritten to.
    pub to: IpAddr,
    /// The port it is rewritten to.
    pub to_port: u16,
    /// When the mapping was made (`bpf_ktime_get_ns`).
    pub created_ns: u64,
}

/// One ipcache prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcacheRow {
    /// The prefix.
    pub prefix: IpNet,
    /// Its security identity.
    pub identity: u32,
    /// The node hosting it, for another node's pods.
    pub node: Option<IpAddr>,
}

/// One policy rule of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRow {
    /// The endpoint id.
    pub endpoint_id: u16,
    /// `membrane_common::metrics::direction` constant.
    pub direction: u8,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Peer identity, 0 for any.
    pub identity: u32,
    /// Destination ports the rule covers.
    pub ports: RangeInclusive<u16>,
    /// What it says.
    pub entry: PolicyEntry,
}

/// One local endpoint address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    /// The pod address.
    pub address: IpAddr,
    /// What the datapath knows of it.
    pub info: EndpointInfo,
}

/// A node's pin directory, opened for reading.
#[derive(Clone, Debug)]
pub struct PinnedMaps {
    dir: PathBuf,
}

impl PinnedMaps {
    /// The maps pinned in `dir` (checked to hold a Membrane datapath's config map).
    pub fn open(dir: &Path) -> Result<PinnedMaps, DatapathError> {
        let maps = PinnedMaps { dir: dir.into() };
        maps.map(map_names::CONFIG)?;
        Ok(maps)
    }

    /// The pin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn map(&self, name: &'static str) -> Result<Map, DatapathError> {
        let err = |operation| {
            move |source| DatapathError::Map {
                map: name,
                operation,
                source,
            }
        };
        let path = self.dir.join(name);
        if !path.exists() {
            return Err(DatapathError::NotPinned { path });
        }
        let data = MapData::from_pin(&path).map_err(err("open the pin of"))?;
        Map::from_map_data(data).map_err(err("open"))
    }

    fn hash<K: Pod, V: Pod>(&self, name: &'static str) -> Result<Vec<(K, V)>, DatapathError> {
        let map: HashMap<MapData, K, V> =
            HashMap::try_from(self.map(name)?).map_err(|source| DatapathError::Map {
                map: name,
                operation: "open",
                source,
            })?;
        entries(name, map.iter())
    }

    fn trie<K: Pod, V: Pod>(
        &self,
        name: &'static str,
    ) -> Result<Vec<(aya::maps::lpm_trie::Key<K>, V)>, DatapathError> {
        let map: LpmTrie<MapData, K, V> =
            LpmTrie::try_from(self.map(name)?).map_err(|source| DatapathError::Map {
                map: name,
                operation: "open",
                source,
            })?;
        entries(name, map.iter())
    }

    /// The datapath's configuration (routing mode, masquerade, NAT ports, flags).
    pub fn config(&self) -> Result<DatapathConfig, DatapathError> {
        let name = map_names::CONFIG;
        let err = |operation| {
            move |source| DatapathError::Map {
                map: name,
                operation,
                source,
            }
        };
        let array: Array<MapData, DatapathConfig> =
            Array::try_from(self.map(name)?).map_err(err("open"))?;
        array.get(&0, 0).map_err(err("read"))
    }

    /// The datapath's packet counters per reason and direction, zero rows omitted.
    pub fn counters(&self) -> Result<Vec<ReasonCounter>, DatapathError> {
        let name = map_names::METRICS;
        let metrics: PerCpuArray<MapData, MetricsValue> = PerCpuArray::try_from(self.map(name)?)
            .map_err(|source| DatapathError::Map {
                map: name,
                operation: "open",
                source,
            })?;
        read_counters(&metrics)
    }

    /// Every Service slot, in frontend then slot order.
    pub fn services(&self) -> Result<Vec<ServiceSlot>, DatapathError> {
        let mut rows: Vec<ServiceSlot> = self
            .hash::<ServiceKey, ServiceValue>(map_names::SERVICES)?
            .into_iter()
            .map(|(key, value)| ServiceSlot {
                address: address(&key.addr, key.family),
                port: u16::from_be(key.port),
                proto: key.proto,
                scope: key.scope,
                slot: key.slot,
                value,
            })
            .collect();
        rows.sort_by_key(|r| (r.address, r.port, r.proto, r.scope, r.slot));
        Ok(rows)
    }

    /// Every backend, by id.
    pub fn backends(&self) -> Result<Vec<BackendEntry>, DatapathError> {
        let mut rows: Vec<BackendEntry> = self
            .hash::<u32, Backend>(map_names::BACKENDS)?
            .into_iter()
            .map(|(id, b)| BackendEntry {
                id,
                address: address(&b.addr, b.family),
                port: u16::from_be(b.port),
                proto: b.proto,
                flags: b.flags,
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Every conntrack entry, by tuple.
    pub fn conntrack(&self) -> Result<Vec<(Tuple, CtEntry)>, DatapathError> {
        let mut rows: Vec<(Tuple, CtEntry)> = self
            .hash::<CtKey, CtEntry>(map_names::CT)?
            .iter()
            .map(|(key, entry)| (Tuple::from(key), *entry))
            .collect();
        rows.sort_by_key(|(t, _)| (t.src, t.sport, t.dst, t.dport, t.proto));
        Ok(rows)
    }

    /// Every masquerade mapping, by tuple.
    pub fn nat(&self) -> Result<Vec<NatMapping>, DatapathError> {
        let mut rows: Vec<NatMapping> = self
            .hash::<CtKey, NatEntry>(map_names::NAT)?
            .iter()
            .map(|(key, entry)| NatMapping {
                tuple: Tuple::from(key),
                to: address(&entry.addr, key.family),
                to_port: u16::from_be(entry.port),
                created_ns: entry.created_ns,
            })
            .collect();
        rows.sort_by_key(|m| (m.tuple.src, m.tuple.sport, m.tuple.dst, m.tuple.dport));
        Ok(rows)
    }

    /// Every ipcache prefix, by prefix.
    pub fn ipcache(&self) -> Result<Vec<IpcacheRow>, DatapathError> {
        let mut rows = Vec::new();
        for (key, entry) in self.trie::<IpcacheAddr, IpcacheEntry>(map_names::IPCACHE)? {
            rows.extend(ipcache_row(&key, &entry));
        }
        rows.sort_by_key(|r| r.prefix);
        Ok(rows)
    }

    /// Every policy rule, by endpoint, direction, identity and ports.
    pub fn policy(&self) -> Result<Vec<PolicyRow>, DatapathError> {
        let mut rows: Vec<PolicyRow> = self
            .trie::<PolicyKey, PolicyEntry>(map_names::POLICY)?
            .into_iter()
            .map(|(key, entry)| {
                let data = key.data();
                let port_bits = key.prefix_len().saturating_sub(POLICY_FIXED_BITS).min(16);
                let first = u16::from_be(data.port);
                let span = (1u32 << (16 - port_bits)) - 1;
                let last = u16::try_from(u32::from(first) + span).unwrap_or(u16::MAX);
                PolicyRow {
                    endpoint_id: data.endpoint_id,
                    direction: data.direction,
                    proto: data.proto,
                    identity: data.identity,
                    ports: first..=last,
                    entry,
                }
            })
            .collect();
        rows.sort_by_key(|r| {
            (
                r.endpoint_id,
                r.direction,
                r.identity,
                r.proto,
                *r.ports.start(),
            )
        });
        Ok(rows)
    }

    /// Every local endpoint address, by address.
    pub fn endpoints(&self) -> Result<Vec<EndpointRow>, DatapathError> {
        let mut rows: Vec<EndpointRow> = self
            .hash::<EndpointKey, EndpointInfo>(map_names::ENDPOINTS)?
            .into_iter()
            .map(|(key, info)| EndpointRow {
                address: address(&key.addr, key.family),
                info,
            })
            .collect();
        rows.sort_by_key(|r| r.address);
        Ok(rows)
    }

    /// How full each bounded map is (entries counted by walking it).
    pub fn pressure(&self) -> Result<Vec<MapPressure>, DatapathError> {
        let services = self.hash::<ServiceKey, ServiceValue>(map_names::SERVICES)?;
        let backends = self.hash::<u32, Backend>(map_names::BACKENDS)?;
        let rev_nat = self.hash::<u32, RevNat>(map_names::REV_NAT)?;
        let maglev = self.hash::<MaglevKey, u32>(map_names::MAGLEV)?;
        let ct = self.hash::<CtKey, CtEntry>(map_names::CT)?;
        let nat = self.hash::<CtKey, NatEntry>(map_names::NAT)?;
        let ipcache = self.trie::<IpcacheAddr, IpcacheEntry>(map_names::IPCACHE)?;
        let endpoints = self.hash::<EndpointKey, EndpointInfo>(map_names::ENDPOINTS)?;
        let policy = self.trie::<PolicyKey, PolicyEntry>(map_names::POLICY)?;
        [
            ("services", map_names::SERVICES, services.len()),
            ("backends", map_names::BACKENDS, backends.len()),
            ("rev_nat", map_names::REV_NAT, rev_nat.len()),
            ("maglev", map_names::MAGLEV, maglev.len()),
            ("conntrack", map_names::CT, ct.len()),
            ("nat", map_names::NAT, nat.len()),
            ("ipcache", map_names::IPCACHE, ipcache.len()),
            ("endpoints", map_names::ENDPOINTS, endpoints.len()),
            ("policy", map_names::POLICY, policy.len()),
        ]
        .into_iter()
        .map(|(label, name, entries)| {
            Ok(MapPressure {
                map: label,
                entries: entries as u64,
                capacity: self.capacity(name)?,
            })
        })
        .collect()
    }

    /// A map's capacity (max entries), from the kernel.
    fn capacity(&self, name: &'static str) -> Result<u64, DatapathError> {
        let path = self.dir.join(name);
        let err = |operation| {
            move |source| DatapathError::Map {
                map: name,
                operation,
                source,
            }
        };
        let data = MapData::from_pin(&path).map_err(err("open the pin of"))?;
        let info = data.info().map_err(err("read info"))?;
        Ok(u64::from(info.max_entries()))
    }
}

/// An ipcache entry decoded; `None` for a prefix length no address has.
pub(crate) fn ipcache_row(
    key: &aya::maps::lpm_trie::Key<IpcacheAddr>,
    entry: &IpcacheEntry,
) -> Option<IpcacheRow> {
    let data = key.data();
    let bits = key.prefix_len().saturating_sub(IPCACHE_PREFIX_BITS) as u8;
    let prefix = IpNet::new(address(&data.addr, data.family), bits).ok()?;
    Some(IpcacheRow {
        prefix,
        identity: entry.identity,
        node: (entry.tunnel_family != 0)
            .then(|| address(&entry.tunnel_endpoint, entry.tunnel_family)),
    })
}

/// Collects a map's entries; entries removed while it is walked (LRU maps evict, the
/// agent collects) end the walk early rather than failing it, other errors fail it.
fn entries<T>(
    name: &'static str,
    iter: impl Iterator<Item = Result<T, MapError>>,
) -> Result<Vec<T>, DatapathError> {
    let mut rows = Vec::new();
    for item in iter {
        match item {
            Ok(row) => rows.push(row),
            Err(MapError::KeyNotFound) => continue,
            Err(source) => {
                return Err(DatapathError::Map {
                    map: name,
                    operation: "iterate",
                    source,
                });
            }
        }
    }
    Ok(rows)
}

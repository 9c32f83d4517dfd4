//! Typed handles on the pinned maps.

use crate::error::DatapathError;
use crate::pinned::ipcache_row;
use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf};
use ipnet::IpNet;
use membrane_common::ct::ct_flags;
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::v4_bytes;
use membrane_common::{
    Backend, Family, IPCACHE_PREFIX_BITS, IpcacheAddr, IpcacheEntry, MaglevKey, PolicyEntry,
    PolicyKey, RevNat, ServiceKey, ServiceValue,
};
use membrane_common::{
    CtEntry, CtKey, DatapathConfig, EndpointInfo, EndpointKey, METRICS_SLOTS, MetricsValue,
    NatEntry, NetnsEndpoint, map_names,
};
use std::net::IpAddr;

/// One row of the datapath's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonCounter {
    /// The reason code (see `membrane_common::metrics::reason`).
    pub reason: u8,
    /// Its name.
    pub reason_name: &'static str,
    /// True for drop reasons.
    pub is_drop: bool,
    /// "egress" (leaving a pod) or "ingress".
    pub direction: &'static str,
    /// Packets, summed over CPUs.
    pub packets: u64,
    /// Bytes, summed over CPUs.
    pub bytes: u64,
}

/// The maps the agent reads and writes.
pub struct Maps {
    pub(crate) config: Array<MapData, DatapathConfig>,
    pub(crate) endpoints: HashMap<MapData, EndpointKey, EndpointInfo>,
    pub(crate) netns_endpoints: HashMap<MapData, u64, NetnsEndpoint>,
    pub(crate) ct: HashMap<MapData, CtKey, CtEntry>,
    pub(crate) nat: HashMap<MapData, CtKey, NatEntry>,
    pub(crate) ipcache: LpmTrie<MapData, IpcacheAddr, IpcacheEntry>,
    pub(crate) services: HashMap<MapData, ServiceKey, ServiceValue>,
    pub(crate) backends: HashMap<MapData, u32, Backend>,
    pub(crate) rev_nat: HashMap<MapData, u32, RevNat>,
    pub(crate) maglev: HashMap<MapData, MaglevKey, u32>,
    pub(crate) policy: LpmTrie<MapData, PolicyKey, PolicyEntry>,
    metrics: PerCpuArray<MapData, MetricsValue>,
    pub(crate) events: Option<RingBuf<MapData>>,
}

/// The 16-byte form and family of an address.
pub(crate) fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    match ip {
        IpAddr::V4(v4) => (v4_bytes(v4.octets()), Family::V4),
        IpAddr::V6(v6) => (v6.octets(), Family::V6),
    }
}

/// The LPM key of a prefix.
fn ipcache_key(prefix: IpNet) -> Key<IpcacheAddr> {
    let (addr, family) = addr_bytes(prefix.network());
    Key::new(
        IPCACHE_PREFIX_BITS + u32::from(prefix.prefix_len()),
        IpcacheAddr {
            family,
            _pad: [0; 3],
            addr,
        },
    )
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, DatapathError> {
    let map = ebpf
        .take_map(name)
        .ok_or(DatapathError::Missing { kind: "map", name })?;
    T::try_from(map).map_err(|source| DatapathError::Map {
        map: name,
        operation: "open",
        source,
    })
}

/// Treats "no such key" as success (removals are idempotent).
pub(crate) fn ignore_missing(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

impl Maps {
    /// Takes the maps out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Maps, DatapathError> {
        Ok(Maps {
            config: take(ebpf, map_names::CONFIG)?,
            endpoints: take(ebpf, map_names::ENDPOINTS)?,
            netns_endpoints: take(ebpf, map_names::NETNS_ENDPOINTS)?,
            ct: take(ebpf, map_names::CT)?,
            nat: take(ebpf, map_names::NAT)?,
            ipcache: take(ebpf, map_names::IPCACHE)?,
            services: take(ebpf, map_names::SERVICES)?,
            backends: take(ebpf, map_names::BACKENDS)?,
            rev_nat: take(ebpf, map_names::REV_NAT)?,
            maglev: take(ebpf, map_names::MAGLEV)?,
            policy: take(ebpf, map_names::POLICY)?,
            metrics: take(ebpf, map_names::METRICS)?,
            events: Some(take(ebpf, map_names::EVENTS)?),
        })
    }

    /// Writes the datapath settings.
    pub fn write_config(&mut self, config: &DatapathConfig) -> Result<(), DatapathError> {
        self.config
            .set(0, config, 0)
            .map_err(|source| DatapathError::Map {
                map: map_names::CONFIG,
                operation: "set",
                source,
            })
    }

    /// Removes one endpoint key; absent keys are fine.
    pub fn remove_endpoint(&mut self, key: &EndpointKey) -> Result<(), DatapathError> {
        ignore_missing(self.endpoints.remove(key)).map_err(|source| DatapathError::Map {
            map: map_names::ENDPOINTS,
            operation: "remove",
            source,
        })
    }

    /// Deletes every conntrack entry whose key matches, and the NAT entries of those
    /// connections.
    pub fn forget_connections(
        &mut self,
        matches: impl Fn(&CtKey) -> bool,
    ) -> Result<usize, DatapathError> {
        let doomed: Vec<CtKey> = self
            .ct
            .keys()
            .filter_map(Result::ok)
            .filter(|k| matches(k))
            .collect();
        for key in &doomed {
            self.forget_connection(key)?;
        }
        Ok(doomed.len())
    }

    /// Deletes one connection's conntrack entry and its NAT entries (both directions of
    /// a source NAT, or the frontend a direct-server-return connection replies from).
    pub fn forget_connection(&mut self, key: &CtKey) -> Result<(), DatapathError> {
        if self
            .ct
            .get(key, 0)
            .is_ok_and(|e| e.flags & ct_flags::DSR != 0)
        {
            ignore_missing(self.nat.remove(&key.reversed())).map_err(|source| {
                DatapathError::Map {
                    map: map_names::NAT,
                    operation: "remove",
                    source,
                }
            })?;
        }
        if let Ok(egress) = self.nat.get(key, 0) {
            let mut reply = key.reversed();
            reply.daddr = egress.addr;
            reply.dport = egress.port;
            if key.sport == key.dport {
                // ICMP echo: the identifier is in both ports.
                reply.sport = egress.port;
            }
            ignore_missing(self.nat.remove(&reply)).map_err(|source| DatapathError::Map {
                map: map_names::NAT,
                operation: "remove",
                source,
            })?;
            ignore_missing(self.nat.remove(key)).map_err(|source| DatapathError::Map {
                map: map_names::NAT,
                operation: "remove",
                source,
            })?;
        }
        ignore_missing(self.ct.remove(key)).map_err(|source| DatapathError::Map {
            map: map_names::CT,
            operation: "remove",
            source,
        })
    }

    /// Writes the ipcache entry of `prefix`.
    pub fn upsert_ipcache(
        &mut self,
        prefix: IpNet,
        identity: u32,
        node: Option<IpAddr>,
    ) -> Result<(), DatapathError> {
        let (tunnel_endpoint, tunnel_family) = node.map_or(([0; 16], 0), addr_bytes);
        let entry = IpcacheEntry {
            identity,
            tunnel_endpoint,
            tunnel_family,
            _pad: [0; 3],
        };
        self.ipcache
            .insert(&ipcache_key(prefix), entry, 0)
            .map_err(|source| DatapathError::Map {
                map: map_names::IPCACHE,
                operation: "insert",
                source,
            })
    }

    /// Removes the ipcache entry of exactly `prefix`.
    pub fn remove_ipcache(&mut self, prefix: IpNet) -> Result<(), DatapathError> {
        ignore_missing(self.ipcache.remove(&ipcache_key(prefix))).map_err(|source| {
            DatapathError::Map {
                map: map_names::IPCACHE,
                operation: "remove",
                source,
            }
        })
    }

    /// Every ipcache entry as (prefix, identity, hosting node).
    pub fn ipcache_entries(&self) -> Result<Vec<(IpNet, u32, Option<IpAddr>)>, DatapathError> {
        let mut rows = Vec::new();
        for item in self.ipcache.iter() {
            let (key, entry) = item.map_err(|source| DatapathError::Map {
                map: map_names::IPCACHE,
                operation: "iterate",
                source,
            })?;
            let row =
                ipcache_row(&key, &entry).expect("the datapath only stores valid prefix lengths");
            rows.push((row.prefix, row.identity, row.node));
        }
        Ok(rows)
    }

    /// Per-reason counters summed over CPUs, zero rows omitted.
    pub fn counters(&self) -> Result<Vec<ReasonCounter>, DatapathError> {
        read_counters(&self.metrics)
    }

    /// Every endpoint map entry.
    pub fn endpoint_entries(&self) -> Result<Vec<(EndpointKey, EndpointInfo)>, DatapathError> {
        self.endpoints
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|source| DatapathError::Map {
                map: map_names::ENDPOINTS,
                operation: "iterate",
                source,
            })
    }

    /// Number of conntrack and NAT entries.
    pub fn table_sizes(&self) -> Result<(usize, usize), DatapathError> {
        Ok((
            self.ct.keys().filter_map(Result::ok).count(),
            self.nat.keys().filter_map(Result::ok).count(),
        ))
    }
}

/// Per-reason counters of a metrics map summed over CPUs, zero rows omitted.
pub(crate) fn read_counters(
    metrics: &PerCpuArray<MapData, MetricsValue>,
) -> Result<Vec<ReasonCounter>, DatapathError> {
    let mut rows = Vec::new();
    for index in 0..METRICS_SLOTS {
        let values = metrics
            .get(&index, 0)
            .map_err(|source| DatapathError::Map {
                map: map_names::METRICS,
                operation: "get",
                source,
            })?;
        let (packets, bytes) = values
            .iter()
            .fold((0, 0), |(p, b), v| (p + v.packets, b + v.bytes));
        if packets == 0 {
            continue;
        }
        let code = (index / 2) as u8;
        rows.push(ReasonCounter {
            reason: code,
            reason_name: reason::name(code),
            is_drop: code >= reason::DROP_FIRST && code != reason::EVENT_LOST,
            direction: if index % 2 == direction::EGRESS as u32 {
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

/// The address a 16-byte form stands for.
pub(crate) fn to_ip(bytes: &[u8; 16], family: u8) -> IpAddr {
    if family == Family::V4 {
        IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
    } else {
        IpAddr::from(*bytes)
    }
}

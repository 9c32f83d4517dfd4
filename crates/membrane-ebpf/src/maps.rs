//! The datapath's maps. All are pinned by name, so a restarted agent adopts them.

use aya_ebpf::bindings::BPF_F_NO_PREALLOC;
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray};
use membrane_common::{
    CtEntry, CtKey, DatapathConfig, EndpointInfo, EndpointKey, IpcacheAddr, IpcacheEntry,
    METRICS_SLOTS, MetricsValue, NatEntry,
};

/// Datapath settings written by the agent.
#[map(name = "MEMBRANE_CONFIG")]
pub static CONFIG: Array<DatapathConfig> = Array::pinned(1, 0);

/// Local endpoints by address.
#[map(name = "MEMBRANE_ENDPOINTS")]
pub static ENDPOINTS: HashMap<EndpointKey, EndpointInfo> = HashMap::pinned(16384, 0);

/// Connection tracking.
#[map(name = "MEMBRANE_CT")]
pub static CT: LruHashMap<CtKey, CtEntry> = LruHashMap::pinned(262144, 0);

/// Masquerade translations in both directions.
#[map(name = "MEMBRANE_NAT")]
pub static NAT: LruHashMap<CtKey, NatEntry> = LruHashMap::pinned(262144, 0);

/// Per-CPU counters by reason and direction.
#[map(name = "MEMBRANE_METRICS")]
pub static METRICS: PerCpuArray<MetricsValue> = PerCpuArray::pinned(METRICS_SLOTS, 0);

/// Address to identity and hosting node.
#[map(name = "MEMBRANE_IPCACHE")]
pub static IPCACHE: LpmTrie<IpcacheAddr, IpcacheEntry> = LpmTrie::pinned(65536, BPF_F_NO_PREALLOC);

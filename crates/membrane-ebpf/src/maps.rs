//! The datapath's maps. All are pinned by name, so a restarted agent adopts them.

use aya_ebpf::bindings::BPF_F_NO_PREALLOC;
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf};
use membrane_common::{
    AffinityKey, AffinityValue, Backend, CtEntry, CtKey, DatapathConfig, EndpointInfo, EndpointKey,
    FlowEvent, IpcacheAddr, IpcacheEntry, METRICS_SLOTS, MaglevKey, MetricsValue, NatEntry,
    NetnsEndpoint, PolicyEntry, PolicyKey, RevNat, ServiceKey, ServiceValue, SockRevKey,
};

/// Datapath settings written by the agent.
#[map(name = "MEMBRANE_CONFIG")]
pub static CONFIG: Array<DatapathConfig> = Array::pinned(1, 0);

/// Local endpoints by address.
#[map(name = "MEMBRANE_ENDPOINTS")]
pub static ENDPOINTS: HashMap<EndpointKey, EndpointInfo> = HashMap::pinned(16384, 0);

/// Local endpoints by the cookie of their network namespace.
#[map(name = "MEMBRANE_NETNS_ENDPOINTS")]
pub static NETNS_ENDPOINTS: HashMap<u64, NetnsEndpoint> = HashMap::pinned(16384, 0);

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

/// Service frontends and their backend slots.
#[map(name = "MEMBRANE_SERVICES")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(262144, 0);

/// Backends by id.
#[map(name = "MEMBRANE_BACKENDS")]
pub static BACKENDS: HashMap<u32, Backend> = HashMap::pinned(262144, 0);

/// Frontends by reverse-NAT index.
#[map(name = "MEMBRANE_REV_NAT")]
pub static REV_NAT: HashMap<u32, RevNat> = HashMap::pinned(65536, 0);

/// Session affinity.
#[map(name = "MEMBRANE_AFFINITY")]
pub static AFFINITY: LruHashMap<AffinityKey, AffinityValue> = LruHashMap::pinned(65536, 0);

/// Maglev lookup tables.
#[map(name = "MEMBRANE_MAGLEV")]
pub static MAGLEV: HashMap<MaglevKey, u32> = HashMap::pinned(65536, 0);

/// Socket-level reverse translation.
#[map(name = "MEMBRANE_SOCK_REV_NAT")]
pub static SOCK_REV_NAT: LruHashMap<SockRevKey, RevNat> = LruHashMap::pinned(65536, 0);

/// Flow events for the agent.
#[map(name = "MEMBRANE_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::pinned(1 << 22, 0);

/// Where the running program assembles its event.
#[map(name = "MEMBRANE_EVENT_SCRATCH")]
pub static EVENT_SCRATCH: PerCpuArray<FlowEvent> = PerCpuArray::with_max_entries(1, 0);

/// Policy rules of every endpoint.
#[map(name = "MEMBRANE_POLICY")]
pub static POLICY: LpmTrie<PolicyKey, PolicyEntry> = LpmTrie::pinned(1 << 20, BPF_F_NO_PREALLOC);

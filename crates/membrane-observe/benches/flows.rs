//! `cargo bench -p membrane-observe --bench flows` (run by `cargo xtask bench observe`):
//! how many datapath events one core decodes and enriches per second (decoding alone,
//! the whole pipeline into the flow store and metrics, and through the bounded queue
//! the agent reads into), and how much memory the flow store takes per stored flow.
//!
//! The events are synthetic but shaped like the datapath's: 1,000 local pods (enriched by
//! endpoint id), 1,000 remote pods (by address), one in four translated for one of 100
//! Services, one in ten a drop. Prints a Markdown table.

use membrane_common::events::{ct_state, event_kind, observation_point};
use membrane_common::metrics::{direction, reason};
use membrane_common::tuple::{proto, v4_bytes};
use membrane_common::{CtKey, Family, FlowEvent};
use membrane_observe::decode::{BootClock, Decoder};
use membrane_observe::directory::{EndpointMeta, StaticDirectory};
use membrane_observe::flow::{ServiceName, Workload};
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use membrane_observe::queue::EventQueue;
use membrane_observe::store::FlowStore;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Counts the bytes allocated and not yet freed, to measure the flow store's memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is
// updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above; `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LOCAL_PODS: u16 = 1000;
const REMOTE_PODS: u16 = 1000;
const SERVICES: u32 = 100;
/// Events per measured round.
const EVENTS: usize = 200_000;
/// How long each rate is measured.
const MEASURE: Duration = Duration::from_secs(3);

fn local_ip(i: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn remote_ip(i: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// A directory of the synthetic cluster.
fn directory() -> Arc<StaticDirectory> {
    let dir = Arc::new(StaticDirectory::new());
    let meta = |id: u16, i: u16| EndpointMeta {
        id,
        identity: 1000 + u32::from(i),
        namespace: format!("ns{}", i % 20),
        pod_name: format!("pod-{i}"),
        labels: [
            ("app".to_string(), format!("app{}", i % 50)),
            ("tier".to_string(), "web".to_string()),
        ]
        .into(),
        workloads: vec![Workload {
            name: format!("app{}", i % 50),
            kind: "Deployment".to_string(),
        }],
        interface: if id == 0 { 0 } else { 100 + u32::from(id) },
    };
    let mut endpoints = Vec::new();
    for i in 0..LOCAL_PODS {
        endpoints.push((meta(i + 1, i), vec![IpAddr::V4(local_ip(i))]));
    }
    for i in 0..REMOTE_PODS {
        endpoints.push((meta(0, LOCAL_PODS + i), vec![IpAddr::V4(remote_ip(i))]));
    }
    dir.replace_endpoints(endpoints);
    for s in 1..=SERVICES {
        dir.insert_service(
            s,
            ServiceName {
                namespace: format!("ns{}", s % 20),
                name: format!("svc-{s}"),
            },
        );
    }
    dir
}

/// Event number `n` of the synthetic mix.
fn event(n: usize) -> FlowEvent {
    let i = (n % usize::from(LOCAL_PODS)) as u16;
    let j = ((n / 7) % usize::from(REMOTE_PODS)) as u16;
    let drop = n.is_multiple_of(10);
    let translated = n.is_multiple_of(4);
    FlowEvent {
        timestamp_ns: n as u64 * 1000,
        tuple: CtKey {
            saddr: v4_bytes(local_ip(i).octets()),
            daddr: v4_bytes(remote_ip(j).octets()),
            sport: (30000 + (n % 30000) as u16).to_be(),
            dport: 8080u16.to_be(),
            proto: proto::TCP,
            family: Family::V4,
            _pad: [0; 2],
        },
        xlated_daddr: [0; 16],
        xlated_dport: 0,
        src_endpoint: i + 1,
        dst_endpoint: 0,
        _pad0: 0,
        rev_nat_index: if translated {
            (n % SERVICES as usize) as u32 + 1
        } else {
            0
        },
        src_identity: 1000 + u32::from(i),
        dst_identity: 0,
        len: 74,
        ifindex: 100 + u32::from(i),
        kind: if drop {
            event_kind::DROP
        } else {
            event_kind::TRACE
        },
        reason: if drop {
            reason::DROP_POLICY_DENY
        } else {
            reason::TO_OVERLAY
        },
        direction: direction::EGRESS,
        observation_point: if drop {
            observation_point::UNKNOWN
        } else {
            observation_point::TO_OVERLAY
        },
        tcp_flags: 0x02,
        ct_state: ct_state::NEW,
        policy_match: 0,
        policy_verdict: 0,
        icmp_type: 0,
        icmp_code: 0,
        _pad: [0; 2],
    }
}

fn decoder() -> Decoder {
    let dir = directory();
    Decoder::new(
        "node1",
        dir.clone(),
        dir,
        BootClock::with_epoch(SystemTime::now()),
    )
}

/// Runs `round` (which handles `EVENTS` events) until [`MEASURE`] has passed; returns
/// events per second.
fn rate(mut round: impl FnMut()) -> f64 {
    round(); // warm-up
    let started = Instant::now();
    let mut rounds = 0u32;
    while started.elapsed() < MEASURE {
        round();
        rounds += 1;
    }
    f64::from(rounds) * EVENTS as f64 / started.elapsed().as_secs_f64()
}

fn pipeline(capacity: usize) -> Pipeline {
    Pipeline::new(
        decoder(),
        FlowStore::new(capacity, 1024),
        Arc::new(ObserveMetrics::new()),
    )
}

/// Bytes the store holds per flow once `n` flows fill it: everything allocated while
/// the flows are decoded into it and still live afterwards (the flows' strings and
/// label lists, their `Arc`s, the ring's slots).
fn memory_per_flow(n: usize, events: &[FlowEvent]) -> f64 {
    let decoder = decoder();
    let before = LIVE.load(Ordering::Relaxed);
    let store = FlowStore::new(n, 1);
    for event in events.iter().cycle().take(n) {
        store.push_flow(decoder.decode(event).unwrap());
    }
    let after = LIVE.load(Ordering::Relaxed);
    drop(black_box(store));
    after.saturating_sub(before) as f64 / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let events: Vec<FlowEvent> = (0..EVENTS).map(event).collect();

    let decoder = decoder();
    let decode = rate(|| {
        for e in &events {
            black_box(decoder.decode(black_box(e)).unwrap());
        }
    });

    let fed = pipeline(4096);
    let ingest = rate(|| {
        assert_eq!(fed.ingest(black_box(&events)), 0);
    });

    let queued = pipeline(4096);
    let queue = EventQueue::new(65_536);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let through_queue = rate(|| {
        runtime.block_on(async {
            let mut chunk = Vec::with_capacity(1024);
            for batch in events.chunks(1024) {
                assert_eq!(queue.push(batch), 0);
                queue.pop(&mut chunk, 1024).await;
                queued.ingest(&chunk);
                chunk.clear();
            }
        });
    });

    let per_flow_10k = memory_per_flow(10_000, &events);
    let per_flow_100k = memory_per_flow(100_000, &events);

    println!("| measurement (one core) | figure |");
    println!("|---|---|");
    println!("| decode + enrich | {:.0} events/s |", decode);
    println!(
        "| decode + enrich + metrics + store (Pipeline::ingest) | {:.0} events/s ({:.2}x of decoding alone) |",
        ingest,
        ingest / decode
    );
    println!(
        "| through the bounded queue, then ingest | {:.0} events/s ({:.2}x of ingest alone) |",
        through_queue,
        through_queue / ingest
    );
    println!(
        "| flow store memory, 10,000 flows | {:.0} bytes/flow, {:.1} MiB per 10,000 |",
        per_flow_10k,
        per_flow_10k * 10_000.0 / (1024.0 * 1024.0)
    );
    println!(
        "| flow store memory, 100,000 flows | {:.0} bytes/flow ({:.2}x of 10,000) |",
        per_flow_100k,
        per_flow_100k / per_flow_10k
    );
}

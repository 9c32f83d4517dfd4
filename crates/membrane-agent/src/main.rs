//! `membrane-agent`: the node agent. Parses its configuration, programs the node and serves
//! the local API until SIGTERM or SIGINT.

use anyhow::Context as _;
use clap::Parser as _;
use membrane_agent::agent::Agent;
use membrane_agent::cluster::reflector::Reflector;
use membrane_agent::cluster::{self, Cluster};
use membrane_agent::config::{AgentConfig, Cli};
use membrane_agent::endpoints::EndpointManager;
use membrane_agent::ipam::{Ipam, Pool};
use membrane_agent::node::{Rtnetlink, sysctl};
use membrane_agent::observe::{self, Observability};
use membrane_agent::policy::{self, PolicyState};
use membrane_agent::routing::identity::labels::LabelFilter;
use membrane_agent::routing::{self, RoutingMode, identity::Identities, routes};
use membrane_agent::services::desired::{NodeContext, Policy};
use membrane_agent::services::{
    self, Component, Services, allocator::Allocator, reconciler::Reconciler,
};
use membrane_agent::store::Store;
use membrane_agent::{api, cni_conf, maintenance, metrics, telemetry};
use membrane_api::NodeInfo;
use membrane_datapath::{Datapath, DatapathOptions, Routing};
use membrane_state::keys;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match AgentConfig::load(&Cli::parse()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("membrane-agent: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = telemetry::init(config.log.format) {
        eprintln!("membrane-agent: {:#}", anyhow::Error::from(error));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let net = Rtnetlink::connect()?;
    let uplink = net
        .link_by_name(&config.node.uplink)
        .await
        .context("the uplink must exist in the agent's network namespace")?;
    let addresses = net.source_addresses(uplink.index).await?;
    let node_ipv4 = config.node.ipv4.or_else(|| {
        addresses.iter().find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    });
    let node_ipv6 = config.node.ipv6.or_else(|| {
        addresses.iter().find_map(|a| match a {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
    });
    let uplink_mtu = uplink
        .mtu
        .or(config.node.mtu)
        .with_context(|| format!("uplink {} reports no MTU: set --mtu", uplink.name))?;
    let links = routing::connect()?;
    let (routing_datapath, path_mtu, via) = match config.routing.mode {
        RoutingMode::Native => (Routing::Native, uplink_mtu, routes::Via::Underlay),
        RoutingMode::Tunnel => {
            let device = config.routing.tunnel_device.clone();
            let tunnel_mtu = routing::tunnel::tunnel_mtu(uplink_mtu)?;
            let ifindex = routing::tunnel::ensure_device(&links, &device, tunnel_mtu).await?;
            let via = routes::Via::Tunnel {
                ifindex,
                source_v4: node_ipv4,
                source_v6: node_ipv6,
            };
            (Routing::Tunnel { device }, tunnel_mtu, via)
        }
    };
    let mtu = config.node.mtu.unwrap_or(path_mtu);
    let kvstore = cluster::kvstore::open(&config).await?;
    let pod_cidrs = cluster::pod_cidrs::resolve(&config, kvstore.as_ref()).await?;
    let v4_pool = pod_cidrs.ipv4.map(Pool::v4);
    let v6_pool = pod_cidrs.ipv6.and_then(Pool::v6);
    tracing::info!(
        node = %config.node.name,
        ipv4_pod_cidr = %or_none(pod_cidrs.ipv4),
        ipv6_pod_cidr = %or_none(pod_cidrs.ipv6),
        uplink = %uplink.name,
        node_ipv4 = %or_none(node_ipv4),
        node_ipv6 = %or_none(node_ipv6),
        mtu,
        routing = %config.routing.mode,
        socket = %config.api.socket.display(),
        state_dir = %config.state.dir.display(),
        bpffs_dir = %config.bpffs_dir().display(),
        "starting membrane-agent"
    );
    if v4_pool.is_some() && node_ipv4.is_none() {
        tracing::warn!(uplink = %uplink.name, "no IPv4 address on the uplink: IPv4 traffic leaving the cluster is not masqueraded");
    }
    if v6_pool.is_some() && node_ipv6.is_none() {
        tracing::warn!(uplink = %uplink.name, "no IPv6 address on the uplink: IPv6 traffic leaving the cluster is not masqueraded");
    }

    sysctl::enable_forwarding(v4_pool.is_some(), v6_pool.is_some())?;
    let nat_ports = config.masquerade.nat_port_range.range();
    if let Some(local) = sysctl::keep_local_ports_off(&nat_ports)? {
        tracing::info!(local_ports = ?local, nat_ports = ?nat_ports, "narrowed net.ipv4.ip_local_port_range to stay clear of the masquerade ports");
    }

    let store = Store::open(&config.state.dir)?;
    let ipam = Ipam::new(store.clone(), v4_pool, v6_pool)?;
    let datapath = Arc::new(Mutex::new(
        Datapath::load(&DatapathOptions {
            pin_dir: config.bpffs_dir(),
            node_ipv4,
            node_ipv6,
            uplink: uplink.name.clone(),
            non_masquerade_v4: config.cluster_cidr_v4(pod_cidrs.ipv4),
            non_masquerade_v6: config.cluster_cidr_v6(pod_cidrs.ipv6),
            nat_ports,
            map_sizes: config.datapath.map_sizes.resolve(),
            routing: routing_datapath,
            maglev_table_size: config.services.maglev_table_size.get(),
            flow_events: config.observe.flow_events.datapath(),
            acceleration: config.services.acceleration.datapath(),
            dsr: config.services.lb_mode == membrane_agent::services::config::LbMode::Dsr,
        })
        .context("loading the eBPF datapath failed")?,
    ));
    membrane_agent::agent::lock(&datapath).set_ct_timeouts(config.ct_timeouts());
    for replaced in membrane_agent::agent::lock(&datapath).replaced_maps() {
        tracing::warn!(%replaced, "replaced a pinned map of an older layout: its entries are gone");
    }
    let events = datapath
        .lock()
        .map_err(|_| anyhow::anyhow!("the datapath lock is poisoned"))?
        .take_event_reader()
        .context("cannot read the datapath's flow events")?;
    let socket_lb = services::socket_lb::attach(
        &mut *datapath
            .lock()
            .map_err(|_| anyhow::anyhow!("the datapath lock is poisoned"))?,
        &config.services,
    )?;
    match socket_lb {
        Some(cgroup) => {
            tracing::info!(cgroup = %cgroup.display(), "socket-level load balancing attached")
        }
        None => tracing::info!("socket-level load balancing off: Services are balanced per packet"),
    }
    if let Some(mode) = membrane_agent::agent::lock(&datapath).acceleration() {
        tracing::info!(uplink = %uplink.name, ?mode, "XDP acceleration of Services from outside attached");
    }
    let lb = Reconciler::new(datapath.clone(), Allocator::load(store)?);
    let cluster = Arc::new(Cluster::new(kvstore.clone()));
    let identities = Arc::new(Identities::new(
        cluster.clone(),
        config.node.name.clone(),
        &config.identity,
        config.node_lease_ttl(),
        config.state.dir.join("identities.json"),
    )?);
    let policy_state = Arc::new(PolicyState::new(
        policy::Settings {
            mode: config.policy.enforcement.mode(),
            audit: config.policy.audit,
        },
        datapath.clone(),
        policy::inputs::adopt(&config.bpffs_dir())
            .context("cannot read the pinned policy entries")?,
    ));
    let policy_counters = policy_state.counters();
    let manager = EndpointManager::new(ipam, datapath.clone(), net, config.orphan_grace())?
        .with_identities(identities.clone())
        .with_policy(policy_state.clone());
    let agent = Arc::new(Agent::new(config.node.name.clone(), mtu, manager));
    let token = CancellationToken::new();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let (reflected, stop) = (cluster.clone(), token.clone());
    tasks.spawn(async move {
        reflected.run(stop).await;
        Ok(())
    });
    // Endpoints are adopted with the labels of their Pods, which the first listing brings;
    // with the kvstore unreachable they keep their pinned identities until it lists.
    let listing = config.identity.allocation_timeout();
    if tokio::time::timeout(listing, cluster.objects().listed())
        .await
        .is_err()
    {
        tracing::warn!(waited = ?listing, "the kvstore's objects are not listed yet: endpoints keep their programmed identities until they are");
    }
    let report = agent.restore().await?;
    tracing::info!(
        adopted = report.adopted,
        released = report.released.len(),
        failures = report.failures,
        "restored endpoints"
    );

    let socket = config.api.socket.clone();
    let listener = api::bind(&socket).await?;
    let conflist = cni_conf::install(&config.cni.conf_dir, &socket)?;
    tracing::info!(conflist = %conflist.display(), "installed the CNI configuration");

    let node = NodeInfo {
        name: config.node.name.clone(),
        addresses: [node_ipv4.map(IpAddr::V4), node_ipv6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
            .collect(),
        ipv4_pod_cidr: pod_cidrs.ipv4,
        ipv6_pod_cidr: pod_cidrs.ipv6,
    };
    let (registry, stop, ttl) = (kvstore.clone(), token.clone(), config.node_lease_ttl());
    tasks.spawn(async move {
        cluster::registration::run(registry.as_ref(), node, ttl, stop).await;
        Ok(())
    });
    let ipcache = Arc::new(Reflector::new(keys::IPCACHE, routing::ipcache::decode));
    let (reflected, store, stop) = (ipcache.clone(), kvstore.clone(), token.clone());
    tasks.spawn(async move {
        reflected.run(store.as_ref(), stop).await;
        Ok(())
    });
    let (programmed, me, stop) = (datapath.clone(), config.node.name.clone(), token.clone());
    let policy_ipcache = ipcache.clone();
    let observed_ipcache = ipcache.clone();
    tasks.spawn(async move {
        routing::ipcache::sync(programmed, ipcache, me, stop).await;
        Ok(())
    });
    match node_ipv4.map(IpAddr::V4).or(node_ipv6.map(IpAddr::V6)) {
        Some(host) => {
            let (published, store, me) = (agent.clone(), kvstore.clone(), config.node.name.clone());
            let (ttl, stop) = (config.node_lease_ttl(), token.clone());
            tasks.spawn(async move {
                routing::ipcache::publish(published, store, me, host, ttl, stop).await;
                Ok(())
            });
        }
        None => {
            tracing::warn!(uplink = %uplink.name, "no address on the uplink: this node's pods are not published to the other nodes")
        }
    }
    let (used, stop) = (agent.clone(), token.clone());
    let grace = config.identity.gc_grace();
    // Often enough to keep the use lease alive and to collect within a quarter of the grace.
    let interval = (grace / 4)
        .min(config.node_lease_ttl() / 3)
        .max(Duration::from_millis(200));
    tasks.spawn(async move {
        routing::identity::uses::run(used, identities, grace, interval, stop).await;
        Ok(())
    });
    let (entered, listed, changes) = (datapath.clone(), cluster.clone(), cluster.node_changes());
    let (me, stop) = (config.node.name.clone(), token.clone());
    tasks.spawn(async move {
        routing::node_identities::run(entered, me, move || listed.nodes(), changes, stop).await;
        Ok(())
    });
    let pod_cidr_routes = routes::PodCidrRoutes::adopt(links, via).await?;
    let (listed, changes) = (cluster.clone(), cluster.node_changes());
    let (me, stop) = (config.node.name.clone(), token.clone());
    tasks.spawn(async move {
        routes::run(pod_cidr_routes, me, move || listed.nodes(), changes, stop).await;
        Ok(())
    });
    let published = Arc::new(Services::default());
    let observability = Arc::new(Observability::new(
        &config.observe,
        &config.node.name,
        Arc::new(observe::services::ServiceNames::new(published.clone())),
    )?);
    let (observed, stop) = (observability.clone(), token.clone());
    tasks.spawn(async move { Ok(observed.read_events(events, stop).await?) });
    let (directory, sources) = (
        observability.directory().clone(),
        observe::enrich::Sources {
            agent: agent.clone(),
            cluster: cluster.clone(),
            ipcache: observed_ipcache,
        },
    );
    let stop = token.clone();
    tasks.spawn(async move {
        observe::enrich::follow(directory, sources, stop).await;
        Ok(())
    });
    let (sampled, fed, measured, stop) = (
        datapath.clone(),
        observability.pipeline().clone(),
        observability.metrics().clone(),
        token.clone(),
    );
    tasks.spawn(async move {
        observe::sampling::run(sampled, fed, measured, stop).await;
        Ok(())
    });
    let (observed, settings, me) = (
        observability.clone(),
        config.observe.clone(),
        config.node.name.clone(),
    );
    let (beside, stop) = (config.api.socket.clone(), token.clone());
    tasks.spawn(async move { Ok(observed.serve(&settings, &beside, &me, stop).await?) });
    let component = Component {
        reconciler: lb,
        objects: cluster.clone(),
        local: agent.clone(),
        node: NodeContext {
            name: config.node.name.clone(),
            ipv4: node_ipv4,
            ipv6: node_ipv6,
            local_endpoints: Default::default(),
        },
        policy: Policy {
            node_ports: config.services.node_port_range.range(),
            algorithm: config.services.lb_algorithm,
        },
        resync: config.maintenance_interval(),
        published: published.clone(),
    };
    let stop = token.clone();
    tasks.spawn(async move {
        component.run(stop).await;
        Ok(())
    });
    let identity_labels = Arc::new(Reflector::new(
        keys::IDENTITY_IDS,
        policy::inputs::decode_labels,
    ));
    let (reflected, store, stop) = (identity_labels.clone(), kvstore.clone(), token.clone());
    tasks.spawn(async move {
        reflected.run(store.as_ref(), stop).await;
        Ok(())
    });
    let enforcer = policy::Component {
        state: policy_state.clone(),
        cluster: cluster.clone(),
        identities: identity_labels,
        ipcache: policy_ipcache,
        agent: agent.clone(),
        resync: config.maintenance_interval(),
    };
    let stop = token.clone();
    tasks.spawn(async move {
        enforcer.run(stop).await;
        Ok(())
    });
    let policy_api = Arc::new(policy::api::PolicyApi {
        state: policy_state,
        agent: agent.clone(),
        cluster: cluster.clone(),
        node: config.node.name.clone(),
        cluster_name: config.identity.cluster_name.clone(),
        filter: LabelFilter::new(&config.identity.labels)?,
    });
    let router = api::router(agent.clone(), cluster)
        .merge(services::api::router(published.clone()))
        .merge(policy::api::router(policy_api));
    let stop = token.clone();
    tasks.spawn(async move { Ok(api::serve(listener, socket, router, stop).await?) });
    let (maintained, stop) = (agent.clone(), token.clone());
    let interval = config.maintenance_interval();
    tasks.spawn(async move {
        maintenance::run(maintained, interval, stop).await;
        Ok(())
    });
    if let Some(address) = config.metrics.listen {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen for metrics on {address}"))?;
        tracing::info!(%address, "serving metrics");
        let (measured, observed, balanced, stop) = (
            agent.clone(),
            observability.metrics().clone(),
            published.clone(),
            token.clone(),
        );
        tasks.spawn(async move {
            Ok(metrics::serve(
                listener,
                measured,
                observed,
                balanced,
                policy_counters,
                stop,
            )
            .await?)
        });
    }
    tasks.spawn(cancel_on_signal(token.clone()));
    tracing::info!("membrane-agent is ready");

    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        // The first task to end (a signal, or a failure) stops the others.
        token.cancel();
        let result = joined.context("an agent task panicked").and_then(|r| r);
        if let Err(error) = result {
            tracing::error!("{error:#}");
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    tracing::info!("membrane-agent stopped; the datapath keeps forwarding");
    outcome
}

/// `value`, or "none".
fn or_none<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// Waits for SIGTERM or SIGINT, then cancels `token`.
async fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        () = token.cancelled() => {}
    }
    token.cancel();
    Ok(())
}

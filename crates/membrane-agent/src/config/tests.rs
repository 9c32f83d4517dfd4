use super::*;
use clap::Parser;
use std::io::Write;

fn cli(args: &[&str]) -> Cli {
    let mut argv = vec!["membrane-agent"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap()
}

fn file(name: &str, content: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

const MINIMAL: &[&str] = &[
    "--node-name",
    "n1",
    "--uplink",
    "eth0",
    "--ipv4-pod-cidr",
    "10.1.0.0/24",
];

#[test]
fn flags_alone_make_a_config_with_documented_defaults() {
    let config = AgentConfig::load(&cli(MINIMAL)).unwrap();
    assert_eq!(config.node.name, "n1");
    assert_eq!(config.state.dir, PathBuf::from("/var/lib/membrane"));
    assert_eq!(
        config.api.socket,
        PathBuf::from(membrane_api::DEFAULT_SOCKET)
    );
    assert_eq!(config.bpffs_dir(), PathBuf::from("/sys/fs/bpf/membrane/n1"));
    assert_eq!(config.cni.conf_dir, PathBuf::from("/etc/cni/net.d"));
    assert_eq!(config.masquerade.nat_port_range.range(), 49152..=65535);
    assert_eq!(
        config.cluster_cidr_v4(config.ipam.ipv4_pod_cidr),
        Some("10.1.0.0/24".parse().unwrap())
    );
    assert_eq!(config.cluster_cidr_v6(config.ipam.ipv6_pod_cidr), None);
    assert_eq!(config.kvstore.backend, KvstoreBackend::Embedded);
    assert_eq!(config.node_lease_ttl(), Duration::from_secs(15));
    assert_eq!(config.orphan_grace(), Duration::from_secs(120));
    assert_eq!(config.maintenance_interval(), Duration::from_secs(30));
    assert_eq!(config.log.format, LogFormat::Plain);
    assert_eq!(config.metrics.listen, None);
}

#[test]
fn a_yaml_file_is_read_and_flags_override_it() {
    let (_dir, path) = file(
        "agent.yaml",
        "node:\n  name: from-file\n  uplink: eth9\n  mtu: 9000\n\
         ipam:\n  ipv4-pod-cidr: 10.2.0.0/24\n  ipv6-pod-cidr: fd00:2::/112\n\
         masquerade:\n  cluster-cidr-v4: 10.0.0.0/8\n  nat-port-range: 40000-50000\n\
         log:\n  format: json\n",
    );
    let config = AgentConfig::load(&cli(&["--config", &path, "--node-name", "from-flag"])).unwrap();
    assert_eq!(config.node.name, "from-flag");
    assert_eq!(config.node.uplink, "eth9");
    assert_eq!(config.node.mtu, Some(9000));
    assert_eq!(
        config.ipam.ipv6_pod_cidr,
        Some("fd00:2::/112".parse().unwrap())
    );
    assert_eq!(
        config.cluster_cidr_v4(config.ipam.ipv4_pod_cidr),
        Some("10.0.0.0/8".parse().unwrap())
    );
    assert_eq!(
        config.cluster_cidr_v6(config.ipam.ipv6_pod_cidr),
        Some("fd00:2::/112".parse().unwrap())
    );
    assert_eq!(config.masquerade.nat_port_range.range(), 40000..=50000);
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn a_json_file_is_read() {
    let (_dir, path) = file(
        "agent.json",
        r#"{"node": {"name": "j", "uplink": "eth0"}, "ipam": {"ipv6-pod-cidr": "fd00:3::/64"},
            "metrics": {"listen": "127.0.0.1:9962"}}"#,
    );
    let config = AgentConfig::load(&cli(&["--config", &path])).unwrap();
    assert_eq!(config.node.name, "j");
    assert_eq!(
        config.metrics.listen,
        Some("127.0.0.1:9962".parse().unwrap())
    );
}

#[test]
fn unknown_keys_in_the_file_are_refused() {
    let (_dir, path) = file("agent.yaml", "node:\n  name: n\n  uplnk: eth0\n");
    let err = AgentConfig::load(&cli(&["--config", &path])).unwrap_err();
    assert!(
        matches!(err.problems[0], ConfigProblem::ParseYaml { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("uplnk"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = AgentConfig::load(&cli(&[
        "--config",
        "/nonexistent/agent.yaml",
        "--ipv4-pod-cidr",
        "10.1.0.0/33",
        "--nat-port-range",
        "9-1",
        "--mtu",
        "big",
        "--log-format",
        "xml",
        "--metrics",
        "nowhere",
    ]))
    .unwrap_err();
    let text = err.to_string();
    for expected in [
        "cannot read the config file /nonexistent/agent.yaml",
        "--ipv4-pod-cidr",
        "--nat-port-range",
        "--mtu",
        "--log-format",
        "--metrics",
        "--node-name is required",
        "--uplink is required",
        "at least one of --ipv4-pod-cidr, --ipv6-pod-cidr, --cluster-pool-ipv4",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert_eq!(err.problems.len(), 9, "{text}");
}

#[test]
fn inconsistent_settings_are_refused() {
    let mut args = MINIMAL.to_vec();
    args.extend([
        "--cluster-cidr-v4",
        "10.9.0.0/16",
        "--cluster-cidr-v6",
        "fd00::/48",
        "--ipv6-pod-cidr",
        "fd01::/128",
        "--mtu",
        "1000",
        "--maintenance-interval-secs",
        "0",
    ]);
    let err = AgentConfig::load(&cli(&args)).unwrap_err();
    let kinds: Vec<String> = err
        .problems
        .iter()
        .map(|p| format!("{p:?}").split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "EmptyPool",
            "PodCidrOutsideCluster",
            "PodCidrOutsideCluster",
            "MtuTooSmall",
            "Zero"
        ],
        "{err}"
    );
}

#[test]
fn etcd_needs_valid_endpoints_and_pools_need_masks_that_fit() {
    let err = AgentConfig::load(&cli(&[
        "--node-name",
        "n1",
        "--uplink",
        "eth0",
        "--cluster-pool-ipv4",
        "10.200.0.0/16",
        "--cluster-pool-ipv4-mask-size",
        "12",
        "--cluster-pool-ipv6",
        "fd00:200::/48",
        "--cluster-pool-ipv6-mask-size",
        "64",
        "--kvstore",
        "etcd",
    ]))
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--cluster-pool-ipv4-mask-size 12"), "{text}");
    assert!(text.contains("--kvstore-endpoints is required"), "{text}");
    assert_eq!(err.problems.len(), 2, "{text}");

    let err = AgentConfig::load(&cli(&[
        "--node-name",
        "n1",
        "--uplink",
        "eth0",
        "--cluster-pool-ipv4",
        "10.200.0.0/16",
        "--kvstore",
        "zookeeper",
        "--kvstore-endpoints",
        "http://10.0.0.1:2379,10.0.0.2",
    ]))
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"zookeeper\" is not a kvstore"), "{text}");
    assert!(
        text.contains("\"10.0.0.2\" is not an http://host:port URL"),
        "{text}"
    );
    assert_eq!(err.problems.len(), 2, "{text}");
}

#[test]
fn pools_alone_are_enough_and_become_the_cluster_cidrs() {
    let config = AgentConfig::load(&cli(&[
        "--node-name",
        "n1",
        "--uplink",
        "eth0",
        "--cluster-pool-ipv4",
        "10.200.0.0/16",
        "--cluster-pool-ipv6",
        "fd00:200::/48",
        "--cluster-pool-ipv6-mask-size",
        "64",
        "--kvstore",
        "etcd",
        "--kvstore-endpoints",
        "http://10.0.0.1:2379, http://10.0.0.2:2379",
        "--kvstore-lease-ttl-secs",
        "5",
    ]))
    .unwrap();
    assert_eq!(config.kvstore.backend, KvstoreBackend::Etcd);
    assert_eq!(
        config.kvstore.endpoints,
        ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(config.node_lease_ttl(), Duration::from_secs(5));
    assert_eq!(config.ipam.cluster_pool_ipv4_mask_size, 24);
    let allocated = "10.200.7.0/24".parse().unwrap();
    assert_eq!(
        config.cluster_cidr_v4(Some(allocated)),
        Some("10.200.0.0/16".parse().unwrap())
    );
}

#[test]
fn the_observer_listens_on_4244_unless_a_flag_or_the_file_says_otherwise() {
    let config = AgentConfig::load(&cli(MINIMAL)).unwrap();
    assert_eq!(
        config.observe.listen.address(),
        Some("[::]:4244".parse().unwrap())
    );
    let (_dir, path) = file("agent.yaml", "observe:\n  listen: 127.0.0.1:4245\n");
    let mut args = MINIMAL.to_vec();
    args.extend(["--config", &path]);
    let from_file = AgentConfig::load(&cli(&args)).unwrap();
    assert_eq!(
        from_file.observe.listen.address(),
        Some("127.0.0.1:4245".parse().unwrap())
    );
    args.extend(["--observe-listen", "off"]);
    let off = AgentConfig::load(&cli(&args)).unwrap();
    assert_eq!(off.observe.listen, crate::observe::Listen::Off);
    let mut bad = MINIMAL.to_vec();
    bad.extend(["--observe-listen", "4244"]);
    let error = AgentConfig::load(&cli(&bad)).unwrap_err().to_string();
    assert!(error.contains("--observe-listen"), "{error}");
}

#[test]
fn conntrack_timeouts_default_to_ciliums_and_flags_set_them() {
    let defaults = AgentConfig::load(&cli(MINIMAL)).unwrap().ct_timeouts();
    assert_eq!(defaults, membrane_datapath::CtTimeouts::default());
    assert_eq!(defaults.tcp_established, Duration::from_secs(21600));
    let mut args = MINIMAL.to_vec();
    args.extend([
        "--bpf-ct-timeout-regular-tcp",
        "600",
        "--bpf-ct-timeout-regular-tcp-syn",
        "5",
        "--bpf-ct-timeout-regular-any",
        "2",
    ]);
    let set = AgentConfig::load(&cli(&args)).unwrap().ct_timeouts();
    assert_eq!(
        (set.tcp_established, set.tcp_short, set.datagram),
        (
            Duration::from_secs(600),
            Duration::from_secs(5),
            Duration::from_secs(2)
        )
    );
    let mut zero = MINIMAL.to_vec();
    zero.extend(["--bpf-ct-timeout-regular-any", "0"]);
    let err = AgentConfig::load(&cli(&zero)).unwrap_err();
    assert!(
        err.to_string().contains("--bpf-ct-timeout-regular-any"),
        "{err}"
    );
}

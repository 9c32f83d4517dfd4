//! Settings of the services component: the NodePort range, the default backend
//! selection, the Maglev table size, the socket-level load balancer and XDP
//! acceleration.

use crate::config::PortRange;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Settings of the services component (`services.*` in the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServicesConfig {
    /// Ports a Service's `nodePort` may use; NodePorts outside are not programmed.
    pub node_port_range: PortRange,
    /// Backend selection of Services without the `service.cilium.io/lb-algorithm`
    /// annotation.
    pub lb_algorithm: LbAlgorithm,
    /// Positions of every Maglev lookup table (a prime).
    pub maglev_table_size: MaglevTableSize,
    /// Translate Service addresses at `connect`/`sendmsg` for every process below
    /// `cgroup-root`; when false, only per-packet load balancing applies.
    pub socket_lb: bool,
    /// The cgroup v2 directory the socket-level load balancer is attached to (pods' and
    /// the node's processes must live below it). Socket LB is off when unset.
    pub cgroup_root: Option<PathBuf>,
    /// XDP acceleration of Services reached from outside, on the uplink.
    pub acceleration: Acceleration,
    /// How a request from outside reaches a backend on another node.
    pub lb_mode: LbMode,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        ServicesConfig {
            node_port_range: PortRange::new(30000, 32767).expect("a valid range"),
            lb_algorithm: LbAlgorithm::Random,
            maglev_table_size: MaglevTableSize(16381),
            socket_lb: true,
            cgroup_root: None,
            acceleration: Acceleration::Disabled,
            lb_mode: LbMode::Snat,
        }
    }
}

impl ServicesConfig {
    /// The cgroup to attach the socket-level load balancer to, when it is on.
    pub fn socket_lb_cgroup(&self) -> Option<&PathBuf> {
        self.cgroup_root.as_ref().filter(|_| self.socket_lb)
    }
}

/// How a Service's backend is chosen for a new connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbAlgorithm {
    /// Uniformly at random among the active backends.
    #[default]
    Random,
    /// Through the Service's Maglev table: a flow keeps its backend when other backends
    /// come and go (about 1/N of flows move when one of N backends leaves).
    Maglev,
}

impl LbAlgorithm {
    /// The name Cilium's `service.cilium.io/lb-algorithm` annotation uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LbAlgorithm::Random => "random",
            LbAlgorithm::Maglev => "maglev",
        }
    }
}

/// Why an algorithm name does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a load-balancing algorithm: use random or maglev")]
pub struct LbAlgorithmError {
    text: String,
}

impl FromStr for LbAlgorithm {
    type Err = LbAlgorithmError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "random" => Ok(LbAlgorithm::Random),
            "maglev" => Ok(LbAlgorithm::Maglev),
            _ => Err(LbAlgorithmError {
                text: text.to_string(),
            }),
        }
    }
}

/// How a request from outside to a Service reaches a backend on another node (Cilium's
/// `loadBalancer.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbMode {
    /// Source-NATed to the balancing node, so the reply comes back through it.
    #[default]
    Snat,
    /// Direct server return for TCP (native routing): the backend sees the client's
    /// address and answers it itself; UDP is source-NATed.
    Dsr,
}

/// Why a load-balancing mode does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a load-balancing mode: use snat or dsr")]
pub struct LbModeError {
    text: String,
}

impl FromStr for LbMode {
    type Err = LbModeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "snat" => Ok(LbMode::Snat),
            "dsr" => Ok(LbMode::Dsr),
            _ => Err(LbModeError {
                text: text.to_string(),
            }),
        }
    }
}

/// XDP acceleration of Services reached from outside (Cilium's
/// `loadBalancer.acceleration`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acceleration {
    /// No XDP program: tc balances everything.
    #[default]
    Disabled,
    /// XDP in the uplink's driver; the agent refuses to start if the driver cannot.
    Native,
    /// XDP in the driver where it can, otherwise none (with a warning).
    BestEffort,
    /// Generic XDP, which any device runs (Cilium's `testing-only`).
    Generic,
}

impl Acceleration {
    /// The datapath's setting.
    pub fn datapath(self) -> membrane_datapath::Acceleration {
        match self {
            Acceleration::Disabled => membrane_datapath::Acceleration::Disabled,
            Acceleration::Native => membrane_datapath::Acceleration::Native,
            Acceleration::BestEffort => membrane_datapath::Acceleration::BestEffort,
            Acceleration::Generic => membrane_datapath::Acceleration::Generic,
        }
    }
}

/// Why an acceleration setting does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not an acceleration: use disabled, native, best-effort or generic")]
pub struct AccelerationError {
    text: String,
}

impl FromStr for Acceleration {
    type Err = AccelerationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "disabled" => Ok(Acceleration::Disabled),
            "native" => Ok(Acceleration::Native),
            "best-effort" => Ok(Acceleration::BestEffort),
            "generic" | "testing-only" => Ok(Acceleration::Generic),
            _ => Err(AccelerationError {
                text: text.to_string(),
            }),
        }
    }
}

/// A Maglev table size: a prime, so that every backend's skip walks the whole table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MaglevTableSize(u32);

impl MaglevTableSize {
    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Why a Maglev table size is refused.
#[derive(Debug, thiserror::Error)]
pub enum MaglevTableSizeError {
    /// Not a number.
    #[error("{text:?} is not a number")]
    NotANumber {
        /// The text.
        text: String,
    },
    /// Not a prime.
    #[error("{size} is not a prime (e.g. 251, 1021, 4093, 16381, 65521)")]
    NotPrime {
        /// The size.
        size: u32,
    },
}

impl TryFrom<u32> for MaglevTableSize {
    type Error = MaglevTableSizeError;

    fn try_from(size: u32) -> Result<Self, Self::Error> {
        if membrane_datapath::is_prime(size) {
            Ok(MaglevTableSize(size))
        } else {
            Err(MaglevTableSizeError::NotPrime { size })
        }
    }
}

impl From<MaglevTableSize> for u32 {
    fn from(size: MaglevTableSize) -> u32 {
        size.0
    }
}

impl FromStr for MaglevTableSize {
    type Err = MaglevTableSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let size: u32 = text.parse().map_err(|_| MaglevTableSizeError::NotANumber {
            text: text.to_string(),
        })?;
        size.try_into()
    }
}

impl fmt::Display for MaglevTableSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, Cli};
    use clap::Parser as _;

    fn load(extra: &[&str]) -> Result<AgentConfig, crate::config::ConfigError> {
        let mut args = vec![
            "membrane-agent",
            "--node-name",
            "n1",
            "--uplink",
            "eth0",
            "--ipv4-pod-cidr",
            "10.1.0.0/24",
        ];
        args.extend_from_slice(extra);
        AgentConfig::load(&Cli::try_parse_from(args).unwrap())
    }

    #[test]
    fn service_flags_have_documented_defaults_and_override_them() {
        let defaults = load(&[]).unwrap().services;
        assert_eq!(defaults, ServicesConfig::default());
        assert_eq!(defaults.node_port_range.range(), 30000..=32767);
        assert_eq!(defaults.maglev_table_size.get(), 16381);
        assert!(defaults.socket_lb);
        let set = load(&[
            "--node-port-range",
            "31000-31999",
            "--lb-algorithm",
            "maglev",
            "--maglev-table-size",
            "251",
            "--socket-lb=false",
            "--cgroup-root",
            "/sys/fs/cgroup/node1",
        ])
        .unwrap()
        .services;
        assert_eq!(set.node_port_range.range(), 31000..=31999);
        assert_eq!(set.lb_algorithm, LbAlgorithm::Maglev);
        assert_eq!(set.maglev_table_size.get(), 251);
        assert!(!set.socket_lb);
        assert_eq!(set.cgroup_root, Some(PathBuf::from("/sys/fs/cgroup/node1")));
        assert!(load(&["--socket-lb"]).unwrap().services.socket_lb);
    }

    #[test]
    fn dsr_and_xdp_acceleration_are_set_by_flag_and_dsr_needs_native_routing() {
        let defaults = load(&[]).unwrap().services;
        assert_eq!(
            (defaults.lb_mode, defaults.acceleration),
            (LbMode::Snat, Acceleration::Disabled)
        );
        let set = load(&[
            "--bpf-lb-mode",
            "dsr",
            "--routing-mode",
            "native",
            "--bpf-lb-acceleration",
            "testing-only",
        ])
        .unwrap()
        .services;
        assert_eq!(
            (set.lb_mode, set.acceleration),
            (LbMode::Dsr, Acceleration::Generic)
        );
        let text = load(&["--bpf-lb-mode", "dsr"]).unwrap_err().to_string();
        assert!(
            text.contains("--bpf-lb-mode dsr (services.lb-mode) needs --routing-mode native"),
            "{text}"
        );
        let text = load(&["--bpf-lb-mode", "direct", "--bpf-lb-acceleration", "fast"])
            .unwrap_err()
            .to_string();
        for expected in [
            "--bpf-lb-mode (or MEMBRANE_BPF_LB_MODE) \"direct\" is invalid",
            "--bpf-lb-acceleration (or MEMBRANE_BPF_LB_ACCELERATION) \"fast\" is invalid",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn bad_service_settings_are_reported_together() {
        let error = load(&[
            "--maglev-table-size",
            "16384",
            "--lb-algorithm",
            "round-robin",
            "--socket-lb=maybe",
            "--node-port-range",
            "50000-50100",
        ])
        .unwrap_err();
        let text = error.to_string();
        for expected in [
            "--maglev-table-size (or MEMBRANE_MAGLEV_TABLE_SIZE) \"16384\" is invalid: 16384 is not a prime",
            "--lb-algorithm",
            "--socket-lb",
            "--node-port-range 50000-50100 overlaps --nat-port-range 49152-65535",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert_eq!(error.problems.len(), 4, "{text}");
    }

    #[test]
    fn the_config_file_has_a_services_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(
            &path,
            "services:\n  node-port-range: 30100-30200\n  lb-algorithm: maglev\n  maglev-table-size: 1021\n  socket-lb: false\n",
        )
        .unwrap();
        let services = load(&["--config", path.to_str().unwrap()])
            .unwrap()
            .services;
        assert_eq!(services.node_port_range.range(), 30100..=30200);
        assert_eq!(services.maglev_table_size.get(), 1021);
        assert_eq!(services.lb_algorithm, LbAlgorithm::Maglev);
        assert!(!services.socket_lb);
        std::fs::write(&path, "services:\n  maglev-table-size: 1000\n").unwrap();
        assert!(load(&["--config", path.to_str().unwrap()]).is_err());
    }

    #[test]
    fn only_prime_maglev_table_sizes_are_accepted() {
        assert_eq!("16381".parse::<MaglevTableSize>().unwrap().get(), 16381);
        assert_eq!("251".parse::<MaglevTableSize>().unwrap().get(), 251);
        for bad in ["16384", "0", "1", "65535", "big", "-7"] {
            assert!(bad.parse::<MaglevTableSize>().is_err(), "{bad} accepted");
        }
        let from_file: Result<MaglevTableSize, _> = serde_json::from_str("1000");
        assert!(from_file.is_err(), "a config file cannot bypass the check");
    }

    #[test]
    fn algorithms_use_ciliums_names() {
        for algorithm in [LbAlgorithm::Random, LbAlgorithm::Maglev] {
            assert_eq!(
                algorithm.as_str().parse::<LbAlgorithm>().unwrap(),
                algorithm
            );
        }
        assert!("round-robin".parse::<LbAlgorithm>().is_err());
    }

    #[test]
    fn socket_lb_needs_a_cgroup_root_and_can_be_turned_off() {
        let mut config = ServicesConfig::default();
        assert_eq!(config.socket_lb_cgroup(), None);
        config.cgroup_root = Some("/sys/fs/cgroup/node1".into());
        assert_eq!(
            config.socket_lb_cgroup(),
            Some(&PathBuf::from("/sys/fs/cgroup/node1"))
        );
        config.socket_lb = false;
        assert_eq!(config.socket_lb_cgroup(), None);
    }
}

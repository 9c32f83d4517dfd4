//! The `datapath.map-sizes` section and its flags (named as Cilium names them): the
//! capacity of every load-dependent eBPF map, each left at the datapath's default unless
//! set.

use super::ConfigProblem;
use membrane_datapath::MapSizes;
use serde::{Deserialize, Serialize};

/// Capacities of the datapath's maps; unset ones keep the datapath's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MapSizesConfig {
    /// Conntrack entries (one map for every protocol).
    pub conntrack: Option<u32>,
    /// NAT entries (two per masqueraded connection).
    pub nat: Option<u32>,
    /// Local endpoint addresses.
    pub endpoints: Option<u32>,
    /// ipcache prefixes.
    pub ipcache: Option<u32>,
    /// Services map entries: one per frontend scope plus one per backend slot.
    pub services: Option<u32>,
    /// Backends.
    pub backends: Option<u32>,
    /// Reverse-NAT entries (one per frontend).
    pub rev_nat: Option<u32>,
    /// Session-affinity entries.
    pub affinity: Option<u32>,
    /// Maglev positions over every Maglev Service (each takes --maglev-table-size).
    pub maglev: Option<u32>,
    /// Socket reverse-translation entries (UDP socket LB).
    pub sock_rev_nat: Option<u32>,
    /// Policy entries.
    pub policy: Option<u32>,
}

impl MapSizesConfig {
    /// The sizes the datapath is loaded with.
    pub fn resolve(&self) -> MapSizes {
        let d = MapSizes::default();
        MapSizes {
            conntrack: self.conntrack.unwrap_or(d.conntrack),
            nat: self.nat.unwrap_or(d.nat),
            endpoints: self.endpoints.unwrap_or(d.endpoints),
            ipcache: self.ipcache.unwrap_or(d.ipcache),
            services: self.services.unwrap_or(d.services),
            backends: self.backends.unwrap_or(d.backends),
            rev_nat: self.rev_nat.unwrap_or(d.rev_nat),
            affinity: self.affinity.unwrap_or(d.affinity),
            maglev: self.maglev.unwrap_or(d.maglev),
            sock_rev_nat: self.sock_rev_nat.unwrap_or(d.sock_rev_nat),
            policy: self.policy.unwrap_or(d.policy),
        }
    }

    /// Every size set to zero, and a Maglev map smaller than one table.
    pub(super) fn validate(&self, maglev_table_size: u32, problems: &mut Vec<ConfigProblem>) {
        for (key, size) in self.keyed() {
            if size == Some(0) {
                problems.push(ConfigProblem::Zero { flag: key });
            }
        }
        let maglev = self.resolve().maglev;
        if maglev < maglev_table_size {
            problems.push(ConfigProblem::MaglevMapTooSmall {
                entries: maglev,
                table_size: maglev_table_size,
            });
        }
    }

    fn keyed(&self) -> [(&'static str, Option<u32>); 11] {
        [
            ("datapath.map-sizes.conntrack", self.conntrack),
            ("datapath.map-sizes.nat", self.nat),
            ("datapath.map-sizes.endpoints", self.endpoints),
            ("datapath.map-sizes.ipcache", self.ipcache),
            ("datapath.map-sizes.services", self.services),
            ("datapath.map-sizes.backends", self.backends),
            ("datapath.map-sizes.rev-nat", self.rev_nat),
            ("datapath.map-sizes.affinity", self.affinity),
            ("datapath.map-sizes.maglev", self.maglev),
            ("datapath.map-sizes.sock-rev-nat", self.sock_rev_nat),
            ("datapath.map-sizes.policy", self.policy),
        ]
    }
}

/// The map-size flags, each also read from its `MEMBRANE_*` variable.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct MapSizeFlags {
    /// Entries of each load-balancing map (services, backends, reverse NAT, affinity);
    /// the per-map flags below override it. 1100000 holds 100,000 Services of ten
    /// backends.
    #[arg(long, env = "MEMBRANE_BPF_LB_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_lb_map_max: Option<String>,
    /// Entries of the services map (a head plus one per backend slot per frontend)
    /// [default: 262144].
    #[arg(long, env = "MEMBRANE_BPF_LB_SERVICE_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_lb_service_map_max: Option<String>,
    /// Entries of the backends map [default: 262144].
    #[arg(
        long,
        env = "MEMBRANE_BPF_LB_SERVICE_BACKEND_MAP_MAX",
        value_name = "ENTRIES"
    )]
    pub bpf_lb_service_backend_map_max: Option<String>,
    /// Entries of the reverse-NAT map [default: 65536].
    #[arg(long, env = "MEMBRANE_BPF_LB_REV_NAT_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_lb_rev_nat_map_max: Option<String>,
    /// Entries of the session-affinity map [default: 65536].
    #[arg(long, env = "MEMBRANE_BPF_LB_AFFINITY_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_lb_affinity_map_max: Option<String>,
    /// Positions of the Maglev map, over every Maglev Service [default: 65536].
    #[arg(long, env = "MEMBRANE_BPF_LB_MAGLEV_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_lb_maglev_map_max: Option<String>,
    /// Entries of the socket reverse-translation map [default: 65536].
    #[arg(long, env = "MEMBRANE_BPF_SOCK_REV_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_sock_rev_map_max: Option<String>,
    /// Entries of the conntrack map, one for TCP and every other protocol
    /// [default: 262144].
    #[arg(
        long,
        env = "MEMBRANE_BPF_CT_GLOBAL_MAX",
        value_name = "ENTRIES",
        alias = "bpf-ct-global-tcp-max"
    )]
    pub bpf_ct_global_max: Option<String>,
    /// Entries of the NAT map [default: 262144].
    #[arg(long, env = "MEMBRANE_BPF_NAT_GLOBAL_MAX", value_name = "ENTRIES")]
    pub bpf_nat_global_max: Option<String>,
    /// Entries of the endpoints map [default: 16384].
    #[arg(long, env = "MEMBRANE_BPF_ENDPOINT_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_endpoint_map_max: Option<String>,
    /// Prefixes of the ipcache [default: 65536].
    #[arg(long, env = "MEMBRANE_BPF_IPCACHE_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_ipcache_map_max: Option<String>,
    /// Entries of the policy map [default: 1048576].
    #[arg(long, env = "MEMBRANE_BPF_POLICY_MAP_MAX", value_name = "ENTRIES")]
    pub bpf_policy_map_max: Option<String>,
}

impl MapSizeFlags {
    /// Lays the flags over `sizes` (--bpf-lb-map-max first, so the per-map flags win),
    /// recording every value that is not a number of entries.
    pub(super) fn apply(&self, sizes: &mut MapSizesConfig, problems: &mut Vec<ConfigProblem>) {
        let mut parse = |value: &Option<String>, flag: &'static str, env: &'static str| {
            let text = value.as_ref()?;
            match text.trim().parse::<u32>() {
                Ok(n) => Some(n),
                Err(e) => {
                    problems.push(ConfigProblem::BadValue {
                        flag,
                        env,
                        value: text.clone(),
                        source: Box::new(e),
                    });
                    None
                }
            }
        };
        if let Some(n) = parse(
            &self.bpf_lb_map_max,
            "--bpf-lb-map-max",
            "MEMBRANE_BPF_LB_MAP_MAX",
        ) {
            sizes.services = Some(n);
            sizes.backends = Some(n);
            sizes.rev_nat = Some(n);
            sizes.affinity = Some(n);
        }
        let per_map: [(
            &Option<String>,
            &'static str,
            &'static str,
            &mut Option<u32>,
        ); 11] = [
            (
                &self.bpf_lb_service_map_max,
                "--bpf-lb-service-map-max",
                "MEMBRANE_BPF_LB_SERVICE_MAP_MAX",
                &mut sizes.services,
            ),
            (
                &self.bpf_lb_service_backend_map_max,
                "--bpf-lb-service-backend-map-max",
                "MEMBRANE_BPF_LB_SERVICE_BACKEND_MAP_MAX",
                &mut sizes.backends,
            ),
            (
                &self.bpf_lb_rev_nat_map_max,
                "--bpf-lb-rev-nat-map-max",
                "MEMBRANE_BPF_LB_REV_NAT_MAP_MAX",
                &mut sizes.rev_nat,
            ),
            (
                &self.bpf_lb_affinity_map_max,
                "--bpf-lb-affinity-map-max",
                "MEMBRANE_BPF_LB_AFFINITY_MAP_MAX",
                &mut sizes.affinity,
            ),
            (
                &self.bpf_lb_maglev_map_max,
                "--bpf-lb-maglev-map-max",
                "MEMBRANE_BPF_LB_MAGLEV_MAP_MAX",
                &mut sizes.maglev,
            ),
            (
                &self.bpf_sock_rev_map_max,
                "--bpf-sock-rev-map-max",
                "MEMBRANE_BPF_SOCK_REV_MAP_MAX",
                &mut sizes.sock_rev_nat,
            ),
            (
                &self.bpf_ct_global_max,
                "--bpf-ct-global-max",
                "MEMBRANE_BPF_CT_GLOBAL_MAX",
                &mut sizes.conntrack,
            ),
            (
                &self.bpf_nat_global_max,
                "--bpf-nat-global-max",
                "MEMBRANE_BPF_NAT_GLOBAL_MAX",
                &mut sizes.nat,
            ),
            (
                &self.bpf_endpoint_map_max,
                "--bpf-endpoint-map-max",
                "MEMBRANE_BPF_ENDPOINT_MAP_MAX",
                &mut sizes.endpoints,
            ),
            (
                &self.bpf_ipcache_map_max,
                "--bpf-ipcache-map-max",
                "MEMBRANE_BPF_IPCACHE_MAP_MAX",
                &mut sizes.ipcache,
            ),
            (
                &self.bpf_policy_map_max,
                "--bpf-policy-map-max",
                "MEMBRANE_BPF_POLICY_MAP_MAX",
                &mut sizes.policy,
            ),
        ];
        for (value, flag, env, field) in per_map {
            if let Some(n) = parse(value, flag, env) {
                *field = Some(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(set: impl FnOnce(&mut MapSizeFlags)) -> (MapSizesConfig, Vec<ConfigProblem>) {
        let mut f = MapSizeFlags::default();
        set(&mut f);
        let mut sizes = MapSizesConfig::default();
        let mut problems = Vec::new();
        f.apply(&mut sizes, &mut problems);
        (sizes, problems)
    }

    #[test]
    fn unset_sizes_are_the_datapath_defaults() {
        assert_eq!(MapSizesConfig::default().resolve(), MapSizes::default());
    }

    #[test]
    fn the_lb_flag_sizes_every_lb_map_and_a_per_map_flag_wins() {
        let (sizes, problems) = flags(|f| {
            f.bpf_lb_map_max = Some("2000000".into());
            f.bpf_lb_service_map_max = Some("2200000".into());
        });
        assert!(problems.is_empty());
        let resolved = sizes.resolve();
        assert_eq!(resolved.services, 2_200_000);
        assert_eq!(resolved.backends, 2_000_000);
        assert_eq!(resolved.rev_nat, 2_000_000);
        assert_eq!(resolved.affinity, 2_000_000);
        assert_eq!(resolved.conntrack, MapSizes::default().conntrack);
    }

    #[test]
    fn the_lb_flag_at_1100000_holds_a_hundred_thousand_services_of_ten_backends() {
        let (sizes, _) = flags(|f| f.bpf_lb_map_max = Some("1100000".into()));
        let resolved = sizes.resolve();
        let needed = MapSizes::for_services(100_000, 10);
        assert!(resolved.services >= needed.services, "{resolved:?}");
        assert!(resolved.backends >= needed.backends, "{resolved:?}");
        assert!(resolved.rev_nat >= needed.rev_nat, "{resolved:?}");
    }

    #[test]
    fn every_bad_value_is_reported_naming_its_flag() {
        let (_, problems) = flags(|f| {
            f.bpf_ct_global_max = Some("lots".into());
            f.bpf_policy_map_max = Some("-1".into());
        });
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("--bpf-ct-global-max"), "{text:?}");
        assert!(text[1].contains("--bpf-policy-map-max"), "{text:?}");
    }

    #[test]
    fn zero_sizes_and_a_maglev_map_smaller_than_one_table_are_refused() {
        let sizes = MapSizesConfig {
            nat: Some(0),
            maglev: Some(1000),
            ..MapSizesConfig::default()
        };
        let mut problems = Vec::new();
        sizes.validate(16381, &mut problems);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("datapath.map-sizes.nat"), "{text:?}");
        assert!(
            text[1].contains("1000") && text[1].contains("16381"),
            "{text:?}"
        );
    }

    #[test]
    fn the_section_reads_from_yaml_in_kebab_case() {
        let sizes: MapSizesConfig =
            serde_yaml_ng::from_str("services: 1100000\nrev-nat: 100000\n").unwrap();
        assert_eq!(sizes.services, Some(1_100_000));
        assert_eq!(sizes.rev_nat, Some(100_000));
        assert!(serde_yaml_ng::from_str::<MapSizesConfig>("servces: 1").is_err());
    }
}

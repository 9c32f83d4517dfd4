//! kube-proxy's nftables mode: one verdict map keyed by address . protocol . port sends
//! each Service's packets to its own chain, which picks an endpoint chain with `numgen
//! random`; the endpoint chain DNATs. Loaded as one `nft -f` transaction; a later sync
//! adds only the new Service's chains and map element.

use super::RuleShape;
use crate::catalog;
use crate::topology::POD_CIDR;
use std::fmt::Write;

/// The nftables shape.
pub struct Nftables;

/// Elements per `add element` statement.
const ELEMENTS_PER_STATEMENT: u32 = 1000;

fn service_chain(i: u32) -> String {
    format!("service-{i:08X}-bench-svc-{i}-tcp-http")
}

fn endpoint_chain(i: u32, j: u8) -> String {
    format!(
        "endpoint-{:08X}-bench-svc-{i}-tcp-http",
        catalog::backend_id(i, j)
    )
}

/// Service `i`'s chain and its endpoint chains.
fn service(out: &mut String, i: u32) {
    let ip = catalog::cluster_ip(i);
    let port = catalog::SERVICE_PORT;
    let chain = service_chain(i);
    let backends: Vec<_> = catalog::backends().collect();
    // Endpoint chains first: the service chain's verdict map refers to them.
    for (j, backend) in (0u8..).zip(&backends) {
        let endpoint = endpoint_chain(i, j);
        let _ = writeln!(out, "add chain ip kube-proxy {endpoint}");
        let _ = writeln!(
            out,
            "add rule ip kube-proxy {endpoint} ip saddr {} jump mark-for-masquerade",
            backend.ip()
        );
        let _ = writeln!(
            out,
            "add rule ip kube-proxy {endpoint} meta l4proto tcp dnat to {backend}"
        );
    }
    let _ = writeln!(out, "add chain ip kube-proxy {chain}");
    let _ = writeln!(
        out,
        "add rule ip kube-proxy {chain} ip daddr {ip} tcp dport {port} ip saddr != {POD_CIDR} jump mark-for-masquerade"
    );
    let picks: Vec<String> = (0u8..)
        .zip(&backends)
        .map(|(j, _)| format!("{j} : goto {}", endpoint_chain(i, j)))
        .collect();
    let _ = writeln!(
        out,
        "add rule ip kube-proxy {chain} numgen random mod {} vmap {{ {} }}",
        backends.len(),
        picks.join(", ")
    );
}

/// The map elements of Services `range`.
fn elements(out: &mut String, range: std::ops::Range<u32>) {
    let port = catalog::SERVICE_PORT;
    let mut start = range.start;
    while start < range.end {
        let end = (start + ELEMENTS_PER_STATEMENT).min(range.end);
        let items: Vec<String> = (start..end)
            .map(|i| {
                format!(
                    "{} . tcp . {port} : goto {}",
                    catalog::cluster_ip(i),
                    service_chain(i)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "add element ip kube-proxy service-ips {{ {} }}",
            items.join(", ")
        );
        start = end;
    }
}

impl RuleShape for Nftables {
    fn loader(&self) -> (&'static str, &'static [&'static str]) {
        ("nft", &["-f", "-"])
    }

    fn program_all(&self, n: u32) -> String {
        let mut out = String::with_capacity(n as usize * 2048 + 4096);
        out.push_str(
            "add table ip kube-proxy\n\
             add chain ip kube-proxy mark-for-masquerade\n\
             add rule ip kube-proxy mark-for-masquerade meta mark set meta mark or 0x4000\n\
             add chain ip kube-proxy masquerading\n\
             add rule ip kube-proxy masquerading meta mark and 0x4000 == 0 return\n\
             add rule ip kube-proxy masquerading meta mark set meta mark xor 0x4000\n\
             add rule ip kube-proxy masquerading masquerade fully-random\n\
             add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n\
             add chain ip kube-proxy services\n\
             add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n\
             add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }\n\
             add rule ip kube-proxy nat-prerouting jump services\n\
             add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }\n\
             add rule ip kube-proxy nat-output jump services\n\
             add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }\n\
             add rule ip kube-proxy nat-postrouting jump masquerading\n",
        );
        for i in 0..n {
            service(&mut out, i);
        }
        elements(&mut out, 0..n);
        out
    }

    fn add_one(&self, n: u32) -> String {
        let mut out = String::new();
        service(&mut out, n);
        elements(&mut out, n..n + 1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_is_one_map_element_jumping_to_its_own_chain() {
        let rules = Nftables.program_all(1500);
        assert_eq!(rules.matches(" . tcp . 80 : goto service-").count(), 1500);
        assert_eq!(rules.matches("add element").count(), 2);
        assert_eq!(rules.matches("numgen random mod 10").count(), 1500);
        assert_eq!(rules.matches("dnat to").count(), 1500 * 10);
    }

    #[test]
    fn adding_one_touches_only_the_new_service() {
        let rules = Nftables.add_one(7);
        assert_eq!(rules.matches("add chain").count(), 11);
        assert!(rules.contains("10.96.0.8 . tcp . 80 : goto service-00000007"));
    }
}

//! kube-proxy's iptables mode: `KUBE-SERVICES` tests every Service's address and port in
//! turn and jumps to the Service's `KUBE-SVC-*` chain, which picks one `KUBE-SEP-*`
//! endpoint chain with `statistic --mode random` rules; the endpoint chain DNATs. Loaded
//! with `iptables-restore --noflush` as kube-proxy does; a later sync rewrites
//! `KUBE-SERVICES` whole and adds only the new Service's chains.

use super::RuleShape;
use crate::catalog;
use crate::topology::POD_CIDR;
use std::fmt::Write;

/// The iptables shape, loaded by `restore`: `iptables-legacy-restore` (xtables, the
/// classic kube-proxy datapath) or `iptables-restore` (the nf_tables backend).
pub struct Iptables {
    /// The restore program.
    pub restore: &'static str,
}

fn svc_chain(i: u32) -> String {
    format!("KUBE-SVC-{i:016X}")
}

fn sep_chain(i: u32, j: u8) -> String {
    format!("KUBE-SEP-{:016X}", catalog::backend_id(i, j))
}

/// The rule of Service `i` in `KUBE-SERVICES`.
fn services_rule(out: &mut String, i: u32) {
    let ip = catalog::cluster_ip(i);
    let port = catalog::SERVICE_PORT;
    let _ = writeln!(
        out,
        "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"bench/svc-{i}:http cluster IP\" -m tcp --dport {port} -j {}",
        svc_chain(i)
    );
}

/// `KUBE-SERVICES` whole: every Service's rule, then the NodePort jump kube-proxy ends it
/// with.
fn services_chain(out: &mut String, n: u32) {
    for i in 0..n {
        services_rule(out, i);
    }
    out.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
}

/// Declarations of Service `i`'s chains.
fn declare_service(out: &mut String, i: u32) {
    let _ = writeln!(out, ":{} - [0:0]", svc_chain(i));
    for (j, _) in (0u8..).zip(catalog::backends()) {
        let _ = writeln!(out, ":{} - [0:0]", sep_chain(i, j));
    }
}

/// The rules of Service `i`'s chains.
fn service_rules(out: &mut String, i: u32) {
    let ip = catalog::cluster_ip(i);
    let port = catalog::SERVICE_PORT;
    let svc = svc_chain(i);
    let _ = writeln!(
        out,
        "-A {svc} ! -s {POD_CIDR} -d {ip}/32 -p tcp -m comment --comment \"bench/svc-{i}:http cluster IP\" -m tcp --dport {port} -j KUBE-MARK-MASQ"
    );
    let backends: Vec<_> = catalog::backends().collect();
    let count = backends.len();
    for (j, backend) in (0u8..).zip(&backends) {
        let left = count - usize::from(j);
        let sep = sep_chain(i, j);
        if left > 1 {
            let _ = writeln!(
                out,
                "-A {svc} -m comment --comment \"bench/svc-{i}:http -> {backend}\" -m statistic --mode random --probability {:.11} -j {sep}",
                1.0 / left as f64
            );
        } else {
            let _ = writeln!(
                out,
                "-A {svc} -m comment --comment \"bench/svc-{i}:http -> {backend}\" -j {sep}"
            );
        }
        let _ = writeln!(
            out,
            "-A {sep} -s {}/32 -m comment --comment bench/svc-{i}:http -j KUBE-MARK-MASQ",
            backend.ip()
        );
        let _ = writeln!(
            out,
            "-A {sep} -p tcp -m comment --comment bench/svc-{i}:http -m tcp -j DNAT --to-destination {backend}"
        );
    }
}

impl RuleShape for Iptables {
    fn loader(&self) -> (&'static str, &'static [&'static str]) {
        (self.restore, &["--noflush"])
    }

    fn program_all(&self, n: u32) -> String {
        let mut out = String::with_capacity(n as usize * 4096 + 4096);
        out.push_str(
            "*nat\n\
             :KUBE-SERVICES - [0:0]\n\
             :KUBE-NODEPORTS - [0:0]\n\
             :KUBE-POSTROUTING - [0:0]\n\
             :KUBE-MARK-MASQ - [0:0]\n",
        );
        for i in 0..n {
            declare_service(&mut out, i);
        }
        out.push_str(
            "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
             -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n\
             -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
             -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n\
             -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n",
        );
        services_chain(&mut out, n);
        for i in 0..n {
            service_rules(&mut out, i);
        }
        out.push_str("COMMIT\n");
        out
    }

    fn add_one(&self, n: u32) -> String {
        let mut out = String::with_capacity(n as usize * 160 + 8192);
        out.push_str("*nat\n:KUBE-SERVICES - [0:0]\n");
        declare_service(&mut out, n);
        services_chain(&mut out, n + 1);
        service_rules(&mut out, n);
        out.push_str("COMMIT\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPT: Iptables = Iptables {
        restore: "iptables-legacy-restore",
    };

    #[test]
    fn a_service_gets_one_portal_rule_a_mark_rule_ten_picks_and_ten_endpoint_chains() {
        let rules = IPT.program_all(2);
        assert_eq!(rules.matches("-A KUBE-SERVICES -d ").count(), 2);
        assert_eq!(rules.matches("--mode random").count(), 2 * 9);
        assert_eq!(rules.matches("-j DNAT").count(), 2 * 10);
        assert_eq!(rules.matches(":KUBE-SEP-").count(), 2 * 10);
        assert!(rules.contains("--probability 0.10000000000"));
        assert!(rules.contains("--probability 0.50000000000"));
        assert!(rules.ends_with("COMMIT\n"));
    }

    #[test]
    fn adding_one_rewrites_the_portals_and_declares_only_the_new_chains() {
        let rules = IPT.add_one(3);
        assert_eq!(rules.matches("-A KUBE-SERVICES -d ").count(), 4);
        assert_eq!(rules.matches(":KUBE-SVC-").count(), 1);
        assert!(rules.contains(&svc_chain(3)));
    }
}

//! Cilium policies: rule selection, peers, CIDR sets, port rules, ICMP and DNS names.

use super::names::{is_dns_name, is_port_name};
use super::net::{check_cidr, check_cidr_except, check_end_port, check_port};
use super::{FieldPath, Findings, Violation, selectors};
use crate::cilium::{
    CidrRule, EgressRule, FqdnSelector, IcmpRule, IcmpType, IngressRule, PortRule, Rule,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Checks a policy's rules: `spec`, `specs`, or both, and at least one of them.
pub fn check_rules(
    f: &mut Findings,
    root: &FieldPath,
    spec: Option<&Rule>,
    specs: Option<&[Rule]>,
    clusterwide: bool,
) {
    if spec.is_none() && specs.is_none_or(<[Rule]>::is_empty) {
        f.add(
            &root.field("spec"),
            Violation::NeedsOneOf {
                fields: "spec or specs",
            },
        );
    }
    if let Some(rule) = spec {
        check_rule(f, &root.field("spec"), rule, clusterwide);
    }
    for (i, rule) in specs.unwrap_or_default().iter().enumerate() {
        check_rule(f, &root.field("specs").index(i), rule, clusterwide);
    }
}

fn check_rule(f: &mut Findings, at: &FieldPath, rule: &Rule, clusterwide: bool) {
    match (&rule.endpoint_selector, &rule.node_selector) {
        (None, None) => f.add(
            at,
            Violation::NeedsOneOf {
                fields: "endpointSelector or nodeSelector",
            },
        ),
        (Some(_), Some(_)) => f.add(
            &at.field("nodeSelector"),
            Violation::Conflicts {
                other: "endpointSelector",
            },
        ),
        _ => {}
    }
    if let Some(selector) = &rule.endpoint_selector {
        selectors::check(f, &at.field("endpointSelector"), selector, true);
    }
    if let Some(selector) = &rule.node_selector {
        if !clusterwide {
            f.add(&at.field("nodeSelector"), Violation::ClusterwideOnly);
        }
        selectors::check(f, &at.field("nodeSelector"), selector, true);
    }
    for (i, r) in rule.ingress.iter().flatten().enumerate() {
        check_ingress(f, &at.field("ingress").index(i), r, false);
    }
    for (i, r) in rule.ingress_deny.iter().flatten().enumerate() {
        check_ingress(f, &at.field("ingressDeny").index(i), r, true);
    }
    for (i, r) in rule.egress.iter().flatten().enumerate() {
        check_egress(f, &at.field("egress").index(i), r, false);
    }
    for (i, r) in rule.egress_deny.iter().flatten().enumerate() {
        check_egress(f, &at.field("egressDeny").index(i), r, true);
    }
    for (i, label) in rule.labels.iter().flatten().enumerate() {
        if label.key.is_empty() {
            f.add(
                &at.field("labels").index(i).field("key"),
                Violation::Required,
            );
        }
    }
}

fn check_ingress(f: &mut Findings, at: &FieldPath, rule: &IngressRule, deny: bool) {
    check_selectors(
        f,
        &at.field("fromEndpoints"),
        rule.from_endpoints.as_deref(),
    );
    check_selectors(f, &at.field("fromRequires"), rule.from_requires.as_deref());
    check_cidrs(f, &at.field("fromCIDR"), rule.from_cidr.as_deref());
    check_cidr_set(f, &at.field("fromCIDRSet"), rule.from_cidr_set.as_deref());
    check_port_rules(f, &at.field("toPorts"), rule.to_ports.as_deref(), deny);
    check_icmps(f, &at.field("icmps"), rule.icmps.as_deref());
}

fn check_egress(f: &mut Findings, at: &FieldPath, rule: &EgressRule, deny: bool) {
    check_selectors(f, &at.field("toEndpoints"), rule.to_endpoints.as_deref());
    check_selectors(f, &at.field("toRequires"), rule.to_requires.as_deref());
    check_cidrs(f, &at.field("toCIDR"), rule.to_cidr.as_deref());
    check_cidr_set(f, &at.field("toCIDRSet"), rule.to_cidr_set.as_deref());
    check_port_rules(f, &at.field("toPorts"), rule.to_ports.as_deref(), deny);
    check_icmps(f, &at.field("icmps"), rule.icmps.as_deref());
    if let Some(fqdns) = &rule.to_fqdns {
        if deny {
            f.add(&at.field("toFQDNs"), Violation::NotAllowedInDenyRule);
        }
        check_fqdns(f, &at.field("toFQDNs"), fqdns);
    }
}

fn check_selectors(f: &mut Findings, at: &FieldPath, list: Option<&[LabelSelector]>) {
    for (i, selector) in list.unwrap_or_default().iter().enumerate() {
        selectors::check(f, &at.index(i), selector, true);
    }
}

fn check_cidrs(f: &mut Findings, at: &FieldPath, list: Option<&[String]>) {
    for (i, cidr) in list.unwrap_or_default().iter().enumerate() {
        check_cidr(f, &at.index(i), cidr, true);
    }
}

fn check_cidr_set(f: &mut Findings, at: &FieldPath, list: Option<&[CidrRule]>) {
    for (i, rule) in list.unwrap_or_default().iter().enumerate() {
        check_cidr_except(f, &at.index(i), &rule.cidr, rule.except.as_deref(), true);
    }
}

fn check_port_rules(f: &mut Findings, at: &FieldPath, list: Option<&[PortRule]>, deny: bool) {
    for (i, rule) in list.unwrap_or_default().iter().enumerate() {
        let at = at.index(i);
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            let at = at.field("ports").index(j);
            let number = match port.port.parse::<i64>() {
                Ok(n) => check_port(f, &at.field("port"), n).then_some(n),
                Err(_) => {
                    if !is_port_name(&port.port) {
                        f.add(
                            &at.field("port"),
                            Violation::InvalidPortName {
                                name: port.port.clone(),
                            },
                        );
                    }
                    None
                }
            };
            if let Some(end_port) = port.end_port {
                check_end_port(f, &at.field("endPort"), number, i64::from(end_port));
            }
        }
        if let Some(rules) = &rule.rules {
            if deny {
                f.add(&at.field("rules"), Violation::NotAllowedInDenyRule);
            }
            if let Some(dns) = &rules.dns {
                check_fqdns(f, &at.field("rules").field("dns"), dns);
            }
        }
    }
}

fn check_icmps(f: &mut Findings, at: &FieldPath, list: Option<&[IcmpRule]>) {
    for (i, rule) in list.unwrap_or_default().iter().enumerate() {
        for (j, field) in rule.fields.iter().flatten().enumerate() {
            if let IcmpType::Name(name) = &field.icmp_type
                && field.type_number().is_none()
            {
                f.add(
                    &at.index(i).field("fields").index(j).field("type"),
                    Violation::UnknownIcmpType {
                        name: name.clone(),
                        family: field.family().as_str(),
                    },
                );
            }
        }
    }
}

fn check_fqdns(f: &mut Findings, at: &FieldPath, list: &[FqdnSelector]) {
    for (i, selector) in list.iter().enumerate() {
        let at = at.index(i);
        match (&selector.match_name, &selector.match_pattern) {
            (None, None) => f.add(
                &at,
                Violation::NeedsOneOf {
                    fields: "matchName or matchPattern",
                },
            ),
            (Some(_), Some(_)) => f.add(
                &at.field("matchPattern"),
                Violation::Conflicts { other: "matchName" },
            ),
            _ => {}
        }
        if let Some(name) = &selector.match_name
            && !is_dns_name(name, false)
        {
            f.add(
                &at.field("matchName"),
                Violation::InvalidDnsName {
                    value: name.clone(),
                    what: "name",
                },
            );
        }
        if let Some(pattern) = &selector.match_pattern
            && !is_dns_name(pattern, true)
        {
            f.add(
                &at.field("matchPattern"),
                Violation::InvalidDnsName {
                    value: pattern.clone(),
                    what: "pattern",
                },
            );
        }
    }
}

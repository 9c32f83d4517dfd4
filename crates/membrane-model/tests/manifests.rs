//! Manifest parsing as a user meets it: fixtures that must parse, and bad manifests that
//! must be refused with a message naming the document, the object and the field.

use membrane_model::{
    Kind, ManifestError, Object, Violation, parse_manifest_values, parse_manifests,
};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The problem lines of a refused text.
fn problems(text: &str) -> Vec<String> {
    match parse_manifests(text, "test.yaml") {
        Ok(objects) => panic!("expected a refusal, parsed {} objects", objects.len()),
        Err(ManifestError::Invalid { problems }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("expected problems, got: {other}"),
    }
}

fn kinds(objects: &[Object]) -> Vec<Kind> {
    objects.iter().map(Object::kind).collect()
}

#[test]
fn every_fixture_parses() {
    let mut total = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let objects = parse_manifests(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{} does not parse:\n{e}", path.display()));
        assert!(!objects.is_empty(), "{} has objects", path.display());
        total += objects.len();
    }
    assert_eq!(total, 7 + 3 + 4 + 2 + 2);
}

#[test]
fn the_cilium_fixture_keeps_every_construct() {
    let text = std::fs::read_to_string(fixtures().join("cilium-policies.yaml")).unwrap();
    let objects = parse_manifests(&text, "cilium-policies.yaml").unwrap();
    let Object::CiliumNetworkPolicy(egress) = &objects[1] else {
        panic!("second document is a CiliumNetworkPolicy")
    };
    let rule = egress.rules().next().unwrap();
    let egress_rules = rule.egress.as_ref().unwrap();
    assert_eq!(egress_rules.len(), 5);
    assert_eq!(
        egress_rules[0].to_ports.as_ref().unwrap()[0]
            .ports
            .as_ref()
            .unwrap()[0]
            .port,
        "9090"
    );
    let icmp = &egress_rules[4].icmps.as_ref().unwrap()[0]
        .fields
        .as_ref()
        .unwrap()[1];
    assert_eq!(icmp.type_number(), Some(128));
    assert_eq!(rule.enable_default_deny.unwrap().egress, Some(true));
    let deny = &rule.egress_deny.as_ref().unwrap()[1]
        .to_ports
        .as_ref()
        .unwrap()[0];
    assert_eq!(deny.ports.as_ref().unwrap()[0].end_port, Some(6063));
    assert_eq!(
        kinds(&objects),
        [
            Kind::CiliumNetworkPolicy,
            Kind::CiliumNetworkPolicy,
            Kind::CiliumClusterwideNetworkPolicy,
            Kind::CiliumClusterwideNetworkPolicy
        ]
    );
}

#[test]
fn policy_selectors_convert_to_matching_selectors() {
    let text = std::fs::read_to_string(fixtures().join("cilium-policies.yaml")).unwrap();
    let objects = parse_manifests(&text, "cilium-policies.yaml").unwrap();
    let Object::CiliumNetworkPolicy(api) = &objects[0] else {
        panic!()
    };
    let rule = api.rules().next().unwrap();
    let from = &rule.ingress.as_ref().unwrap()[1]
        .from_endpoints
        .as_ref()
        .unwrap()[0];
    let selector = membrane_model::LabelSelector::try_from(from).unwrap();
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(selector.matches(&labels(&[
        ("io.kubernetes.pod.namespace", "monitoring"),
        ("app", "prom")
    ])));
    assert!(!selector.matches(&labels(&[
        ("io.kubernetes.pod.namespace", "monitoring"),
        ("app", "debug")
    ])));
}

#[test]
fn multi_document_yaml_skips_empty_documents_but_counts_them() {
    let text = "---\n# nothing here\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: B}\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 4: Namespace B: metadata.name: `B` is not a valid name: it must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        ]
    );
}

#[test]
fn json_single_objects_arrays_and_lists_all_parse() {
    let one = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#;
    assert_eq!(parse_manifests(one, "one.json").unwrap().len(), 1);
    let array = format!("[{one},{one}]");
    assert_eq!(parse_manifests(&array, "array.json").unwrap().len(), 2);
    let list = format!(
        r#"{{"apiVersion":"v1","kind":"List","metadata":{{}},"items":[{one},{one},{one}]}}"#
    );
    assert_eq!(parse_manifests(&list, "list.json").unwrap().len(), 3);
}

#[test]
fn a_yaml_list_is_expanded_and_its_items_are_located() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: ok}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: ok, labelz: {}}\n";
    assert_eq!(
        problems(text),
        ["test.yaml document 1 items[1]: Namespace ok: metadata.labelz: unknown field"]
    );
}

#[test]
fn a_list_with_unknown_fields_or_items_not_a_list_is_refused() {
    let text = "apiVersion: v1\nkind: List\nitems: {}\nextra: 1\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 1: extra: unknown field",
            "test.yaml document 1: items: expected a list of objects",
        ]
    );
}

#[test]
fn unknown_field_deep_in_a_cilium_policy_names_object_document_and_path() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: allow-web\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints:\n    - matchLabelz: {app: client}\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 2: CiliumNetworkPolicy default/allow-web: spec.ingress[0].fromEndpoints[0].matchLabelz: unknown field"
        ]
    );
}

#[test]
fn unknown_fields_in_kubernetes_kinds_are_found_at_depth() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports:\n  - port: 80\n    targetPortt: 8080\n  selectr: {app: web}\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 1: Service shop/web: spec.ports[0].targetPortt: unknown field",
            "test.yaml document 1: Service shop/web: spec.selectr: unknown field",
        ]
    );
}

#[test]
fn cilium_fields_membrane_does_not_implement_say_so() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n  egress:\n  - toServices:\n    - k8sService: {serviceName: x}\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 1: CiliumNetworkPolicy default/p: spec.egress[0].toServices: Cilium field that Membrane does not support yet"
        ]
    );
}

#[test]
fn an_unknown_kind_or_api_version_is_named() {
    let lines = problems("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("test.yaml document 1: kind: unknown kind `Deployment` of apiVersion `apps/v1`: Membrane accepts Namespace (v1),"),
        "{}",
        lines[0]
    );
    let lines = problems(
        "apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: d}\n",
    );
    assert!(
        lines[0].contains("unknown kind `NetworkPolicy` of apiVersion `networking.k8s.io/v1beta1`")
    );
}

#[test]
fn documents_without_type_or_not_mappings_are_refused() {
    assert_eq!(
        problems("kind: Namespace\nmetadata: {name: a}\n"),
        ["test.yaml document 1: apiVersion: required field is missing"]
    );
    assert_eq!(
        problems("- a\n- b\n"),
        [
            "test.yaml document 1: a manifest must be a mapping with apiVersion, kind and metadata, found a list"
        ]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named_with_its_path() {
    let text =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - port: eighty\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 1: Service default/web: spec.ports[0].port: invalid type: string \"eighty\", expected i32"
        ]
    );
}

#[test]
fn an_unknown_entity_or_protocol_is_refused_by_the_decoder() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromEntities: [everywhere]\n";
    let lines = problems(text);
    assert!(
        lines[0].starts_with("test.yaml document 1: CiliumNetworkPolicy default/p: spec.ingress[0].fromEntities[0]: unknown variant `everywhere`"),
        "{}",
        lines[0]
    );
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n  ingress:\n  - toPorts:\n    - ports:\n      - {port: '80', protocol: ICMP}\n";
    assert!(problems(text)[0].contains("spec.ingress[0].toPorts[0].ports[0].protocol: unknown variant `ICMP`, expected one of `TCP`, `UDP`, `SCTP`, `ANY`"));
}

#[test]
fn one_bad_document_fails_the_whole_call_and_every_problem_is_listed() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 0}]}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n";
    let lines = problems(text);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with("test.yaml document 2: Service default/web: spec.ports[0].port: port 0 is out of range 1-65535"));
    assert!(lines[1].starts_with("test.yaml document 3: Namespace Bad_Name: metadata.name:"));
}

#[test]
fn namespaced_objects_default_to_the_default_namespace_and_cluster_objects_have_none() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n, namespace: stray}\n";
    let objects = parse_manifests(text, "t").unwrap();
    assert_eq!(objects[0].object_ref().to_string(), "Pod default/p");
    assert_eq!(objects[1].object_ref().to_string(), "Node n");
}

#[test]
fn yaml_and_json_syntax_errors_name_the_source() {
    let err = parse_manifests("a: [1\n", "broken.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("broken.yaml document 1: not valid YAML"),
        "{err}"
    );
    let err = parse_manifests("{\"a\": ", "broken.json").unwrap_err();
    assert!(
        err.to_string().starts_with("broken.json: not valid JSON"),
        "{err}"
    );
}

#[test]
fn values_from_an_api_request_are_checked_like_text() {
    let good =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}});
    let bad = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "nam": "b"}});
    assert_eq!(
        parse_manifest_values(vec![good.clone()], "request")
            .unwrap()
            .len(),
        1
    );
    let Err(ManifestError::Invalid { problems }) =
        parse_manifest_values(vec![good, bad], "request")
    else {
        panic!("refused")
    };
    assert_eq!(
        problems[0].to_string(),
        "request document 2: Namespace a: metadata.nam: unknown field"
    );
    assert_eq!(problems[0].violation, Violation::UnknownField);
}

/// Semantic validation: one manifest per rule, and the exact line it produces.
#[test]
fn each_validation_rule_reports_its_field_and_message() {
    let cnp = |spec: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p}}\nspec:\n{spec}"
        )
    };
    let np = |spec: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p}}\nspec:\n{spec}"
        )
    };
    let svc =
        |spec: &str| format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec:\n{spec}");
    let cases: Vec<(String, &str)> = vec![
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n".into(),
            "Namespace (no name): metadata.name: required field is missing",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Shop}\n".into(),
            "Pod Shop/p: metadata.namespace: `Shop` is not a valid name: it must be a DNS-1123 label",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {\"bad key\": x}}\n".into(),
            "Pod default/p: metadata.labels[\"bad key\"]: label key `bad key` is not valid: only letters, digits, '-', '_' and '.' are allowed",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: \"-x\"}}\n".into(),
            "Pod default/p: metadata.labels.app: label value `-x` is not valid: it must start and end with a letter or digit",
        ),
        (
            np("  podSelector:\n    matchExpressions:\n    - {key: app, operator: In}\n"),
            "NetworkPolicy default/p: spec.podSelector.matchExpressions[0].values: operator In needs at least one value",
        ),
        (
            np("  podSelector:\n    matchExpressions:\n    - {key: app, operator: Exists, values: [x]}\n"),
            "NetworkPolicy default/p: spec.podSelector.matchExpressions[0].values: operator Exists takes no values",
        ),
        (
            np("  podSelector:\n    matchExpressions:\n    - {key: app, operator: Equals, values: [x]}\n"),
            "NetworkPolicy default/p: spec.podSelector.matchExpressions[0].operator: unknown operator `Equals`: expected In, NotIn, Exists or DoesNotExist",
        ),
        (
            np("  podSelector: {matchLabels: {\"k8s:app\": x}}\n"),
            "NetworkPolicy default/p: spec.podSelector.matchLabels[\"k8s:app\"]: label key `k8s:app` is not valid: ':' is not allowed",
        ),
        (
            np("  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/33}\n"),
            "NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock.cidr: `10.0.0.0/33` is not a CIDR",
        ),
        (
            np("  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}\n"),
            "NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock.except[0]: except `11.0.0.0/16` is not a prefix strictly inside cidr `10.0.0.0/8`",
        ),
        (
            np("  egress:\n  - to:\n    - ipBlock: {cidr: \"fd00::/64\", except: [\"fd00::/64\"]}\n"),
            "NetworkPolicy default/p: spec.egress[0].to[0].ipBlock.except[0]: except `fd00::/64` is not a prefix strictly inside cidr `fd00::/64`",
        ),
        (
            np("  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n"),
            "NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock: cannot be combined with `podSelector or namespaceSelector`",
        ),
        (
            np("  ingress:\n  - from:\n    - {}\n"),
            "NetworkPolicy default/p: spec.ingress[0].from[0]: one of podSelector, namespaceSelector or ipBlock is required",
        ),
        (
            np("  ingress:\n  - ports:\n    - {port: 70000}\n"),
            "NetworkPolicy default/p: spec.ingress[0].ports[0].port: port 70000 is out of range 1-65535",
        ),
        (
            np("  ingress:\n  - ports:\n    - {port: Web_Port}\n"),
            "NetworkPolicy default/p: spec.ingress[0].ports[0].port: `Web_Port` is neither a port number (1-65535) nor a port name",
        ),
        (
            np("  ingress:\n  - ports:\n    - {port: 8080, endPort: 80}\n"),
            "NetworkPolicy default/p: spec.ingress[0].ports[0].endPort: endPort 80 is below port 8080",
        ),
        (
            np("  ingress:\n  - ports:\n    - {port: http, endPort: 80}\n"),
            "NetworkPolicy default/p: spec.ingress[0].ports[0].endPort: endPort needs a numeric port",
        ),
        (
            np("  ingress:\n  - ports:\n    - {protocol: ICMP}\n"),
            "NetworkPolicy default/p: spec.ingress[0].ports[0].protocol: `ICMP` is not one of TCP, UDP, SCTP",
        ),
        (
            np("  policyTypes: [Ingress, Ingress, Both]\n"),
            "NetworkPolicy default/p: spec.policyTypes[1]: `Ingress` appears more than once",
        ),
        (
            svc("  ports: [{port: 80}]\n  type: Internal\n"),
            "Service default/s: spec.type: `Internal` is not one of ClusterIP, NodePort, LoadBalancer, ExternalName",
        ),
        (
            svc("  selector: {app: web}\n"),
            "Service default/s: spec.ports: required field is missing",
        ),
        (
            svc("  ports: [{port: 80, targetPort: 0}]\n"),
            "Service default/s: spec.ports[0].targetPort: port 0 is out of range 1-65535",
        ),
        (
            svc("  ports: [{port: 80, nodePort: 30080}]\n"),
            "Service default/s: spec.ports[0].nodePort: only allowed when type is NodePort or LoadBalancer",
        ),
        (
            svc("  ports: [{port: 80, name: a}, {port: 81}]\n"),
            "Service default/s: spec.ports[1].name: required field is missing",
        ),
        (
            svc("  ports: [{port: 80, name: a}, {port: 81, name: a}]\n"),
            "Service default/s: spec.ports[1].name: `a` appears more than once",
        ),
        (
            svc("  ports: [{port: 80}]\n  clusterIP: 10.96.0.300\n"),
            "Service default/s: spec.clusterIP: `10.96.0.300` is not an IPv4 or IPv6 address",
        ),
        (
            svc("  ports: [{port: 80}]\n  clusterIPs: [10.96.0.1, 10.96.0.2]\n"),
            "Service default/s: spec.clusterIPs[1]: `10.96.0.2` is not an IPv6 address",
        ),
        (
            svc("  ports: [{port: 80}]\n  clusterIP: 10.96.0.1\n  clusterIPs: [10.96.0.2]\n"),
            "Service default/s: spec.clusterIP: cannot be combined with `clusterIPs[0]`",
        ),
        (
            svc("  ports: [{port: 80}]\n  sessionAffinity: Sticky\n"),
            "Service default/s: spec.sessionAffinity: `Sticky` is not one of None, ClientIP",
        ),
        (
            svc("  type: ExternalName\n"),
            "Service default/s: spec.externalName: required field is missing",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n".into(),
            "Service default/1web: metadata.name: `1web` is not a valid name: it must be a DNS-1035 label",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\nendpoints: []\n".into(),
            "EndpointSlice default/e: addressType: required field is missing",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv5\nendpoints: []\n".into(),
            "EndpointSlice default/e: addressType: `IPv5` is not one of IPv4, IPv6, FQDN",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]\n".into(),
            "EndpointSlice default/e: endpoints[0].addresses[0]: `fd00::1` is not an IPv4 address",
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv6\nendpoints: [{addresses: []}]\n".into(),
            "EndpointSlice default/e: endpoints[0].addresses: must not be empty",
        ),
        (
            "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {podCIDRs: [10.0.0.0/24, 10.1.0.0/24]}\n".into(),
            "Node n: spec.podCIDRs[1]: `10.1.0.0/24` is not an IPv6 address",
        ),
        (
            cnp("  endpointSelector: {}\n  nodeSelector: {}\n"),
            "CiliumNetworkPolicy default/p: spec.nodeSelector: cannot be combined with `endpointSelector`",
        ),
        (
            cnp("  nodeSelector: {}\n"),
            "CiliumNetworkPolicy default/p: spec.nodeSelector: only allowed in a CiliumClusterwideNetworkPolicy",
        ),
        (
            cnp("  description: nothing selected\n"),
            "CiliumNetworkPolicy default/p: spec: one of endpointSelector or nodeSelector is required",
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\n".into(),
            "CiliumNetworkPolicy default/p: spec: one of spec or specs is required",
        ),
        (
            cnp("  endpointSelector: {matchLabels: {\"bogus:app\": x}}\n"),
            "CiliumNetworkPolicy default/p: spec.endpointSelector.matchLabels[\"bogus:app\"]: label key `bogus:app` is not valid: unknown label source",
        ),
        (
            cnp("  endpointSelector: {}\n  ingress:\n  - fromCIDR: [10.1.2.3/40]\n"),
            "CiliumNetworkPolicy default/p: spec.ingress[0].fromCIDR[0]: `10.1.2.3/40` is not a CIDR",
        ),
        (
            cnp("  endpointSelector: {}\n  egress:\n  - toCIDRSet: [{cidr: \"fd00::/8\", except: [10.0.0.0/8]}]\n"),
            "CiliumNetworkPolicy default/p: spec.egress[0].toCIDRSet[0].except[0]: except `10.0.0.0/8` is not a prefix strictly inside cidr `fd00::/8`",
        ),
        (
            cnp("  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: \"0\"}]}]\n"),
            "CiliumNetworkPolicy default/p: spec.ingress[0].toPorts[0].ports[0].port: port 0 is out of range 1-65535",
        ),
        (
            cnp("  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: \"8080\", endPort: 8000}]}]\n"),
            "CiliumNetworkPolicy default/p: spec.ingress[0].toPorts[0].ports[0].endPort: endPort 8000 is below port 8080",
        ),
        (
            cnp("  endpointSelector: {}\n  ingressDeny:\n  - toPorts: [{ports: [{port: \"80\"}], rules: {http: [{method: GET}]}}]\n"),
            "CiliumNetworkPolicy default/p: spec.ingressDeny[0].toPorts[0].rules: not allowed in a deny rule",
        ),
        (
            cnp("  endpointSelector: {}\n  egressDeny:\n  - toFQDNs: [{matchName: example.com}]\n"),
            "CiliumNetworkPolicy default/p: spec.egressDeny[0].toFQDNs: not allowed in a deny rule",
        ),
        (
            cnp("  endpointSelector: {}\n  egress:\n  - toFQDNs: [{matchPattern: \"exa mple.*\"}]\n"),
            "CiliumNetworkPolicy default/p: spec.egress[0].toFQDNs[0].matchPattern: `exa mple.*` is not a valid DNS pattern",
        ),
        (
            cnp("  endpointSelector: {}\n  egress:\n  - icmps: [{fields: [{type: Redirect, family: IPv6}]}]\n"),
            "CiliumNetworkPolicy default/p: spec.egress[0].icmps[0].fields[0].type: `Redirect` is not an IPv6 ICMP type name",
        ),
        (
            cnp("  endpointSelector:\n    matchExpressions: [{key: app, operator: NotIn}]\n"),
            "CiliumNetworkPolicy default/p: spec.endpointSelector.matchExpressions[0].values: operator NotIn needs at least one value",
        ),
    ];
    for (text, expected) in cases {
        let lines = problems(&text);
        let expected = format!("test.yaml document 1: {expected}");
        assert!(
            lines.iter().any(|line| line.starts_with(&expected)),
            "for\n{text}\nexpected a line starting with\n  {expected}\ngot\n  {}",
            lines.join("\n  ")
        );
    }
}

#[test]
fn unknown_fields_and_semantic_errors_of_one_object_are_reported_together() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  portz: []\n  ports: [{port: 0}]\n";
    assert_eq!(
        problems(text),
        [
            "test.yaml document 1: Service default/web: spec.portz: unknown field",
            "test.yaml document 1: Service default/web: spec.ports[0].port: port 0 is out of range 1-65535",
        ]
    );
}

/// Every mapping of every fixture document, with its rendered path, except the free-form
/// maps whose keys are data (labels, annotations, selectors' label pairs).
fn mappings(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            out.push(path.to_string());
            for (key, child) in map {
                if matches!(
                    key.as_str(),
                    "labels" | "annotations" | "matchLabels" | "selector"
                ) {
                    continue;
                }
                let plain = key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                let child_path = match (plain, path.is_empty()) {
                    (true, true) => key.clone(),
                    (true, false) => format!("{path}.{key}"),
                    (false, _) => format!("{path}[{key:?}]"),
                };
                mappings(child, &child_path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                mappings(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Inserts `key` into the mapping at `path` (as [`mappings`] renders paths).
fn insert_at(value: &mut serde_json::Value, path: &str, key: &str) {
    let mut target = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap();
            target = &mut target[after[..end].parse::<usize>().unwrap()];
            rest = &after[end + 1..];
        } else {
            let field = rest.trim_start_matches('.');
            let end = field.find(['.', '[']).unwrap_or(field.len());
            target = &mut target[&field[..end]];
            rest = &field[end..];
        }
    }
    target
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), serde_json::json!(1));
}

#[test]
fn an_unknown_field_in_any_mapping_of_any_fixture_is_refused_at_its_path() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let values: Vec<serde_json::Value> = parse_manifests(&text, "fixture")
            .unwrap()
            .iter()
            .map(Object::to_value)
            .collect();
        for (i, value) in values.iter().enumerate() {
            let mut paths = Vec::new();
            mappings(value, "", &mut paths);
            for at in paths {
                let mut changed = value.clone();
                insert_at(&mut changed, &at, "zzUnknown");
                let Err(ManifestError::Invalid { problems }) =
                    parse_manifest_values(vec![changed], "fixture")
                else {
                    panic!(
                        "{} object {i}: zzUnknown at `{at}` was accepted",
                        path.display()
                    )
                };
                let expected = if at.is_empty() {
                    "zzUnknown".to_string()
                } else {
                    format!("{at}.zzUnknown")
                };
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(problems[0].field, expected);
                assert_eq!(problems[0].violation, Violation::UnknownField);
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} mappings checked");
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,200}") {
        let _ = parse_manifests(&text, "fuzz");
    }

    #[test]
    fn arbitrary_yaml_shaped_text_never_panics_the_parser(
        text in "(apiVersion: (v1|cilium.io/v2|networking.k8s.io/v1)\nkind: (Service|Pod|CiliumNetworkPolicy|NetworkPolicy|List)\n)?(metadata|spec|items|ports|ingress)?:? ?[\\[{]?[a-z0-9 :,\\-\\[\\]{}\n]{0,80}"
    ) {
        let _ = parse_manifests(&text, "fuzz");
    }
}

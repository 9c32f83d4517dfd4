//! The `membrane` binary as a user runs it: help, local validation, errors without an
//! agent, and the requests and output of each subcommand against a stand-in agent.

mod fake_agent;
mod support;

use fake_agent::FakeAgent;
use serde_json::json;
use std::os::unix::net::UnixListener;
use support::membrane;

const POLICY_WITH_TYPO: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-web
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - matchLabelz: {app: client}
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

const POLICY: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
";

#[test]
fn every_subcommand_has_help_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    for (command, mentions) in [
        ("apply", "--filename"),
        ("delete", "--ignore-not-found"),
        ("get", "identities"),
        ("status", "--output"),
        ("completion", "fish"),
    ] {
        let run = membrane(&socket, &[command, "--help"], "");
        assert_eq!(run.code, Some(0), "{command} --help: {}", run.stderr);
        assert!(
            run.stdout.contains("Examples:"),
            "{command} --help:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains(mentions),
            "{command} --help mentions {mentions}:\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("--socket"),
            "{command} --help shows --socket"
        );
    }
    let run = membrane(&socket, &["--help"], "");
    for command in ["apply", "delete", "get", "status", "completion"] {
        assert!(
            run.stdout.contains(command),
            "top-level help lists {command}"
        );
    }
    assert!(run.stdout.contains("MEMBRANE_SOCKET"));
}

#[test]
fn apply_of_a_malformed_file_names_the_object_and_field_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY_WITH_TYPO).unwrap();
    let run = membrane(
        &dir.path().join("none.sock"),
        &["apply", "-f", file.to_str().unwrap()],
        "",
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains(&format!(
            "error: {} document 1: CiliumNetworkPolicy default/allow-web: spec.ingress[0].fromEndpoints[0].matchLabelz: unknown field",
            file.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was sent to the agent"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("not running"),
        "validation comes before the agent: {}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn apply_without_an_agent_says_it_is_not_running_and_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let run = membrane(&socket, &["apply", "-f", "-"], SERVICE);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: the membrane agent is not running"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&socket.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn the_socket_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("from-env.sock");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_membrane"))
        .arg("status")
        .env("MEMBRANE_SOCKET", &socket)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&socket.display().to_string()));
}

#[test]
fn a_directory_with_one_bad_file_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("a-service.yaml"), SERVICE).unwrap();
    std::fs::write(manifests.join("b-policy.yaml"), POLICY_WITH_TYPO).unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    let run = membrane(&socket, &["apply", "-f", manifests.to_str().unwrap()], "");
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("b-policy.yaml document 1"),
        "{}",
        run.stderr
    );
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the CLI connected to the agent: {accepted:?}"
    );
}

#[test]
fn apply_sends_every_object_in_one_request_and_prints_what_the_agent_did() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::start(
        dir.path(),
        &[(
            "/v1/objects/apply",
            200,
            json!({"created": ["Service shop/web"], "configured": ["CiliumNetworkPolicy shop/allow"], "unchanged": []}),
        )],
    );
    let run = membrane(
        &agent.socket,
        &["apply", "-f", "-"],
        &format!("{SERVICE}---\n{POLICY}"),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "service/web created\nciliumnetworkpolicy.cilium.io/allow configured\n"
    );
    let received = agent.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("POST", "/v1/objects/apply")
    );
    let objects = received[0].body["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["kind"], "Service");
    assert_eq!(objects[0]["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(objects[1]["metadata"]["namespace"], "shop");
}

#[test]
fn an_agent_refusal_is_one_line_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::start(
        dir.path(),
        &[(
            "/v1/objects/apply",
            400,
            json!({"kind": "invalid_request", "message": "Service shop/web: namespace shop does not exist"}),
        )],
    );
    let run = membrane(&agent.socket, &["apply", "-f", "-"], SERVICE);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "error: the agent refused /v1/objects/apply: Service shop/web: namespace shop does not exist\n"
    );
}

#[test]
fn delete_sends_the_references_and_fails_on_objects_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::start(
        dir.path(),
        &[(
            "/v1/objects/delete",
            200,
            json!({"deleted": ["Service shop/web"], "not_found": ["CiliumNetworkPolicy shop/allow"]}),
        )],
    );
    let input = format!("{SERVICE}---\n{POLICY}");
    let run = membrane(&agent.socket, &["delete", "-f", "-"], &input);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "service \"web\" deleted\n");
    assert!(
        run.stderr
            .contains("not found: ciliumnetworkpolicy.cilium.io/allow"),
        "{}",
        run.stderr
    );
    assert_eq!(
        agent.received()[0].body,
        json!({"refs": [
            {"kind": "Service", "namespace": "shop", "name": "web"},
            {"kind": "CiliumNetworkPolicy", "namespace": "shop", "name": "allow"},
        ]})
    );
    let run = membrane(
        &agent.socket,
        &["delete", "--ignore-not-found", "-f", "-"],
        &input,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn get_lists_objects_as_a_table_or_as_a_list_apply_accepts_back() {
    let dir = tempfile::tempdir().unwrap();
    let service = serde_yaml_ng::from_str::<serde_json::Value>(SERVICE).unwrap();
    let agent = FakeAgent::start(
        dir.path(),
        &[
            ("/v1/objects/list", 200, json!([service])),
            (
                "/v1/objects/apply",
                200,
                json!({"created": [], "configured": [], "unchanged": ["Service shop/web"]}),
            ),
        ],
    );
    let run = membrane(&agent.socket, &["get", "svc", "-n", "shop"], "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAMESPACE",
            "NAME",
            "TYPE",
            "CLUSTER-IPS",
            "PORTS",
            "SELECTOR"
        ]
    );
    assert_eq!(
        rows[1],
        ["shop", "web", "ClusterIP", "<none>", "80/TCP", "app=web"]
    );
    assert_eq!(
        agent.received()[0].body,
        json!({"kind": "Service", "namespace": "shop"})
    );

    let listed = membrane(&agent.socket, &["get", "services", "-o", "yaml"], "");
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(
        listed.stdout.starts_with("apiVersion: v1\nitems:\n"),
        "{}",
        listed.stdout
    );
    let reapplied = membrane(&agent.socket, &["apply", "-f", "-"], &listed.stdout);
    assert_eq!(reapplied.code, Some(0), "{}", reapplied.stderr);
    assert_eq!(reapplied.stdout, "service/web unchanged\n");
}

#[test]
fn get_policies_asks_for_every_policy_kind() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::start(dir.path(), &[("/v1/objects/list", 200, json!([]))]);
    let run = membrane(&agent.socket, &["get", "policies"], "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "no policies found\n");
    let kinds: Vec<serde_json::Value> = agent
        .received()
        .iter()
        .map(|r| r.body["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("NetworkPolicy"),
            json!("CiliumNetworkPolicy"),
            json!("CiliumClusterwideNetworkPolicy")
        ]
    );
}

#[test]
fn get_identities_from_an_agent_without_them_says_so_instead_of_inventing_any() {
    let dir = tempfile::tempdir().unwrap();
    let agent = FakeAgent::start(dir.path(), &[]);
    let run = membrane(&agent.socket, &["get", "identities"], "");
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "error: identities are not available from this agent yet (it does not serve /v1/identities); upgrade membrane-agent\n"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn get_endpoints_filters_by_namespace_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = |id: u16, ns: &str| {
        json!({"id": id, "registration": {
            "attachment": {"container_id": format!("c{id}"), "ifname": "eth0"},
            "netns": "/run/netns/x", "host_ifname": format!("lxc{id}"), "host_ifindex": 7,
            "host_mac": "02:00:00:00:00:01", "pod_mac": "02:00:00:00:00:02",
            "ipv4": format!("10.200.0.{id}"), "ipv6": null,
            "pod_namespace": ns, "pod_name": format!("pod{id}")}})
    };
    let agent = FakeAgent::start(
        dir.path(),
        &[(
            "/v1/endpoints",
            200,
            json!([endpoint(2, "shop"), endpoint(1, "default")]),
        )],
    );
    let run = membrane(&agent.socket, &["get", "endpoints", "-n", "shop"], "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["ID", "NAMESPACE", "POD", "IPV4", "IPV6", "INTERFACE"],
            vec!["2", "shop", "pod2", "10.200.0.2", "<none>", "lxc2"],
        ]
    );
    let run = membrane(&agent.socket, &["get", "endpoints", "-o", "json"], "");
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed[0]["id"], 1, "sorted by id");
}

#[test]
fn status_prints_a_line_per_component_and_fails_when_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let status = json!({"node": "node-1", "healthy": false, "endpoints": 2,
        "ipv4_pool": {"cidr": "10.200.0.0/24", "used": 2, "free": 251}, "ipv6_pool": null});
    let agent = FakeAgent::start(dir.path(), &[("/v1/status", 200, status)]);
    let run = membrane(&agent.socket, &["status"], "");
    assert_eq!(run.code, Some(1));
    let line = |label: &str, text: &str| format!("{:<23}{text}", format!("{label}:"));
    for expected in [
        line("Node", "node-1\n"),
        line("Agent", "Not healthy"),
        line("IPAM IPv4", "10.200.0.0/24, 2 used, 251 free\n"),
        // A component the stand-in does not serve is shown failed, with why.
        line("KVStore", "Error: the agent refused /v1/kvstore"),
    ] {
        assert!(
            run.stdout.contains(&expected),
            "no {expected:?} in {}",
            run.stdout
        );
    }
    assert!(
        run.stderr
            .starts_with("error: node node-1 is not healthy: agent, kvstore, "),
        "{}",
        run.stderr
    );
}

#[test]
fn completion_scripts_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let run = membrane(&dir.path().join("none.sock"), &["completion", shell], "");
        assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
        assert!(
            ["membrane", "apply", "connectivity", "bpf", "conntrack"]
                .iter()
                .all(|word| run.stdout.contains(word)),
            "{shell}"
        );
    }
    let run = membrane(&dir.path().join("none.sock"), &["completion", "tcsh"], "");
    assert_eq!(run.code, Some(2));
}

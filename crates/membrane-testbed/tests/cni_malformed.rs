//! Input a runtime should never send gets the CNI spec's error code and changes nothing:
//! the agent's endpoint and allocation counts and the node's links stay as they were.

use membrane_api::AgentStatus;
use membrane_testbed::cni::CniOutput;
use membrane_testbed::names;
use membrane_testbed::{Netns, Node, Outside};

/// CNI spec error codes.
const INCOMPATIBLE_VERSION: u32 = 1;
const INVALID_ENV: u32 = 4;
const DECODE_FAILED: u32 = 6;

struct Bed {
    _outside: Outside,
    node: Node,
    pod_netns: Netns,
}

fn bed() -> Bed {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pod_netns = Netns::create("pod").unwrap();
    Bed {
        _outside: outside,
        node,
        pod_netns,
    }
}

fn link_names(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = node.links().unwrap().into_iter().map(|l| l.name).collect();
    names.sort();
    names
}

/// Runs `command` with the given environment and stdin, and checks that it failed with
/// `code` and changed nothing.
fn refused_with(bed: &Bed, command: &str, env: &[(&str, &str)], stdin: &[u8], code: u32) {
    let before: AgentStatus = bed.node.status().unwrap();
    let links_before = link_names(&bed.node);
    let output: CniOutput = bed.node.cni().exec(command, env, stdin).unwrap();
    assert!(!output.status.success(), "{output:?}");
    let error = output
        .error()
        .unwrap_or_else(|| panic!("no CNI error object on stdout: {output:?}"));
    assert_eq!(error.code, code, "{output:?}");
    assert!(!error.msg.is_empty(), "{output:?}");
    assert_eq!(
        bed.node.status().unwrap(),
        before,
        "the agent's state changed"
    );
    assert_eq!(
        link_names(&bed.node),
        links_before,
        "the node's links changed"
    );
}

fn valid_config(bed: &Bed) -> Vec<u8> {
    bed.node.cni().network_list().unwrap().plugin_config(0, &[])
}

fn valid_env(bed: &Bed) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_CONTAINERID", names::container_id()),
        (
            "CNI_NETNS",
            bed.pod_netns.path().to_string_lossy().into_owned(),
        ),
        ("CNI_IFNAME", "eth0".into()),
        (
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=garbage".into(),
        ),
        (
            "CNI_PATH",
            membrane_testbed::binaries::bin_dir()
                .to_string_lossy()
                .into_owned(),
        ),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn add_with_a_config_that_is_not_json_fails_with_code_6_and_changes_nothing() {
    let bed = bed();
    let env = valid_env(&bed);
    refused_with(
        &bed,
        "ADD",
        &borrowed(&env),
        b"{\"cniVersion\": \"1.1.0\", \"name\": ",
        DECODE_FAILED,
    );
}

#[test]
fn add_without_cni_netns_fails_with_code_4_and_changes_nothing() {
    let bed = bed();
    let env: Vec<_> = valid_env(&bed)
        .into_iter()
        .filter(|(k, _)| *k != "CNI_NETNS")
        .collect();
    let config = valid_config(&bed);
    refused_with(&bed, "ADD", &borrowed(&env), &config, INVALID_ENV);
}

#[test]
fn add_with_an_unknown_cni_version_fails_with_code_1_and_changes_nothing() {
    let bed = bed();
    let env = valid_env(&bed);
    let mut config: serde_json::Value = serde_json::from_slice(&valid_config(&bed)).unwrap();
    config["cniVersion"] = "42.0.0".into();
    let config = serde_json::to_vec(&config).unwrap();
    refused_with(&bed, "ADD", &borrowed(&env), &config, INCOMPATIBLE_VERSION);
}

#[test]
fn an_unknown_command_fails_with_code_4_and_changes_nothing() {
    let bed = bed();
    let env = valid_env(&bed);
    let config = valid_config(&bed);
    refused_with(&bed, "FROBNICATE", &borrowed(&env), &config, INVALID_ENV);
}

//! Runs the built plugin with malformed invocations and checks the CNI error JSON and
//! exit status. No agent runs: validation must fail before the agent would be asked,
//! and the verbs that do ask it are pointed at a socket nobody listens on.

use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// A socket path nothing listens on.
const NO_AGENT: &str = "/nonexistent/membrane-cni-test/agent.sock";

struct Outcome {
    success: bool,
    stdout: Value,
}

fn plugin(env: &[(&str, &str)], stdin: &str) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_membrane-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin starts");
    // VERSION does not read stdin; a closed pipe is fine then.
    let _ = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes());
    let output = child.wait_with_output().expect("the plugin finishes");
    let text = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stdout = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
    };
    Outcome {
        success: output.status.success(),
        stdout,
    }
}

fn config(version: &str) -> Value {
    json!({"cniVersion": version, "name": "membrane", "type": "membrane-cni", "agentSocket": NO_AGENT})
}

fn add_env(netns: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "cni-errors-test"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn assert_error(outcome: &Outcome, code: u64, version: &str, msg_part: &str) {
    assert!(
        !outcome.success,
        "exit status must be non-zero: {}",
        outcome.stdout
    );
    assert_eq!(outcome.stdout["code"], code, "{}", outcome.stdout);
    assert_eq!(outcome.stdout["cniVersion"], version, "{}", outcome.stdout);
    let msg = outcome.stdout["msg"].as_str().expect("msg is a string");
    assert!(msg.contains(msg_part), "msg {msg:?} lacks {msg_part:?}");
}

#[test]
fn version_lists_supported_versions_without_any_other_input() {
    let outcome = plugin(&[("CNI_COMMAND", "VERSION")], "");
    assert!(outcome.success);
    assert_eq!(
        outcome.stdout,
        json!({"cniVersion": "1.1.0",
               "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

#[test]
fn bad_json_is_code_6() {
    let outcome = plugin(&add_env("/nonexistent/netns"), "{\"cniVersion\": ");
    assert_error(&outcome, 6, "1.1.0", "decode");
}

#[test]
fn missing_cni_netns_on_add_is_code_4() {
    let env: Vec<_> = add_env("x")
        .into_iter()
        .filter(|(k, _)| *k != "CNI_NETNS")
        .collect();
    let outcome = plugin(&env, &config("1.1.0").to_string());
    assert_error(&outcome, 4, "1.1.0", "CNI_NETNS");
}

#[test]
fn unknown_cni_version_is_code_1() {
    let outcome = plugin(&add_env("/nonexistent/netns"), &config("9.9.9").to_string());
    assert_error(&outcome, 1, "1.1.0", "9.9.9");
}

#[test]
fn unknown_command_is_code_4() {
    let outcome = plugin(&[("CNI_COMMAND", "FROB")], &config("1.1.0").to_string());
    assert_error(&outcome, 4, "1.1.0", "CNI_COMMAND");
}

#[test]
fn missing_command_is_code_4() {
    let outcome = plugin(&[], "");
    assert_error(&outcome, 4, "1.1.0", "CNI_COMMAND");
}

#[test]
fn unknown_field_is_code_2_in_the_configured_version() {
    let mut conf = config("0.4.0");
    conf["bridge"] = json!("cni0");
    let outcome = plugin(&add_env("/nonexistent/netns"), &conf.to_string());
    assert_error(&outcome, 2, "0.4.0", "bridge=\"cni0\"");
}

#[test]
fn invalid_interface_name_is_code_4() {
    let mut env = add_env("/nonexistent/netns");
    env.retain(|(k, _)| *k != "CNI_IFNAME");
    env.push(("CNI_IFNAME", "much-too-long-ifname"));
    let outcome = plugin(&env, &config("1.1.0").to_string());
    assert_error(&outcome, 4, "1.1.0", "CNI_IFNAME");
}

#[test]
fn add_into_a_missing_netns_is_code_3_before_the_agent_is_asked() {
    let outcome = plugin(&add_env("/nonexistent/netns"), &config("1.1.0").to_string());
    assert_error(&outcome, 3, "1.1.0", "/nonexistent/netns");
}

#[test]
fn del_with_the_agent_down_is_code_11_naming_the_socket() {
    let env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "cni-errors-test"),
        ("CNI_IFNAME", "eth0"),
    ];
    let outcome = plugin(&env, &config("1.1.0").to_string());
    assert_error(&outcome, 11, "1.1.0", NO_AGENT);
}

#[test]
fn status_with_the_agent_down_is_code_50() {
    let outcome = plugin(&[("CNI_COMMAND", "STATUS")], &config("1.1.0").to_string());
    assert_error(&outcome, 50, "1.1.0", "agent");
}

#[test]
fn status_in_a_config_older_than_1_1_is_code_1() {
    let outcome = plugin(&[("CNI_COMMAND", "STATUS")], &config("1.0.0").to_string());
    assert_error(&outcome, 1, "1.0.0", "STATUS");
}

#[test]
fn gc_without_cni_path_is_code_4() {
    let mut conf = config("1.1.0");
    conf["cni.dev/valid-attachments"] = json!([]);
    let outcome = plugin(&[("CNI_COMMAND", "GC")], &conf.to_string());
    assert_error(&outcome, 4, "1.1.0", "CNI_PATH");
}

#[test]
fn check_without_prev_result_is_code_7() {
    let mut env = add_env("/nonexistent/netns");
    env[0] = ("CNI_COMMAND", "CHECK");
    let outcome = plugin(&env, &config("1.1.0").to_string());
    assert_error(&outcome, 7, "1.1.0", "prevResult");
}

#[test]
fn log_goes_to_the_log_file_and_never_to_stdout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("membrane-cni.log");
    let mut conf = config("1.1.0");
    conf["logFile"] = json!(log);
    let outcome = plugin(&[("CNI_COMMAND", "STATUS")], &conf.to_string());
    assert_error(&outcome, 50, "1.1.0", "agent");
    let text = std::fs::read_to_string(&log).expect("the log file was written");
    assert!(text.contains("STATUS"), "log lacks the verb: {text}");
    assert!(text.contains(NO_AGENT), "log lacks the cause: {text}");
}

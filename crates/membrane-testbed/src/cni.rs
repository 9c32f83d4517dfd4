//! Calls the CNI plugin exactly as a container runtime (libcni) does: the network
//! configuration list from the node's CNI configuration directory, each plugin's
//! configuration with `name` and `cniVersion` injected on stdin, the `CNI_*` environment,
//! and the result or error JSON on stdout.

use crate::binaries::{self, MissingBinary};
use crate::process::{self, Place, ProcessError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// How long one plugin call may take.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The `CNI_*` environment variables a runtime sets; any the caller does not set are
/// removed from the plugin's environment.
pub const CNI_ENV: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// Errors of CNI calls.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The plugin binary is not built.
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    /// The configuration directory holds no network configuration list.
    #[error("no *.conflist in {dir}")]
    NoConfig {
        /// The directory.
        dir: PathBuf,
    },
    /// The configuration list could not be read or is not valid.
    #[error("bad network configuration list {path}: {problem}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The plugin could not be run.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The plugin reported an error.
    #[error("CNI {command} failed with code {code}: {msg} ({details}); stderr: {stderr}")]
    Plugin {
        /// The CNI command.
        command: String,
        /// The spec's error code.
        code: u32,
        /// The message.
        msg: String,
        /// The details.
        details: String,
        /// What the plugin wrote to stderr.
        stderr: String,
    },
    /// The plugin failed without a valid error object on stdout.
    #[error(
        "CNI {command} exited with {status} without a CNI error object; stdout: {stdout}; stderr: {stderr}"
    )]
    BadFailure {
        /// The CNI command.
        command: String,
        /// The exit status.
        status: ExitStatus,
        /// What it printed.
        stdout: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The plugin succeeded but its result is not valid.
    #[error("CNI {command} printed an invalid result: {stdout}")]
    BadResult {
        /// The CNI command.
        command: String,
        /// What it printed.
        stdout: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

impl CniError {
    /// The CNI error code, if the plugin reported one.
    pub fn code(&self) -> Option<u32> {
        match self {
            CniError::Plugin { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A network configuration list (`*.conflist`).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkList {
    /// Where it was read from.
    pub path: PathBuf,
    /// The network name.
    pub name: String,
    /// The list's CNI version.
    pub cni_version: String,
    /// The plugins' configurations, in order.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkList {
    /// Reads the list a runtime would use from `dir`: the first `*.conflist` by name.
    pub fn load(dir: &Path) -> Result<NetworkList, CniError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "conflist"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let path = files
            .into_iter()
            .next()
            .ok_or_else(|| CniError::NoConfig { dir: dir.into() })?;
        let bad = |problem: String| CniError::BadConfig {
            path: path.clone(),
            problem,
        };
        let text = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        NetworkList::parse(&text)
            .map_err(bad)
            .map(|list| NetworkList {
                path: path.clone(),
                ..list
            })
    }

    /// Parses a configuration list.
    pub fn parse(bytes: &[u8]) -> Result<NetworkList, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("no string {key:?}"))
        };
        let plugins = value
            .get("plugins")
            .and_then(Value::as_array)
            .ok_or("no \"plugins\" array")?
            .iter()
            .map(|plugin| {
                plugin
                    .as_object()
                    .cloned()
                    .ok_or("a plugin is not an object")
            })
            .collect::<Result<Vec<_>, _>>()?;
        if plugins.is_empty() {
            return Err("no plugins".into());
        }
        for plugin in &plugins {
            plugin
                .get("type")
                .and_then(Value::as_str)
                .ok_or("a plugin has no string \"type\"")?;
        }
        Ok(NetworkList {
            path: PathBuf::new(),
            name: text("name")?,
            cni_version: text("cniVersion")?,
            plugins,
        })
    }

    /// The `type` (binary name) of plugin `index`.
    pub fn plugin_type(&self, index: usize) -> &str {
        self.plugins[index]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// What plugin `index` reads on stdin: its configuration with the list's `name` and
    /// `cniVersion` injected, plus `extra` keys (`prevResult`, `cni.dev/valid-attachments`).
    pub fn plugin_config(&self, index: usize, extra: &[(&str, Value)]) -> Vec<u8> {
        let mut config = self.plugins[index].clone();
        config.insert("name".into(), Value::String(self.name.clone()));
        config.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        for (key, value) in extra {
            config.insert((*key).to_string(), value.clone());
        }
        serde_json::to_vec(&config).expect("a JSON map always serializes")
    }
}

/// One network attachment of a container, as the runtime knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the container's network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` as key/value pairs.
    pub args: Vec<(String, String)>,
}

impl Attachment {
    /// An attachment for a Kubernetes pod, with the `CNI_ARGS` the CRI runtime passes.
    pub fn for_pod(container_id: &str, netns: &Path, pod_namespace: &str, pod_name: &str) -> Self {
        let args = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", pod_namespace),
            ("K8S_POD_NAME", pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", container_id),
        ];
        Attachment {
            container_id: container_id.to_string(),
            netns: netns.to_path_buf(),
            ifname: "eth0".to_string(),
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `CNI_ARGS`: `KEY=VALUE` pairs joined by `;`.
    pub fn cni_args(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// The parts of a CNI result tests look at; the full JSON is kept in `raw`.
#[derive(Clone, Debug, PartialEq)]
pub struct CniResult {
    /// The addresses, with prefix length.
    pub ips: Vec<IpNet>,
    /// The interfaces reported, by name.
    pub interfaces: Vec<String>,
    /// The result as printed, passed back as `prevResult`.
    pub raw: Value,
}

#[derive(Deserialize)]
struct ResultIp {
    address: IpNet,
}

#[derive(Deserialize)]
struct ResultInterface {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultWire {
    #[serde(default)]
    ips: Vec<ResultIp>,
    #[serde(default)]
    interfaces: Vec<ResultInterface>,
}

impl CniResult {
    /// Parses a plugin's success result.
    pub fn parse(stdout: &str) -> Result<CniResult, serde_json::Error> {
        let raw: Value = serde_json::from_str(stdout)?;
        let wire: ResultWire = serde_json::from_value(raw.clone())?;
        Ok(CniResult {
            ips: wire.ips.into_iter().map(|ip| ip.address).collect(),
            interfaces: wire.interfaces.into_iter().map(|i| i.name).collect(),
            raw,
        })
    }

    /// The first IPv4 address.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ips.iter().find_map(|net| match net.addr() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
    }

    /// The first IPv6 address.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ips.iter().find_map(|net| match net.addr() {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        })
    }
}

/// A CNI error object, as printed on stdout by a failing plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniErrorObject {
    /// The spec's error code.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details.
    #[serde(default)]
    pub details: String,
}

/// How a plugin call ended, uninterpreted.
#[derive(Debug)]
pub struct CniOutput {
    /// The plugin's exit status.
    pub status: ExitStatus,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

impl CniOutput {
    /// The error object on stdout, if there is one.
    pub fn error(&self) -> Option<CniErrorObject> {
        serde_json::from_str(&self.stdout).ok()
    }

    fn into_result(self, command: &str) -> Result<String, CniError> {
        if self.status.success() {
            return Ok(self.stdout);
        }
        match self.error() {
            Some(error) => Err(CniError::Plugin {
                command: command.to_string(),
                code: error.code,
                msg: error.msg,
                details: error.details,
                stderr: self.stderr,
            }),
            None => Err(CniError::BadFailure {
                command: command.to_string(),
                status: self.status,
                stdout: self.stdout,
                stderr: self.stderr,
            }),
        }
    }
}

/// The runtime side of CNI on one node: where plugins and configuration live, and where
/// plugins run.
pub struct CniRuntime<'a> {
    place: &'a dyn Place,
    plugin_dir: PathBuf,
    conf_dir: PathBuf,
}

impl<'a> CniRuntime<'a> {
    /// Plugins from `plugin_dir` (`CNI_PATH`), configuration from `conf_dir`, run inside
    /// `place` (the node's namespace and cgroup).
    pub fn new(place: &'a dyn Place, plugin_dir: PathBuf, conf_dir: PathBuf) -> Self {
        CniRuntime {
            place,
            plugin_dir,
            conf_dir,
        }
    }

    /// The network configuration list the runtime uses.
    pub fn network_list(&self) -> Result<NetworkList, CniError> {
        NetworkList::load(&self.conf_dir)
    }

    /// Runs the Membrane plugin binary with `CNI_COMMAND=command`, exactly the other
    /// `CNI_*` variables in `env`, and `stdin`, and returns how it ended, whatever that
    /// was. For tests that send what a runtime never would.
    pub fn exec(
        &self,
        command: &str,
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> Result<CniOutput, CniError> {
        self.exec_binary(
            &binaries::locate(binaries::CNI_PLUGIN)?,
            command,
            env,
            stdin,
        )
    }

    fn exec_binary(
        &self,
        binary: &Path,
        command: &str,
        env: &[(&str, &str)],
        stdin: &[u8],
    ) -> Result<CniOutput, CniError> {
        let mut cmd = Command::new(binary);
        for name in CNI_ENV {
            cmd.env_remove(name);
        }
        cmd.env("CNI_COMMAND", command);
        cmd.envs(env.iter().copied());
        let finished = process::run(cmd, self.place, stdin, PLUGIN_TIMEOUT)?;
        Ok(CniOutput {
            status: finished.status,
            stdout: finished.stdout,
            stderr: finished.stderr,
        })
    }

    /// Runs plugin `index` of `list` for `command` like libcni does: the `CNI_*`
    /// environment from `attachment` (empty for `STATUS` and `GC`), `CNI_PATH` set to the
    /// plugin directory, the plugin's configuration plus `extra` on stdin. Returns what
    /// it printed when it succeeded.
    fn invoke(
        &self,
        list: &NetworkList,
        index: usize,
        command: &str,
        attachment: Option<&Attachment>,
        extra: &[(&str, Value)],
    ) -> Result<String, CniError> {
        let path = self.plugin_dir.to_string_lossy().into_owned();
        let (container_id, netns, ifname, args) = match attachment {
            Some(a) => (
                a.container_id.clone(),
                a.netns.to_string_lossy().into_owned(),
                a.ifname.clone(),
                a.cni_args(),
            ),
            None => Default::default(),
        };
        let env = [
            ("CNI_CONTAINERID", container_id.as_str()),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", ifname.as_str()),
            ("CNI_ARGS", args.as_str()),
            ("CNI_PATH", path.as_str()),
        ];
        let name = list.plugin_type(index);
        let binary = self.plugin_dir.join(name);
        if !binary.is_file() {
            return Err(MissingBinary {
                name: name.to_string(),
                path: binary,
            }
            .into());
        }
        let stdin = list.plugin_config(index, extra);
        self.exec_binary(&binary, command, &env, &stdin)?
            .into_result(command)
    }

    /// `ADD`: runs the plugins in order, each with the previous one's result as
    /// `prevResult`, and returns the last result.
    pub fn add(&self, attachment: &Attachment) -> Result<CniResult, CniError> {
        let list = self.network_list()?;
        let mut result: Option<CniResult> = None;
        for index in 0..list.plugins.len() {
            let extra: Vec<(&str, Value)> = result
                .iter()
                .map(|prev| ("prevResult", prev.raw.clone()))
                .collect();
            let stdout = self.invoke(&list, index, "ADD", Some(attachment), &extra)?;
            let parsed = CniResult::parse(&stdout).map_err(|source| CniError::BadResult {
                command: "ADD".into(),
                stdout,
                source,
            })?;
            result = Some(parsed);
        }
        Ok(result.expect("a parsed list has at least one plugin"))
    }

    /// `CHECK`, with the cached `ADD` result as `prevResult`.
    pub fn check(&self, attachment: &Attachment, prev: &CniResult) -> Result<(), CniError> {
        let list = self.network_list()?;
        for index in 0..list.plugins.len() {
            self.invoke(
                &list,
                index,
                "CHECK",
                Some(attachment),
                &[("prevResult", prev.raw.clone())],
            )?;
        }
        Ok(())
    }

    /// `DEL`, with the cached `ADD` result as `prevResult` when there is one.
    pub fn del(&self, attachment: &Attachment, prev: Option<&CniResult>) -> Result<(), CniError> {
        let list = self.network_list()?;
        let extra: Vec<(&str, Value)> = prev
            .iter()
            .map(|result| ("prevResult", result.raw.clone()))
            .collect();
        for index in (0..list.plugins.len()).rev() {
            self.invoke(&list, index, "DEL", Some(attachment), &extra)?;
        }
        Ok(())
    }

    /// `STATUS`: succeeds when the plugin is ready for `ADD`.
    pub fn status(&self) -> Result<(), CniError> {
        let list = self.network_list()?;
        for index in 0..list.plugins.len() {
            self.invoke(&list, index, "STATUS", None, &[])?;
        }
        Ok(())
    }

    /// `GC`: everything but the `valid` attachments (container id, interface) is released.
    pub fn gc(&self, valid: &[(&str, &str)]) -> Result<(), CniError> {
        let list = self.network_list()?;
        let extra = [("cni.dev/valid-attachments", valid_attachments(valid))];
        for index in 0..list.plugins.len() {
            self.invoke(&list, index, "GC", None, &extra)?;
        }
        Ok(())
    }
}

/// The `cni.dev/valid-attachments` value for (container id, interface) pairs.
pub fn valid_attachments(valid: &[(&str, &str)]) -> Value {
    Value::Array(
        valid
            .iter()
            .map(|(container_id, ifname)| serde_json::json!({"containerID": container_id, "ifname": ifname}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONFLIST: &str = r#"{
        "cniVersion": "1.1.0",
        "name": "membrane",
        "plugins": [{"type": "membrane-cni", "socket": "/run/agent.sock", "mtu": 1500}]
    }"#;

    #[test]
    fn plugin_stdin_is_its_config_with_the_list_name_and_version_injected() {
        let list = NetworkList::parse(CONFLIST.as_bytes()).unwrap();
        let stdin: Value = serde_json::from_slice(&list.plugin_config(0, &[])).unwrap();
        assert_eq!(
            stdin,
            json!({"type": "membrane-cni", "socket": "/run/agent.sock", "mtu": 1500,
                   "name": "membrane", "cniVersion": "1.1.0"})
        );
    }

    #[test]
    fn the_plugin_config_name_and_version_are_overridden_by_the_list() {
        let list = NetworkList::parse(
            br#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"x","name":"b","cniVersion":"0.3.1"}]}"#,
        )
        .unwrap();
        let stdin: Value = serde_json::from_slice(&list.plugin_config(0, &[])).unwrap();
        assert_eq!(stdin["name"], "a");
        assert_eq!(stdin["cniVersion"], "1.0.0");
    }

    #[test]
    fn gc_stdin_lists_the_valid_attachments_as_libcni_spells_them() {
        let list = NetworkList::parse(CONFLIST.as_bytes()).unwrap();
        let extra = [(
            "cni.dev/valid-attachments",
            valid_attachments(&[("abc", "eth0")]),
        )];
        let stdin: Value = serde_json::from_slice(&list.plugin_config(0, &extra)).unwrap();
        assert_eq!(
            stdin["cni.dev/valid-attachments"],
            json!([{"containerID": "abc", "ifname": "eth0"}])
        );
    }

    #[test]
    fn lists_without_plugins_or_types_are_refused() {
        assert!(NetworkList::parse(br#"{"cniVersion":"1.1.0","name":"a","plugins":[]}"#).is_err());
        assert!(
            NetworkList::parse(br#"{"cniVersion":"1.1.0","name":"a","plugins":[{}]}"#).is_err()
        );
        assert!(NetworkList::parse(br#"{"name":"a","plugins":[{"type":"x"}]}"#).is_err());
        assert!(NetworkList::parse(b"not json").is_err());
    }

    #[test]
    fn the_first_conflist_by_name_is_the_one_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-b.conflist"),
            CONFLIST.replace("membrane\"", "b\""),
        )
        .unwrap();
        std::fs::write(dir.path().join("10-a.conflist"), CONFLIST).unwrap();
        std::fs::write(dir.path().join("00-ignored.txt"), "junk").unwrap();
        let list = NetworkList::load(dir.path()).unwrap();
        assert_eq!(list.name, "membrane");
        assert_eq!(list.path, dir.path().join("10-a.conflist"));
    }

    #[test]
    fn an_empty_conf_dir_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            NetworkList::load(dir.path()),
            Err(CniError::NoConfig { .. })
        ));
    }

    #[test]
    fn cni_args_are_joined_as_the_runtime_does() {
        let attachment = Attachment::for_pod("c1", Path::new("/run/netns/p"), "default", "web");
        assert_eq!(
            attachment.cni_args(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=c1"
        );
        assert_eq!(attachment.ifname, "eth0");
    }

    #[test]
    fn a_result_yields_the_pod_addresses_of_both_families() {
        let result = CniResult::parse(
            r#"{"cniVersion":"1.1.0",
                "interfaces":[{"name":"lxc1","mac":"aa:bb:cc:dd:ee:ff"},{"name":"eth0","sandbox":"/run/netns/p"}],
                "ips":[{"address":"10.200.1.5/32","interface":1},{"address":"fd00:200:0:1::5/128","interface":1}],
                "routes":[{"dst":"0.0.0.0/0"}]}"#,
        )
        .unwrap();
        assert_eq!(result.ipv4(), Some(Ipv4Addr::new(10, 200, 1, 5)));
        assert_eq!(result.ipv6(), Some("fd00:200:0:1::5".parse().unwrap()));
        assert_eq!(result.interfaces, ["lxc1", "eth0"]);
    }

    #[test]
    fn an_error_object_is_read_with_or_without_details() {
        let output = CniOutput {
            status: std::os::unix::process::ExitStatusExt::from_raw(256),
            stdout: r#"{"cniVersion":"1.1.0","code":7,"msg":"invalid config"}"#.into(),
            stderr: String::new(),
        };
        assert_eq!(output.error().map(|e| e.code), Some(7));
        let error = output.into_result("ADD").unwrap_err();
        assert_eq!(error.code(), Some(7));
    }
}

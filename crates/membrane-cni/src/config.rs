//! The network configuration on stdin: parsing and validation.
//!
//! The runtime passes the plugin's object from the conflist plus `cniVersion` and `name`
//! and, depending on the verb, runtime keys (`prevResult`, `runtimeConfig`,
//! `cni.dev/valid-attachments`, ...). The plugin's own keys are `agentSocket`, `mtu`,
//! `logFile`; any other key that is neither one of those nor a key the spec defines is
//! refused with code 2.

use crate::error::CniError;
use crate::result::{Dns, PrevResult};
use crate::version::SpecVersion;
use membrane_api::AttachmentRef;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Keys the spec defines for a plugin configuration (besides `cni.dev/*`, all reserved).
const SPEC_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "capabilities",
    "runtimeConfig",
    "args",
    "prevResult",
    "dns",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
];

/// The plugin's own keys.
const PLUGIN_KEYS: &[&str] = &["agentSocket", "mtu", "logFile"];

/// Smallest MTU accepted: IPv6 needs 1280, and pods get an IPv6 address when the node
/// has an IPv6 pool.
pub const MIN_MTU: u32 = 1280;

/// The validated configuration of one invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: the version of the input and of the output.
    pub version: SpecVersion,
    /// `name`: the network name.
    pub name: String,
    /// `agentSocket`: the node agent's unix socket.
    pub agent_socket: PathBuf,
    /// `mtu`: overrides the MTU the agent hands out.
    pub mtu: Option<u32>,
    /// `logFile`: where to write the plugin's log.
    pub log_file: Option<PathBuf>,
    /// `dns`: echoed in ADD results.
    pub dns: Dns,
    /// `prevResult`: the result of the previous ADD (CHECK, DEL) or previous plugin (ADD).
    pub prev_result: Option<PrevResult>,
    /// `cni.dev/valid-attachments` (or its early spelling `cni.dev/attachments`), for GC.
    pub valid_attachments: Option<Vec<AttachmentRef>>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Deserialize)]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

impl NetConf {
    /// Parses and validates the configuration: bad JSON → 6, unknown version → 1,
    /// unknown keys → 2, bad values → 7.
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        let map: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|source| CniError::Decode { source })?;
        let version_text: String = required(&map, "cniVersion")?;
        let version = SpecVersion::parse(&version_text)?;
        reject_unknown_keys(&map)?;

        let name: String = required(&map, "name")?;
        validate_network_name(&name)?;
        let _plugin_type: String = required(&map, "type")?;

        let agent_socket: PathBuf = optional(&map, "agentSocket")?
            .unwrap_or_else(|| PathBuf::from(membrane_api::DEFAULT_SOCKET));
        if !agent_socket.is_absolute() {
            return Err(invalid("agentSocket", "must be an absolute path"));
        }
        let mtu: Option<u32> = optional(&map, "mtu")?;
        if let Some(mtu) = mtu
            && !(MIN_MTU..=65535).contains(&mtu)
        {
            return Err(invalid(
                "mtu",
                format!("{mtu} is outside {MIN_MTU}..=65535"),
            ));
        }
        let log_file: Option<PathBuf> = optional(&map, "logFile")?;
        if log_file.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err(invalid("logFile", "must be an absolute path"));
        }
        let dns: Dns = optional(&map, "dns")?.unwrap_or_default();
        let prev_result: Option<PrevResult> = optional(&map, "prevResult")?;
        let valid: Option<Vec<ValidAttachment>> = match optional(&map, "cni.dev/valid-attachments")?
        {
            Some(valid) => Some(valid),
            None => optional(&map, "cni.dev/attachments")?,
        };
        let valid_attachments = valid.map(|list| {
            list.into_iter()
                .map(|a| AttachmentRef {
                    container_id: a.container_id,
                    ifname: a.ifname,
                })
                .collect()
        });
        Ok(NetConf {
            version,
            name,
            agent_socket,
            mtu,
            log_file,
            dns,
            prev_result,
            valid_attachments,
        })
    }

    /// The `cniVersion` of a configuration if it is a supported one, for error output
    /// when the rest of the configuration could not be parsed.
    pub fn declared_version(bytes: &[u8]) -> Option<SpecVersion> {
        let map: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
        SpecVersion::parse(map.get("cniVersion")?.as_str()?).ok()
    }
}

/// Code 2 naming every key (and its value) that is neither the spec's nor the plugin's.
fn reject_unknown_keys(map: &Map<String, Value>) -> Result<(), CniError> {
    let unknown: Vec<String> = map
        .iter()
        .filter(|(key, _)| {
            !SPEC_KEYS.contains(&key.as_str())
                && !PLUGIN_KEYS.contains(&key.as_str())
                && !key.starts_with("cni.dev/")
        })
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(CniError::UnsupportedFields {
            fields: unknown.join(", "),
        })
    }
}

/// The spec's network name rule: an alphanumeric, then alphanumerics, `_`, `.` or `-`.
fn validate_network_name(name: &str) -> Result<(), CniError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!(
                "{name:?} must start with an alphanumeric, then only alphanumerics, '_', '.' or '-'"
            ),
        ))
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn optional<T: DeserializeOwned>(
    map: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<T>, CniError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(|e| invalid(key, e.to_string())),
    }
}

fn required<T: DeserializeOwned>(
    map: &Map<String, Value>,
    key: &'static str,
) -> Result<T, CniError> {
    optional(map, key)?.ok_or_else(|| invalid(key, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        CODE_DECODE, CODE_INCOMPATIBLE_VERSION, CODE_INVALID_CONFIG, CODE_UNSUPPORTED_FIELD,
    };
    use serde_json::json;

    fn parse(value: Value) -> Result<NetConf, CniError> {
        NetConf::parse(value.to_string().as_bytes())
    }

    fn base() -> Value {
        json!({"cniVersion": "1.1.0", "name": "membrane", "type": "membrane-cni"})
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let conf = parse(base()).unwrap();
        assert_eq!(conf.version, SpecVersion::V1_1_0);
        assert_eq!(conf.name, "membrane");
        assert_eq!(
            conf.agent_socket,
            PathBuf::from(membrane_api::DEFAULT_SOCKET)
        );
        assert_eq!(conf.mtu, None);
        assert_eq!(conf.log_file, None);
        assert_eq!(conf.valid_attachments, None);
    }

    #[test]
    fn agent_written_plugin_config_is_accepted() {
        let conf = parse(json!({
            "cniVersion": "1.0.0", "name": "membrane", "type": "membrane-cni",
            "agentSocket": "/run/membrane/node-a/agent.sock", "mtu": 1450,
            "logFile": "/var/log/membrane-cni.log",
        }))
        .unwrap();
        assert_eq!(
            conf.agent_socket,
            PathBuf::from("/run/membrane/node-a/agent.sock")
        );
        assert_eq!(conf.mtu, Some(1450));
        assert_eq!(
            conf.log_file,
            Some(PathBuf::from("/var/log/membrane-cni.log"))
        );
    }

    #[test]
    fn runtime_keys_are_accepted() {
        let mut conf = base();
        let extra = json!({
            "runtimeConfig": {"portMappings": []}, "capabilities": {"portMappings": true},
            "args": {"cni": {"labels": []}}, "prevResult": {"cniVersion": "1.1.0"},
            "cniVersions": ["1.0.0", "1.1.0"], "disableCheck": false, "disableGC": false,
            "cni.dev/valid-attachments": [], "cni.dev/future-key": 1,
            "dns": {"nameservers": ["10.96.0.10"]},
        });
        conf.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let conf = parse(conf).unwrap();
        assert_eq!(conf.valid_attachments, Some(vec![]));
        assert_eq!(conf.dns.nameservers, vec!["10.96.0.10".to_string()]);
    }

    #[test]
    fn unknown_field_is_code_2_naming_key_and_value() {
        let mut conf = base();
        conf["bridge"] = json!("cni0");
        conf["ipam"] = json!({"type": "host-local"});
        let err = parse(conf).unwrap_err();
        assert_eq!(err.code(), CODE_UNSUPPORTED_FIELD);
        let msg = err.to_string();
        assert!(msg.contains("bridge=\"cni0\""), "{msg}");
        assert!(msg.contains("ipam="), "{msg}");
    }

    #[test]
    fn unknown_version_is_code_1_even_with_unknown_fields() {
        let err = parse(json!({"cniVersion": "2.0.0", "name": "n", "type": "t", "x": 1}));
        assert_eq!(err.unwrap_err().code(), CODE_INCOMPATIBLE_VERSION);
    }

    #[test]
    fn non_json_or_non_object_is_code_6() {
        assert_eq!(
            NetConf::parse(b"{not json").unwrap_err().code(),
            CODE_DECODE
        );
        assert_eq!(NetConf::parse(b"[1,2]").unwrap_err().code(), CODE_DECODE);
        assert_eq!(NetConf::parse(b"").unwrap_err().code(), CODE_DECODE);
    }

    #[test]
    fn bad_values_are_code_7_naming_the_field() {
        let cases = [
            ("mtu", json!("big")),
            ("mtu", json!(9000000)),
            ("mtu", json!(500)),
            ("agentSocket", json!("relative.sock")),
            ("logFile", json!("log.txt")),
            ("name", json!("-bad")),
            ("dns", json!({"nameservers": "not-a-list"})),
            ("cni.dev/valid-attachments", json!([{"ifname": "eth0"}])),
        ];
        for (key, value) in cases {
            let mut conf = base();
            conf[key] = value;
            let err = parse(conf).unwrap_err();
            assert_eq!(err.code(), CODE_INVALID_CONFIG, "{key}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn missing_required_keys_are_code_7() {
        for key in ["name", "type", "cniVersion"] {
            let mut conf = base();
            conf.as_object_mut().unwrap().remove(key);
            assert_eq!(
                parse(conf).unwrap_err().code(),
                CODE_INVALID_CONFIG,
                "{key}"
            );
        }
    }

    #[test]
    fn valid_attachments_are_read_from_either_spelling() {
        let entry = json!([{"containerID": "c1", "ifname": "eth0"}]);
        let expected = Some(vec![AttachmentRef {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }]);
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let mut conf = base();
            conf[key] = entry.clone();
            assert_eq!(parse(conf).unwrap().valid_attachments, expected);
        }
    }

    #[test]
    fn declared_version_survives_other_errors() {
        let bytes = br#"{"cniVersion":"0.4.0","bogus":1}"#;
        assert_eq!(NetConf::declared_version(bytes), Some(SpecVersion::V0_4_0));
        assert_eq!(NetConf::declared_version(b"nope"), None);
    }
}

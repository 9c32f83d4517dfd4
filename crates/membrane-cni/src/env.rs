//! The `CNI_*` environment: which verb to run and, per verb, the parameters the spec requires.

use crate::error::CniError;
use std::path::PathBuf;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The parameters identifying one attachment (ADD, DEL, CHECK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentEnv {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// Pod identity from `CNI_ARGS`.
    pub args: CniArgs,
}

/// One invocation of the plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Report supported versions; needs no configuration.
    Version,
    /// A verb that reads the network configuration.
    Network(NetworkVerb),
}

/// A verb that reads the network configuration, with the environment it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkVerb {
    /// Attach a pod.
    Add {
        /// The attachment.
        attachment: AttachmentEnv,
        /// `CNI_NETNS`.
        netns: PathBuf,
    },
    /// Detach a pod. `CNI_NETNS` is optional for DEL and not needed: deleting the
    /// host-side veth removes the pod's end too.
    Del {
        /// The attachment.
        attachment: AttachmentEnv,
    },
    /// Verify an attachment.
    Check {
        /// The attachment.
        attachment: AttachmentEnv,
        /// `CNI_NETNS`.
        netns: PathBuf,
    },
    /// Report readiness.
    Status,
    /// Release everything but the valid attachments.
    Gc,
}

impl Invocation {
    /// Reads the invocation from environment variables through `lookup`.
    /// Empty variables count as unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let command = get("CNI_COMMAND").ok_or(CniError::MissingEnv {
            name: "CNI_COMMAND",
            command: "every command",
        })?;
        let require = |name: &'static str, command: &'static str| {
            get(name).ok_or(CniError::MissingEnv { name, command })
        };
        let attachment = |command: &'static str| -> Result<AttachmentEnv, CniError> {
            let container_id = require("CNI_CONTAINERID", command)?;
            validate_container_id(&container_id)?;
            let ifname = require("CNI_IFNAME", command)?;
            validate_ifname(&ifname)?;
            let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
            Ok(AttachmentEnv {
                container_id,
                ifname,
                args,
            })
        };
        let verb = match command.as_str() {
            "VERSION" => return Ok(Invocation::Version),
            "ADD" => NetworkVerb::Add {
                attachment: attachment("ADD")?,
                netns: require("CNI_NETNS", "ADD")?.into(),
            },
            "DEL" => NetworkVerb::Del {
                attachment: attachment("DEL")?,
            },
            "CHECK" => NetworkVerb::Check {
                attachment: attachment("CHECK")?,
                netns: require("CNI_NETNS", "CHECK")?.into(),
            },
            "STATUS" => NetworkVerb::Status,
            "GC" => {
                require("CNI_PATH", "GC")?;
                NetworkVerb::Gc
            }
            _ => {
                return Err(CniError::InvalidEnv {
                    name: "CNI_COMMAND",
                    value: command,
                    reason: "expected ADD, DEL, CHECK, STATUS, GC or VERSION".into(),
                });
            }
        };
        Ok(Invocation::Network(verb))
    }
}

impl NetworkVerb {
    /// The verb's name as `CNI_COMMAND` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            NetworkVerb::Add { .. } => "ADD",
            NetworkVerb::Del { .. } => "DEL",
            NetworkVerb::Check { .. } => "CHECK",
            NetworkVerb::Status => "STATUS",
            NetworkVerb::Gc => "GC",
        }
    }

    /// The attachment the verb is about, if it is about one.
    pub fn attachment(&self) -> Option<&AttachmentEnv> {
        match self {
            NetworkVerb::Add { attachment, .. }
            | NetworkVerb::Del { attachment }
            | NetworkVerb::Check { attachment, .. } => Some(attachment),
            NetworkVerb::Status | NetworkVerb::Gc => None,
        }
    }
}

/// The spec's container id rule: an alphanumeric, then alphanumerics, `_`, `.` or `-`.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(CniError::InvalidEnv {
            name: "CNI_CONTAINERID",
            value: id.to_string(),
            reason: "must start with an alphanumeric character, then only alphanumerics, \
                     '_', '.' or '-'"
                .into(),
        })
    }
}

/// The spec's interface name rule: Linux's limits, not `.`/`..`, no `/`, `:` or whitespace.
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let reason = if name == "." || name == ".." {
        Some("must not be '.' or '..'".to_string())
    } else if name.len() > MAX_IFNAME_LEN {
        Some(format!("must be at most {MAX_IFNAME_LEN} bytes"))
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("must not contain '/', ':' or whitespace".to_string())
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(CniError::InvalidEnv {
            name: "CNI_IFNAME",
            value: name.to_string(),
            reason,
        }),
    }
}

/// The keys of `CNI_ARGS` the plugin uses; other keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub pod_name: Option<String>,
}

impl CniArgs {
    /// Parses `KEY=VALUE;KEY=VALUE`. Empty segments are skipped; a segment without `=`
    /// or with an empty key is an invalid `CNI_ARGS` (code 4).
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let mut args = CniArgs::default();
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .filter(|(key, _)| !key.is_empty())
                .ok_or_else(|| CniError::InvalidEnv {
                    name: "CNI_ARGS",
                    value: text.to_string(),
                    reason: format!("{pair:?} is not KEY=VALUE"),
                })?;
            let value = (!value.is_empty()).then(|| value.to_string());
            match key {
                "K8S_POD_NAMESPACE" => args.pod_namespace = value,
                "K8S_POD_NAME" => args.pod_name = value,
                _ => {}
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CODE_INVALID_ENV;
    use std::collections::HashMap;

    fn invocation(vars: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Invocation::from_env(|name| vars.get(name).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/run/netns/pod"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        ),
    ];

    #[test]
    fn add_reads_attachment_netns_and_pod_identity() {
        let Invocation::Network(NetworkVerb::Add { attachment, netns }) = invocation(ADD).unwrap()
        else {
            panic!("not an ADD")
        };
        assert_eq!(netns, PathBuf::from("/run/netns/pod"));
        assert_eq!(attachment.container_id, "abc123");
        assert_eq!(attachment.ifname, "eth0");
        assert_eq!(attachment.args.pod_namespace.as_deref(), Some("default"));
        assert_eq!(attachment.args.pod_name.as_deref(), Some("web-0"));
    }

    #[test]
    fn add_without_netns_is_code_4_naming_the_variable() {
        let vars: Vec<_> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        let err = invocation(&vars).unwrap_err();
        assert_eq!(err.code(), CODE_INVALID_ENV);
        assert!(err.to_string().contains("CNI_NETNS"));
    }

    #[test]
    fn del_tolerates_a_missing_netns() {
        let mut vars: Vec<_> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        vars[0] = ("CNI_COMMAND", "DEL");
        let del = invocation(&vars).unwrap();
        assert!(matches!(del, Invocation::Network(NetworkVerb::Del { .. })));
    }

    #[test]
    fn version_and_status_need_only_the_command() {
        assert_eq!(
            invocation(&[("CNI_COMMAND", "VERSION")]).unwrap(),
            Invocation::Version
        );
        assert_eq!(
            invocation(&[("CNI_COMMAND", "STATUS")]).unwrap(),
            Invocation::Network(NetworkVerb::Status)
        );
    }

    #[test]
    fn gc_needs_cni_path() {
        assert!(invocation(&[("CNI_COMMAND", "GC")]).is_err());
        let gc = invocation(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]);
        assert_eq!(gc.unwrap(), Invocation::Network(NetworkVerb::Gc));
    }

    #[test]
    fn unknown_or_missing_command_is_code_4() {
        assert_eq!(
            invocation(&[("CNI_COMMAND", "FROB")]).unwrap_err().code(),
            CODE_INVALID_ENV
        );
        assert_eq!(invocation(&[]).unwrap_err().code(), CODE_INVALID_ENV);
    }

    #[test]
    fn bad_container_ids_are_rejected() {
        for id in ["-abc", "a b", "a/b", "_x"] {
            assert!(validate_container_id(id).is_err(), "{id}");
        }
        for id in ["a", "A.b_c-d", "0123456789abcdef"] {
            assert!(validate_container_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn bad_interface_names_are_rejected() {
        for name in [".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert!(validate_ifname(name).is_err(), "{name}");
        }
        for name in ["eth0", "net1", "fifteen-chars-x"] {
            assert!(validate_ifname(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn cni_args_skip_empty_segments_and_ignore_unknown_keys() {
        let args = CniArgs::parse(";K8S_POD_NAME=a;;FOO=bar=baz;K8S_POD_NAMESPACE=;").unwrap();
        assert_eq!(args.pod_name.as_deref(), Some("a"));
        assert_eq!(args.pod_namespace, None);
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
    }

    #[test]
    fn cni_args_without_equals_is_code_4() {
        assert_eq!(
            CniArgs::parse("K8S_POD_NAME").unwrap_err().code(),
            CODE_INVALID_ENV
        );
        assert_eq!(
            CniArgs::parse("=value").unwrap_err().code(),
            CODE_INVALID_ENV
        );
    }
}

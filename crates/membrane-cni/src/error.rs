//! The plugin's errors, each carrying the CNI error code the runtime sees.
//!
//! Well-known codes come from the CNI specification. Plugin-specific codes (100 and up):
//!
//! | code | meaning |
//! | ---- | ------- |
//! | 100  | the agent's address pool is exhausted |
//! | 101  | the agent refused the request (datapath, storage or internal error) |
//! | 102  | an interface of the name to create already exists (in the pod or on the node) |
//! | 103  | a kernel networking operation (netlink, entering the namespace) failed |
//! | 104  | CHECK found the attachment not as expected |

use crate::version::SpecVersion;
use membrane_api::ClientError;
use serde::Serialize;
use std::path::PathBuf;

/// CNI error code: incompatible CNI version.
pub const CODE_INCOMPATIBLE_VERSION: u32 = 1;
/// CNI error code: unsupported field in network configuration.
pub const CODE_UNSUPPORTED_FIELD: u32 = 2;
/// CNI error code: container unknown or does not exist.
pub const CODE_CONTAINER_UNKNOWN: u32 = 3;
/// CNI error code: invalid necessary environment variables.
pub const CODE_INVALID_ENV: u32 = 4;
/// CNI error code: I/O failure.
pub const CODE_IO: u32 = 5;
/// CNI error code: failed to decode content.
pub const CODE_DECODE: u32 = 6;
/// CNI error code: invalid network config.
pub const CODE_INVALID_CONFIG: u32 = 7;
/// CNI error code: try again later.
pub const CODE_TRY_AGAIN: u32 = 11;
/// CNI error code (STATUS): the plugin cannot service ADD.
pub const CODE_NOT_AVAILABLE: u32 = 50;
/// CNI error code (STATUS): cannot service ADD, existing pods may have limited connectivity.
pub const CODE_LIMITED_CONNECTIVITY: u32 = 51;
/// Plugin code: the address pool is exhausted.
pub const CODE_POOL_EXHAUSTED: u32 = 100;
/// Plugin code: the agent refused the request.
pub const CODE_AGENT_REFUSED: u32 = 101;
/// Plugin code: an interface of the requested name already exists.
pub const CODE_INTERFACE_EXISTS: u32 = 102;
/// Plugin code: a kernel networking operation failed.
pub const CODE_KERNEL: u32 = 103;
/// Plugin code: CHECK found the attachment not as expected.
pub const CODE_CHECK_FAILED: u32 = 104;

/// Everything that can make a CNI verb fail.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The configuration's `cniVersion` is not one this plugin speaks.
    #[error("CNI version {version:?} is not supported (supported: {supported})")]
    IncompatibleVersion {
        /// The version asked for.
        version: String,
        /// The supported versions, comma-separated.
        supported: String,
    },
    /// The verb does not exist in the configuration's CNI version.
    #[error("{verb} needs CNI version {minimum} or later, the configuration says {version}")]
    VerbTooNew {
        /// The verb.
        verb: &'static str,
        /// The configuration's version.
        version: SpecVersion,
        /// The first version defining the verb.
        minimum: SpecVersion,
    },
    /// The plugin's configuration has keys it does not know.
    #[error("unsupported field(s) in network configuration: {fields}")]
    UnsupportedFields {
        /// `key=value` of every unknown field, comma-separated.
        fields: String,
    },
    /// The pod's network namespace does not exist.
    #[error("the network namespace {path} does not exist")]
    NetnsMissing {
        /// `CNI_NETNS`.
        path: PathBuf,
        /// The open error.
        #[source]
        source: std::io::Error,
    },
    /// A required environment variable is missing.
    #[error("the environment variable {name} is required for {command}")]
    MissingEnv {
        /// The variable.
        name: &'static str,
        /// The CNI command.
        command: &'static str,
    },
    /// An environment variable has an invalid value.
    #[error("the environment variable {name}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading stdin, opening a file or writing stdout failed.
    #[error("I/O failure: {what}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The network configuration on stdin is not a JSON object.
    #[error("failed to decode the network configuration")]
    Decode {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The network configuration has a bad value.
    #[error("invalid network configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent could not be reached.
    #[error("the membrane agent at {} is not reachable; try again later", socket.display())]
    AgentUnreachable {
        /// The agent's socket.
        socket: PathBuf,
        /// The client error.
        #[source]
        source: ClientError,
    },
    /// The agent did not answer in time.
    #[error("the membrane agent at {} did not answer {request} within {}s; try again later", socket.display(), after.as_secs())]
    AgentTimeout {
        /// The agent's socket.
        socket: PathBuf,
        /// The API request path.
        request: &'static str,
        /// How long the plugin waited.
        after: std::time::Duration,
    },
    /// The agent answered, but with something the plugin cannot use.
    #[error("the agent's answer to {request} is unusable: {reason}")]
    AgentAnswer {
        /// The API request path.
        request: &'static str,
        /// What is wrong with the answer.
        reason: String,
    },
    /// STATUS: the agent cannot be asked.
    #[error("membrane-cni cannot add pods: the agent is not available")]
    AgentNotAvailable {
        /// Why the agent could not be asked.
        #[source]
        source: Box<CniError>,
    },
    /// STATUS: the plugin cannot service ADD right now.
    #[error("membrane-cni cannot add pods: {reason}")]
    NotAvailable {
        /// Why.
        reason: String,
    },
    /// STATUS: the agent reports its datapath is not serving.
    #[error(
        "membrane-cni cannot add pods and existing pods may have limited connectivity: {reason}"
    )]
    LimitedConnectivity {
        /// Why.
        reason: String,
    },
    /// The agent has no free address.
    #[error("the agent's address pool is exhausted")]
    PoolExhausted {
        /// The agent's answer.
        #[source]
        source: ClientError,
    },
    /// The agent answered with an error (its message names the request).
    #[error(transparent)]
    AgentRefused(ClientError),
    /// An interface of the name to create is already there.
    #[error("interface {name} already exists in {place}")]
    InterfaceExists {
        /// The interface name.
        name: String,
        /// "the pod's network namespace" or "the node's network namespace".
        place: &'static str,
    },
    /// A netlink request failed.
    #[error("netlink: {what} failed")]
    Netlink {
        /// The operation.
        what: String,
        /// The rtnetlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A link the plugin just created or configured is not there.
    #[error("link {name} vanished while being configured")]
    LinkVanished {
        /// The link's name.
        name: String,
    },
    /// A link has no Ethernet address.
    #[error("link {name} has no Ethernet address")]
    NoMacAddress {
        /// The link's name.
        name: String,
    },
    /// Some cleanup steps failed (the others were done).
    #[error("cleanup incomplete: {problems}")]
    CleanupIncomplete {
        /// Every failed step, separated by "; ".
        problems: String,
    },
    /// Entering the pod's network namespace failed.
    #[error("cannot enter the network namespace {}", path.display())]
    EnterNetns {
        /// `CNI_NETNS`.
        path: PathBuf,
        /// The setns error.
        #[source]
        source: nix::Error,
    },
    /// The worker thread for namespace work could not run.
    #[error("the network namespace worker thread failed: {reason}")]
    NetnsWorker {
        /// What happened.
        reason: String,
    },
    /// CHECK found problems.
    #[error("the attachment is not as expected: {problems}")]
    CheckFailed {
        /// Every problem found, separated by "; ".
        problems: String,
    },
    /// ADD failed and its partial work was undone, perhaps not completely.
    #[error("{cause}{}", leftover_note(leftovers))]
    Unwound {
        /// The error that made ADD fail; its causes are this error's causes.
        cause: Box<CniError>,
        /// Undo steps that failed too (empty when the undo was complete).
        leftovers: Vec<String>,
    },
}

fn leftover_note(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        String::new()
    } else {
        format!(" (undo incomplete: {})", leftovers.join("; "))
    }
}

impl CniError {
    /// The CNI error code of this error.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion { .. } | CniError::VerbTooNew { .. } => {
                CODE_INCOMPATIBLE_VERSION
            }
            CniError::UnsupportedFields { .. } => CODE_UNSUPPORTED_FIELD,
            CniError::NetnsMissing { .. } => CODE_CONTAINER_UNKNOWN,
            CniError::MissingEnv { .. } | CniError::InvalidEnv { .. } => CODE_INVALID_ENV,
            CniError::Io { .. } => CODE_IO,
            CniError::Decode { .. } => CODE_DECODE,
            CniError::InvalidConfig { .. } => CODE_INVALID_CONFIG,
            CniError::AgentUnreachable { .. } | CniError::AgentTimeout { .. } => CODE_TRY_AGAIN,
            CniError::NotAvailable { .. } | CniError::AgentNotAvailable { .. } => {
                CODE_NOT_AVAILABLE
            }
            CniError::LimitedConnectivity { .. } => CODE_LIMITED_CONNECTIVITY,
            CniError::PoolExhausted { .. } => CODE_POOL_EXHAUSTED,
            CniError::AgentRefused(_) | CniError::AgentAnswer { .. } => CODE_AGENT_REFUSED,
            CniError::InterfaceExists { .. } => CODE_INTERFACE_EXISTS,
            CniError::Netlink { .. }
            | CniError::LinkVanished { .. }
            | CniError::NoMacAddress { .. }
            | CniError::CleanupIncomplete { .. }
            | CniError::EnterNetns { .. }
            | CniError::NetnsWorker { .. } => CODE_KERNEL,
            CniError::CheckFailed { .. } => CODE_CHECK_FAILED,
            CniError::Unwound { cause, .. } => cause.code(),
        }
    }

    /// Maps a failed agent call: unreachable agent → try again later, exhausted pool →
    /// 100, anything else the agent answered → 101.
    pub fn from_agent(socket: PathBuf, source: ClientError) -> Self {
        match source {
            ClientError::AgentNotRunning { .. } | ClientError::Transport { .. } => {
                CniError::AgentUnreachable { socket, source }
            }
            ClientError::Api {
                kind: membrane_api::ErrorKind::PoolExhausted,
                ..
            } => CniError::PoolExhausted { source },
            ClientError::Api { .. } | ClientError::Json { .. } => CniError::AgentRefused(source),
        }
    }

    /// The chain of causes, joined by ": " (empty when there is none).
    pub fn details(&self) -> String {
        let mut details = Vec::new();
        let mut source = match self {
            CniError::Unwound { cause, .. } => std::error::Error::source(cause.as_ref()),
            _ => std::error::Error::source(self),
        };
        while let Some(cause) = source {
            details.push(cause.to_string());
            source = cause.source();
        }
        details.join(": ")
    }

    /// The error result the spec asks for, in the given CNI version.
    pub fn to_json(&self, version: &str) -> ErrorJson {
        ErrorJson {
            cni_version: version.to_string(),
            code: self.code(),
            msg: self.to_string(),
            details: self.details(),
        }
    }
}

/// The spec's error result structure.
#[derive(Debug, Serialize)]
pub struct ErrorJson {
    /// The CNI version of this output.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The error code.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// The chain of causes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_carries_code_message_and_cause_chain() {
        let err = CniError::Io {
            what: "reading stdin".into(),
            source: std::io::Error::other("pipe closed"),
        };
        let json = serde_json::to_value(err.to_json("1.1.0")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cniVersion": "1.1.0",
                "code": 5,
                "msg": "I/O failure: reading stdin",
                "details": "pipe closed",
            })
        );
    }

    #[test]
    fn error_json_omits_empty_details() {
        let err = CniError::MissingEnv {
            name: "CNI_NETNS",
            command: "ADD",
        };
        let json = serde_json::to_value(err.to_json("0.4.0")).unwrap();
        assert_eq!(json["code"], 4);
        assert_eq!(json["cniVersion"], "0.4.0");
        assert!(json.get("details").is_none());
        assert!(json["msg"].as_str().unwrap().contains("CNI_NETNS"));
    }

    #[test]
    fn unwound_error_keeps_the_original_code_and_names_leftovers() {
        let err = CniError::Unwound {
            cause: Box::new(CniError::InterfaceExists {
                name: "eth0".into(),
                place: "the pod's network namespace",
            }),
            leftovers: vec!["releasing addresses: agent down".into()],
        };
        assert_eq!(err.code(), CODE_INTERFACE_EXISTS);
        assert!(
            err.to_string()
                .contains("undo incomplete: releasing addresses")
        );
    }

    #[test]
    fn unreachable_agent_maps_to_try_again_later() {
        let source = ClientError::AgentNotRunning {
            path: "/run/x.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let err = CniError::from_agent("/run/x.sock".into(), source);
        assert_eq!(err.code(), CODE_TRY_AGAIN);
        assert!(err.to_string().contains("/run/x.sock"));
    }

    #[test]
    fn exhausted_pool_maps_to_plugin_code_100() {
        let source = ClientError::Api {
            request: "/v1/ipam/allocate".into(),
            status: 503,
            kind: membrane_api::ErrorKind::PoolExhausted,
            message: "no free IPv4 address".into(),
        };
        let err = CniError::from_agent("/s".into(), source);
        assert_eq!(err.code(), CODE_POOL_EXHAUSTED);
    }
}

//! What can go wrong in a command, each said in one line with what to do about it.

use membrane_api::ClientError;
use membrane_model::{Kind, ManifestError, ObjectJsonError};
use std::path::PathBuf;

/// Errors of the `membrane` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The agent could not be reached or refused the request.
    #[error("{}", agent_message(.source))]
    Agent {
        /// The client error.
        #[from]
        source: ClientError,
    },
    /// The agent does not serve a path this command needs.
    #[error(
        "{what} are not available from this agent yet (it does not serve {path}); upgrade membrane-agent"
    )]
    NotAvailable {
        /// What was asked for (`identities`).
        what: &'static str,
        /// The API path.
        path: &'static str,
    },
    /// A manifest file or directory could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Manifests were refused before anything was sent to the agent.
    #[error("{}\nnothing was sent to the agent: fix the manifests and run the command again", render_manifest_errors(.errors))]
    Manifests {
        /// One error per refused source.
        errors: Vec<ManifestError>,
    },
    /// The sources held no object at all.
    #[error(
        "no objects found in {sources}: give files or directories of Kubernetes or Cilium manifests (*.yaml, *.yml, *.json), or - for stdin"
    )]
    NoObjects {
        /// The sources, comma-separated.
        sources: String,
    },
    /// An object the agent listed could not be decoded.
    #[error(
        "the agent listed a {kind} this CLI cannot read ({source}); the agent and the CLI may be of different versions"
    )]
    Listed {
        /// The kind asked for.
        kind: Kind,
        /// The decoding error.
        #[source]
        source: ObjectJsonError,
    },
    /// Some objects to delete did not exist.
    #[error("not found: {}; pass --ignore-not-found to accept that", .objects.join(", "))]
    NotFound {
        /// The objects, as `resource/name`.
        objects: Vec<String>,
    },
    /// The agent answered, and says it is not healthy.
    #[error("the agent on node {node} reports it is not healthy; its log says why")]
    Unhealthy {
        /// The agent's node.
        node: String,
    },
    /// `membrane observe` failed.
    #[error(transparent)]
    Observe {
        /// What went wrong.
        #[from]
        source: crate::observe::ObserveError,
    },
    /// Writing the output failed (a closed pipe, say).
    #[error("cannot write the output: {source}")]
    Write {
        /// The I/O error.
        #[from]
        source: std::io::Error,
    },
}

impl CliError {
    /// The message as lines, each to be printed on its own.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

fn agent_message(err: &ClientError) -> String {
    match err {
        ClientError::AgentNotRunning { path, source } => format!(
            "the membrane agent is not running: nothing answers at {} ({source}); start membrane-agent, or point --socket or MEMBRANE_SOCKET at its socket",
            path.display()
        ),
        ClientError::Transport { source, .. } => format!("{err}: {source}"),
        ClientError::Json { source, .. } => {
            format!("{err}: {source}; the agent and the CLI may be of different versions")
        }
        ClientError::Api { .. } => err.to_string(),
    }
}

fn render_manifest_errors(errors: &[ManifestError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

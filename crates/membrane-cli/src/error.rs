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
    /// A component of the node is not healthy.
    #[error(
        "node {node} is not healthy: {components} (see the lines above; the agent's log says more)"
    )]
    Unhealthy {
        /// The agent's node.
        node: String,
        /// The failing components, comma-separated.
        components: String,
    },
    /// `membrane observe` failed.
    #[error(transparent)]
    Observe {
        /// What went wrong.
        #[from]
        source: crate::observe::ObserveError,
    },
    /// No pin directory was given and none could be found.
    #[error("cannot tell which node's maps to read: the agent is not running at {} and {} holds {}; pass --bpffs-dir", .socket.display(), .root.display(), pin_dirs(.candidates))]
    NoPinDir {
        /// The socket tried.
        socket: PathBuf,
        /// The directory searched.
        root: PathBuf,
        /// The pin directories found there.
        candidates: Vec<String>,
    },
    /// A pinned map could not be read.
    #[error("cannot read the datapath's maps in {}: {}; reading pinned maps needs root", .dir.display(), error_chain(.source))]
    Pinned {
        /// The pin directory.
        dir: PathBuf,
        /// The datapath error.
        #[source]
        source: Box<membrane_datapath::DatapathError>,
    },
    /// `connectivity test` found no probe pods to run between.
    #[error("connectivity test needs pods labelled membrane.io/connectivity=client on a node whose agent it reaches, and =server anywhere: found {clients} reachable client(s){}, {servers} server(s); create them (examples/connectivity/) or pass --node-socket for the clients' nodes", unreachable_note(.unreachable))]
    NoProbePods {
        /// Clients whose network namespace is known.
        clients: usize,
        /// Clients on nodes whose agent was not given.
        unreachable: Vec<String>,
        /// Servers.
        servers: usize,
    },
    /// Some connectivity probes failed.
    #[error("connectivity test failed: {}", .failed.join("; "))]
    ConnectivityFailed {
        /// Each failed probe: scenario (client -> target: reason).
        failed: Vec<String>,
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

fn unreachable_note(clients: &[String]) -> String {
    if clients.is_empty() {
        String::new()
    } else {
        format!(
            " ({} more on nodes whose agent was not given: {})",
            clients.len(),
            clients.join(", ")
        )
    }
}

fn pin_dirs(found: &[String]) -> String {
    match found.len() {
        0 => "no pin directory of a node".to_string(),
        _ => format!("several ({})", found.join(", ")),
    }
}

/// An error and its sources, joined by `: `.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn render_manifest_errors(errors: &[ManifestError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

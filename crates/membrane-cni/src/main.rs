//! `membrane-cni`: the CNI plugin that attaches pods to the Membrane datapath through the
//! node agent.
//!
//! The runtime runs it with `CNI_*` environment variables and the network configuration
//! on stdin (see [`config`]); it prints the verb's result, or the spec's error JSON with
//! a non-zero exit, on stdout. Everything the environment and the configuration can get
//! wrong is checked before the agent or the kernel is touched.
#![forbid(unsafe_code)]

mod agent;
mod commands;
mod config;
mod env;
mod error;
mod link;
mod logging;
mod naming;
mod netns;
mod pod;
mod result;
mod version;

use crate::config::NetConf;
use crate::env::Invocation;
use crate::error::CniError;
use crate::version::SpecVersion;
use serde::Serialize;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use tracing::Instrument;

/// An error together with the CNI version its JSON is written in.
struct Failure {
    error: CniError,
    version: SpecVersion,
}

fn main() -> ExitCode {
    match run() {
        Ok(output) => match output.map(|json| print(&json)).transpose() {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "writing the result failed");
                ExitCode::FAILURE
            }
        },
        Err(Failure { error, version }) => {
            let json = serde_json::to_string(&error.to_json(version.as_str()))
                .expect("the error JSON is plain strings and numbers");
            // Nothing is left to report a failure to print the failure to.
            let _ = print(&json);
            ExitCode::FAILURE
        }
    }
}

/// Runs the invocation; `Some` is the JSON to print on success.
fn run() -> Result<Option<String>, Failure> {
    let latest = |error| Failure {
        error,
        version: SpecVersion::LATEST,
    };
    let verb = match Invocation::from_env(|name| std::env::var(name).ok()).map_err(latest)? {
        Invocation::Version => {
            // The runtime writes `{"cniVersion": ...}`; read it so that its write cannot
            // fail, although the answer is the same for every version.
            let stdin = std::io::stdin();
            if !stdin.is_terminal() {
                let _ = stdin.lock().read_to_end(&mut Vec::new());
            }
            return Ok(Some(to_json(&commands::version::run())));
        }
        Invocation::Network(verb) => verb,
    };

    let mut stdin = Vec::new();
    std::io::stdin().read_to_end(&mut stdin).map_err(|source| {
        latest(CniError::Io {
            what: "reading the network configuration from stdin".into(),
            source,
        })
    })?;
    let conf = NetConf::parse(&stdin).map_err(|error| Failure {
        error,
        version: NetConf::declared_version(&stdin).unwrap_or(SpecVersion::LATEST),
    })?;
    let failed = |error| Failure {
        error,
        version: conf.version,
    };
    if let Some(path) = &conf.log_file {
        logging::init(path).map_err(failed)?;
    }

    let span = tracing::info_span!(
        "cni",
        verb = verb.name(),
        container = verb.attachment().map(|a| a.container_id.as_str()),
        ifname = verb.attachment().map(|a| a.ifname.as_str()),
        network = conf.name,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| {
            failed(CniError::Io {
                what: "building the async runtime".into(),
                source,
            })
        })?;
    let result = runtime.block_on(commands::run(&verb, &conf).instrument(span.clone()));
    if let Err(error) = &result {
        span.in_scope(
            || tracing::error!(code = error.code(), %error, details = error.details(), "failed"),
        );
    }
    Ok(result.map_err(failed)?.map(|result| to_json(&result)))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("results are plain strings, numbers and lists")
}

fn print(json: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(json.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

//! Runs the built `membrane` command as an operator on a node would: inside the node's
//! network namespace and cgroup, against that node's agent socket.

use crate::binaries::{self, MissingBinary};
use crate::node::Node;
use crate::process::{self, Finished, ProcessError};
use std::process::Command;
use std::time::Duration;

/// How long one `membrane` run may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors of running the command.
#[derive(Debug, thiserror::Error)]
pub enum CliRunError {
    /// The binary is not built.
    #[error(transparent)]
    MissingBinary(#[from] MissingBinary),
    /// It could not be run or did not finish in time.
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// `membrane --socket <node's socket> <args>`, not yet started; the environment's
/// `MEMBRANE_*` settings are removed so that only `args` count.
pub fn command(node: &Node, args: &[&str]) -> Result<Command, MissingBinary> {
    let mut command = Command::new(binaries::locate(binaries::CLI)?);
    for name in ["MEMBRANE_SOCKET", "MEMBRANE_BPFFS_DIR", "MEMBRANE_OBSERVER"] {
        command.env_remove(name);
    }
    command
        .arg("--socket")
        .arg(&node.agent().config().socket)
        .args(args);
    Ok(command)
}

/// Runs `membrane <args>` on `node` with `stdin`, to completion.
pub fn run(node: &Node, args: &[&str], stdin: &str) -> Result<Finished, CliRunError> {
    Ok(process::run(
        command(node, args)?,
        node,
        stdin.as_bytes(),
        RUN_TIMEOUT,
    )?)
}

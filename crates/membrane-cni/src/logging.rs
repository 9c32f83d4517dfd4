//! The plugin's log: `tracing` to the configuration's `logFile`, never to stdout (the
//! result channel). Without `logFile` nothing is logged.

use crate::error::CniError;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

/// Environment variable holding the log filter (default `info`).
pub const FILTER_ENV: &str = "MEMBRANE_LOG";

/// Starts logging to `path`, appending; opening the file failing is code 5.
pub fn init(path: &Path) -> Result<(), CniError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| CniError::Io {
            what: format!("opening the log file {}", path.display()),
            source,
        })?;
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .init();
    Ok(())
}

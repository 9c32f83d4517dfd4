//! Logging: `tracing` to stderr, filtered by `MEMBRANE_LOG` (`info` when unset), as plain
//! lines or JSON.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "MEMBRANE_LOG";

/// Errors of setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter does not parse.
    #[error("{LOG_ENV}={value:?} is not a valid log filter")]
    Filter {
        /// The filter text.
        value: String,
        /// The parse error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("logging was already set up")]
    AlreadySet {
        /// The error.
        #[source]
        source: tracing_subscriber::util::TryInitError,
    },
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(value) => {
            EnvFilter::try_new(&value).map_err(|source| TelemetryError::Filter { value, source })?
        }
        Err(_) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Plain => tracing_subscriber::util::SubscriberInitExt::try_init(builder.finish()),
        LogFormat::Json => {
            tracing_subscriber::util::SubscriberInitExt::try_init(builder.json().finish())
        }
    };
    result.map_err(|source| TelemetryError::AlreadySet { source })
}

//! The Observer API's wire types, generated from `proto/` and quarantined here: the rest
//! of the crate works on its own types and converts at this boundary (`convert`).

mod convert;

pub use convert::{system_time, timestamp};

/// Hubble's `flow` package: flows, filters, lost events.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod flow {
    include!(concat!(env!("OUT_DIR"), "/flow.rs"));
    include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));
}

/// Hubble Relay's `relay` package: node states.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/relay.rs"));
    include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
}

/// Hubble's `observer` package: the Observer service and its messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod observer {
    include!(concat!(env!("OUT_DIR"), "/observer.rs"));
    include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
}

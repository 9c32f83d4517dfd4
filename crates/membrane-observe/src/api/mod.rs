//! The Observer API's wire types, generated from `proto/` and quarantined here: the rest
//! of the crate works on its own types and converts at this boundary (`convert`).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Hubble's `flow` package: flows, filters, lost events.
pub mod flow {
    include!(concat!(env!("OUT_DIR"), "/flow.rs"));
    include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));
}

/// Hubble Relay's `relay` package: node states.
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/relay.rs"));
    include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
}

/// Hubble's `observer` package: the Observer service and its messages.
pub mod observer {
    include!(concat!(env!("OUT_DIR"), "/observer.rs"));
    include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
}

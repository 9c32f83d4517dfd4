//! Kubernetes and CRD objects Membrane consumes: types, strict manifest parsing and
//! validation, label selectors.
//!
//! The Kubernetes kinds are [`k8s_openapi`]'s types (re-exported as [`k8s`]); the
//! `cilium.io/v2` policy kinds are this crate's own serde types ([`cilium`]). Manifests
//! enter through [`parse_manifests`] (text) or [`parse_manifest_values`] (already parsed
//! JSON values): both are strict (an unknown field anywhere is an error) and validate
//! every document, reporting every problem at once; either every document is good or
//! the call fails.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cilium;
mod kind;
mod manifest;
mod object;
pub mod selector;
mod validate;

pub use k8s_openapi as k8s;
pub use kind::{Kind, UnknownKind};
pub use manifest::{ManifestError, Position, Problem, parse_manifest_values, parse_manifests};
pub use object::{Object, ObjectJsonError, ObjectRef, ObjectRefError};
pub use selector::{LabelSelector, Operator, Requirement, SelectorError};
pub use validate::{NameRule, Violation};

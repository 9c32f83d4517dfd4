//! What the endpoint manager asks the policy component: an endpoint's enforcement flags,
//! with its policy entries written first, so a new pod starts with its policy in place.

use membrane_api::Endpoint;
use membrane_datapath::PolicyEnforcement;
use std::collections::BTreeSet;

/// The policy side of programming an endpoint.
pub trait PolicyHook: Send + Sync {
    /// Writes the policy entries of `endpoint` (identity `identity`, identity labels
    /// `labels`) and returns its enforcement flags. Called before the endpoint's
    /// datapath entry is written, with the endpoint manager's lock held.
    fn prepare(
        &self,
        endpoint: &Endpoint,
        identity: u32,
        labels: &BTreeSet<String>,
    ) -> PolicyEnforcement;

    /// The current enforcement flags of endpoint `id`.
    fn enforcement(&self, id: u16) -> PolicyEnforcement;

    /// Removes the policy entries of endpoint `id` (deleted).
    fn forget(&self, id: u16);
}

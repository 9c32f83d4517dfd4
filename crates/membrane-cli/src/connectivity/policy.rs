//! The policy scenarios: a CiliumNetworkPolicy the command stores for their duration,
//! letting the probe clients reach the servers on their first TCP port only.

use super::cluster::LABEL;
use crate::error::CliError;
use membrane_api::{
    ApplyReport, ApplyRequest, Client, DeleteReport, DeleteRequest, ObjectRefWire, paths,
};
use serde_json::{Value, json};

/// The name of the policy the command stores (and removes) in the servers' namespace.
pub const POLICY_NAME: &str = "membrane-connectivity-probe";

fn policy(namespace: &str, client_namespace: &str, port: u16) -> Value {
    json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": POLICY_NAME, "namespace": namespace},
        "spec": {
            "description": "Stored by membrane connectivity test while its policy scenarios run.",
            "endpointSelector": {"matchLabels": {LABEL: "server"}},
            "ingress": [{
                "fromEndpoints": [{"matchLabels": {
                    LABEL: "client",
                    "k8s:io.kubernetes.pod.namespace": client_namespace,
                }}],
                "toPorts": [{"ports": [{"port": port.to_string(), "protocol": "TCP"}]}]
            }]
        }
    })
}

/// Stores the probe policy in `namespace`, allowing clients of `client_namespace` on
/// TCP `port`.
pub async fn store(
    api: &Client,
    namespace: &str,
    client_namespace: &str,
    port: u16,
) -> Result<(), CliError> {
    let request = ApplyRequest {
        objects: vec![policy(namespace, client_namespace, port)],
    };
    let _: ApplyReport = api.post(paths::OBJECTS_APPLY, &request).await?;
    Ok(())
}

/// Removes the probe policy from `namespace`.
pub async fn remove(api: &Client, namespace: &str) -> Result<(), CliError> {
    let request = DeleteRequest {
        refs: vec![ObjectRefWire {
            kind: "CiliumNetworkPolicy".into(),
            namespace: Some(namespace.into()),
            name: POLICY_NAME.into(),
        }],
    };
    let _: DeleteReport = api.post(paths::OBJECTS_DELETE, &request).await?;
    Ok(())
}

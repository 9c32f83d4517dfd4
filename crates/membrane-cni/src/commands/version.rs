//! VERSION: the spec versions the plugin supports.

use crate::version::SpecVersion;
use serde::Serialize;

/// The VERSION result.
#[derive(Debug, Serialize)]
pub struct VersionResult {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    #[serde(rename = "supportedVersions")]
    supported_versions: Vec<&'static str>,
}

/// Runs VERSION.
pub fn run() -> VersionResult {
    VersionResult {
        cni_version: SpecVersion::LATEST.as_str(),
        supported_versions: SpecVersion::ALL.map(SpecVersion::as_str).to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_result_lists_every_supported_version() {
        assert_eq!(
            serde_json::to_value(run()).unwrap(),
            serde_json::json!({
                "cniVersion": "1.1.0",
                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
            })
        );
    }
}

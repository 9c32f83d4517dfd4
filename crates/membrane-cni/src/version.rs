//! The CNI specification versions this plugin speaks and what each allows.

use crate::error::CniError;
use std::fmt;

/// A CNI specification version the plugin supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpecVersion {
    /// 0.3.0: rich result type (interfaces, ips with `version`).
    V0_3_0,
    /// 0.3.1: same as 0.3.0.
    V0_3_1,
    /// 0.4.0: adds CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: drops the `version` key of `ips` entries.
    V1_0_0,
    /// 1.1.0: adds STATUS, GC and interface `mtu`, route `scope`.
    V1_1_0,
}

impl SpecVersion {
    /// Every supported version, oldest first.
    pub const ALL: [SpecVersion; 5] = [
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The newest supported version, used for output that has no configuration to echo.
    pub const LATEST: SpecVersion = SpecVersion::V1_1_0;

    /// The version as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Parses a `cniVersion` value; unsupported versions are error code 1.
    pub fn parse(text: &str) -> Result<Self, CniError> {
        SpecVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| CniError::IncompatibleVersion {
                version: text.to_string(),
                supported: SpecVersion::ALL.map(SpecVersion::as_str).join(", "),
            })
    }

    /// Fails with code 1 unless this version defines `verb` (first defined in `minimum`).
    pub fn require(self, verb: &'static str, minimum: SpecVersion) -> Result<(), CniError> {
        if self >= minimum {
            Ok(())
        } else {
            Err(CniError::VerbTooNew {
                verb,
                version: self,
                minimum,
            })
        }
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CODE_INCOMPATIBLE_VERSION;

    #[test]
    fn every_listed_version_round_trips() {
        for v in SpecVersion::ALL {
            assert_eq!(SpecVersion::parse(v.as_str()).unwrap(), v);
        }
    }

    #[test]
    fn unknown_version_is_code_1_and_lists_supported_ones() {
        let err = SpecVersion::parse("0.2.0").unwrap_err();
        assert_eq!(err.code(), CODE_INCOMPATIBLE_VERSION);
        assert!(err.to_string().contains("1.1.0"));
    }

    #[test]
    fn check_needs_0_4_and_gc_needs_1_1() {
        assert!(
            SpecVersion::V0_3_1
                .require("CHECK", SpecVersion::V0_4_0)
                .is_err()
        );
        assert!(
            SpecVersion::V0_4_0
                .require("CHECK", SpecVersion::V0_4_0)
                .is_ok()
        );
        assert!(
            SpecVersion::V1_0_0
                .require("GC", SpecVersion::V1_1_0)
                .is_err()
        );
        assert!(
            SpecVersion::V1_1_0
                .require("GC", SpecVersion::V1_1_0)
                .is_ok()
        );
    }
}

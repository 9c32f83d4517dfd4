//! Port rules: L4 ports and protocols, with optional HTTP or DNS rules.

use super::peers::FqdnSelector;
use serde::{Deserialize, Deserializer, Serialize, de};
use std::fmt;

/// One entry of `toPorts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortRule {
    /// The ports; absent or empty means every port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
    /// L7 rules the traffic on these ports must also satisfy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

/// A port or port range and its protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortProtocol {
    /// A port number or a named container port. Cilium's schema makes it a string;
    /// a YAML number is accepted as well.
    #[serde(deserialize_with = "port_string")]
    pub port: String,
    /// The last port of a range starting at `port` (numeric ports only).
    #[serde(rename = "endPort", skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
    /// The protocol; absent means ANY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<L4Protocol>,
}

/// L4 protocols a Cilium port rule can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum L4Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// Any of them.
    Any,
}

/// L7 rules of a port rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Rules {
    /// HTTP requests allowed; any one matching allows the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRule>>,
    /// DNS names the endpoint may look up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<FqdnSelector>>,
}

/// One allowed HTTP request shape; every present field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRule {
    /// A regular expression the method must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A regular expression the path must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A regular expression the host must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Headers that must be present, as `Name` or `Name: value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<String>>,
}

/// Reads a port written as a string (`"80"`, `"http"`) or as a number (`80`).
fn port_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct PortVisitor;

    impl de::Visitor<'_> for PortVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number or name")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }

    deserializer.deserialize_any(PortVisitor)
}

//! Settings of the routing component: the routing mode and the tunnel device's name.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Settings of the routing component (`routing.*` in the config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RoutingConfig {
    /// How packets reach pods on other nodes.
    pub mode: RoutingMode,
    /// Name of the VXLAN device in tunnel mode.
    pub tunnel_device: String,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            mode: RoutingMode::Tunnel,
            tunnel_device: "membrane_vxlan".to_string(),
        }
    }
}

/// How packets reach pods on other nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// Through a collect-metadata VXLAN device, the sender's identity in the VNI.
    #[default]
    Tunnel,
    /// Through the node's FIB, with a route per other node's pod CIDR.
    Native,
}

impl fmt::Display for RoutingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoutingMode::Tunnel => "tunnel",
            RoutingMode::Native => "native",
        })
    }
}

/// Why a routing mode does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a routing mode: use native or tunnel")]
pub struct RoutingModeError {
    text: String,
}

impl FromStr for RoutingMode {
    type Err = RoutingModeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tunnel" => Ok(RoutingMode::Tunnel),
            "native" => Ok(RoutingMode::Native),
            _ => Err(RoutingModeError {
                text: text.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_modes_parse_and_print_alike_and_tunnel_is_the_default() {
        for mode in [RoutingMode::Tunnel, RoutingMode::Native] {
            assert_eq!(mode.to_string().parse::<RoutingMode>().unwrap(), mode);
        }
        assert!("vxlan".parse::<RoutingMode>().is_err());
        assert_eq!(RoutingConfig::default().mode, RoutingMode::Tunnel);
    }
}

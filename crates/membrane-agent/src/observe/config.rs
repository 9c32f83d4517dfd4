//! The `observe` section of the agent's configuration.

use membrane_observe::server::{DEFAULT_PORT, TlsFiles};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where the Observer API listens on TCP: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Listen {
    /// Not served on TCP (only on the unix socket).
    Off,
    /// Served on this address.
    On(SocketAddr),
}

impl Listen {
    /// Hubble's default: every address of the node's namespace, port 4244.
    pub const DEFAULT: Listen = Listen::On(SocketAddr::new(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        DEFAULT_PORT,
    ));

    /// The address, unless off.
    pub fn address(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(address) => Some(address),
        }
    }
}

/// A listen value that is neither `off` nor `ADDR:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is neither \"off\" nor an ADDR:PORT such as [::]:4244")]
pub struct BadListen {
    /// The value given.
    pub value: String,
    /// Why it is not an address.
    #[source]
    pub source: std::net::AddrParseError,
}

impl FromStr for Listen {
    type Err = BadListen;

    fn from_str(text: &str) -> Result<Listen, BadListen> {
        match text.trim() {
            "off" | "false" | "none" => Ok(Listen::Off),
            other => other.parse().map(Listen::On).map_err(|source| BadListen {
                value: text.to_string(),
                source,
            }),
        }
    }
}

impl TryFrom<String> for Listen {
    type Error = BadListen;

    fn try_from(text: String) -> Result<Listen, BadListen> {
        text.parse()
    }
}

impl From<Listen> for String {
    fn from(listen: Listen) -> String {
        match listen {
            Listen::Off => "off".to_string(),
            Listen::On(address) => address.to_string(),
        }
    }
}

/// Which forwarded packets the datapath reports as flows (drops always are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowEventsSetting {
    /// Every packet: no aggregation.
    All,
    /// Each connection's first packet and its TCP SYN, FIN and RST.
    #[default]
    Connections,
    /// Drops only.
    Drops,
}

/// A flow-events value other than `all`, `connections` or `drops`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not one of all, connections, drops")]
pub struct BadFlowEvents(String);

impl FromStr for FlowEventsSetting {
    type Err = BadFlowEvents;

    fn from_str(text: &str) -> Result<FlowEventsSetting, BadFlowEvents> {
        match text.trim() {
            "all" => Ok(FlowEventsSetting::All),
            "connections" => Ok(FlowEventsSetting::Connections),
            "drops" => Ok(FlowEventsSetting::Drops),
            _ => Err(BadFlowEvents(text.to_string())),
        }
    }
}

impl FlowEventsSetting {
    /// The datapath's setting.
    pub fn datapath(self) -> membrane_datapath::FlowEvents {
        match self {
            FlowEventsSetting::All => membrane_datapath::FlowEvents::All,
            FlowEventsSetting::Connections => membrane_datapath::FlowEvents::Connections,
            FlowEventsSetting::Drops => membrane_datapath::FlowEvents::DropsOnly,
        }
    }
}

/// The `observe` section of the agent's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObserveConfig {
    /// Unix socket of the Observer API; by default `observer.sock` beside the local
    /// API's socket (`/var/run/membrane/observer.sock`).
    pub socket: Option<PathBuf>,
    /// TCP address of the Observer API, or `off`; Hubble's `[::]:4244` by default.
    pub listen: Listen,
    /// Server certificate (PEM) for TLS on TCP.
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for TLS on TCP.
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) client certificates must chain to: mutual TLS on TCP.
    pub tls_client_ca: Option<PathBuf>,
    /// How many flows are kept for GetFlows.
    pub max_flows: usize,
    /// How far a follower may fall behind before it is told it lost events.
    pub follow_buffer: usize,
    /// How many events read from the datapath may wait for decoding; more are counted
    /// and reported as lost (`events_queue`).
    pub events_queue: usize,
    /// Which forwarded packets become flows.
    pub flow_events: FlowEventsSetting,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            socket: None,
            listen: Listen::DEFAULT,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            max_flows: 4096,
            follow_buffer: 1024,
            events_queue: 65_536,
            flow_events: FlowEventsSetting::default(),
        }
    }
}

impl ObserveConfig {
    /// The TLS files, when a certificate and key are both configured.
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_needs_both_certificate_and_key() {
        let mut config = ObserveConfig {
            tls_cert: Some(PathBuf::from("cert.pem")),
            ..ObserveConfig::default()
        };
        assert_eq!(config.tls(), None);
        config.tls_key = Some(PathBuf::from("key.pem"));
        assert!(config.tls().is_some());
    }

    #[test]
    fn tcp_4244_is_on_by_default_and_can_be_turned_off_or_moved() {
        assert_eq!(
            ObserveConfig::default().listen.address(),
            Some("[::]:4244".parse().unwrap())
        );
        assert_eq!("off".parse::<Listen>().unwrap(), Listen::Off);
        assert_eq!(
            "127.0.0.1:5000".parse::<Listen>().unwrap(),
            Listen::On("127.0.0.1:5000".parse().unwrap())
        );
        let error = "4244".parse::<Listen>().unwrap_err().to_string();
        assert!(error.contains("\"4244\""), "{error}");
        let config: ObserveConfig = serde_json::from_str(r#"{"listen": "off"}"#).unwrap();
        assert_eq!(config.listen, Listen::Off);
        assert!(serde_json::from_str::<ObserveConfig>(r#"{"listen": "nowhere"}"#).is_err());
    }

    #[test]
    fn flow_events_default_to_connections_and_parse_every_setting() {
        assert_eq!(
            ObserveConfig::default().flow_events.datapath(),
            membrane_datapath::FlowEvents::Connections
        );
        for (text, wanted) in [
            ("all", membrane_datapath::FlowEvents::All),
            ("connections", membrane_datapath::FlowEvents::Connections),
            ("drops", membrane_datapath::FlowEvents::DropsOnly),
        ] {
            assert_eq!(
                text.parse::<FlowEventsSetting>().unwrap().datapath(),
                wanted
            );
        }
        let error = "some".parse::<FlowEventsSetting>().unwrap_err().to_string();
        assert!(error.contains("\"some\""), "{error}");
        let config: ObserveConfig = serde_json::from_str(r#"{"flow-events": "all"}"#).unwrap();
        assert_eq!(config.flow_events, FlowEventsSetting::All);
    }
}

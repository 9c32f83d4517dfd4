//! ICMP rules: the ICMP and ICMPv6 message types a rule covers.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;

/// One entry of `icmps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpRule {
    /// The message types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<IcmpField>>,
}

/// One ICMP message type of one address family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpField {
    /// The family; absent means IPv4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<IcmpFamily>,
    /// The message type, by number or by name.
    #[serde(rename = "type")]
    pub icmp_type: IcmpType,
}

impl IcmpField {
    /// The family, IPv4 when absent.
    pub fn family(&self) -> IcmpFamily {
        self.family.unwrap_or(IcmpFamily::IPv4)
    }

    /// The message type number, or `None` for a name the family does not have.
    pub fn type_number(&self) -> Option<u8> {
        match &self.icmp_type {
            IcmpType::Number(n) => Some(*n),
            IcmpType::Name(name) => {
                let table = match self.family() {
                    IcmpFamily::IPv4 => ICMP_V4_NAMES,
                    IcmpFamily::IPv6 => ICMP_V6_NAMES,
                };
                table.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
            }
        }
    }
}

/// ICMP (IPv4) or ICMPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IcmpFamily {
    /// ICMP.
    IPv4,
    /// ICMPv6.
    IPv6,
}

impl IcmpFamily {
    /// The family as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            IcmpFamily::IPv4 => "IPv4",
            IcmpFamily::IPv6 => "IPv6",
        }
    }
}

/// An ICMP message type as written: a number (0-255) or one of Cilium's names
/// (`EchoRequest`, `DestinationUnreachable`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IcmpType {
    /// By number.
    Number(u8),
    /// By name.
    Name(String),
}

/// ICMP type names and numbers (IANA), as Cilium spells the names.
const ICMP_V4_NAMES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

/// ICMPv6 type names and numbers (IANA), as Cilium spells the names.
const ICMP_V6_NAMES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

impl Serialize for IcmpType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IcmpType::Number(n) => serializer.serialize_u8(*n),
            IcmpType::Name(name) => serializer.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for IcmpType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IcmpType, D::Error> {
        struct TypeVisitor;

        impl de::Visitor<'_> for TypeVisitor {
            type Value = IcmpType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ICMP type number (0-255) or name")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IcmpType, E> {
                u8::try_from(v)
                    .map(IcmpType::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IcmpType, E> {
                u8::try_from(v)
                    .map(IcmpType::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IcmpType, E> {
                Ok(match v.parse::<u8>() {
                    Ok(n) => IcmpType::Number(n),
                    Err(_) => IcmpType::Name(v.to_string()),
                })
            }
        }

        deserializer.deserialize_any(TypeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(family: Option<IcmpFamily>, json: &str) -> IcmpField {
        IcmpField {
            family,
            icmp_type: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn names_resolve_per_family() {
        assert_eq!(field(None, r#""EchoRequest""#).type_number(), Some(8));
        assert_eq!(
            field(Some(IcmpFamily::IPv6), r#""EchoRequest""#).type_number(),
            Some(128)
        );
        assert_eq!(
            field(Some(IcmpFamily::IPv6), r#""Redirect""#).type_number(),
            None
        );
    }

    #[test]
    fn numbers_and_numeric_strings_are_numbers() {
        assert_eq!(field(None, "3").icmp_type, IcmpType::Number(3));
        assert_eq!(field(None, r#""11""#).icmp_type, IcmpType::Number(11));
    }

    #[test]
    fn a_type_above_255_is_refused() {
        assert!(serde_json::from_str::<IcmpType>("256").is_err());
    }
}

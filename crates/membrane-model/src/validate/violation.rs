//! Everything a manifest can get wrong, each with the message a person reads.

use super::names::NameRule;
use crate::selector::SelectorError;

/// One thing wrong with one field of a manifest (or the whole document).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The document is not a mapping.
    #[error("a manifest must be a mapping with apiVersion, kind and metadata, found {found}")]
    NotAnObject {
        /// What was found instead (`a list`, `a string`, ...).
        found: &'static str,
    },
    /// The apiVersion/kind pair is not one Membrane consumes.
    #[error(
        "unknown kind `{kind}` of apiVersion `{api_version}`: Membrane accepts {}",
        known_kinds()
    )]
    UnknownKind {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// A field the kind does not have (a typo, or a field of another kind).
    #[error("unknown field")]
    UnknownField,
    /// A Cilium field Membrane does not implement yet.
    #[error("Cilium field that Membrane does not support yet")]
    UnsupportedField,
    /// The value has the wrong type or shape.
    #[error("{message}")]
    Malformed {
        /// The decoder's message (`invalid type: string "x", expected i32`).
        message: String,
    },
    /// A required field is missing or empty.
    #[error("required field is missing")]
    Required,
    /// A list that must have entries is empty.
    #[error("must not be empty")]
    Empty,
    /// A name breaks its naming rule.
    #[error("`{value}` is not a valid name: it must be {rule}")]
    InvalidName {
        /// The name.
        value: String,
        /// The rule it breaks.
        rule: NameRule,
    },
    /// A label (or selector) key is not a valid qualified name.
    #[error("label key `{key}` is not valid: {reason}")]
    InvalidLabelKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// A label (or selector) value is not valid.
    #[error("label value `{value}` is not valid: {reason}")]
    InvalidLabelValue {
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A selector expression is not valid.
    #[error(transparent)]
    Selector {
        /// Why.
        #[from]
        source: SelectorError,
    },
    /// A CIDR does not parse.
    #[error("`{value}` is not a CIDR (like 10.0.0.0/8 or fd00::/64): {reason}")]
    InvalidCidr {
        /// The text.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// An `except` prefix lies outside its CIDR.
    #[error("except `{except}` is not a prefix strictly inside cidr `{cidr}`")]
    ExceptOutsideCidr {
        /// The exception.
        except: String,
        /// The CIDR it should be inside.
        cidr: String,
    },
    /// An address does not parse.
    #[error("`{value}` is not an IPv4 or IPv6 address")]
    InvalidIp {
        /// The text.
        value: String,
    },
    /// An address is of the wrong family.
    #[error("`{address}` is not an {expected} address")]
    WrongAddressFamily {
        /// The address.
        address: String,
        /// The family expected (`IPv4`, `IPv6`).
        expected: &'static str,
    },
    /// A port number outside 1-65535.
    #[error("port {port} is out of range 1-65535")]
    PortOutOfRange {
        /// The port.
        port: i64,
    },
    /// A port that is neither a number nor a valid port name.
    #[error(
        "`{name}` is neither a port number (1-65535) nor a port name (at most 15 lowercase letters, digits and '-', with a letter, no leading, trailing or double '-')"
    )]
    InvalidPortName {
        /// The text.
        name: String,
    },
    /// `endPort` below `port`.
    #[error("endPort {end_port} is below port {port}")]
    EndPortBelowPort {
        /// The range's start.
        port: i64,
        /// The range's end.
        end_port: i64,
    },
    /// `endPort` with a named or missing port.
    #[error("endPort needs a numeric port")]
    EndPortNeedsNumericPort,
    /// A value outside a closed set.
    #[error("`{value}` is not one of {}", allowed.join(", "))]
    UnknownValue {
        /// The value.
        value: String,
        /// The values allowed.
        allowed: &'static [&'static str],
    },
    /// A value that must be unique appears twice.
    #[error("`{value}` appears more than once")]
    Duplicate {
        /// The value.
        value: String,
    },
    /// Two fields that exclude each other are both set.
    #[error("cannot be combined with `{other}`")]
    Conflicts {
        /// The other field.
        other: &'static str,
    },
    /// None of the fields of which one is required is set.
    #[error("one of {fields} is required")]
    NeedsOneOf {
        /// The fields, as a person reads them (`spec or specs`).
        fields: &'static str,
    },
    /// Too many entries.
    #[error("at most {max} entries are allowed")]
    TooMany {
        /// The maximum.
        max: usize,
    },
    /// A field that only allow rules may carry appears in a deny rule.
    #[error("not allowed in a deny rule")]
    NotAllowedInDenyRule,
    /// A field only valid in a cluster-scoped policy.
    #[error("only allowed in a CiliumClusterwideNetworkPolicy")]
    ClusterwideOnly,
    /// A field that only applies to some values of another field.
    #[error("only allowed when {condition}")]
    OnlyWhen {
        /// The condition (`type is NodePort or LoadBalancer`).
        condition: &'static str,
    },
    /// An ICMP type name the family does not have.
    #[error("`{name}` is not an {family} ICMP type name")]
    UnknownIcmpType {
        /// The name.
        name: String,
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// A DNS name or pattern with characters DNS names cannot have.
    #[error("`{value}` is not a valid DNS {what}")]
    InvalidDnsName {
        /// The text.
        value: String,
        /// `name` or `pattern`.
        what: &'static str,
    },
}

fn known_kinds() -> String {
    crate::Kind::ALL
        .map(|k| format!("{} ({})", k.as_str(), k.api_version()))
        .join(", ")
}

//! Kubernetes naming rules: object names, label keys and values, port names.

use std::fmt;

/// A naming rule an object name must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// Lowercase letters, digits, `-` and `.`, at most 253 characters, each
    /// dot-separated part starting and ending with a letter or digit.
    Dns1123Subdomain,
    /// Lowercase letters, digits and `-`, at most 63 characters, starting and ending
    /// with a letter or digit.
    Dns1123Label,
    /// Like a DNS-1123 label, but starting with a letter.
    Dns1035Label,
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameRule::Dns1123Subdomain => {
                "a DNS-1123 subdomain: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            }
            NameRule::Dns1123Label => {
                "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            }
            NameRule::Dns1035Label => {
                "a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
            }
        })
    }
}

impl NameRule {
    /// Whether `name` follows this rule.
    pub fn allows(self, name: &str) -> bool {
        match self {
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(name),
            NameRule::Dns1123Label => is_dns1123_label(name),
            NameRule::Dns1035Label => {
                is_dns1123_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
            }
        }
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Label sources Cilium lets a selector key carry (`k8s:app`).
const LABEL_SOURCES: &[&str] = &[
    "any",
    "k8s",
    "reserved",
    "unspec",
    "container",
    "cidr",
    "fqdn",
    "cilium-generated",
];

/// Why `key` is not a valid label key, if it is not: an optional DNS-1123 subdomain
/// prefix and `/`, then a name of at most 63 letters, digits, `-`, `_` and `.` that
/// starts and ends with a letter or digit. With `cilium_source`, a leading Cilium label
/// source (`k8s:`, `any:`, `reserved:`, ...) is allowed.
pub fn label_key_error(key: &str, cilium_source: bool) -> Option<&'static str> {
    let key = match key.split_once(':') {
        Some((source, rest)) if cilium_source => {
            if !LABEL_SOURCES.contains(&source) {
                return Some(
                    "unknown label source before ':' (expected k8s, any, reserved, unspec, container, cidr, fqdn or cilium-generated)",
                );
            }
            rest
        }
        Some(_) => return Some("':' is not allowed"),
        None => key,
    };
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns1123_subdomain(prefix) {
                return Some("the prefix before '/' must be a DNS-1123 subdomain");
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Some("the name part must not be empty");
    }
    qualified_name_error(name)
}

/// Why `value` is not a valid label value, if it is not: empty, or at most 63 letters,
/// digits, `-`, `_` and `.` starting and ending with a letter or digit.
pub fn label_value_error(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        None
    } else {
        qualified_name_error(value)
    }
}

fn qualified_name_error(s: &str) -> Option<&'static str> {
    let bytes = s.as_bytes();
    if bytes.len() > 63 {
        return Some("at most 63 characters are allowed");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("only letters, digits, '-', '_' and '.' are allowed");
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Some("it must start and end with a letter or digit");
    }
    None
}

/// Whether `s` is a valid port name (IANA service name): at most 15 lowercase letters,
/// digits and `-`, at least one letter, no leading, trailing or doubled `-`.
pub fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Whether `s` is a DNS name (with `pattern`, `*` wildcards allowed): letters, digits,
/// `-`, `_` and `.`, optionally ending with the root `.`.
pub fn is_dns_name(s: &str, pattern: bool) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') || (pattern && b == b'*')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn name_rules_follow_kubernetes() {
        assert!(NameRule::Dns1123Subdomain.allows("web.example-1"));
        assert!(!NameRule::Dns1123Subdomain.allows("Web"));
        assert!(!NameRule::Dns1123Subdomain.allows("web..x"));
        assert!(NameRule::Dns1123Label.allows("1web"));
        assert!(!NameRule::Dns1123Label.allows("web.x"));
        assert!(!NameRule::Dns1035Label.allows("1web"));
        assert!(!NameRule::Dns1123Label.allows(&"a".repeat(64)));
    }

    #[test]
    fn label_keys_take_a_prefix_and_cilium_keys_a_source() {
        assert_eq!(label_key_error("app.kubernetes.io/name", false), None);
        assert_eq!(label_key_error("k8s:app", true), None);
        assert_eq!(label_key_error("reserved:host", true), None);
        assert!(label_key_error("k8s:app", false).is_some());
        assert!(label_key_error("bogus:app", true).is_some());
        assert!(label_key_error("Bad_Prefix/x", false).is_some());
        assert!(label_key_error("x/", false).is_some());
        assert!(label_key_error("-app", false).is_some());
    }

    #[test]
    fn label_values_may_be_empty_but_not_malformed() {
        assert_eq!(label_value_error(""), None);
        assert_eq!(label_value_error("v1.2_x-y"), None);
        assert!(label_value_error("a b").is_some());
        assert!(label_value_error(&"a".repeat(64)).is_some());
    }

    #[test]
    fn port_names_follow_iana_service_names() {
        assert!(is_port_name("http"));
        assert!(is_port_name("http-8080"));
        assert!(!is_port_name("8080"));
        assert!(!is_port_name("http--alt"));
        assert!(!is_port_name("a-very-long-port-name"));
        assert!(!is_port_name("HTTP"));
    }

    proptest! {
        #[test]
        fn every_valid_label_is_a_valid_subdomain(s in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?") {
            prop_assert!(NameRule::Dns1123Label.allows(&s));
            prop_assert!(NameRule::Dns1123Subdomain.allows(&s));
        }

        #[test]
        fn names_with_uppercase_letters_are_never_valid(s in "[a-z]{0,5}[A-Z][a-z]{0,5}") {
            prop_assert!(!NameRule::Dns1123Subdomain.allows(&s));
        }
    }
}

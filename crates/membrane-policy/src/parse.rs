//! Reading the text fields of policies the compiler needs as values: selectors and
//! prefixes. Validation refuses bad ones before they are stored; a bad one that reaches
//! the compiler anyway becomes a warning and selects nothing.

use crate::output::Warning;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use membrane_model::LabelSelector;
use std::net::IpAddr;

/// The selector (`None` is the empty selector); a bad one is a warning and `None`.
pub fn selector(
    selector: Option<&meta::LabelSelector>,
    rule: impl FnOnce() -> String,
    field: &str,
    warnings: &mut Vec<Warning>,
) -> Option<LabelSelector> {
    let Some(selector) = selector else {
        return Some(LabelSelector::default());
    };
    match LabelSelector::try_from(selector) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            warnings.push(Warning {
                rule: rule(),
                field: field.to_string(),
                problem: error.to_string(),
            });
            None
        }
    }
}

/// A prefix (`10.0.0.0/8`) or a bare address (a host prefix), host bits cleared; a bad
/// one is a warning and `None`.
pub fn cidr(
    text: &str,
    rule: impl FnOnce() -> String,
    field: &str,
    warnings: &mut Vec<Warning>,
) -> Option<IpNet> {
    let parsed = text
        .parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|net| net.trunc());
    if parsed.is_none() {
        warnings.push(Warning {
            rule: rule(),
            field: field.to_string(),
            problem: format!("{text:?} is not a CIDR or an address"),
        });
    }
    parsed
}

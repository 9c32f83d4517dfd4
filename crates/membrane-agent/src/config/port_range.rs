//! A range of ports written `first-last`, as flags and config files spell it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// An inclusive range of ports, `first-last` with `0 < first <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The range `first..=last`; `None` unless `0 < first <= last`.
    pub fn new(first: u16, last: u16) -> Option<PortRange> {
        (first > 0 && first <= last).then_some(PortRange { first, last })
    }

    /// The ports as a range.
    pub fn range(&self) -> RangeInclusive<u16> {
        self.first..=self.last
    }
}

/// Why a port range does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a port range: write first-last with 0 < first <= last <= 65535")]
pub struct PortRangeError {
    text: String,
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || PortRangeError {
            text: text.to_string(),
        };
        let (first, last) = text.trim().split_once('-').ok_or_else(error)?;
        let first = first.trim().parse().map_err(|_| error())?;
        let last = last.trim().parse().map_err(|_| error())?;
        PortRange::new(first, last).ok_or_else(error)
    }
}

impl TryFrom<String> for PortRange {
    type Error = PortRangeError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<PortRange> for String {
    fn from(range: PortRange) -> String {
        range.to_string()
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_print_as_first_dash_last() {
        let range: PortRange = "32768-60999".parse().unwrap();
        assert_eq!(range.range(), 32768..=60999);
        assert_eq!(range.to_string(), "32768-60999");
        assert_eq!("80-80".parse::<PortRange>().unwrap().range(), 80..=80);
    }

    #[test]
    fn malformed_port_ranges_are_refused() {
        for bad in ["", "80", "0-10", "10-9", "1-65536", "a-b", "1-2-3"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?} parsed");
        }
    }
}

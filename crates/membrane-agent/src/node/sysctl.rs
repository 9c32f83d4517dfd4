//! Kernel settings of the node's network namespace that the agent owns: forwarding (which
//! `bpf_fib_lookup` needs) and a local port range that stays clear of the masquerade ports.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";
const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Errors of reading or writing a kernel setting.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The setting could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The `/proc/sys` file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The setting could not be written.
    #[error("cannot write {value:?} to {path}")]
    Write {
        /// The `/proc/sys` file.
        path: PathBuf,
        /// The value.
        value: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The setting holds something unexpected.
    #[error("{path} holds {content:?}, not a port range")]
    Parse {
        /// The `/proc/sys` file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// No local port range fits beside the masquerade ports.
    #[error("the masquerade port range {nat:?} leaves no room for a local port range")]
    NoRoom {
        /// The masquerade ports.
        nat: RangeInclusive<u16>,
    },
}

/// Turns on IPv4 and/or IPv6 forwarding in the current network namespace.
pub fn enable_forwarding(ipv4: bool, ipv6: bool) -> Result<(), SysctlError> {
    if ipv4 {
        write(Path::new(IPV4_FORWARD), "1")?;
    }
    if ipv6 {
        write(Path::new(IPV6_FORWARDING), "1")?;
    }
    Ok(())
}

/// Narrows `net.ipv4.ip_local_port_range` (which IPv6 shares) so the node's own sockets
/// never take a masquerade port; returns the new range when it had to change.
pub fn keep_local_ports_off(
    nat: &RangeInclusive<u16>,
) -> Result<Option<RangeInclusive<u16>>, SysctlError> {
    let path = Path::new(LOCAL_PORT_RANGE);
    let content = std::fs::read_to_string(path).map_err(|source| SysctlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = || SysctlError::Parse {
        path: path.to_path_buf(),
        content: content.clone(),
    };
    let mut fields = content.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(lo)), Some(Ok(hi))) = (fields.next(), fields.next()) else {
        return Err(parse_error());
    };
    let Some(new) = local_range_avoiding(lo..=hi, nat)? else {
        return Ok(None);
    };
    write(path, &format!("{} {}", new.start(), new.end()))?;
    Ok(Some(new))
}

/// The local port range to use instead of `current` so it does not overlap `nat`, or
/// `None` when `current` is already clear of it. Keeps the larger part of `current`
/// outside `nat`; when `current` lies inside `nat`, takes the larger unprivileged span
/// beside it.
pub fn local_range_avoiding(
    current: RangeInclusive<u16>,
    nat: &RangeInclusive<u16>,
) -> Result<Option<RangeInclusive<u16>>, SysctlError> {
    let (lo, hi) = (*current.start(), *current.end());
    let (a, b) = (*nat.start(), *nat.end());
    if hi < a || lo > b {
        return Ok(None);
    }
    let larger = |below: Option<(u16, u16)>, above: Option<(u16, u16)>| {
        [below, above]
            .into_iter()
            .flatten()
            .filter(|(s, e)| s < e)
            .max_by_key(|(s, e)| e - s)
            .map(|(s, e)| s..=e)
    };
    let below = |from: u16| {
        a.checked_sub(1)
            .filter(|end| *end >= from)
            .map(|end| (from, end))
    };
    let above = |to: u16| {
        b.checked_add(1)
            .filter(|start| *start <= to)
            .map(|start| (start, to))
    };
    if let Some(range) = larger(below(lo), above(hi)) {
        return Ok(Some(range));
    }
    larger(below(1024), above(u16::MAX))
        .map(Some)
        .ok_or_else(|| SysctlError::NoRoom { nat: nat.clone() })
}

fn write(path: &Path, value: &str) -> Result<(), SysctlError> {
    std::fs::write(path, value).map_err(|source| SysctlError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_range_clear_of_the_nat_ports_is_kept() {
        assert_eq!(
            local_range_avoiding(32768..=49151, &(49152..=65535)).unwrap(),
            None
        );
        assert_eq!(
            local_range_avoiding(50000..=60000, &(30000..=40000)).unwrap(),
            None
        );
    }

    #[test]
    fn the_linux_default_range_is_cut_below_the_default_nat_range() {
        assert_eq!(
            local_range_avoiding(32768..=60999, &(49152..=65535)).unwrap(),
            Some(32768..=49151)
        );
    }

    #[test]
    fn the_larger_side_is_kept_when_the_nat_range_sits_inside() {
        assert_eq!(
            local_range_avoiding(32768..=60999, &(33000..=34000)).unwrap(),
            Some(34001..=60999)
        );
    }

    #[test]
    fn a_local_range_inside_the_nat_range_moves_beside_it() {
        assert_eq!(
            local_range_avoiding(40000..=50000, &(32768..=60999)).unwrap(),
            Some(1024..=32767)
        );
        assert!(matches!(
            local_range_avoiding(2000..=3000, &(1024..=65535)),
            Err(SysctlError::NoRoom { .. })
        ));
    }
}

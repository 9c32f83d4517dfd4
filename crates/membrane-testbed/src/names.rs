//! Unique, kernel-safe names for the namespaces, cgroups and pin directories of one test.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Longest interface name the kernel accepts (`IFNAMSIZ` minus the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// Number of hex digits appended to every name.
const SUFFIX_LEN: usize = 8;

/// A name made of `prefix`, a dash and an 8-digit hex suffix, at most [`IFNAME_MAX`]
/// bytes long so it also fits where it becomes an interface name. The prefix is cut to
/// fit and stripped of characters other than ASCII letters, digits and dashes.
///
/// Within one process no two calls return the same suffix; between processes the
/// suffixes start from a random point, and whoever creates the object retries with a
/// new name if the kernel reports it exists.
pub fn unique(prefix: &str) -> String {
    static BASE: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(|| {
        let seed = (std::process::id(), std::time::SystemTime::now());
        RandomState::new().hash_one(seed) as u32
    });
    compose(
        prefix,
        spread(base, COUNTER.fetch_add(1, Ordering::Relaxed)),
    )
}

/// A 64-hex-digit container id, unique within this process, as container runtimes make.
pub fn container_id() -> String {
    let name = unique("c");
    let distinct = &name[name.len() - SUFFIX_LEN..];
    let state = RandomState::new();
    let random: String = (0..4u8)
        .map(|i| format!("{:016x}", state.hash_one((i, &name))))
        .collect();
    format!("{distinct}{}", &random[..64 - SUFFIX_LEN])
}

/// Maps the `n`th call to a distinct 32-bit value: multiplying by an odd constant is a
/// bijection modulo 2^32, so distinct counters give distinct suffixes.
fn spread(base: u32, n: u32) -> u32 {
    base.wrapping_add(n.wrapping_mul(0x9E37_79B1))
}

/// Joins a sanitized, shortened `prefix` and `suffix` in hex.
fn compose(prefix: &str, suffix: u32) -> String {
    let keep = IFNAME_MAX - SUFFIX_LEN - 1;
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(keep)
        .collect();
    let prefix = if prefix.is_empty() {
        "tb"
    } else {
        prefix.as_str()
    };
    format!("{prefix}-{suffix:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_fit_in_an_interface_name_whatever_the_prefix() {
        for prefix in ["", "n", "node", "a-very-long-prefix-for-a-node"] {
            let name = unique(prefix);
            assert!(name.len() <= IFNAME_MAX, "{name} is too long");
        }
    }

    #[test]
    fn prefix_characters_that_are_not_allowed_in_names_are_dropped() {
        assert_eq!(compose("a/b c.d", 0xabcdef), "abcd-00abcdef");
    }

    #[test]
    fn an_empty_prefix_still_gives_a_readable_name() {
        assert_eq!(compose("", 0x123456), "tb-00123456");
    }

    #[test]
    fn container_ids_are_64_hex_digits_and_distinct() {
        let a = container_id();
        let b = container_id();
        assert_eq!(a.len(), 64, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn many_names_from_many_threads_never_collide() {
        let names: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| (0..5000).map(|_| unique("pod")).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
    }
}

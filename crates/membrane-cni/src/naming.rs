//! The name of an attachment's host-side veth, derived from the attachment alone so that
//! DEL and GC can find it again without stored state.

use sha2::{Digest, Sha256};

/// Prefix of every host-side veth the plugin creates.
pub const HOST_VETH_PREFIX: &str = "lxc";

/// Hex characters of the hash kept in the name: `lxc` + 11 = 14, within Linux's 15.
const HASH_CHARS: usize = 11;

/// `lxc` + the first 11 hex characters of SHA-256(`container_id` NUL `ifname`).
///
/// The NUL separator keeps (`ab`, `c`) and (`a`, `bc`) apart. SHA-256 rather than
/// std's hasher because the name must stay the same across plugin builds.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(container_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(ifname.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{HOST_VETH_PREFIX}{}", &hex[..HASH_CHARS])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MAX_IFNAME_LEN;

    #[test]
    fn name_is_lxc_plus_eleven_hex_chars() {
        let name = host_veth_name("0123456789abcdef0123456789abcdef", "eth0");
        assert_eq!(name.len(), 14);
        assert!(name.len() <= MAX_IFNAME_LEN);
        assert!(name.starts_with("lxc"));
        assert!(
            name[3..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn name_is_deterministic_and_pinned() {
        // Pinned so that a change of the derivation (which would orphan the veths of
        // running pods on upgrade) fails this test.
        assert_eq!(host_veth_name("abc", "eth0"), host_veth_name("abc", "eth0"));
        assert_eq!(host_veth_name("abc", "eth0"), "lxcd887cd28687");
    }

    #[test]
    fn name_depends_on_container_and_interface() {
        let base = host_veth_name("abc", "eth0");
        assert_ne!(base, host_veth_name("abd", "eth0"));
        assert_ne!(base, host_veth_name("abc", "eth1"));
        assert_ne!(host_veth_name("ab", "ceth0"), host_veth_name("abc", "eth0"));
    }
}

//! Maglev lookup tables (Eisenbud et al., NSDI 2016): each backend fills the table's
//! positions in its own permutation order, so that removing one of N backends moves only
//! about 1/N of the positions.

/// A 64-bit FNV-1a hash of `bytes` with `seed` mixed in first.
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Final avalanche (splitmix64), so that nearby names spread out.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// True for primes (table sizes must be prime so that every skip is a permutation).
pub fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d: &u32| u64::from(*d) * u64::from(*d) <= u64::from(n))
            .all(|d| !n.is_multiple_of(d))
}

/// The lookup table of size `size` (a prime) for `backends`, each named by a stable key
/// (its address and port, say) and carrying the id written into the table. The order
/// of `backends` does not matter. Empty when there are no backends.
pub fn table(backends: &[(&[u8], u32)], size: u32) -> Vec<u32> {
    assert!(is_prime(size), "Maglev table size {size} is not prime");
    if backends.is_empty() {
        return Vec::new();
    }
    let mut backends = backends.to_vec();
    backends.sort();
    let m = u64::from(size);
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|(name, _)| (hash(0, name) % m, hash(1, name) % (m - 1) + 1))
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut entry: Vec<Option<u32>> = vec![None; size as usize];
    let mut filled = 0u32;
    'fill: loop {
        for (i, (offset, skip)) in perms.iter().enumerate() {
            let mut c = (offset + next[i] * skip) % m;
            while entry[c as usize].is_some() {
                next[i] += 1;
                c = (offset + next[i] * skip) % m;
            }
            entry[c as usize] = Some(backends[i].1);
            next[i] += 1;
            filled += 1;
            if filled == size {
                break 'fill;
            }
        }
    }
    entry
        .into_iter()
        .map(|e| e.expect("every position is filled"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: u32) -> Vec<(Vec<u8>, u32)> {
        (0..n)
            .map(|i| {
                (
                    format!("10.0.{}.{}:8080", i / 250, i % 250).into_bytes(),
                    i + 1,
                )
            })
            .collect()
    }

    fn build(backends: &[(Vec<u8>, u32)], size: u32) -> Vec<u32> {
        let refs: Vec<(&[u8], u32)> = backends.iter().map(|(n, id)| (n.as_slice(), *id)).collect();
        table(&refs, size)
    }

    #[test]
    fn every_backend_gets_a_near_equal_share_of_positions() {
        let backends = names(10);
        let t = build(&backends, 16381);
        for (_, id) in &backends {
            let share = t.iter().filter(|e| *e == id).count() as f64 / t.len() as f64;
            assert!((share - 0.1).abs() < 0.01, "backend {id} has share {share}");
        }
    }

    #[test]
    fn removing_one_of_n_backends_remaps_about_one_nth_of_flows() {
        for n in [3u32, 10, 50] {
            let backends = names(n);
            let before = build(&backends, 16381);
            let removed = backends[n as usize / 2].1;
            let fewer: Vec<_> = backends
                .iter()
                .filter(|(_, id)| *id != removed)
                .cloned()
                .collect();
            let after = build(&fewer, 16381);
            // Positions that pointed at a surviving backend and now point elsewhere.
            let moved = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| **b != removed && b != a)
                .count();
            let disrupted = before.iter().zip(&after).filter(|(b, a)| b != a).count() as f64
                / before.len() as f64;
            let bound = 1.0 / n as f64;
            assert!(
                disrupted <= bound * 1.5 + 0.01,
                "n={n}: {disrupted:.4} of positions moved, bound ~{bound:.4}"
            );
            assert!(
                (moved as f64) / (before.len() as f64) < 0.02 + bound * 0.5,
                "n={n}: {moved} surviving positions moved"
            );
        }
    }

    #[test]
    fn the_table_depends_only_on_the_backend_set_not_its_order() {
        let backends = names(7);
        let mut shuffled = backends.clone();
        shuffled.reverse();
        assert_eq!(build(&backends, 251), build(&shuffled, 251));
        assert_ne!(build(&backends, 251), build(&backends[1..], 251));
    }

    #[test]
    fn table_sizes_must_be_prime() {
        assert!(is_prime(16381) && is_prime(251) && is_prime(65521));
        assert!(!is_prime(16384) && !is_prime(1) && !is_prime(0));
    }
}

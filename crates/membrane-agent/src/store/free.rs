//! Handing out integer keys (addresses, endpoint ids) from a range: the first key missing
//! from a table, searched from just after a persisted cursor and wrapping around, so a
//! freed key is reused only after every other one had its turn.

use super::{StoreError, cursor, set_cursor};
use redb::{ReadableTable, Table, WriteTransaction};
use std::ops::RangeInclusive;

/// Takes the first key of `range` missing from `table`, searching from just after the
/// cursor `cursor_name`; moves the cursor there and returns the key, or `None` when every
/// key of `range` is present. The caller inserts the key in the same transaction.
pub fn take_free_key<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    table: &Table<'_, u128, V>,
    cursor_name: &str,
    range: RangeInclusive<u128>,
) -> Result<Option<u128>, StoreError> {
    let (first, last) = (*range.start(), *range.end());
    let start = search_start(cursor(txn, cursor_name)?, first, last);
    let search = |from: u128, to: u128| -> Result<Option<u128>, StoreError> {
        let mut failure = None;
        let used = table
            .range(from..=to)
            .map_err(StoreError::db("searching a free key"))?
            .map_while(|entry| match entry {
                Ok((key, _)) => Some(key.value()),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            });
        let gap = first_gap(used, from, to);
        match failure {
            Some(e) => Err(StoreError::db("searching a free key")(e)),
            None => Ok(gap),
        }
    };
    let found = match search(start, last)? {
        Some(key) => Some(key),
        None if start > first => search(first, start - 1)?,
        None => None,
    };
    if let Some(key) = found {
        set_cursor(txn, cursor_name, key)?;
    }
    Ok(found)
}

/// Where the search starts after `cursor` (the last key handed out): the next key,
/// wrapping to `first`.
fn search_start(cursor: u128, first: u128, last: u128) -> u128 {
    if cursor >= first && cursor < last {
        cursor + 1
    } else {
        first
    }
}

/// The first key in `from..=to` missing from `used`, which yields, in ascending order,
/// the used keys from `from` on (it may go past `to`).
fn first_gap(used: impl IntoIterator<Item = u128>, from: u128, to: u128) -> Option<u128> {
    if from > to {
        return None;
    }
    let mut candidate = from;
    for key in used {
        if key > candidate {
            break;
        }
        if key == candidate {
            if candidate == to {
                return None;
            }
            candidate += 1;
        }
    }
    Some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn search_starts_after_the_cursor_and_wraps() {
        assert_eq!(search_start(0, 1, 6), 1);
        assert_eq!(search_start(3, 1, 6), 4);
        assert_eq!(search_start(6, 1, 6), 1);
        assert_eq!(search_start(99, 1, 6), 1);
    }

    #[test]
    fn first_gap_finds_holes_and_reports_a_full_range() {
        assert_eq!(first_gap([], 5, 9), Some(5));
        assert_eq!(first_gap([5, 6, 8], 5, 9), Some(7));
        assert_eq!(first_gap([5, 6, 7, 8, 9], 5, 9), None);
        assert_eq!(first_gap([5, 6, 7, 8, 9, 10], 5, 9), None);
        assert_eq!(first_gap([7], 5, 9), Some(5));
        assert_eq!(first_gap([u128::MAX], u128::MAX, u128::MAX), None);
        assert_eq!(first_gap([], 9, 5), None);
    }

    proptest! {
        #[test]
        fn first_gap_is_the_smallest_unused_key(
            used in proptest::collection::btree_set(0u128..40, 0..40),
            from in 0u128..40,
            len in 0u128..40,
        ) {
            let to = from + len;
            let expected = (from..=to).find(|k| !used.contains(k));
            let used: BTreeSet<u128> = used.range(from..).copied().collect();
            prop_assert_eq!(first_gap(used, from, to), expected);
        }
    }
}

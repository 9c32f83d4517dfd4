//! Rule ids: a 32-bit FNV-1a hash of the rule's description, so the same rule has the
//! same id on every node and after restarts; a collision takes the next free number.

use crate::output::RuleRef;
use std::collections::{BTreeMap, HashMap};

/// The ids handed out in one compilation.
#[derive(Debug, Default)]
pub struct RuleIds {
    by_rule: HashMap<RuleRef, u32>,
    table: BTreeMap<u32, RuleRef>,
}

impl RuleIds {
    /// The id of `rule` (never 0).
    pub fn id(&mut self, rule: &RuleRef) -> u32 {
        if let Some(id) = self.by_rule.get(rule) {
            return *id;
        }
        let mut id = fnv1a(rule.to_string().as_bytes()).max(1);
        while self.table.contains_key(&id) {
            id = id.wrapping_add(1).max(1);
        }
        self.by_rule.insert(rule.clone(), id);
        self.table.insert(id, rule.clone());
        id
    }

    /// Every id with its rule.
    pub fn into_table(self) -> BTreeMap<u32, RuleRef> {
        self.table
    }
}

/// FNV-1a, 32 bits.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

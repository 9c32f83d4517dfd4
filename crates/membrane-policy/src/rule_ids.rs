//! Rule ids: a 32-bit FNV-1a hash of the rule's description, so the same rule has the
//! same id on every node and after restarts; a collision takes the next free number.
//! Ids are counted by their users (endpoints), so the table holds exactly the rules
//! some endpoint's entries come from, across incremental changes.

use crate::output::RuleRef;
use std::collections::{BTreeMap, HashMap};

/// The ids handed out, with how many endpoints use each.
#[derive(Clone, Debug, Default)]
pub struct RuleIds {
    by_rule: HashMap<RuleRef, u32>,
    rules: HashMap<u32, RuleRef>,
    users: HashMap<u32, usize>,
    table: BTreeMap<u32, RuleRef>,
}

impl RuleIds {
    /// The id of `rule` (never 0); it joins the table once held.
    pub fn id(&mut self, rule: &RuleRef) -> u32 {
        if let Some(id) = self.by_rule.get(rule) {
            return *id;
        }
        let mut id = fnv1a(rule.to_string().as_bytes()).max(1);
        while self.rules.contains_key(&id) {
            id = id.wrapping_add(1).max(1);
        }
        self.by_rule.insert(rule.clone(), id);
        self.rules.insert(id, rule.clone());
        id
    }

    /// One more user of `id` (an id from [`RuleIds::id`]).
    pub fn hold(&mut self, id: u32) {
        let users = self.users.entry(id).or_default();
        *users += 1;
        if *users == 1
            && let Some(rule) = self.rules.get(&id)
        {
            self.table.insert(id, rule.clone());
        }
    }

    /// One user fewer of `id`; the last one gone forgets the rule.
    pub fn release(&mut self, id: u32) {
        let Some(users) = self.users.get_mut(&id) else {
            return;
        };
        *users -= 1;
        if *users == 0 {
            self.users.remove(&id);
            self.table.remove(&id);
            if let Some(rule) = self.rules.remove(&id) {
                self.by_rule.remove(&rule);
            }
        }
    }

    /// Every held id with its rule.
    pub fn table(&self) -> &BTreeMap<u32, RuleRef> {
        &self.table
    }
}

/// FNV-1a, 32 bits.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

//! The label sets this node has resolved and their numbers, kept in a file of the state
//! directory so that an agent restarting while the kvstore is unreachable still gives its
//! endpoints their identities. A number is bound to its labels for as long as it exists,
//! and a use recorded later checks that the number still names these labels, so an
//! entry that outlived its identity is found out and resolved again.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One resolved label set.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: u32,
    labels: BTreeSet<String>,
}

/// Resolved label sets, mirrored to a file.
pub struct Cache {
    path: PathBuf,
    known: HashMap<BTreeSet<String>, u32>,
}

impl Cache {
    /// The cache persisted at `path`: empty when the file is missing or does not decode
    /// (which is logged; the store has the truth).
    pub fn load(path: PathBuf) -> Cache {
        let known = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<Entry>>(&bytes) {
                Ok(entries) => entries.into_iter().map(|e| (e.labels, e.id)).collect(),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring an identity cache that does not decode");
                    HashMap::new()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the identity cache");
                HashMap::new()
            }
        };
        Cache { path, known }
    }

    /// The number of `labels`, if resolved.
    pub fn get(&self, labels: &BTreeSet<String>) -> Option<u32> {
        self.known.get(labels).copied()
    }

    /// Every resolved label set whose number is in `ids`.
    pub fn with_ids(&self, ids: &BTreeSet<u32>) -> Vec<(u32, BTreeSet<String>)> {
        self.known
            .iter()
            .filter(|(_, id)| ids.contains(id))
            .map(|(labels, id)| (*id, labels.clone()))
            .collect()
    }

    /// Remembers that `labels` have number `id`.
    pub fn insert(&mut self, labels: BTreeSet<String>, id: u32) {
        if self.known.insert(labels, id) != Some(id) {
            self.save();
        }
    }

    /// Forgets `labels`.
    pub fn remove(&mut self, labels: &BTreeSet<String>) {
        if self.known.remove(labels).is_some() {
            self.save();
        }
    }

    /// Forgets every label set of number `id`.
    pub fn forget_id(&mut self, id: u32) {
        let before = self.known.len();
        self.known.retain(|_, known| *known != id);
        if self.known.len() != before {
            self.save();
        }
    }

    /// Writes the file (through a temporary file and a rename, so a crash never leaves
    /// half of it); a failure is logged, the cache in memory stays right.
    fn save(&self) {
        let entries: Vec<Entry> = self
            .known
            .iter()
            .map(|(labels, id)| Entry {
                id: *id,
                labels: labels.clone(),
            })
            .collect();
        let bytes = serde_json::to_vec(&entries).expect("the cache encodes");
        if let Err(error) = write_atomically(&self.path, &bytes) {
            tracing::warn!(path = %self.path.display(), %error, "cannot write the identity cache");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(app: &str) -> BTreeSet<String> {
        [format!("k8s:app={app}")].into()
    }

    #[test]
    fn what_was_resolved_is_there_after_a_reload_and_forgotten_entries_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identities.json");
        let mut cache = Cache::load(path.clone());
        cache.insert(labels("web"), 300);
        cache.insert(labels("db"), 301);
        cache.insert(labels("old"), 302);
        cache.forget_id(302);
        let reloaded = Cache::load(path.clone());
        assert_eq!(reloaded.get(&labels("web")), Some(300));
        assert_eq!(reloaded.get(&labels("old")), None);
        assert_eq!(reloaded.with_ids(&[301].into()), [(301, labels("db"))]);
        std::fs::write(&path, b"not json").unwrap();
        assert_eq!(Cache::load(path).get(&labels("web")), None);
    }
}

//! A reflector: a typed in-memory copy of everything under one kvstore prefix, filled by a
//! list and kept current by a watch from the list's revision. While the store is
//! unreachable it keeps serving what it has; after a resync it holds what the store holds.

use futures::StreamExt as _;
use membrane_state::{Backoff, Event, Store, WatchEvent};
use std::collections::BTreeMap;
use std::sync::RwLock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why a stored value does not decode.
pub type DecodeError = Box<dyn std::error::Error + Send + Sync>;

/// Turns a key and its value into the cached type.
pub type Decode<T> = fn(&str, &[u8]) -> Result<T, DecodeError>;

/// The cached items under one prefix, by key.
pub struct Reflector<T> {
    prefix: &'static str,
    decode: Decode<T>,
    items: RwLock<BTreeMap<String, T>>,
    /// Counts the changes of the cache, so that consumers can wait for the next one.
    changes: watch::Sender<u64>,
}

impl<T: Clone + Send + Sync> Reflector<T> {
    /// An empty cache of `prefix`, decoding values with `decode`.
    pub fn new(prefix: &'static str, decode: Decode<T>) -> Reflector<T> {
        Reflector {
            prefix,
            decode,
            items: RwLock::new(BTreeMap::new()),
            changes: watch::Sender::new(0),
        }
    }

    /// A receiver that is marked changed whenever the cache changes (a list replaced
    /// it, or a watch event changed an item). Consumers read the cache again after each
    /// notification; several changes in a row may come as one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether the cache holds a first listing (before that it is empty, not "nothing").
    pub fn is_listed(&self) -> bool {
        *self.changes.borrow() > 0
    }

    /// Waits until the cache holds a first listing.
    pub async fn listed(&self) {
        let mut changes = self.changes.subscribe();
        // `self` keeps the sender alive: the wait cannot fail.
        let _ = changes.wait_for(|count| *count > 0).await;
    }

    fn changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Every cached item, in key order.
    pub fn values(&self) -> Vec<T> {
        self.read().values().cloned().collect()
    }

    /// The cached items whose keys start with `prefix`, in key order.
    pub fn under(&self, prefix: &str) -> Vec<(String, T)> {
        self.read()
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// The cached item of exactly `key`.
    pub fn get(&self, key: &str) -> Option<T> {
        self.read().get(key).cloned()
    }

    /// What `f` makes of each cached item whose key starts with `prefix` (in key
    /// order, those it returns something for), reading the items in place: for
    /// callers that need a part of many items, without copying them whole.
    pub fn filter_map_under<R>(
        &self,
        prefix: &str,
        mut f: impl FnMut(&str, &T) -> Option<R>,
    ) -> Vec<R> {
        self.read()
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, value)| f(key, value))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, T>> {
        self.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, T>> {
        self.items.write().unwrap_or_else(|p| p.into_inner())
    }

    fn decoded(&self, key: &str, value: &[u8]) -> Option<T> {
        match (self.decode)(key, value) {
            Ok(item) => Some(item),
            Err(error) => {
                tracing::warn!(key, %error, "ignoring a stored value that does not decode");
                None
            }
        }
    }

    /// Lists and watches the prefix until `token` is cancelled, re-listing whenever the
    /// watch cannot go on.
    pub async fn run(&self, store: &dyn Store, token: CancellationToken) {
        let mut backoff = Backoff::new();
        let mut complained = false;
        loop {
            let listing = tokio::select! {
                () = token.cancelled() => return,
                listing = store.list(self.prefix) => listing,
            };
            let listing = match listing {
                Ok(listing) => listing,
                Err(error) => {
                    if !complained {
                        tracing::warn!(prefix = self.prefix, error = %crate::agent::chain(&error), "cannot list the kvstore; serving what is cached and retrying");
                        complained = true;
                    }
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(backoff.next_delay()) => continue,
                    }
                }
            };
            backoff.reset();
            complained = false;
            let fresh: BTreeMap<String, T> = listing
                .items
                .iter()
                .filter_map(|item| Some((item.key.clone(), self.decoded(&item.key, &item.value)?)))
                .collect();
            tracing::debug!(
                prefix = self.prefix,
                items = fresh.len(),
                revision = listing.revision,
                "listed"
            );
            *self.write() = fresh;
            self.changed();
            let mut watch = store.watch(self.prefix, listing.revision + 1);
            loop {
                let next = tokio::select! {
                    () = token.cancelled() => return,
                    next = watch.next() => next,
                };
                match next {
                    Some(Ok(WatchEvent::Change(Event::Put { key, value, .. }))) => {
                        match self.decoded(&key, &value) {
                            Some(item) => self.write().insert(key, item),
                            None => self.write().remove(&key),
                        };
                        self.changed();
                    }
                    Some(Ok(WatchEvent::Change(Event::Delete { key, .. }))) => {
                        self.write().remove(&key);
                        self.changed();
                    }
                    Some(Ok(WatchEvent::Disconnected { reason })) => {
                        tracing::warn!(prefix = self.prefix, %reason, "kvstore unreachable: serving what is cached");
                    }
                    Some(Ok(WatchEvent::Resynced { revision })) => {
                        tracing::info!(
                            prefix = self.prefix,
                            revision,
                            "caught up with the kvstore again"
                        );
                    }
                    Some(Err(error)) => {
                        tracing::warn!(prefix = self.prefix, error = %crate::agent::chain(&error), "watch ended; listing again");
                        break;
                    }
                    None => break,
                }
            }
        }
    }
}

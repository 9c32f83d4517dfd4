//! The resumable watch both backends share: it follows a backend's raw change feed, never
//! reports a revision twice, resumes from the last revision it reported after a
//! disconnection, and when the history it needs is compacted it re-lists and reports the
//! difference between what the watcher had and what the store holds.

use crate::backoff::Backoff;
use crate::error::StoreError;
use crate::store::{Event, Listing, Revision, WatchEvent, WatchStream};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// How many reports a watch buffers before its task waits for the watcher to read.
const BUFFER: usize = 256;

/// Every change of one revision under a prefix, as a raw feed delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    /// The revision.
    pub revision: Revision,
    /// The changes of that revision under the prefix, possibly none.
    pub events: Vec<Event>,
}

/// A raw feed: batches in revision order, ending with [`StoreError::Unavailable`] when
/// the connection is lost or [`StoreError::Compacted`] when history is gone.
pub(crate) type RawChanges = BoxStream<'static, Result<Batch, StoreError>>;

/// What a backend offers the watch engine.
#[async_trait::async_trait]
pub(crate) trait ChangeFeed: Send + Sync + 'static {
    /// The keys under `prefix` at `revision`, with their modification revisions (empty at
    /// revision 0).
    async fn keys_at(
        &self,
        prefix: &str,
        revision: Revision,
    ) -> Result<BTreeMap<String, Revision>, StoreError>;

    /// The items under `prefix` now.
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError>;

    /// The raw changes under `prefix` from revision `from` on.
    async fn changes(&self, prefix: &str, from: Revision) -> Result<RawChanges, StoreError>;
}

/// Starts a watch of `prefix` from revision `from` over `feed`, in a task of its own that
/// ends when the stream is dropped.
pub(crate) fn watch<F: ChangeFeed>(feed: F, prefix: &str, from: Revision) -> WatchStream {
    let (tx, rx) = mpsc::channel(BUFFER);
    let watcher = Watcher {
        prefix: prefix.to_string(),
        known: BTreeMap::new(),
        last: from.saturating_sub(1),
        disconnected: false,
        backoff: Backoff::new(),
        tx,
    };
    tokio::spawn(watcher.run(feed));
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The watcher went away: stop.
struct Gone;

/// The state of one watch.
struct Watcher {
    prefix: String,
    /// What the watcher holds: key → the revision that last changed it.
    known: BTreeMap<String, Revision>,
    /// Every change up to this revision has been reported.
    last: Revision,
    /// A disconnection was reported and no resync yet.
    disconnected: bool,
    backoff: Backoff,
    tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
}

impl Watcher {
    async fn run(mut self, feed: impl ChangeFeed) {
        let _ = self.follow(&feed).await;
    }

    async fn follow(&mut self, feed: &impl ChangeFeed) -> Result<(), Gone> {
        self.known = loop {
            match feed.keys_at(&self.prefix, self.last).await {
                Ok(known) => break known,
                Err(error) => self.setback(error).await?,
            }
        };
        loop {
            let mut changes = match feed.changes(&self.prefix, self.last + 1).await {
                Ok(changes) => changes,
                Err(StoreError::Compacted { .. }) => {
                    self.resync(feed).await?;
                    continue;
                }
                Err(error) => {
                    self.setback(error).await?;
                    continue;
                }
            };
            self.caught_up().await?;
            let ended = loop {
                match changes.next().await {
                    Some(Ok(batch)) => self.deliver(batch).await?,
                    Some(Err(error)) => break error,
                    None => {
                        break StoreError::Unavailable {
                            endpoints: Vec::new(),
                            reason: "the watch stream ended".to_string(),
                        };
                    }
                }
            };
            match ended {
                StoreError::Compacted { .. } => self.resync(feed).await?,
                error => self.setback(error).await?,
            }
        }
    }

    /// Reports one revision's changes, unless it was reported already.
    async fn deliver(&mut self, batch: Batch) -> Result<(), Gone> {
        if batch.revision <= self.last {
            return Ok(());
        }
        for event in batch.events {
            match &event {
                Event::Put { key, revision, .. } => {
                    self.known.insert(key.clone(), *revision);
                }
                Event::Delete { key, .. } => {
                    self.known.remove(key);
                }
            }
            self.send(Ok(WatchEvent::Change(event))).await?;
        }
        self.last = batch.revision;
        Ok(())
    }

    /// Re-lists the prefix and reports what changed since what the watcher holds.
    async fn resync(&mut self, feed: &impl ChangeFeed) -> Result<(), Gone> {
        let listing = loop {
            match feed.list(&self.prefix).await {
                Ok(listing) => break listing,
                Err(error) => self.setback(error).await?,
            }
        };
        tracing::info!(prefix = %self.prefix, from = self.last, to = listing.revision, "watch history compacted: re-listed");
        for event in difference(&self.known, &listing) {
            self.send(Ok(WatchEvent::Change(event))).await?;
        }
        self.known = listing
            .items
            .iter()
            .map(|item| (item.key.clone(), item.mod_revision))
            .collect();
        self.last = self.last.max(listing.revision);
        self.disconnected = true;
        self.caught_up().await
    }

    /// Handles a failure: a lost connection is reported once and retried after a delay;
    /// anything else ends the watch.
    async fn setback(&mut self, error: StoreError) -> Result<(), Gone> {
        match error {
            StoreError::Unavailable { reason, .. } => {
                if !self.disconnected {
                    self.disconnected = true;
                    tracing::warn!(prefix = %self.prefix, at = self.last, %reason, "watch disconnected; retrying");
                    self.send(Ok(WatchEvent::Disconnected { reason })).await?;
                }
                tokio::time::sleep(self.backoff.next_delay()).await;
                Ok(())
            }
            error => {
                self.send(Err(error)).await?;
                Err(Gone)
            }
        }
    }

    /// The feed is flowing again: report it if a disconnection was reported.
    async fn caught_up(&mut self) -> Result<(), Gone> {
        self.backoff.reset();
        if self.disconnected {
            self.disconnected = false;
            self.send(Ok(WatchEvent::Resynced {
                revision: self.last,
            }))
            .await?;
        }
        Ok(())
    }

    async fn send(&self, item: Result<WatchEvent, StoreError>) -> Result<(), Gone> {
        self.tx.send(item).await.map_err(|_| Gone)
    }
}

/// The changes that take a watcher holding `known` to `listing`: a put for every item it
/// lacks or holds at another revision, a delete for every key it holds that is gone; in
/// revision order.
pub(crate) fn difference(known: &BTreeMap<String, Revision>, listing: &Listing) -> Vec<Event> {
    let mut events: Vec<Event> = listing
        .items
        .iter()
        .filter(|item| known.get(&item.key) != Some(&item.mod_revision))
        .map(|item| Event::Put {
            key: item.key.clone(),
            value: item.value.clone(),
            revision: item.mod_revision,
        })
        .collect();
    let present: std::collections::HashSet<&str> =
        listing.items.iter().map(|item| item.key.as_str()).collect();
    events.extend(
        known
            .keys()
            .filter(|key| !present.contains(key.as_str()))
            .map(|key| Event::Delete {
                key: key.clone(),
                revision: listing.revision,
            }),
    );
    events.sort_by_key(Event::revision);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Item;

    fn item(key: &str, revision: Revision) -> Item {
        Item {
            key: key.to_string(),
            value: key.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            lease: None,
        }
    }

    #[test]
    fn the_difference_puts_new_and_changed_keys_and_deletes_vanished_ones() {
        let known: BTreeMap<String, Revision> =
            [("a".into(), 2), ("b".into(), 3), ("c".into(), 4)].into();
        let listing = Listing {
            items: vec![item("a", 2), item("b", 9), item("d", 7)],
            revision: 10,
        };
        let events = difference(&known, &listing);
        assert_eq!(
            events,
            [
                Event::Put {
                    key: "d".into(),
                    value: b"d".to_vec(),
                    revision: 7
                },
                Event::Put {
                    key: "b".into(),
                    value: b"b".to_vec(),
                    revision: 9
                },
                Event::Delete {
                    key: "c".into(),
                    revision: 10
                },
            ]
        );
    }

    #[test]
    fn nothing_differs_when_the_watcher_is_up_to_date() {
        let known: BTreeMap<String, Revision> = [("a".into(), 2)].into();
        let listing = Listing {
            items: vec![item("a", 2)],
            revision: 5,
        };
        assert!(difference(&known, &listing).is_empty());
    }
}

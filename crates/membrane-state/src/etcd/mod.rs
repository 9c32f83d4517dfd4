//! The etcd store: a real etcd cluster through `etcd-client`. Preconditions become etcd
//! transaction comparisons on `create_revision` and `mod_revision`; calls fail fast with
//! [`StoreError::Unavailable`] while etcd is unreachable and a background probe reconnects
//! with backoff; watches resume from the last revision they reported.

mod link;

use crate::error::StoreError;
use crate::store::{
    Event, Item, LeaseId, Listing, Op, Precondition, Revision, Store, WatchStream, check_ops,
};
use crate::watch::{self, Batch, ChangeFeed, RawChanges};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use link::{Link, REQUEST_TIMEOUT, is_unreachable, refusal};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to one endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP/2 keep-alive: a silent connection is declared dead after interval plus timeout.
const KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(2));

/// etcd's text for a read or watch below the compaction point.
const COMPACTED_TEXT: &str = "required revision has been compacted";
/// etcd's text for a read above the current revision.
const FUTURE_TEXT: &str = "required revision is a future revision";
/// etcd's text for an unknown lease.
const NO_LEASE_TEXT: &str = "requested lease not found";
/// etcd-client's text when a keep-alive finds no lease.
const NO_LEASE_CLIENT_TEXT: &str = "lease not found";

/// The etcd store; clones share one connection.
#[derive(Clone)]
pub struct EtcdStore {
    link: Arc<Link>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.link.endpoints)
            .finish()
    }
}

impl EtcdStore {
    /// A store over the etcd cluster at `endpoints` (`http://host:port`). Connecting is
    /// lazy: this fails only on malformed endpoints; use [`EtcdStore::check`] to find out
    /// whether etcd answers.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE.0, KEEP_ALIVE.1)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|source| StoreError::Etcd {
                endpoints: endpoints.to_vec(),
                operation: "setting up the client",
                source: Box::new(source),
            })?;
        Ok(EtcdStore {
            link: Arc::new(Link::new(client, endpoints.to_vec())),
        })
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.link.endpoints
    }

    /// Asks etcd whether it answers now, whatever was known before.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self.link.ping().await {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.link.mark_down(reason.clone());
                Err(self.link.unavailable(reason))
            }
        }
    }

    /// Runs one request: fails fast while etcd is unreachable, and marks it unreachable
    /// when the request finds it so.
    async fn call<T, Fut>(
        &self,
        operation: &'static str,
        request: impl FnOnce(Client) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        if let Some(error) = self.link.fail_fast() {
            return Err(error);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, request(self.link.client.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if is_unreachable(&error) => {
                let reason = format!("{operation}: {error}");
                self.link.mark_down(reason.clone());
                Err(self.link.unavailable(reason))
            }
            Ok(Err(source)) => Err(StoreError::Etcd {
                endpoints: self.link.endpoints.clone(),
                operation,
                source: Box::new(source),
            }),
            Err(_) => {
                let reason = format!("{operation}: no answer within {REQUEST_TIMEOUT:?}");
                self.link.mark_down(reason.clone());
                Err(self.link.unavailable(reason))
            }
        }
    }
}

/// `error` as [`StoreError::LeaseNotFound`] when etcd says the lease is unknown.
fn lease_refusal(error: StoreError, lease: Option<LeaseId>) -> StoreError {
    match (&error, lease) {
        (StoreError::Etcd { source, .. }, Some(lease))
            if refusal(source).contains(NO_LEASE_TEXT) =>
        {
            StoreError::LeaseNotFound { lease }
        }
        _ => error,
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision().max(0) as u64)
}

fn item_of(kv: &KeyValue) -> Result<Item, StoreError> {
    let key = kv.key_str().map_err(|_| StoreError::Invalid {
        what: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: "etcd holds a key that is not UTF-8",
    })?;
    Ok(Item {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision() as u64,
        mod_revision: kv.mod_revision() as u64,
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    })
}

/// The etcd comparison of a precondition, if it needs one.
fn compare(key: &str, precondition: Precondition) -> Option<Compare> {
    match precondition {
        Precondition::Any => None,
        Precondition::Absent => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
        Precondition::Revision(revision) => Some(Compare::mod_revision(
            key,
            CompareOp::Equal,
            revision as i64,
        )),
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd at {}", self.link.endpoints.join(","))
    }

    async fn get(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let response = self
            .call("get", |mut c| async move { c.get(key, None).await })
            .await?;
        response.kvs().first().map(item_of).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let response = self
            .call("list", |mut c| async move {
                c.get(prefix, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        Ok(Listing {
            items: response
                .kvs()
                .iter()
                .map(item_of)
                .collect::<Result<_, _>>()?,
            revision: revision_of(response.header()),
        })
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Revision, StoreError> {
        check_ops(&ops)?;
        let checked: Vec<&Op> = ops
            .iter()
            .filter(|op| op.precondition() != Precondition::Any)
            .collect();
        let compares: Vec<Compare> = ops
            .iter()
            .filter_map(|op| compare(op.key(), op.precondition()))
            .collect();
        let writes: Vec<TxnOp> = ops
            .iter()
            .map(|op| match op {
                Op::Put {
                    key, value, lease, ..
                } => TxnOp::put(
                    key.as_str(),
                    value.clone(),
                    lease.map(|lease| PutOptions::new().with_lease(lease.0)),
                ),
                Op::Delete { key, .. } => TxnOp::delete(key.as_str(), None),
            })
            .collect();
        let reads: Vec<TxnOp> = checked
            .iter()
            .map(|op| TxnOp::get(op.key(), None))
            .collect();
        let txn = Txn::new().when(compares).and_then(writes).or_else(reads);
        let first_lease = ops.iter().find_map(|op| match op {
            Op::Put { lease, .. } => *lease,
            Op::Delete { .. } => None,
        });
        let response = self
            .call("transaction", |mut c| async move { c.txn(txn).await })
            .await
            .map_err(|error| lease_refusal(error, first_lease))?;
        if response.succeeded() {
            return Ok(revision_of(response.header()));
        }
        // The reads ran atomically with the failed comparison: the first key whose
        // precondition they contradict is the one to name.
        let conflicts: Vec<StoreError> = checked
            .iter()
            .zip(response.op_responses())
            .filter_map(|(op, read)| {
                let TxnOpResponse::Get(read) = read else {
                    return None;
                };
                let found = read.kvs().first().map(|kv| kv.mod_revision() as u64);
                (!op.precondition().holds(found)).then(|| StoreError::Conflict {
                    key: op.key().to_string(),
                    expected: op.precondition(),
                    found,
                })
            })
            .collect();
        Err(conflicts
            .into_iter()
            .next()
            .unwrap_or_else(|| StoreError::Invalid {
                what: "a transaction".to_string(),
                reason: "etcd refused a comparison that the read-back says holds",
            }))
    }

    fn watch(&self, prefix: &str, from: Revision) -> WatchStream {
        watch::watch(self.clone(), prefix, from)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let seconds = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let response = self
            .call("granting a lease", |mut c| async move {
                c.lease_grant(seconds, None).await
            })
            .await?;
        Ok(LeaseId(response.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let ttl = self
            .call("keeping a lease alive", |mut c| async move {
                // Opening the keep-alive stream refreshes the lease once and fails when it
                // is unknown; one more refresh reads back its time to live.
                match c.lease_keep_alive(lease.0).await {
                    Err(etcd_client::Error::LeaseKeepAliveError(text))
                        if text == NO_LEASE_CLIENT_TEXT =>
                    {
                        Ok(0)
                    }
                    Err(error) => Err(error),
                    Ok((mut keeper, mut answers)) => {
                        keeper.keep_alive().await?;
                        Ok(answers.message().await?.map_or(0, |a| a.ttl()))
                    }
                }
            })
            .await?;
        if ttl <= 0 {
            return Err(StoreError::LeaseNotFound { lease });
        }
        Ok(Duration::from_secs(ttl as u64))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.call("revoking a lease", |mut c| async move {
            c.lease_revoke(lease.0).await
        })
        .await
        .map_err(|error| lease_refusal(error, Some(lease)))
        .map(drop)
    }
}

/// `error` as [`StoreError::Compacted`] or [`StoreError::FutureRevision`] when etcd
/// refused a revision.
fn revision_refusal(error: StoreError, prefix: &str, requested: Revision) -> StoreError {
    let StoreError::Etcd { source, .. } = &error else {
        return error;
    };
    let text = refusal(source);
    if text.contains(COMPACTED_TEXT) {
        StoreError::Compacted {
            prefix: prefix.to_string(),
            requested,
            oldest: 0,
        }
    } else if text.contains(FUTURE_TEXT) {
        StoreError::FutureRevision {
            requested,
            current: 0,
        }
    } else {
        error
    }
}

#[async_trait::async_trait]
impl ChangeFeed for EtcdStore {
    async fn keys_at(
        &self,
        prefix: &str,
        revision: Revision,
    ) -> Result<BTreeMap<String, Revision>, StoreError> {
        if revision == 0 {
            return Ok(BTreeMap::new());
        }
        let options = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_revision(revision as i64);
        let response = self
            .call("reading keys at a revision", |mut c| async move {
                c.get(prefix, Some(options)).await
            })
            .await
            .map_err(|error| revision_refusal(error, prefix, revision))?;
        response
            .kvs()
            .iter()
            .map(|kv| item_of(kv).map(|item| (item.key, item.mod_revision)))
            .collect()
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        Store::list(self, prefix).await
    }

    async fn changes(&self, prefix: &str, from: Revision) -> Result<RawChanges, StoreError> {
        // etcd creates a watch below the compaction point and cancels it only afterwards;
        // reading at `from - 1` first finds out now, so that a resumed watch is reported
        // caught up only when its history is there.
        if from > 1 {
            let probe = GetOptions::new()
                .with_prefix()
                .with_count_only()
                .with_revision(from as i64 - 1);
            self.call("checking the watch's history", |mut c| async move {
                c.get(prefix, Some(probe)).await
            })
            .await
            .map_err(|error| revision_refusal(error, prefix, from))?;
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from as i64);
        let stream = self
            .call("starting a watch", |mut c| async move {
                c.watch(prefix, Some(options)).await
            })
            .await?;
        let feed = EtcdFeed {
            store: self.clone(),
            prefix: prefix.to_string(),
            stream,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            feed,
            |mut feed| async move { feed.next_batch().await.map(|batch| (batch, feed)) },
        )))
    }
}

/// One etcd watch, turned into batches of one revision each.
struct EtcdFeed {
    store: EtcdStore,
    prefix: String,
    stream: etcd_client::WatchStream,
    pending: VecDeque<Batch>,
    done: bool,
}

impl EtcdFeed {
    async fn next_batch(&mut self) -> Option<Result<Batch, StoreError>> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Some(Ok(batch));
            }
            if self.done {
                return None;
            }
            let message = match self.stream.message().await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    self.done = true;
                    return Some(Err(self.lost("etcd closed the watch".to_string())));
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(self.lost(format!("watch: {error}"))));
                }
            };
            if message.compact_revision() > 0 {
                self.done = true;
                return Some(Err(StoreError::Compacted {
                    prefix: self.prefix.clone(),
                    requested: 0,
                    oldest: message.compact_revision() as u64,
                }));
            }
            if message.canceled() {
                self.done = true;
                return Some(Err(self.lost(format!(
                    "etcd cancelled the watch: {}",
                    message.cancel_reason()
                ))));
            }
            for event in message.events() {
                let Some(kv) = event.kv() else { continue };
                let revision = kv.mod_revision() as u64;
                let key = match kv.key_str() {
                    Ok(key) => key.to_string(),
                    Err(_) => continue,
                };
                let event = match event.event_type() {
                    EventType::Put => Event::Put {
                        key,
                        value: kv.value().to_vec(),
                        revision,
                    },
                    EventType::Delete => Event::Delete { key, revision },
                };
                match self.pending.back_mut() {
                    Some(batch) if batch.revision == revision => batch.events.push(event),
                    _ => self.pending.push_back(Batch {
                        revision,
                        events: vec![event],
                    }),
                }
            }
        }
    }

    fn lost(&self, reason: String) -> StoreError {
        self.store.link.mark_down(reason.clone());
        self.store.link.unavailable(reason)
    }
}

//! Every `Store` operation, with the same test body against the embedded store and against
//! a real etcd: values and revisions, compare-and-swap, all-or-nothing transactions,
//! watches, leases and racing allocations.
//!
//! The etcd half needs root (it runs etcd in a network namespace of its own) and Debian's
//! etcd-server; `cargo xtask test` provides both.

mod bed;

use futures::StreamExt as _;
use membrane_state::{
    EmbeddedStore, IDENTITY_RANGE, IdentityCollector, IdentityUser, allocate_identity,
    record_identity_use, release_identity_use,
};
use membrane_state::{
    Event, LeaseId, Op, Precondition, Store, StoreError, WatchEvent, WatchStream, allocate_unique,
    keys,
};
use std::collections::BTreeSet;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `body` on a fresh embedded store.
pub fn on_embedded<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = EmbeddedStore::open(dir.path()).await.unwrap();
            // A second handle on the same store, as a second component of one agent has.
            body(Arc::new(store.clone()), Arc::new(store)).await
        });
}

/// Runs `body` against a fresh etcd, with two independent clients (two agents).
pub fn on_etcd<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>, Arc<dyn Store>) -> Fut + Send,
    Fut: Future<Output = ()>,
{
    let bed = bed::EtcdBed::start();
    bed.run(|| async {
        let (a, b) = (bed.store().await, bed.store().await);
        body(Arc::new(a), Arc::new(b)).await
    });
}

/// Declares each named async test body as a test against both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[test] fn $name() { $crate::on_embedded(super::$name) })*
        }
        mod etcd {
            $(#[test] fn $name() { $crate::on_etcd(super::$name) })*
        }
    };
}

on_both_backends!(
    put_get_and_list_report_values_and_revisions,
    preconditions_refuse_stale_writes_and_name_the_key,
    a_transaction_applies_everything_or_nothing,
    a_transaction_naming_a_key_twice_is_refused,
    a_watch_replays_from_its_revision_then_follows_live_changes,
    a_watch_from_a_listing_sees_each_later_change_once,
    an_expired_lease_deletes_its_keys_and_watchers_see_it,
    a_kept_alive_lease_keeps_its_keys_and_revoking_deletes_them,
    racing_allocators_never_claim_the_same_pod_cidr,
    racing_allocators_never_claim_the_same_identity_number,
    an_allocator_gets_its_own_claim_back,
    racing_nodes_agree_on_one_identity_per_label_set_and_never_share_one,
    an_identity_whose_users_are_gone_is_collected_after_the_grace_period_and_not_before,
    an_identity_that_gained_a_user_during_its_grace_period_is_kept,
);

/// The next change of `watch`, skipping connection states, within 10 s.
async fn next_change(watch: &mut WatchStream) -> Event {
    let deadline = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(deadline, watch.next()).await {
            Ok(Some(Ok(WatchEvent::Change(event)))) => return event,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => panic!("the watch failed: {error}"),
            Ok(None) => panic!("the watch ended"),
            Err(_) => panic!("no change within {deadline:?}"),
        }
    }
}

fn put(key: &str, value: &str, revision: u64) -> Event {
    Event::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        revision,
    }
}

async fn put_get_and_list_report_values_and_revisions(store: Arc<dyn Store>, _: Arc<dyn Store>) {
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let first = store
        .put("/t/a", b"1".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let second = store
        .put("/t/b", b"2".to_vec(), Precondition::Any)
        .await
        .unwrap();
    assert!(second > first, "{second} after {first}");
    let third = store
        .put("/t/a", b"3".to_vec(), Precondition::Any)
        .await
        .unwrap();
    store
        .put("/u/x", b"elsewhere".to_vec(), Precondition::Any)
        .await
        .unwrap();

    let a = store.get("/t/a").await.unwrap().unwrap();
    assert_eq!(
        (a.value.as_slice(), a.create_revision, a.mod_revision),
        (&b"3"[..], first, third)
    );
    assert_eq!(a.lease, None);

    let listing = store.list("/t/").await.unwrap();
    let keys: Vec<&str> = listing.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["/t/a", "/t/b"]);
    assert!(listing.revision > third);

    let deleted = store.delete("/t/a", Precondition::Any).await.unwrap();
    assert!(deleted > listing.revision);
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    let unchanged = store.delete("/t/a", Precondition::Any).await.unwrap();
    assert_eq!(unchanged, deleted, "deleting an absent key changes nothing");
}

async fn preconditions_refuse_stale_writes_and_name_the_key(
    store: Arc<dyn Store>,
    _: Arc<dyn Store>,
) {
    let created = store
        .put("/cas/k", b"v1".to_vec(), Precondition::Absent)
        .await
        .unwrap();
    let err = store
        .put("/cas/k", b"again".to_vec(), Precondition::Absent)
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "/cas/k");
            assert_eq!(expected, Precondition::Absent);
            assert_eq!(found, Some(created));
        }
        other => panic!("{other:?}"),
    }
    let updated = store
        .put("/cas/k", b"v2".to_vec(), Precondition::Revision(created))
        .await
        .unwrap();
    let stale = store
        .put("/cas/k", b"v3".to_vec(), Precondition::Revision(created))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, StoreError::Conflict { found: Some(r), .. } if r == updated),
        "{stale:?}"
    );
    let zero = store
        .put("/cas/k", b"x".to_vec(), Precondition::Revision(0))
        .await
        .unwrap_err();
    assert!(matches!(zero, StoreError::Invalid { .. }), "{zero:?}");
    let missing = store
        .put("/cas/none", b"x".to_vec(), Precondition::Revision(created))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::Conflict { found: None, .. }),
        "{missing:?}"
    );
    let stale_delete = store
        .delete("/cas/k", Precondition::Revision(created))
        .await
        .unwrap_err();
    assert!(
        matches!(stale_delete, StoreError::Conflict { .. }),
        "{stale_delete:?}"
    );
    assert_eq!(store.get("/cas/k").await.unwrap().unwrap().value, b"v2");
    store
        .delete("/cas/k", Precondition::Revision(updated))
        .await
        .unwrap();
    assert_eq!(store.get("/cas/k").await.unwrap(), None);
}

async fn a_transaction_applies_everything_or_nothing(store: Arc<dyn Store>, _: Arc<dyn Store>) {
    let existing = store
        .put("/tx/existing", b"old".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let before = store.list("/tx/").await.unwrap();
    let err = store
        .transaction(vec![
            Op::put("/tx/a", b"a".to_vec(), Precondition::Absent),
            Op::delete("/tx/existing", Precondition::Any),
            Op::put(
                "/tx/b",
                b"b".to_vec(),
                Precondition::Revision(existing + 100),
            ),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { key, .. } if key == "/tx/b"),
        "{err:?}"
    );
    assert_eq!(
        store.list("/tx/").await.unwrap(),
        before,
        "nothing was written"
    );

    let revision = store
        .transaction(vec![
            Op::put("/tx/a", b"a".to_vec(), Precondition::Absent),
            Op::delete("/tx/existing", Precondition::Revision(existing)),
            Op::put("/tx/b", b"b".to_vec(), Precondition::Any),
        ])
        .await
        .unwrap();
    let after = store.list("/tx/").await.unwrap();
    let written: Vec<(&str, u64)> = after
        .items
        .iter()
        .map(|i| (i.key.as_str(), i.mod_revision))
        .collect();
    assert_eq!(
        written,
        [("/tx/a", revision), ("/tx/b", revision)],
        "one revision for all"
    );
}

async fn a_transaction_naming_a_key_twice_is_refused(store: Arc<dyn Store>, _: Arc<dyn Store>) {
    let err = store
        .transaction(vec![
            Op::put("/dup/a", b"1".to_vec(), Precondition::Any),
            Op::delete("/dup/a", Precondition::Any),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateKey { .. }), "{err:?}");
    assert_eq!(store.get("/dup/a").await.unwrap(), None);
}

async fn a_watch_replays_from_its_revision_then_follows_live_changes(
    store: Arc<dyn Store>,
    writer: Arc<dyn Store>,
) {
    let r1 = store
        .put("/w/a", b"1".to_vec(), Precondition::Any)
        .await
        .unwrap();
    store
        .put("/other/x", b"no".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let r2 = store
        .put("/w/b", b"2".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let mut watch = store.watch("/w/", r1);
    assert_eq!(next_change(&mut watch).await, put("/w/a", "1", r1));
    assert_eq!(next_change(&mut watch).await, put("/w/b", "2", r2));
    let r3 = writer.delete("/w/a", Precondition::Any).await.unwrap();
    let r4 = writer
        .transaction(vec![
            Op::put("/w/c", b"3".to_vec(), Precondition::Absent),
            Op::put("/w/d", b"4".to_vec(), Precondition::Absent),
        ])
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        Event::Delete {
            key: "/w/a".into(),
            revision: r3
        }
    );
    assert_eq!(next_change(&mut watch).await, put("/w/c", "3", r4));
    assert_eq!(next_change(&mut watch).await, put("/w/d", "4", r4));
}

async fn a_watch_from_a_listing_sees_each_later_change_once(
    store: Arc<dyn Store>,
    writer: Arc<dyn Store>,
) {
    for i in 0..5 {
        store
            .put(&format!("/l/{i}"), b"x".to_vec(), Precondition::Any)
            .await
            .unwrap();
    }
    let listing = store.list("/l/").await.unwrap();
    let mut watch = store.watch("/l/", listing.revision + 1);
    let mut expected = Vec::new();
    for i in 0..20 {
        let key = format!("/l/{}", i % 7);
        let revision = writer
            .put(&key, i.to_string().into_bytes(), Precondition::Any)
            .await
            .unwrap();
        expected.push(put(&key, &i.to_string(), revision));
    }
    let mut seen = Vec::new();
    for _ in 0..expected.len() {
        seen.push(next_change(&mut watch).await);
    }
    assert_eq!(seen, expected);
    let nothing_more = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(nothing_more.is_err(), "an extra report: {nothing_more:?}");
}

/// Waits until `key` is gone, at most `within`.
async fn wait_gone(store: &dyn Store, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while store.get(key).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "{key} still there after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_expired_lease_deletes_its_keys_and_watchers_see_it(
    store: Arc<dyn Store>,
    _: Arc<dyn Store>,
) {
    let lease = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let put_at = store
        .put_with_lease("/nodes/dead", b"n".to_vec(), Precondition::Absent, lease)
        .await
        .unwrap();
    store
        .put("/nodes/kept", b"k".to_vec(), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        store.get("/nodes/dead").await.unwrap().unwrap().lease,
        Some(lease)
    );
    let mut watch = store.watch("/nodes/", put_at + 1);
    // etcd's shortest lease is a few seconds, whatever is asked.
    wait_gone(store.as_ref(), "/nodes/dead", Duration::from_secs(15)).await;
    let put_kept = next_change(&mut watch).await;
    assert_eq!(put_kept.key(), "/nodes/kept");
    let gone = next_change(&mut watch).await;
    assert!(
        matches!(&gone, Event::Delete { key, .. } if key == "/nodes/dead"),
        "{gone:?}"
    );
    assert!(store.get("/nodes/kept").await.unwrap().is_some());
    let err = store.keep_alive(lease).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
    let err = store
        .put_with_lease("/nodes/late", b"n".to_vec(), Precondition::Any, lease)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
}

async fn a_kept_alive_lease_keeps_its_keys_and_revoking_deletes_them(
    store: Arc<dyn Store>,
    _: Arc<dyn Store>,
) {
    let ttl = Duration::from_secs(2);
    let lease = store.grant_lease(ttl).await.unwrap();
    store
        .put_with_lease("/alive/n", b"n".to_vec(), Precondition::Any, lease)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let granted = store.keep_alive(lease).await.unwrap();
        assert!(granted >= ttl, "{granted:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(store.get("/alive/n").await.unwrap().is_some());
    }
    store.revoke_lease(lease).await.unwrap();
    assert_eq!(store.get("/alive/n").await.unwrap(), None);
    let err = store
        .revoke_lease(LeaseId(lease.0 + 1000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound { .. }), "{err:?}");
}

/// Two allocators claim `per_allocator` keys each, racing; returns what each got.
async fn race(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    prefix: &'static str,
    candidates: fn() -> Vec<String>,
    per_allocator: usize,
) -> (Vec<String>, Vec<String>) {
    let claim = |store: Arc<dyn Store>, who: &'static str| async move {
        let mut got = Vec::new();
        for i in 0..per_allocator {
            let claimed = allocate_unique(
                store.as_ref(),
                prefix,
                candidates(),
                format!("{who}-{i}").as_bytes(),
            )
            .await
            .unwrap();
            assert!(!claimed.reclaimed);
            got.push(claimed.key);
        }
        got
    };
    let (left, right) = tokio::join!(claim(a, "left"), claim(b, "right"));
    (left, right)
}

async fn racing_allocators_never_claim_the_same_pod_cidr(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    fn cidrs() -> Vec<String> {
        (0..=255)
            .map(|i| keys::pod_cidr(format!("10.200.{i}.0/24")))
            .collect()
    }
    let (left, right) = race(a.clone(), b, keys::POD_CIDRS, cidrs, 12).await;
    let all: HashSet<&String> = left.iter().chain(&right).collect();
    assert_eq!(
        all.len(),
        24,
        "a CIDR was claimed twice: {left:?} {right:?}"
    );
    let stored = a.list(keys::POD_CIDRS).await.unwrap();
    assert_eq!(stored.items.len(), 24);
}

async fn racing_allocators_never_claim_the_same_identity_number(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    fn ids() -> Vec<String> {
        (256..=65535).map(keys::identity_id).collect()
    }
    let (left, right) = race(a, b, keys::IDENTITY_IDS, ids, 15).await;
    let all: HashSet<&String> = left.iter().chain(&right).collect();
    assert_eq!(
        all.len(),
        30,
        "an identity was claimed twice: {left:?} {right:?}"
    );
}

async fn an_allocator_gets_its_own_claim_back(store: Arc<dyn Store>, _: Arc<dyn Store>) {
    let candidates = || (0..4).map(|i| keys::pod_cidr(format!("10.1.{i}.0/24")));
    let first = allocate_unique(store.as_ref(), keys::POD_CIDRS, candidates(), b"node-a")
        .await
        .unwrap();
    let other = allocate_unique(store.as_ref(), keys::POD_CIDRS, candidates(), b"node-b")
        .await
        .unwrap();
    assert_ne!(first.key, other.key);
    let again = allocate_unique(store.as_ref(), keys::POD_CIDRS, candidates(), b"node-a")
        .await
        .unwrap();
    assert_eq!((again.key, again.reclaimed), (first.key, true));
    for claimant in ["c", "d"] {
        allocate_unique(
            store.as_ref(),
            keys::POD_CIDRS,
            candidates(),
            claimant.as_bytes(),
        )
        .await
        .unwrap();
    }
    let err = allocate_unique(store.as_ref(), keys::POD_CIDRS, candidates(), b"e")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exhausted { .. }), "{err:?}");
}

async fn racing_nodes_agree_on_one_identity_per_label_set_and_never_share_one(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    let label_sets: Vec<BTreeSet<String>> = (0..12)
        .map(|i| [format!("k8s:app=app{}", i / 2 * 2)].into_iter().collect())
        .collect();
    // Both nodes ask for every label set at once (each set twice over, so the same labels
    // race against themselves too).
    let node = |store: Arc<dyn Store>, name: &'static str, sets: Vec<BTreeSet<String>>| async move {
        let user = user_of(store.as_ref(), name).await;
        let mut got = Vec::new();
        for labels in &sets {
            got.push((
                labels.clone(),
                allocate_identity(store.as_ref(), labels, &user)
                    .await
                    .unwrap(),
            ));
        }
        got
    };
    let mut reversed = label_sets.clone();
    reversed.reverse();
    let (left, right) = tokio::join!(
        node(a.clone(), "node-a", label_sets.clone()),
        node(b, "node-b", reversed)
    );
    let mut by_labels = std::collections::BTreeMap::new();
    for (labels, identity) in left.iter().chain(&right) {
        assert!(IDENTITY_RANGE.contains(&identity.id));
        let first = *by_labels.entry(labels.clone()).or_insert(identity.id);
        assert_eq!(first, identity.id, "{labels:?} got two identities");
    }
    let ids: HashSet<u32> = by_labels.values().copied().collect();
    assert_eq!(
        ids.len(),
        by_labels.len(),
        "two label sets share an identity: {by_labels:?}"
    );
    let created = left.iter().chain(&right).filter(|(_, i)| i.created).count();
    assert_eq!(created, by_labels.len(), "each identity was created once");
    let stored = a.list(keys::IDENTITY_IDS).await.unwrap();
    assert_eq!(
        stored.items.len(),
        by_labels.len(),
        "no number was left claimed"
    );
}

/// A node using identities on a lease of its own.
async fn user_of(store: &dyn Store, node: &str) -> IdentityUser {
    IdentityUser {
        node: node.to_string(),
        lease: store.grant_lease(Duration::from_secs(30)).await.unwrap(),
    }
}

fn label_set(labels: &[&str]) -> BTreeSet<String> {
    labels.iter().map(|l| l.to_string()).collect()
}

async fn an_identity_whose_users_are_gone_is_collected_after_the_grace_period_and_not_before(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    let grace = Duration::from_millis(1500);
    let web = label_set(&["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"]);
    let (node_a, node_b) = (
        user_of(a.as_ref(), "a").await,
        user_of(b.as_ref(), "b").await,
    );
    let id = allocate_identity(a.as_ref(), &web, &node_a)
        .await
        .unwrap()
        .id;
    assert_eq!(
        allocate_identity(b.as_ref(), &web, &node_b)
            .await
            .unwrap()
            .id,
        id
    );
    let mut collector = IdentityCollector::new(grace);
    // Node a's agent is gone (its lease with it); node b still uses the identity.
    a.revoke_lease(node_a.lease).await.unwrap();
    assert_eq!(
        collector.collect(a.as_ref()).await.unwrap(),
        Vec::<u32>::new()
    );
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    assert_eq!(
        collector.collect(a.as_ref()).await.unwrap(),
        Vec::<u32>::new()
    );
    assert!(a.get(&keys::identity_id(id)).await.unwrap().is_some());
    // Node b lets it go: kept for the grace period, then collected with its labels key.
    release_identity_use(b.as_ref(), id, "b").await.unwrap();
    let released = Instant::now();
    let mut collected = Vec::new();
    for _ in 0..40 {
        collected = collector.collect(a.as_ref()).await.unwrap();
        if !collected.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(collected, [id]);
    assert!(
        released.elapsed() >= grace,
        "collected after {:?}",
        released.elapsed()
    );
    assert!(a.get(&keys::identity_id(id)).await.unwrap().is_none());
    let labels_left = a.list(keys::IDENTITY_LABELS).await.unwrap();
    assert!(labels_left.items.is_empty(), "{labels_left:?}");
    // The labels get an identity again when someone needs one.
    let again = allocate_identity(b.as_ref(), &web, &node_b).await.unwrap();
    assert!(again.created);
    assert!(
        !record_identity_use(b.as_ref(), id + 1000, &web, &node_b)
            .await
            .unwrap()
    );
}

async fn an_identity_that_gained_a_user_during_its_grace_period_is_kept(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    let grace = Duration::from_millis(800);
    let db = label_set(&["k8s:app=db"]);
    let (node_a, node_b) = (
        user_of(a.as_ref(), "a").await,
        user_of(b.as_ref(), "b").await,
    );
    let id = allocate_identity(a.as_ref(), &db, &node_a)
        .await
        .unwrap()
        .id;
    release_identity_use(a.as_ref(), id, "a").await.unwrap();
    let mut collector = IdentityCollector::new(grace);
    assert!(collector.collect(a.as_ref()).await.unwrap().is_empty());
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    // A pod on node b came and went within the grace period, unseen by any pass: its use
    // changed the identity's revision, so the grace period starts over.
    assert_eq!(
        allocate_identity(b.as_ref(), &db, &node_b).await.unwrap(),
        membrane_state::AllocatedIdentity { id, created: false }
    );
    release_identity_use(b.as_ref(), id, "b").await.unwrap();
    assert!(collector.collect(a.as_ref()).await.unwrap().is_empty());
    assert!(a.get(&keys::identity_id(id)).await.unwrap().is_some());
    // Node a takes it back through its cached number (after a lost lease, say).
    assert!(
        record_identity_use(a.as_ref(), id, &db, &node_a)
            .await
            .unwrap()
    );
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    assert!(collector.collect(a.as_ref()).await.unwrap().is_empty());
    assert!(a.get(&keys::identity_id(id)).await.unwrap().is_some());
}

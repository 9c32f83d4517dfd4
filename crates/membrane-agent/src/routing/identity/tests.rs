use super::*;
use membrane_state::{EmbeddedStore, Store};

async fn identities(dir: &std::path::Path, node: &str) -> (Identities, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir).await.unwrap());
    let cluster = Arc::new(Cluster::new(store.clone()));
    let identities = Identities::new(
        cluster,
        node.to_string(),
        &IdentityConfig::default(),
        Duration::from_secs(30),
        dir.join("identities.json"),
    )
    .unwrap();
    (identities, store)
}

fn labels(namespace: &str) -> BTreeSet<String> {
    [
        format!("{}={namespace}", labels::NAMESPACE_LABEL),
        format!("{}=default", labels::CLUSTER_LABEL),
    ]
    .into()
}

async fn users(store: &dyn Store) -> Vec<String> {
    store
        .list(keys::IDENTITY_USERS)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|item| item.key)
        .collect()
}

#[tokio::test]
async fn the_same_labels_get_the_same_number_and_the_node_is_recorded_as_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let (identities, store) = identities(dir.path(), "n1").await;
    let web = identities.number(labels("shop")).await.unwrap();
    assert_eq!(identities.number(labels("shop")).await.unwrap(), web);
    let db = identities.number(labels("db")).await.unwrap();
    assert_ne!(web, db);
    assert!(membrane_state::IDENTITY_RANGE.contains(&web));
    assert_eq!(
        users(store.as_ref()).await,
        [
            keys::identity_user(web, "n1"),
            keys::identity_user(db, "n1")
        ]
    );
    // The policy compiler reads the labels from identities/id/<n> as a JSON array.
    let stored = store.get(&keys::identity_id(web)).await.unwrap().unwrap();
    let stored: Vec<String> = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(stored, labels("shop").into_iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn identities_no_endpoint_carries_are_released_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (identities, store) = identities(dir.path(), "n1").await;
    let web = identities.number(labels("shop")).await.unwrap();
    let db = identities.number(labels("db")).await.unwrap();
    assert!(!identities.record_uses(&[web].into()).await.unwrap());
    assert_eq!(
        users(store.as_ref()).await,
        [keys::identity_user(web, "n1")]
    );
    // Asked again, the released labels come from the store and are used again.
    assert_eq!(identities.number(labels("db")).await.unwrap(), db);
    assert_eq!(users(store.as_ref()).await.len(), 2);
}

#[tokio::test]
async fn uses_lost_with_their_lease_are_recorded_again_and_collected_ones_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (identities, store) = identities(dir.path(), "n1").await;
    let web = identities.number(labels("shop")).await.unwrap();
    let db = identities.number(labels("db")).await.unwrap();
    let lease = identities.lease.lock().await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert!(users(store.as_ref()).await.is_empty());
    // Meanwhile a collector removed db's identity.
    let mut collector = membrane_state::IdentityCollector::new(Duration::ZERO);
    let mut collected = collector.collect(store.as_ref()).await.unwrap();
    collected.sort();
    assert_eq!(collected, [web, db]);
    let kept = identities.number(labels("shop")).await.unwrap();
    assert_eq!(kept, web, "still cached");
    identities.keep_alive().await.unwrap();
    let stale = identities.record_uses(&[web, db].into()).await.unwrap();
    assert!(stale, "the collected identities are reported");
    let again = identities.number(labels("db")).await.unwrap();
    assert!(
        users(store.as_ref())
            .await
            .contains(&keys::identity_user(again, "n1"))
    );
}

#[tokio::test]
async fn label_sets_resolved_before_a_restart_resolve_without_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (before, _) = identities(dir.path(), "n1").await;
    before.number(labels("shop")).await.unwrap();
    let db = before.number(labels("db")).await.unwrap();
    drop(before);
    // The same state directory, and a kvstore that has never seen these labels (where
    // allocating would hand out the first number): the cache answers.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("identities.json"),
        fresh.path().join("identities.json"),
    )
    .unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&fresh.path().join("kv")).await.unwrap());
    let after = Identities::new(
        Arc::new(Cluster::new(store.clone())),
        "n1".to_string(),
        &IdentityConfig::default(),
        Duration::from_secs(30),
        fresh.path().join("identities.json"),
    )
    .unwrap();
    assert_eq!(after.number(labels("db")).await.unwrap(), db);
    assert!(
        users(store.as_ref()).await.is_empty(),
        "the store was not asked"
    );
    // Recording the use finds out that this store has no such identity.
    assert!(after.record_uses(&[db].into()).await.unwrap());
}

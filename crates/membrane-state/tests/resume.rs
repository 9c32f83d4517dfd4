//! Watches and calls across outages: etcd killed mid-watch and restarted on the same data,
//! history compacted while a watcher was cut off, calls failing fast while etcd is down,
//! and the embedded store reopened from its directory.
//!
//! The etcd tests need root (etcd runs in a network namespace of their own).

mod bed;

use bed::EtcdBed;
use futures::StreamExt as _;
use membrane_state::{
    EmbeddedStore, EtcdStore, Event, Precondition, Store, StoreError, WatchEvent, WatchStream,
};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The next report of `watch` within 20 s.
async fn next(watch: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(20), watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => panic!("the watch failed: {error}"),
        Ok(None) => panic!("the watch ended"),
        Err(_) => panic!("no report within 20 s"),
    }
}

fn put(key: &str, value: &str, revision: u64) -> Event {
    Event::Put {
        key: key.to_string(),
        value: value.as_bytes().to_vec(),
        revision,
    }
}

/// Retries `put` until the store answers (it fails fast while it believes etcd is down).
async fn put_eventually(store: &dyn Store, key: &str, value: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store
            .put(key, value.as_bytes().to_vec(), Precondition::Any)
            .await
        {
            Ok(revision) => return revision,
            Err(error) if error.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("{error}"),
        }
    }
}

#[test]
fn a_watch_resumes_across_an_etcd_restart_without_losing_or_repeating_a_change() {
    let bed = EtcdBed::start();
    bed.run(|| async {
        let watcher = bed.store().await;
        let writer = bed.store().await;
        let start = watcher.list("/r/").await.unwrap().revision;
        let mut watch = watcher.watch("/r/", start + 1);
        let mut expected = Vec::new();
        for i in 0..5 {
            let key = format!("/r/{i}");
            let revision = writer
                .put(&key, b"before".to_vec(), Precondition::Any)
                .await
                .unwrap();
            expected.push(put(&key, "before", revision));
        }
        let mut seen = Vec::new();
        while seen.len() < 5 {
            if let WatchEvent::Change(event) = next(&mut watch).await {
                seen.push(event);
            }
        }

        bed.etcd.kill();
        assert!(
            matches!(next(&mut watch).await, WatchEvent::Disconnected { .. }),
            "the watch reports the outage"
        );
        bed.etcd.start_again(&bed.netns).unwrap();
        // A fresh client writes at once, before the watcher has noticed etcd is back.
        let writer = bed.store().await;
        for i in 3..8 {
            let key = format!("/r/{i}");
            let revision = put_eventually(&writer, &key, "after").await;
            expected.push(put(&key, "after", revision));
        }
        let revision = writer.delete("/r/0", Precondition::Any).await.unwrap();
        expected.push(Event::Delete {
            key: "/r/0".into(),
            revision,
        });

        let mut resynced = false;
        while seen.len() < expected.len() {
            match next(&mut watch).await {
                WatchEvent::Change(event) => seen.push(event),
                WatchEvent::Resynced { .. } => resynced = true,
                WatchEvent::Disconnected { reason } => panic!("disconnected again: {reason}"),
            }
        }
        assert!(resynced, "the watch reported that it caught up");
        assert_eq!(seen, expected, "every change once, in order");
        let extra = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
        assert!(extra.is_err(), "an extra report: {extra:?}");
    });
}

#[test]
fn a_watch_cut_off_while_history_is_compacted_resyncs_by_the_difference() {
    let bed = EtcdBed::start();
    let main: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "127.0.0.3".parse().unwrap();
    bed.run(|| async {
        let watcher = bed.store().await;
        for key in ["a", "b", "c"] {
            watcher
                .put(&format!("/c/{key}"), b"1".to_vec(), Precondition::Any)
                .await
                .unwrap();
        }
        let listing = watcher.list("/c/").await.unwrap();
        let mut watch = watcher.watch("/c/", listing.revision + 1);
        let live = watcher
            .put("/c/d", b"1".to_vec(), Precondition::Any)
            .await
            .unwrap();
        assert_eq!(
            next(&mut watch).await,
            WatchEvent::Change(put("/c/d", "1", live))
        );

        // etcd comes back where the watcher cannot reach it; meanwhile the data changes
        // and the history the watcher needs is compacted away.
        bed.etcd.kill();
        assert!(matches!(
            next(&mut watch).await,
            WatchEvent::Disconnected { .. }
        ));
        bed.etcd.start_again_on(&bed.netns, other).unwrap();
        let endpoint = bed.etcd.endpoint();
        let admin = EtcdStore::connect(std::slice::from_ref(&endpoint))
            .await
            .unwrap();
        admin.delete("/c/a", Precondition::Any).await.unwrap();
        let b = admin
            .put("/c/b", b"2".to_vec(), Precondition::Any)
            .await
            .unwrap();
        let e = admin
            .put("/c/e", b"1".to_vec(), Precondition::Any)
            .await
            .unwrap();
        let top = admin
            .put("/c/b", b"3".to_vec(), Precondition::Any)
            .await
            .unwrap();
        assert!(top > b);
        let mut raw = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        raw.compact(
            top as i64,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
        bed.etcd.stop();
        bed.etcd.start_again_on(&bed.netns, main).unwrap();

        let mut changes = Vec::new();
        loop {
            match next(&mut watch).await {
                WatchEvent::Change(event) => changes.push(event),
                WatchEvent::Resynced { revision } => {
                    assert!(revision >= top, "{revision} < {top}");
                    break;
                }
                WatchEvent::Disconnected { .. } => {}
            }
        }
        changes.sort_by(|x, y| x.key().cmp(y.key()));
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(
            matches!(&changes[0], Event::Delete { key, .. } if key == "/c/a"),
            "{changes:?}"
        );
        assert_eq!(changes[1], put("/c/b", "3", top));
        assert_eq!(changes[2], put("/c/e", "1", e));

        let after = put_eventually(&watcher, "/c/f", "1").await;
        assert_eq!(
            next(&mut watch).await,
            WatchEvent::Change(put("/c/f", "1", after))
        );
    });
}

#[test]
fn calls_fail_fast_and_clearly_while_etcd_is_down_and_work_once_it_is_back() {
    let bed = EtcdBed::start();
    bed.run(|| async {
        let store = bed.store().await;
        store.check().await.unwrap();
        bed.etcd.kill();
        let first = store.get("/x").await.unwrap_err();
        assert!(first.is_unavailable(), "{first:?}");
        let began = Instant::now();
        let err = store
            .put("/x", b"1".to_vec(), Precondition::Any)
            .await
            .unwrap_err();
        assert!(
            began.elapsed() < Duration::from_millis(100),
            "took {:?}",
            began.elapsed()
        );
        match &err {
            StoreError::Unavailable { endpoints, .. } => {
                assert_eq!(endpoints, &[bed.etcd.endpoint()])
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("127.0.0.1:2379"), "{err}");
        bed.etcd.start_again(&bed.netns).unwrap();
        put_eventually(&store, "/x", "1").await;
        assert_eq!(store.get("/x").await.unwrap().unwrap().value, b"1");
    });
}

#[test]
fn the_embedded_store_keeps_keys_leases_and_history_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, last, lease) = runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let first = store
            .put("/p/a", b"1".to_vec(), Precondition::Absent)
            .await
            .unwrap();
        store
            .put("/p/b", b"2".to_vec(), Precondition::Absent)
            .await
            .unwrap();
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let last = store
            .put_with_lease("/p/node", b"n".to_vec(), Precondition::Absent, lease)
            .await
            .unwrap();
        (first, last, lease)
    });
    drop(runtime);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let listing = store.list("/p/").await.unwrap();
        assert_eq!(listing.revision, last);
        assert_eq!(listing.items.len(), 3);
        assert_eq!(listing.items[2].lease, Some(lease));
        store.keep_alive(lease).await.unwrap();
        let mut watch = store.watch("/p/", first);
        for expected in [
            put("/p/a", "1", first),
            put("/p/b", "2", first + 1),
            put("/p/node", "n", last),
        ] {
            assert_eq!(next(&mut watch).await, WatchEvent::Change(expected));
        }
        let next_revision = store
            .put("/p/c", b"3".to_vec(), Precondition::Absent)
            .await
            .unwrap();
        assert_eq!(
            next_revision,
            last + 1,
            "revisions continue where they were"
        );
        assert_eq!(
            next(&mut watch).await,
            WatchEvent::Change(put("/p/c", "3", last + 1))
        );
    });
}

#[test]
fn an_embedded_watcher_that_falls_behind_the_broadcast_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = EmbeddedStore::open(dir.path()).await.unwrap();
            let mut watch = store.watch("/lag/", 1);
            // Far more commits than the in-process broadcast buffers, none read yet.
            let mut expected = Vec::new();
            for i in 0..1500 {
                let key = format!("/lag/{}", i % 10);
                let revision = store
                    .put(&key, i.to_string().into_bytes(), Precondition::Any)
                    .await
                    .unwrap();
                expected.push(put(&key, &i.to_string(), revision));
            }
            let mut seen = Vec::new();
            while seen.len() < expected.len() {
                match next(&mut watch).await {
                    WatchEvent::Change(event) => seen.push(event),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(seen, expected);
        });
}

//! Runs one test body against each backend: the embedded store in a temp dir, and the
//! etcd store against a real etcd in a network namespace of its own (on its loopback).

use membrane_state::{EmbeddedStore, EtcdStore, Store};
use membrane_testbed::{Etcd, Netns, wiring};
use std::future::Future;
use std::sync::Arc;

/// A real etcd in a fresh namespace: the test body runs inside that namespace.
pub struct EtcdBed {
    pub netns: Netns,
    pub etcd: Etcd,
}

impl EtcdBed {
    pub fn start() -> EtcdBed {
        let netns = Netns::create("etcd").unwrap();
        wiring::loopback_up(&netns).unwrap();
        let etcd = Etcd::start(&netns, "127.0.0.1".parse().unwrap()).unwrap();
        EtcdBed { netns, etcd }
    }

    /// Runs `body` inside the namespace on a runtime of its own.
    pub fn run<F, Fut>(&self, body: F)
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = ()>,
    {
        self.netns.block_on(body).unwrap()
    }

    /// A new client of this etcd (call inside [`EtcdBed::run`]).
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(&[self.etcd.endpoint()]).await.unwrap()
    }
}

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
    let bed = EtcdBed::start();
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
            $(#[test] fn $name() { $crate::bed::on_embedded(super::$name) })*
        }
        mod etcd {
            $(#[test] fn $name() { $crate::bed::on_etcd(super::$name) })*
        }
    };
}

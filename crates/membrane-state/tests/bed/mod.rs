//! A real etcd in a network namespace of its own, on its loopback, for the tests.

use membrane_state::EtcdStore;
use membrane_testbed::{Etcd, Netns, wiring};
use std::future::Future;

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

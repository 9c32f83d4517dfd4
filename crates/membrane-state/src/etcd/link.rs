//! Whether etcd is reachable: calls fail fast while it is not, and one probe task per
//! outage retries with exponential backoff and jitter until it answers again.

use crate::backoff::Backoff;
use crate::error::StoreError;
use etcd_client::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long one request may take before etcd counts as unreachable.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The connection to etcd and what is known of its reachability.
pub(super) struct Link {
    pub client: Client,
    pub endpoints: Vec<String>,
    /// `Some(reason)` while etcd is unreachable.
    down: Mutex<Option<String>>,
    /// True while a probe task runs.
    probing: AtomicBool,
}

impl Link {
    pub fn new(client: Client, endpoints: Vec<String>) -> Link {
        Link {
            client,
            endpoints,
            down: Mutex::new(None),
            probing: AtomicBool::new(false),
        }
    }

    /// [`StoreError::Unavailable`] with `reason`.
    pub fn unavailable(&self, reason: String) -> StoreError {
        StoreError::Unavailable {
            endpoints: self.endpoints.clone(),
            reason,
        }
    }

    /// The error to fail fast with while etcd is known to be unreachable.
    pub fn fail_fast(&self) -> Option<StoreError> {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.as_ref()
            .map(|reason| self.unavailable(format!("{reason} (retrying in the background)")))
    }

    /// Records that etcd did not answer, and starts a probe unless one runs.
    pub fn mark_down(self: &Arc<Self>, reason: String) {
        {
            let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
            if down.is_none() {
                tracing::warn!(endpoints = %self.endpoints.join(","), %reason, "etcd is unreachable; retrying with backoff");
            }
            *down = Some(reason);
        }
        if !self.probing.swap(true, Ordering::SeqCst) {
            tokio::spawn(probe(Arc::downgrade(self)));
        }
    }

    fn mark_up(&self) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.take().is_some() {
            tracing::info!(endpoints = %self.endpoints.join(","), "etcd is reachable again");
        }
    }

    /// Asks etcd for its status once, bypassing the fail-fast state.
    pub async fn ping(&self) -> Result<(), String> {
        let mut client = self.client.clone();
        match tokio::time::timeout(REQUEST_TIMEOUT, client.status()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }
}

/// Probes etcd with backoff until it answers, then lets calls through again.
async fn probe(link: Weak<Link>) {
    let mut backoff = Backoff::new();
    loop {
        tokio::time::sleep(backoff.next_delay()).await;
        let Some(link) = link.upgrade() else { return };
        match link.ping().await {
            Ok(()) => {
                link.probing.store(false, Ordering::SeqCst);
                link.mark_up();
                return;
            }
            Err(reason) => {
                tracing::debug!(%reason, "etcd probe failed");
                *link.down.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            }
        }
    }
}

/// True when `error` means etcd could not be reached (as opposed to a refusal).
pub(super) fn is_unreachable(error: &etcd_client::Error) -> bool {
    use tonic::Code;
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        ),
        etcd_client::Error::WatchError(_) | etcd_client::Error::LeaseKeepAliveError(_) => true,
        _ => false,
    }
}

/// The message of a gRPC refusal, to recognise etcd's own errors by their fixed text.
pub(super) fn refusal(error: &etcd_client::Error) -> &str {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.message(),
        _ => "",
    }
}

//! The background renewal of a writer's lease. A [`LeaseKeeper`] renews one file's lease at
//! the interval the namenode asked for, from its own task, until it is dropped; a renewal the
//! namenode refuses (the lease expired and was recovered by another writer) is kept so the
//! writer's next call reports it instead of writing on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor_proto::namenode::ErrorCode;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::Error;

/// Renewal interval when the namenode does not say.
const DEFAULT_RENEW: Duration = Duration::from_secs(20);
/// Renew at least this often, whatever the namenode says (guards against a zero).
const MIN_RENEW: Duration = Duration::from_millis(200);

/// Renews one lease until dropped.
pub struct LeaseKeeper {
    task: JoinHandle<()>,
    lost: Arc<Mutex<Option<Error>>>,
}

impl LeaseKeeper {
    pub fn start(client: Client, ino: u64, lease: Vec<u8>, renew_ms: u64) -> LeaseKeeper {
        let every = if renew_ms == 0 {
            DEFAULT_RENEW
        } else {
            Duration::from_millis(renew_ms).max(MIN_RENEW)
        };
        let lost = Arc::new(Mutex::new(None));
        let slot = lost.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match client.renew_leases(vec![ino], vec![lease.clone()]).await {
                    Ok(()) => {}
                    Err(e) if matches!(e.code, ErrorCode::LeaseExpired | ErrorCode::NotFound) => {
                        tracing::warn!(ino, error = %e, "lease lost");
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return;
                    }
                    // A namenode that cannot answer now may later; the lease has slack.
                    Err(e) => tracing::debug!(ino, error = %e, "lease renewal failed; retrying"),
                }
            }
        });
        LeaseKeeper { task, lost }
    }

    /// The error that ended the lease, if the namenode refused a renewal.
    pub fn lost(&self) -> Option<Error> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

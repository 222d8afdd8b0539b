//! Leadership among the namenodes: a lease row `meta(leader)` (LeaseRecord) that one namenode
//! takes or renews by a transaction every ~1 s, for ~5 s. Any namenode may take the row once
//! it has expired. A namenode counts itself leader only until its lease would lapse by its own
//! monotonic clock (a margin short of the expiry), even when it cannot reach shard 0, so two
//! namenodes never both act as leader for long. The leader runs the background work (the
//! recursive-delete deleter, the retry-record sweep).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_proto::records::LeaseRecord;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::attrs;
use crate::error::NnError;
use crate::keys;
use crate::txn::{Store, Txn, TxnError};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub renew_every: Duration,
    pub lease: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            renew_every: Duration::from_secs(1),
            lease: Duration::from_secs(5),
        }
    }
}

/// The current lease, if any row exists.
pub async fn current<S: Store>(store: &S) -> Result<Option<LeaseRecord>, NnError> {
    let mut txn = store.begin();
    let row = txn.get(&[keys::meta(keys::META_LEADER)], false).await?;
    if !row[0].exists() {
        return Ok(None);
    }
    Ok(Some(LeaseRecord::decode(row[0].value.as_slice())?))
}

/// Takes or renews the lease for `holder`; `Ok(false)` when another holder's lease is live.
pub async fn try_acquire<S: Store>(
    store: &S,
    holder: &[u8],
    addr: &str,
    lease: Duration,
) -> Result<bool, NnError> {
    let mut txn = store.begin();
    txn.set_label("leader");
    let key = keys::meta(keys::META_LEADER);
    let row = txn.get(std::slice::from_ref(&key), true).await?;
    let now = attrs::now_ns();
    if row[0].exists() {
        let cur = LeaseRecord::decode(row[0].value.as_slice())?;
        if cur.holder != holder && cur.expires_ns > now {
            return Ok(false);
        }
    }
    let record = LeaseRecord {
        holder: holder.to_vec(),
        expires_ns: now.saturating_add(lease.as_nanos().min(i64::MAX as u128) as i64),
        holder_addr: addr.to_string(),
    };
    txn.put(key, record.encode_to_vec());
    match txn.commit().await {
        Ok(()) => Ok(true),
        Err(TxnError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Gives the lease up (when shutting down), so another namenode takes over at once.
pub async fn release<S: Store>(store: &S, holder: &[u8]) -> Result<(), NnError> {
    let mut txn = store.begin();
    txn.set_label("leader");
    let key = keys::meta(keys::META_LEADER);
    let row = txn.get(std::slice::from_ref(&key), true).await?;
    if !row[0].exists() {
        return Ok(());
    }
    let mut cur = LeaseRecord::decode(row[0].value.as_slice())?;
    if cur.holder != holder {
        return Ok(());
    }
    cur.expires_ns = 0;
    txn.put(key, cur.encode_to_vec());
    match txn.commit().await {
        Ok(()) | Err(TxnError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs `pass` once every `every` while this namenode leads (`leader` says so), until `stop`
/// turns true: the shape of every background duty of the leader.
pub async fn every_while_leading<F, Fut>(
    every: Duration,
    leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if *leader.borrow() {
            pass().await;
        }
    }
}

/// Runs the lease loop until `stop` turns true; the receiver says "I am leader".
pub fn spawn<S: Store>(
    store: Arc<S>,
    holder: Vec<u8>,
    addr: String,
    config: LeaseConfig,
    mut stop: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(async move {
        // Stop acting a fifth of the lease before it lapses, against clock drift.
        let margin = config.lease / 5;
        let mut valid_until: Option<Instant> = None;
        loop {
            let started = Instant::now();
            match try_acquire(&*store, &holder, &addr, config.lease).await {
                Ok(true) => valid_until = Some(started + config.lease - margin),
                Ok(false) => valid_until = None,
                Err(e) => tracing::warn!(error = %e, "leader lease renewal failed"),
            }
            let leader = valid_until.is_some_and(|t| Instant::now() < t);
            tx.send_if_modified(|was| {
                if *was != leader {
                    tracing::info!(leader, "leadership changed");
                    *was = leader;
                    true
                } else {
                    false
                }
            });
            let mut next = config.renew_every;
            if let Some(t) = valid_until {
                next = next.min(t.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
        if valid_until.is_some() {
            let _ = tx.send(false);
            if let Err(e) = release(&*store, &holder).await {
                tracing::debug!(error = %e, "could not release the leader lease");
            }
        }
    });
    (rx, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStore;

    #[tokio::test]
    async fn one_holder_at_a_time_until_expiry() {
        let s = MemStore::new(2, 8);
        let long = Duration::from_secs(5);
        assert!(try_acquire(&s, b"a", "x:1", long).await.unwrap());
        assert!(!try_acquire(&s, b"b", "x:2", long).await.unwrap());
        // Renewed with a short lease, which then runs out.
        let short = Duration::from_millis(100);
        assert!(
            try_acquire(&s, b"a", "x:1", short).await.unwrap(),
            "renewal"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            try_acquire(&s, b"b", "x:2", long).await.unwrap(),
            "expired lease"
        );
        assert!(!try_acquire(&s, b"a", "x:1", long).await.unwrap());
        assert_eq!(current(&s).await.unwrap().unwrap().holder, b"b");
        release(&s, b"b").await.unwrap();
        assert!(
            try_acquire(&s, b"a", "x:1", long).await.unwrap(),
            "released lease"
        );
    }

    #[tokio::test]
    async fn spawned_loops_never_both_lead() {
        let s = Arc::new(MemStore::new(2, 8));
        let (stop_tx, stop_rx) = watch::channel(false);
        let config = LeaseConfig {
            renew_every: Duration::from_millis(20),
            lease: Duration::from_secs(2),
        };
        let (a, ha) = spawn(
            s.clone(),
            b"a".to_vec(),
            "a".into(),
            config.clone(),
            stop_rx.clone(),
        );
        let (b, hb) = spawn(s.clone(), b"b".to_vec(), "b".into(), config, stop_rx);
        let mut led = 0;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (x, y) = (*a.borrow(), *b.borrow());
            assert!(!(x && y), "two leaders at once");
            led += usize::from(x || y);
        }
        assert!(led > 0, "someone leads");
        let holder = current(&*s).await.unwrap().unwrap().holder;
        stop_tx.send(true).unwrap();
        ha.await.unwrap();
        hb.await.unwrap();
        assert!(!*a.borrow() && !*b.borrow());
        // The leader gave its lease up on the way out.
        let after = current(&*s).await.unwrap().unwrap();
        assert_eq!(after.holder, holder);
        assert_eq!(after.expires_ns, 0);
    }
}

//! Coalescing of concurrent calls to one shard. Every namespace operation reads its whole path
//! in one round, so concurrent operations keep asking the same shards for overlapping rows
//! (the root's inode, the same directories' dentries), and creates in one directory all
//! commit on the shard that holds it. Per shard client and kind of call (reads, single-shard
//! commits) a [`Lane`] lets [`MAX_IN_FLIGHT`] calls run at once; a call that finds the lane
//! busy waits in its queue, and the queue leaves as one call (one Get with each key asked
//! once, or one CommitMany) when a call comes back. Under load this turns many small calls,
//! whose cost is almost all gRPC and HTTP/2 framing on both sides, into few larger ones.
//!
//! Invariants:
//! - A call alone is sent at once by its own task: no added latency, no task switch.
//! - A queued call is always sent: the slot of a finished, cancelled or slow call passes to a
//!   task that sends the queue.
//! - A slow call (one that waits on the shard, e.g. a read behind a prepared transaction)
//!   gives its slot back after [`SLOW`], so it delays the lane by at most that much.
//! - Every waiter gets exactly its own answer, or the batch's transport error. Reads are
//!   read-committed snapshots and each commit in a CommitMany is validated on its own, so
//!   sharing a call changes nothing a caller could observe.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

/// Calls of one kind one shard client runs at once; more callers queue and are coalesced.
pub const MAX_IN_FLIGHT: usize = 1;

/// After this long a call no longer holds up its lane.
pub const SLOW: Duration = Duration::from_millis(20);

/// A kind of call that can be coalesced.
pub trait Kind: Sized + Send + Sync + 'static {
    /// What sends the calls (a shard client): cheap to clone, owns the lane.
    type Client: Clone + Send + Sync + 'static;
    type Item: Send + 'static;
    type Answer: Send + 'static;
    /// How much of a batch's budget an item uses.
    fn weight(item: &Self::Item) -> usize;
    /// Budget of one batch (a batch holds at least one item whatever its weight).
    const BUDGET: usize;
    fn lane(client: &Self::Client) -> &Lane<Self>;
    /// Sends one item as it is.
    fn one(client: &Self::Client, item: Self::Item) -> impl Future<Output = Self::Answer> + Send;
    /// Sends several items as one call; one answer per item, in order.
    fn many(
        client: &Self::Client,
        items: Vec<Self::Item>,
    ) -> impl Future<Output = Vec<Self::Answer>> + Send;
    /// What a waiter whose batch vanished is told.
    fn dropped(client: &Self::Client) -> Self::Answer;
}

struct Waiter<K: Kind> {
    item: K::Item,
    tx: oneshot::Sender<K::Answer>,
}

struct Queue<K: Kind> {
    in_flight: usize,
    waiting: Vec<Waiter<K>>,
}

/// The queue of one kind of call to one shard.
pub struct Lane<K: Kind> {
    queue: Mutex<Queue<K>>,
    /// Calls sent, and items they carried.
    calls: AtomicU64,
    items: AtomicU64,
}

impl<K: Kind> Default for Lane<K> {
    fn default() -> Self {
        Lane {
            queue: Mutex::new(Queue {
                in_flight: 0,
                waiting: Vec::new(),
            }),
            calls: AtomicU64::new(0),
            items: AtomicU64::new(0),
        }
    }
}

impl<K: Kind> std::fmt::Debug for Lane<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").finish_non_exhaustive()
    }
}

impl<K: Kind> Lane<K> {
    /// (calls sent, items they carried) so far.
    pub fn sent(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
        )
    }

    fn count(&self, items: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<K>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `item`, or queues it and returns the receiver of its answer.
    fn enter(&self, item: K::Item) -> Result<K::Item, oneshot::Receiver<K::Answer>> {
        let mut q = self.lock();
        if q.in_flight < MAX_IN_FLIGHT {
            q.in_flight += 1;
            return Ok(item);
        }
        let (tx, rx) = oneshot::channel();
        q.waiting.push(Waiter { item, tx });
        Err(rx)
    }

    /// The next batch for a slot being given back (the slot stays taken), or `None` after
    /// freeing it.
    fn hand_over(&self) -> Option<Vec<Waiter<K>>> {
        let mut q = self.lock();
        if q.waiting.is_empty() {
            q.in_flight -= 1;
            return None;
        }
        let mut total = 0;
        let mut take = 0;
        for w in &q.waiting {
            let weight = K::weight(&w.item);
            if take > 0 && total + weight > K::BUDGET {
                break;
            }
            total += weight;
            take += 1;
        }
        Some(q.waiting.drain(..take).collect())
    }
}

/// Sends `item` to `client`'s shard, coalesced with concurrent calls of its kind.
pub async fn call<K: Kind>(client: &K::Client, item: K::Item) -> K::Answer {
    match K::lane(client).enter(item) {
        Ok(item) => {
            K::lane(client).count(1);
            in_slot::<K, _>(client, K::one(client, item)).await
        }
        Err(rx) => match rx.await {
            Ok(answer) => answer,
            Err(_) => K::dropped(client),
        },
    }
}

/// A taken slot: given back (to the next batch, if any) when dropped.
struct Slot<K: Kind> {
    client: K::Client,
    _kind: std::marker::PhantomData<K>,
}

impl<K: Kind> Drop for Slot<K> {
    fn drop(&mut self) {
        if let Some(batch) = K::lane(&self.client).hand_over() {
            tokio::spawn(send_batch::<K>(self.client.clone(), batch));
        }
    }
}

/// Runs `call` holding a slot, giving the slot back when it ends or after [`SLOW`].
async fn in_slot<K: Kind, F: Future>(client: &K::Client, call: F) -> F::Output {
    let slot = Slot::<K> {
        client: client.clone(),
        _kind: std::marker::PhantomData,
    };
    tokio::pin!(call);
    let out = tokio::select! {
        out = &mut call => Some(out),
        _ = tokio::time::sleep(SLOW) => None,
    };
    drop(slot);
    match out {
        Some(out) => out,
        None => call.await,
    }
}

async fn send_batch<K: Kind>(client: K::Client, batch: Vec<Waiter<K>>) {
    let (items, txs): (Vec<K::Item>, Vec<oneshot::Sender<K::Answer>>) =
        batch.into_iter().map(|w| (w.item, w.tx)).unzip();
    K::lane(&client).count(items.len());
    let answers = if items.len() == 1 {
        let item = items.into_iter().next().map(|i| K::one(&client, i));
        match item {
            Some(fut) => vec![in_slot::<K, _>(&client, fut).await],
            None => Vec::new(),
        }
    } else {
        in_slot::<K, _>(&client, K::many(&client, items)).await
    };
    for (tx, answer) in txs.into_iter().zip(answers) {
        // A waiter that gave up has dropped its receiver; nothing to tell it.
        let _ = tx.send(answer);
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;

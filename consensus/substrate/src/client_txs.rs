//! Which transactions this node received from a client.
//!
//! The issue's proposal rule is "a transaction is proposed by the validator that received it from
//! a client" (so a client's nearest validator orders it, with no detour through a leader or a
//! partition owner), "and by its sender's partition owner if still pending after a delay". The
//! pool cannot tell an RPC submission from a gossiped one (both are `External`), so the node hands
//! RPC a [`ClientTrackingPool`]: the pool itself, plus a record of every transaction submitted
//! through it. The network keeps the bare pool, so gossip is not recorded. The engine asks
//! [`ClientSubmissions::contains`].
//!
//! The wrapper also tells the network when a client's transaction that was a future one (its
//! nonce ahead of the pool) becomes ready. Substrate gossips a transaction at once only when it
//! is ready on import (`sc-transaction-pool` 48, `graph/validated_pool.rs`, `submit_one`: only an
//! `Imported::Ready` hash goes to the import notification sinks; transactions it promotes do
//! not), and otherwise at the transactions protocol's next periodic round, up to 2.9 s later. A
//! client that spreads one sender's nonces over two validators makes every other nonce a
//! future one at its receiver, so each nonce would wait for that round. The import notification
//! stream the node hands to `sc_service::spawn_tasks` (which propagates what it yields) therefore
//! carries these promotions too ([`Awaiting`]).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};

use async_trait::async_trait;
use sc_transaction_pool_api::{
    ChainEvent, ImportNotificationStream, MaintainedTransactionPool, PoolStatus, ReadyTransactions,
    TransactionFor, TransactionPool, TransactionSource, TransactionStatusStreamFor, TxHash,
    TxInvalidityReportMap,
};
use sp_runtime::traits::Block as BlockT;

/// How many client submissions are remembered (oldest forgotten first): bounded memory on
/// RPC nodes that never propose, and far more than a pool holds.
pub const REMEMBERED_SUBMISSIONS: usize = 65_536;

/// The hashes of transactions clients submitted to this node (bounded, oldest forgotten first).
#[derive(Clone, Debug)]
pub struct ClientSubmissions<H> {
    inner: Arc<Mutex<Remembered<H>>>,
    capacity: usize,
}

#[derive(Debug)]
struct Remembered<H> {
    set: BTreeSet<H>,
    order: VecDeque<H>,
}

impl<H: Ord + Clone> Default for ClientSubmissions<H> {
    fn default() -> Self {
        Self::with_capacity(REMEMBERED_SUBMISSIONS)
    }
}

impl<H: Ord + Clone> ClientSubmissions<H> {
    /// Remember at most `capacity` hashes.
    pub fn with_capacity(capacity: usize) -> Self {
        ClientSubmissions {
            inner: Arc::new(Mutex::new(Remembered {
                set: BTreeSet::new(),
                order: VecDeque::new(),
            })),
            capacity: capacity.max(1),
        }
    }

    /// Note that a client submitted `hash` here.
    pub fn record(&self, hash: H) {
        let mut r = self.lock();
        if !r.set.insert(hash.clone()) {
            return;
        }
        r.order.push_back(hash);
        while r.order.len() > self.capacity {
            if let Some(old) = r.order.pop_front() {
                r.set.remove(&old);
            }
        }
    }

    /// Whether a client submitted `hash` here (and it is not yet forgotten).
    pub fn contains(&self, hash: &H) -> bool {
        self.lock().set.contains(hash)
    }

    /// How many hashes are remembered.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered<H>> {
        // Nothing panics while the lock is held, so it cannot be poisoned; recover anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Client transactions awaiting at most this many at once (the oldest are given up first).
pub const MAX_AWAITING: usize = 1_024;
/// How long a client's future transaction is watched for becoming ready: the periodic gossip
/// round and the engine's stuck-future rule take over after that.
pub const AWAITING_FOR: Duration = Duration::from_secs(30);
/// How often the watched transactions are checked.
const PROMOTION_CHECK: Duration = Duration::from_millis(20);
/// The import notification buffer (as Substrate's own).
const NOTIFICATION_BUFFER: usize = 1_024;

/// Client transactions that were not ready when submitted, until they are ready (then they are
/// announced like a ready import) or given up. An RPC client can fill it with nonce gaps; then
/// the oldest entries go first and their transactions wait for the periodic gossip round, as
/// before (RPC is the node operator's to expose).
#[derive(Debug)]
pub struct Awaiting<H> {
    since: BTreeMap<H, Instant>,
}

impl<H: Ord + Clone> Default for Awaiting<H> {
    fn default() -> Self {
        Awaiting {
            since: BTreeMap::new(),
        }
    }
}

impl<H: Ord + Clone> Awaiting<H> {
    /// Watch `hash`, submitted at `now` and not ready. At most [`MAX_AWAITING`] are watched: a
    /// full watch list drops its oldest entry.
    pub fn note(&mut self, hash: H, now: Instant) {
        if self.since.len() >= MAX_AWAITING && !self.since.contains_key(&hash) {
            let oldest = self
                .since
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(h, _)| h.clone());
            if let Some(h) = oldest {
                self.since.remove(&h);
            }
        }
        self.since.insert(hash, now);
    }

    /// The watched transactions that are ready now (no longer watched), in hash order; those
    /// watched longer than [`AWAITING_FOR`] are given up.
    pub fn take_ready(&mut self, is_ready: impl Fn(&H) -> bool, now: Instant) -> Vec<H> {
        let mut ready = vec![];
        self.since.retain(|h, at| {
            if is_ready(h) {
                ready.push(h.clone());
                false
            } else {
                now.saturating_duration_since(*at) < AWAITING_FOR
            }
        });
        ready
    }

    /// How many are watched.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether none is watched.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

/// The transaction pool as RPC sees it: every successful submission is recorded in
/// [`ClientSubmissions`], a submission that is not ready yet is watched until it is and then
/// yielded by the import notification stream; everything else is the wrapped pool.
pub struct ClientTrackingPool<P: TransactionPool> {
    pool: Arc<P>,
    submissions: ClientSubmissions<TxHash<P>>,
    awaiting: Arc<Mutex<Awaiting<TxHash<P>>>>,
}

impl<P: TransactionPool> ClientTrackingPool<P>
where
    TxHash<P>: Ord + Clone,
{
    /// Wrap `pool`; submissions go to `submissions`.
    pub fn new(pool: Arc<P>, submissions: ClientSubmissions<TxHash<P>>) -> Self {
        ClientTrackingPool {
            pool,
            submissions,
            awaiting: Default::default(),
        }
    }

    fn record(&self, hash: TxHash<P>) {
        if self.pool.ready_transaction(&hash).is_none() {
            lock(&self.awaiting).note(hash.clone(), Instant::now());
        }
        self.submissions.record(hash);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while these locks are held; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl<P> TransactionPool for ClientTrackingPool<P>
where
    P: TransactionPool + 'static,
    TxHash<P>: Ord + Clone,
{
    type Block = P::Block;
    type Hash = P::Hash;
    type InPoolTransaction = P::InPoolTransaction;
    type Error = P::Error;

    async fn submit_at(
        &self,
        at: <Self::Block as BlockT>::Hash,
        source: TransactionSource,
        xts: Vec<TransactionFor<Self>>,
    ) -> Result<Vec<Result<TxHash<Self>, Self::Error>>, Self::Error> {
        let results = self.pool.submit_at(at, source, xts).await?;
        for hash in results.iter().flatten() {
            self.record(hash.clone());
        }
        Ok(results)
    }

    async fn submit_one(
        &self,
        at: <Self::Block as BlockT>::Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<TxHash<Self>, Self::Error> {
        let hash = self.pool.submit_one(at, source, xt).await?;
        self.record(hash.clone());
        Ok(hash)
    }

    async fn submit_and_watch(
        &self,
        at: <Self::Block as BlockT>::Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<Pin<Box<TransactionStatusStreamFor<Self>>>, Self::Error> {
        let hash = self.pool.hash_of(&xt);
        let stream = self.pool.submit_and_watch(at, source, xt).await?;
        self.record(hash);
        Ok(stream)
    }

    async fn ready_at(
        &self,
        at: <Self::Block as BlockT>::Hash,
    ) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        self.pool.ready_at(at).await
    }

    fn ready(&self) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        self.pool.ready()
    }

    async fn report_invalid(
        &self,
        at: Option<<Self::Block as BlockT>::Hash>,
        invalid_tx_errors: TxInvalidityReportMap<TxHash<Self>>,
    ) -> Vec<Arc<Self::InPoolTransaction>> {
        self.pool.report_invalid(at, invalid_tx_errors).await
    }

    fn futures(&self) -> Vec<Self::InPoolTransaction> {
        self.pool.futures()
    }

    fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// The wrapped pool's ready imports, and client transactions as they become ready (see the
    /// module docs). Outside a tokio runtime, the wrapped pool's stream alone.
    fn import_notification_stream(&self) -> ImportNotificationStream<TxHash<Self>> {
        let inner = self.pool.import_notification_stream();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return inner;
        };
        let (mut sink, stream) = futures::channel::mpsc::channel(NOTIFICATION_BUFFER);
        let pool = self.pool.clone();
        let awaiting = self.awaiting.clone();
        runtime.spawn(async move {
            let mut inner = inner.fuse();
            let mut check = tokio::time::interval(PROMOTION_CHECK);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let ready = tokio::select! {
                    imported = inner.next() => match imported {
                        Some(hash) => vec![hash],
                        None => return,
                    },
                    _ = check.tick() => {
                        if sink.is_closed() {
                            return;
                        }
                        let mut awaiting = lock(&awaiting);
                        if awaiting.is_empty() {
                            continue;
                        }
                        awaiting.take_ready(|h| pool.ready_transaction(h).is_some(), Instant::now())
                    }
                };
                for hash in ready {
                    if sink.send(hash).await.is_err() {
                        return;
                    }
                }
            }
        });
        stream
    }

    fn on_broadcasted(&self, propagations: HashMap<TxHash<Self>, Vec<String>>) {
        self.pool.on_broadcasted(propagations)
    }

    fn hash_of(&self, xt: &TransactionFor<Self>) -> TxHash<Self> {
        self.pool.hash_of(xt)
    }

    fn ready_transaction(&self, hash: &TxHash<Self>) -> Option<Arc<Self::InPoolTransaction>> {
        self.pool.ready_transaction(hash)
    }

    async fn ready_at_with_timeout(
        &self,
        at: <Self::Block as BlockT>::Hash,
        timeout: std::time::Duration,
    ) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        self.pool.ready_at_with_timeout(at, timeout).await
    }
}

#[async_trait]
impl<P> MaintainedTransactionPool for ClientTrackingPool<P>
where
    P: MaintainedTransactionPool + 'static,
    TxHash<P>: Ord + Clone,
{
    async fn maintain(&self, event: ChainEvent<Self::Block>) {
        self.pool.maintain(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_forgets_oldest_first() {
        let s = ClientSubmissions::with_capacity(3);
        for h in [1u8, 2, 3] {
            s.record(h);
        }
        s.record(2); // already known: no effect on order
        assert!(s.contains(&1) && s.contains(&2) && s.contains(&3));
        s.record(4);
        assert!(!s.contains(&1), "the oldest is forgotten first");
        assert!(s.contains(&2) && s.contains(&3) && s.contains(&4));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn awaiting_yields_what_became_ready_once_and_gives_up_old_ones() {
        let t0 = Instant::now();
        let mut a = Awaiting::default();
        a.note(1u8, t0);
        a.note(2, t0 + Duration::from_secs(1));
        a.note(3, t0 + Duration::from_secs(2));
        let ready: BTreeSet<u8> = [2].into();
        assert_eq!(a.take_ready(|h| ready.contains(h), t0), vec![2]);
        assert_eq!(
            a.take_ready(|h| ready.contains(h), t0),
            Vec::<u8>::new(),
            "yielded once"
        );
        // Transaction 1 has been watched for AWAITING_FOR: given up; 3 is still watched.
        assert!(a.take_ready(|_| false, t0 + AWAITING_FOR).is_empty());
        assert_eq!(a.len(), 1);
        assert_eq!(a.take_ready(|_| true, t0 + AWAITING_FOR), vec![3]);
        assert!(a.is_empty());
    }

    #[test]
    fn awaiting_is_bounded_and_drops_the_oldest() {
        let t0 = Instant::now();
        let mut a = Awaiting::default();
        for i in 0..MAX_AWAITING as u32 + 1 {
            a.note(i, t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(a.len(), MAX_AWAITING);
        assert_eq!(
            a.take_ready(|h| *h == 0, t0),
            Vec::<u32>::new(),
            "the oldest went"
        );
        assert_eq!(a.take_ready(|h| *h == 1, t0), vec![1]);
    }

    #[test]
    fn clones_share_one_record() {
        let s = ClientSubmissions::<u32>::default();
        let t = s.clone();
        t.record(7);
        assert!(s.contains(&7));
        assert!(!s.is_empty());
    }
}

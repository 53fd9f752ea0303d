//! Which transactions this node received from a client.
//!
//! The issue's proposal rule is "a transaction is proposed by the validator that received it from
//! a client" (so a client's nearest validator orders it, with no detour through a leader or a
//! partition owner), "and by its sender's partition owner if still pending after a delay". The
//! pool cannot tell an RPC submission from a gossiped one (both are `External`), so the node hands
//! RPC a [`ClientTrackingPool`]: the pool itself, plus a record of every transaction submitted
//! through it. The network keeps the bare pool, so gossip is not recorded. The engine asks
//! [`ClientSubmissions::contains`].

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
};

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

/// The transaction pool as RPC sees it: every successful submission is recorded in
/// [`ClientSubmissions`], everything else is the wrapped pool.
pub struct ClientTrackingPool<P: TransactionPool> {
    pool: Arc<P>,
    submissions: ClientSubmissions<TxHash<P>>,
}

impl<P: TransactionPool> ClientTrackingPool<P>
where
    TxHash<P>: Ord + Clone,
{
    /// Wrap `pool`; submissions go to `submissions`.
    pub fn new(pool: Arc<P>, submissions: ClientSubmissions<TxHash<P>>) -> Self {
        ClientTrackingPool { pool, submissions }
    }
}

#[async_trait]
impl<P> TransactionPool for ClientTrackingPool<P>
where
    P: TransactionPool,
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
            self.submissions.record(hash.clone());
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
        self.submissions.record(hash.clone());
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
        self.submissions.record(hash);
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

    fn import_notification_stream(&self) -> ImportNotificationStream<TxHash<Self>> {
        self.pool.import_notification_stream()
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
    P: MaintainedTransactionPool,
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
    fn clones_share_one_record() {
        let s = ClientSubmissions::<u32>::default();
        let t = s.clone();
        t.record(7);
        assert!(s.contains(&7));
        assert!(!s.is_empty());
    }
}

//! The transaction pool as RPC and the network see it: one pool, two views.
//!
//! - For RPC ([`PoolView::for_rpc`]): every successful submission is recorded as a client's
//!   ([`ClientSubmissions`]); a client transaction that is not ready yet is watched until it is
//!   ([`Awaiting`]); the import notification stream, which `sc_service::spawn_tasks` gossips at
//!   once, yields client transactions only, paced ([`gossip`]); and submissions are refused while
//!   the backlog is at `--rpc-backlog-limit` ([`door`]).
//! - For the network ([`PoolView::for_network`], handed to `sc_service::build_network`):
//!   transactions peers gossip are imported without being recorded, and `ready`, whose only use
//!   there is the periodic gossip round, yields a bounded, rotating part of the pool.
//!
//! Both views keep a client's transaction from gossip while the engine's gossip hold says so
//! ([`ClientSubmissions::held_from_gossip`]): a leaderless validator's batches carry its clients'
//! transactions to every validator, so gossip would only make their pools validate them again.
//!
//! Everything else is the wrapped pool. The engine itself uses the bare pool.

mod door;
pub mod gossip;
mod held;

use std::{
    collections::{BTreeMap, HashMap},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use sc_transaction_pool_api::{
    error::Error as PoolError, ChainEvent, ImportNotificationStream, InPoolTransaction,
    MaintainedTransactionPool, PoolStatus, ReadyTransactions, TransactionFor, TransactionPool,
    TransactionSource, TransactionStatusStreamFor, TxHash, TxInvalidityReportMap,
};
use sp_runtime::traits::Block as BlockT;

use crate::client_txs::{Awaiting, ClientSubmissions};
use crate::TxClassifier;
use codec::Encode;
use door::Door;
use gossip::{Pace, Round};
use held::{Held, Outbox};

/// How often the watched client transactions are checked for having become ready.
const PROMOTION_CHECK: std::time::Duration = std::time::Duration::from_millis(20);
/// The import notification buffer (as Substrate's own).
const NOTIFICATION_BUFFER: usize = 1_024;
/// Transactions peers gossiped that this process's pool imported, for `bsmr_status`.
static FROM_PEERS: AtomicU64 = AtomicU64::new(0);
/// Client transactions this process gossiped at once (on import, on becoming ready, or when
/// their hold ended before they were ordered), for `bsmr_status`.
static GOSSIPED_AT_ONCE: AtomicU64 = AtomicU64::new(0);

/// Transactions peers gossiped that this process's pool imported (each one a pool validation).
pub fn imported_from_peers() -> u64 {
    FROM_PEERS.load(Ordering::Relaxed)
}

/// Client transactions this process gossiped at once.
pub fn gossiped_at_once() -> u64 {
    GOSSIPED_AT_ONCE.load(Ordering::Relaxed)
}

/// A view of the pool `P` for RPC or for the network (see the module docs).
pub struct PoolView<P: TransactionPool> {
    pool: Arc<P>,
    role: Role<TxHash<P>>,
    /// Who sent a transaction (a spread sender's are not held back from gossip).
    classifier: Arc<dyn TxClassifier>,
}

enum Role<H> {
    Rpc(Rpc<H>),
    Network {
        round: Mutex<Round<H>>,
        submissions: ClientSubmissions<H>,
    },
}

/// The RPC view's state.
struct Rpc<H> {
    submissions: ClientSubmissions<H>,
    awaiting: Arc<Mutex<Awaiting<H>>>,
    submitting: Submitting<H>,
    door: Door,
}

impl<P: TransactionPool> PoolView<P>
where
    TxHash<P>: Ord + Clone,
{
    /// The pool as RPC sees it; client submissions go to `submissions`. While the pool holds
    /// `backlog_limit` ready transactions or more, counting client submissions in progress (0:
    /// no limit), client submissions are refused as the pool refuses them when full
    /// (`ImmediatelyDropped`, RPC error 1016, which clients retry).
    pub fn for_rpc(
        pool: Arc<P>,
        submissions: ClientSubmissions<TxHash<P>>,
        backlog_limit: usize,
        classifier: Arc<dyn TxClassifier>,
    ) -> Self {
        PoolView {
            pool,
            classifier,
            role: Role::Rpc(Rpc {
                submissions,
                awaiting: Default::default(),
                submitting: Default::default(),
                door: Door::new(backlog_limit),
            }),
        }
    }

    /// The pool as the network's transactions protocol sees it; `submissions` are the RPC
    /// view's (their gossip hold applies to the periodic round too).
    pub fn for_network(
        pool: Arc<P>,
        submissions: ClientSubmissions<TxHash<P>>,
        classifier: Arc<dyn TxClassifier>,
    ) -> Self {
        PoolView {
            pool,
            classifier,
            role: Role::Network {
                round: Mutex::new(Round::default()),
                submissions,
            },
        }
    }

    fn rpc(&self) -> Option<&Rpc<TxHash<P>>> {
        match &self.role {
            Role::Rpc(r) => Some(r),
            Role::Network { .. } => None,
        }
    }

    /// A client submission of `hashes` through `submit` (RPC view): refused at the door, or
    /// marked as in progress first (so the import notification the pool sends during the
    /// submission is already a client's), then recorded where `succeeded`. The mark goes when
    /// this future ends or is dropped (a client that disconnects cancels it).
    async fn submitted<T, E: From<PoolError>>(
        &self,
        rpc: &Rpc<TxHash<P>>,
        hashes: Vec<TxHash<P>>,
        submit: impl std::future::Future<Output = Result<T, E>>,
        succeeded: impl Fn(&T, usize) -> bool,
    ) -> Result<T, E> {
        let resubmitted = hashes
            .iter()
            .all(|h| self.pool.ready_transaction(h).is_some());
        let in_flight = rpc.submitting.len();
        if !resubmitted
            && !rpc
                .door
                .admits(in_flight, || self.pool.status().ready, Instant::now())
        {
            return Err(PoolError::ImmediatelyDropped.into());
        }
        let _marked = rpc.submitting.mark(hashes.clone());
        let result = submit.await;
        if let Ok(out) = &result {
            for (i, hash) in hashes.iter().enumerate() {
                if succeeded(out, i) {
                    if self.pool.ready_transaction(hash).is_none() {
                        lock(&rpc.awaiting).note(hash.clone(), Instant::now());
                    }
                    rpc.submissions.record(hash.clone());
                }
            }
        }
        result
    }
}

/// Client submissions in progress (a count per hash: two clients may submit the same one).
struct Submitting<H>(Arc<Mutex<BTreeMap<H, usize>>>);

impl<H> Default for Submitting<H> {
    fn default() -> Self {
        Submitting(Default::default())
    }
}

impl<H> Clone for Submitting<H> {
    fn clone(&self) -> Self {
        Submitting(self.0.clone())
    }
}

/// The mark of one submission in progress; unmarked when dropped.
struct Marked<H: Ord> {
    submitting: Arc<Mutex<BTreeMap<H, usize>>>,
    hashes: Vec<H>,
}

impl<H: Ord> Drop for Marked<H> {
    fn drop(&mut self) {
        let mut m = lock(&self.submitting);
        for h in &self.hashes {
            if let Some(n) = m.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    m.remove(h);
                }
            }
        }
    }
}

impl<H: Ord + Clone> Submitting<H> {
    fn mark(&self, hashes: Vec<H>) -> Marked<H> {
        let mut m = lock(&self.0);
        for h in &hashes {
            *m.entry(h.clone()).or_default() += 1;
        }
        Marked {
            submitting: self.0.clone(),
            hashes,
        }
    }

    fn contains(&self, hash: &H) -> bool {
        lock(&self.0).contains_key(hash)
    }

    fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// Whether `hash` is a client's: being submitted through RPC now, or submitted before.
fn is_clients<H: Ord + Clone>(
    submitting: &Submitting<H>,
    submissions: &ClientSubmissions<H>,
    hash: &H,
) -> bool {
    submitting.contains(hash) || submissions.contains(hash)
}

/// One gossip round's transactions, as the pool's ready iterator type.
struct RoundTransactions<T>(std::vec::IntoIter<T>);

impl<T> Iterator for RoundTransactions<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.0.next()
    }
}

impl<T> ReadyTransactions for RoundTransactions<T> {
    /// The network never reports ready transactions invalid; the pool revalidates them.
    fn report_invalid(&mut self, _tx: &T) {}
}

/// The sender of a pool transaction, as the runtime's classifier reads it.
pub(crate) fn sender_of(
    classifier: &dyn TxClassifier,
    xt: &impl Encode,
) -> Option<bsmr_consensus_core::AccountId> {
    classifier.classify(&xt.encode()).map(|info| info.sender)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while these locks are held; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl<P> TransactionPool for PoolView<P>
where
    P: TransactionPool + 'static,
    P::InPoolTransaction: Send + Sync,
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
        let Some(rpc) = self.rpc() else {
            let out = self.pool.submit_at(at, source, xts).await?;
            let imported = out.iter().filter(|r| r.is_ok()).count();
            FROM_PEERS.fetch_add(imported as u64, Ordering::Relaxed);
            return Ok(out);
        };
        let hashes = xts.iter().map(|xt| self.pool.hash_of(xt)).collect();
        let submit = self.pool.submit_at(at, source, xts);
        self.submitted(rpc, hashes, submit, |out, i| {
            matches!(out.get(i), Some(Ok(_)))
        })
        .await
    }

    async fn submit_one(
        &self,
        at: <Self::Block as BlockT>::Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<TxHash<Self>, Self::Error> {
        let Some(rpc) = self.rpc() else {
            let hash = self.pool.submit_one(at, source, xt).await?;
            FROM_PEERS.fetch_add(1, Ordering::Relaxed);
            return Ok(hash);
        };
        let hash = self.pool.hash_of(&xt);
        let submit = self.pool.submit_one(at, source, xt);
        self.submitted(rpc, vec![hash], submit, |_, _| true).await
    }

    async fn submit_and_watch(
        &self,
        at: <Self::Block as BlockT>::Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<Pin<Box<TransactionStatusStreamFor<Self>>>, Self::Error> {
        let Some(rpc) = self.rpc() else {
            return self.pool.submit_and_watch(at, source, xt).await;
        };
        let hash = self.pool.hash_of(&xt);
        let submit = self.pool.submit_and_watch(at, source, xt);
        self.submitted(rpc, vec![hash], submit, |_, _| true).await
    }

    async fn ready_at(
        &self,
        at: <Self::Block as BlockT>::Hash,
    ) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        self.pool.ready_at(at).await
    }

    /// The wrapped pool's ready transactions; for the network, one periodic gossip round's
    /// (see [`gossip`]).
    fn ready(&self) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        match &self.role {
            Role::Rpc(_) => self.pool.ready(),
            Role::Network { round, submissions } => {
                let now = Instant::now();
                let picked = lock(round).pick(
                    self.pool.ready(),
                    |tx| tx.hash().clone(),
                    |tx| {
                        tx.is_propagable()
                            && !submissions.held_from_gossip(tx.hash(), now, || {
                                sender_of(&*self.classifier, tx.data())
                            })
                    },
                    now,
                );
                Box::new(RoundTransactions(picked.into_iter()))
            }
        }
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

    /// For RPC: the wrapped pool's ready imports of client transactions, and client
    /// transactions as they become ready: a spread sender's at once, others after the gossip
    /// hold if one is set and only if not ordered by then; paced (see [`gossip`]).
    /// `spawn_tasks` gossips what it yields at once. For the network, the wrapped pool's stream.
    fn import_notification_stream(&self) -> ImportNotificationStream<TxHash<Self>> {
        let inner = self.pool.import_notification_stream();
        let Some(rpc) = self.rpc() else {
            return inner;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            log::warn!(
                target: crate::LOG,
                "no tokio runtime: the RPC pool view's import stream is the pool's own, \
                 unfiltered and unpaced"
            );
            return inner;
        };
        let (mut sink, stream) = futures::channel::mpsc::channel(NOTIFICATION_BUFFER);
        let pool = self.pool.clone();
        let awaiting = rpc.awaiting.clone();
        let (submissions, submitting) = (rpc.submissions.clone(), rpc.submitting.clone());
        let classifier = self.classifier.clone();
        runtime.spawn(async move {
            let mut inner = inner.fuse();
            let mut check = tokio::time::interval(PROMOTION_CHECK);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut pace = Pace::default();
            let mut held = Held::new(Instant::now());
            let mut outbox = Outbox::default();
            loop {
                let (fresh, due) = tokio::select! {
                    imported = inner.next() => match imported {
                        Some(hash) if is_clients(&submitting, &submissions, &hash) => {
                            (vec![hash], vec![])
                        }
                        Some(_) => continue,
                        None => return,
                    },
                    _ = check.tick() => {
                        if sink.is_closed() {
                            return;
                        }
                        let now = Instant::now();
                        held.follow(
                            now,
                            submissions.gossip_hold_at(now),
                            |h| !submissions.ordered(h) && pool.ready_transaction(h).is_some(),
                            |h| submissions.hold_end(h, now),
                        );
                        let mut due = vec![];
                        while let Some(hash) = held.pop_due(now) {
                            let Some(tx) = pool.ready_transaction(&hash) else { continue };
                            let sender = || sender_of(&*classifier, tx.data());
                            if !submissions.held_from_gossip(&hash, now, sender) {
                                due.push(hash);
                            } else if !submissions.ordered(&hash) {
                                // The hold grew since it arrived (it follows the time to
                                // order): wait for its new end. An ordered one is dropped; the
                                // periodic round offers it if it is unordered again.
                                match submissions.hold_end(&hash, now) {
                                    Some(end) if end > now => {
                                        held.hold(hash, end, submissions.gossip_hold_at(now));
                                    }
                                    _ => due.push(hash),
                                }
                            }
                        }
                        let mut awaiting = lock(&awaiting);
                        let fresh = if awaiting.is_empty() {
                            vec![]
                        } else {
                            awaiting.take_ready(|h| pool.ready_transaction(h).is_some(), now)
                        };
                        (fresh, due)
                    }
                };
                let now = Instant::now();
                let hold = submissions.gossip_hold_at(now);
                let spread = |hash: &TxHash<P>| {
                    pool.ready_transaction(hash)
                        .and_then(|tx| sender_of(&*classifier, tx.data()))
                        .is_some_and(|sender| submissions.spread(&sender, now))
                };
                let mut left = 0;
                for hash in due {
                    left += usize::from(!outbox.push(hash, true));
                }
                for hash in fresh {
                    let at_once = hold.is_zero() || held.is_full() || spread(&hash);
                    log::trace!(target: "bsmr::gossip", "client transaction {hash:?}: gossiped {}", if at_once { "at once" } else { "after the hold unless ordered" });
                    if at_once {
                        left += usize::from(!outbox.push(hash, false));
                    } else {
                        let end = submissions.hold_end(&hash, now).unwrap_or(now + hold);
                        held.hold(hash, end, hold);
                    }
                }
                if left > 0 {
                    log::debug!(target: "bsmr::gossip", "{left} client transactions left to the periodic gossip round: {} wait for the pace", outbox.len());
                }
                // What the pace allows now; the rest goes at the next tick or import.
                while let Some(hash) =
                    outbox.next(|h| submissions.ordered(h), || pace.take(Instant::now()).is_none())
                {
                    if sink.send(hash).await.is_err() {
                        return;
                    }
                    GOSSIPED_AT_ONCE.fetch_add(1, Ordering::Relaxed);
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
impl<P> MaintainedTransactionPool for PoolView<P>
where
    P: MaintainedTransactionPool + 'static,
    P::InPoolTransaction: Send + Sync,
    TxHash<P>: Ord + Clone,
{
    async fn maintain(&self, event: ChainEvent<Self::Block>) {
        self.pool.maintain(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn a_transaction_is_a_clients_while_submitted_and_after_it_succeeded() {
        let (submitting, submissions) = (Submitting::default(), ClientSubmissions::default());
        let both = submitting.mark(vec![1u8, 2]);
        let second_of_1 = submitting.mark(vec![1]); // a second client submits 1 too
        assert_eq!(submitting.len(), 2, "two hashes in flight");
        assert!(is_clients(&submitting, &submissions, &1));
        assert!(is_clients(&submitting, &submissions, &2));
        assert!(!is_clients(&submitting, &submissions, &3), "a peer's");
        drop(both);
        assert!(
            is_clients(&submitting, &submissions, &1),
            "the other submission of 1 is still in progress"
        );
        assert!(
            !is_clients(&submitting, &submissions, &2),
            "2 failed: not recorded"
        );
        submissions.record(1);
        drop(second_of_1);
        assert!(is_clients(&submitting, &submissions, &1), "1 succeeded");
        assert_eq!(submitting.len(), 0, "nothing left behind");
    }

    #[test]
    fn a_cancelled_submission_leaves_no_mark() {
        let submitting = Submitting::<u8>::default();
        let never_polled = async {
            let _marked = submitting.mark(vec![7]);
            futures::future::pending::<()>().await;
        };
        let mut fut = Box::pin(never_polled);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(submitting.contains(&7), "marked while in progress");
        drop(fut); // the client disconnected
        assert!(!submitting.contains(&7), "unmarked when dropped");
    }
}

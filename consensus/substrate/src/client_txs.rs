//! Which transactions this node received from a client.
//!
//! The issue's proposal rule is "a transaction is proposed by the validator that received it from
//! a client" (so a client's nearest validator orders it, with no detour through a leader or a
//! partition owner), "and by its sender's partition owner if still pending after a delay". The
//! pool cannot tell an RPC submission from a gossiped one (both are `External`), so the node hands
//! RPC a [`PoolView`]: the pool itself, plus a record of every transaction submitted
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
//!
//! # What this node gossips
//! The same wrapper, in its network role ([`PoolView::for_network`]), bounds what Substrate's
//! transactions protocol sends. The protocol (`sc-network-transactions` 0.59) sends one
//! notification per transaction and peer (RFC 56), into a per-peer queue of 2,048
//! notifications; a full queue closes the peer's substream (libp2p) or, with litep2p (the default
//! backend), the whole connection, the bsmr consensus stream with it (litep2p 0.15,
//! `protocol/notification/handle.rs`, `send_sync_notification`; polkadot-sdk issue #12111 names
//! the same warning on Kusama). Two of its habits filled that queue under sustained overload, and
//! every reconnection filled it again at once, so the chain halted:
//! - every ready transaction imported, from a client or from a peer, was relayed at once to every
//!   peer not known to have it. Between validators, which all connect to each other, relaying a
//!   peer's transaction only repeats what its receiver already sent them. In its RPC role the
//!   wrapper's import stream (which `spawn_tasks` gossips at once) now yields only this node's
//!   client transactions; relays wait for the periodic round;
//! - the periodic round (every 2.9 s) offered the whole ready pool to each peer, minus the last
//!   10,240 transactions it knew the peer had: at a backlog of thousands, and to every peer that
//!   had just reconnected, thousands of notifications at once. In the network role `ready` yields
//!   at most [`GOSSIP_ROUND_LIMIT`] transactions per round.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};

use async_trait::async_trait;
use sc_transaction_pool_api::{
    error::Error as PoolError, ChainEvent, ImportNotificationStream, MaintainedTransactionPool,
    PoolStatus, ReadyTransactions, TransactionFor, TransactionPool, TransactionSource,
    TransactionStatusStreamFor, TxHash, TxInvalidityReportMap,
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
/// The most ready transactions one periodic gossip round offers each peer: a quarter of the
/// 2,048 notifications a peer's queue holds, leaving the rest for the client transactions gossiped
/// at once between rounds.
pub const GOSSIP_ROUND_LIMIT: usize = 512;

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

/// The transaction pool as RPC or the network sees it.
///
/// For RPC ([`PoolView::for_rpc`]): every successful submission is recorded in
/// [`ClientSubmissions`], a submission that is not ready yet is watched until it is, and the
/// import notification stream yields client transactions only (as they become ready). For the
/// network ([`PoolView::for_network`]): `ready` is cut to [`GOSSIP_ROUND_LIMIT`] transactions,
/// and transactions peers gossip are not recorded. Everything else is the wrapped pool.
pub struct PoolView<P: TransactionPool> {
    pool: Arc<P>,
    role: Role<TxHash<P>>,
}

enum Role<H> {
    Rpc {
        submissions: ClientSubmissions<H>,
        awaiting: Arc<Mutex<Awaiting<H>>>,
        submitting: Submitting<H>,
        door: Door,
    },
    Network,
}

impl<P: TransactionPool> PoolView<P>
where
    TxHash<P>: Ord + Clone,
{
    /// The pool as RPC sees it; client submissions go to `submissions`. While the pool holds
    /// `backlog_limit` ready transactions or more (0: no limit), client submissions are refused
    /// as the pool refuses them when full (`ImmediatelyDropped`, RPC error 1016, which clients
    /// retry).
    pub fn for_rpc(
        pool: Arc<P>,
        submissions: ClientSubmissions<TxHash<P>>,
        backlog_limit: usize,
    ) -> Self {
        PoolView {
            pool,
            role: Role::Rpc {
                submissions,
                awaiting: Default::default(),
                submitting: Default::default(),
                door: Door::new(backlog_limit),
            },
        }
    }

    /// The pool as the network's transactions protocol sees it.
    pub fn for_network(pool: Arc<P>) -> Self {
        PoolView {
            pool,
            role: Role::Network,
        }
    }

    /// Submit through `submit`, recording what succeeds as a client's (RPC role). The hashes are
    /// marked as being submitted first, so the import notification the pool sends during the
    /// submission is already known as a client's.
    async fn submitted<T, E: From<PoolError>>(
        &self,
        hashes: Vec<TxHash<P>>,
        submit: impl std::future::Future<Output = Result<T, E>>,
        succeeded: impl Fn(&T, usize) -> bool,
    ) -> Result<T, E> {
        let Role::Rpc {
            submissions,
            awaiting,
            submitting,
            door,
        } = &self.role
        else {
            return submit.await;
        };
        if !door.admits(self.pool.status().ready, Instant::now()) {
            return Err(PoolError::ImmediatelyDropped.into());
        }
        submitting.add(&hashes);
        let result = submit.await;
        if let Ok(out) = &result {
            for (i, hash) in hashes.iter().enumerate() {
                if succeeded(out, i) {
                    if self.pool.ready_transaction(hash).is_none() {
                        lock(awaiting).note(hash.clone(), Instant::now());
                    }
                    submissions.record(hash.clone());
                }
            }
        }
        submitting.remove(&hashes);
        result
    }
}

/// How often refusals at the door are logged (with how many there were).
const DOOR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Admission of client transactions: refused while the pool's ready backlog is at the limit, so
/// a validator offered more than the chain finalizes sheds the excess at once, with an error its
/// clients retry, instead of accepting transactions that would wait ever longer (and that other
/// validators' takeover clocks would then propose again).
#[derive(Debug)]
struct Door {
    limit: usize,
    /// Refusals since the last log line, and when that was.
    refused: Mutex<(u64, Option<Instant>)>,
}

impl Door {
    fn new(limit: usize) -> Self {
        Door {
            limit,
            refused: Mutex::new((0, None)),
        }
    }

    /// Whether a client transaction may enter a pool holding `ready` ready transactions.
    fn admits(&self, ready: usize, now: Instant) -> bool {
        if self.limit == 0 || ready < self.limit {
            return true;
        }
        let mut r = lock(&self.refused);
        r.0 += 1;
        if r.1
            .is_none_or(|at| now.saturating_duration_since(at) >= DOOR_LOG_EVERY)
        {
            log::info!(
                target: "bsmr",
                "🚪 refused {} client transaction(s): the pool holds {ready} ready, at least \
                 --rpc-backlog-limit {} (clients get error 1016 and retry)",
                r.0,
                self.limit
            );
            *r = (0, Some(now));
        }
        false
    }
}

/// Client submissions in progress (a count per hash: two clients may submit the same one).
#[derive(Clone, Debug)]
struct Submitting<H>(Arc<Mutex<BTreeMap<H, usize>>>);

impl<H> Default for Submitting<H> {
    fn default() -> Self {
        Submitting(Default::default())
    }
}

impl<H: Ord + Clone> Submitting<H> {
    fn add(&self, hashes: &[H]) {
        let mut m = lock(&self.0);
        for h in hashes {
            *m.entry(h.clone()).or_default() += 1;
        }
    }

    fn remove(&self, hashes: &[H]) {
        let mut m = lock(&self.0);
        for h in hashes {
            if let Some(n) = m.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    m.remove(h);
                }
            }
        }
    }

    fn contains(&self, hash: &H) -> bool {
        lock(&self.0).contains_key(hash)
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

/// At most `left` transactions of a ready iterator (for one gossip round).
struct FirstReady<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for FirstReady<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.inner.next()
    }
}

impl<T> ReadyTransactions for FirstReady<Box<dyn ReadyTransactions<Item = T> + Send>> {
    fn report_invalid(&mut self, tx: &T) {
        self.inner.report_invalid(tx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while these locks are held; recover anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl<P> TransactionPool for PoolView<P>
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
        let hashes = xts.iter().map(|xt| self.pool.hash_of(xt)).collect();
        self.submitted(hashes, self.pool.submit_at(at, source, xts), |out, i| {
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
        let hash = self.pool.hash_of(&xt);
        self.submitted(vec![hash], self.pool.submit_one(at, source, xt), |_, _| {
            true
        })
        .await
    }

    async fn submit_and_watch(
        &self,
        at: <Self::Block as BlockT>::Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<Pin<Box<TransactionStatusStreamFor<Self>>>, Self::Error> {
        let hash = self.pool.hash_of(&xt);
        self.submitted(
            vec![hash],
            self.pool.submit_and_watch(at, source, xt),
            |_, _| true,
        )
        .await
    }

    async fn ready_at(
        &self,
        at: <Self::Block as BlockT>::Hash,
    ) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        self.pool.ready_at(at).await
    }

    /// The wrapped pool's ready transactions; for the network, the first
    /// [`GOSSIP_ROUND_LIMIT`] of them (its only use there is the periodic gossip round).
    fn ready(&self) -> Box<dyn ReadyTransactions<Item = Arc<Self::InPoolTransaction>> + Send> {
        match self.role {
            Role::Rpc { .. } => self.pool.ready(),
            Role::Network => Box::new(FirstReady {
                inner: self.pool.ready(),
                left: GOSSIP_ROUND_LIMIT,
            }),
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
    /// transactions as they become ready (see the module docs); `spawn_tasks` gossips what it
    /// yields at once. Otherwise, and outside a tokio runtime, the wrapped pool's stream.
    fn import_notification_stream(&self) -> ImportNotificationStream<TxHash<Self>> {
        let inner = self.pool.import_notification_stream();
        let Role::Rpc {
            submissions,
            awaiting,
            submitting,
            ..
        } = &self.role
        else {
            return inner;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return inner;
        };
        let (mut sink, stream) = futures::channel::mpsc::channel(NOTIFICATION_BUFFER);
        let pool = self.pool.clone();
        let awaiting = awaiting.clone();
        let (submissions, submitting) = (submissions.clone(), submitting.clone());
        runtime.spawn(async move {
            let mut inner = inner.fuse();
            let mut check = tokio::time::interval(PROMOTION_CHECK);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let ready = tokio::select! {
                    imported = inner.next() => match imported {
                        Some(hash) if is_clients(&submitting, &submissions, &hash) => vec![hash],
                        Some(_) => continue,
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
impl<P> MaintainedTransactionPool for PoolView<P>
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
    fn a_transaction_is_a_clients_while_submitted_and_after_it_succeeded() {
        let (submitting, submissions) = (Submitting::default(), ClientSubmissions::default());
        submitting.add(&[1u8, 2]);
        submitting.add(&[1]); // a second client submits 1 too
        assert!(is_clients(&submitting, &submissions, &1));
        assert!(is_clients(&submitting, &submissions, &2));
        assert!(!is_clients(&submitting, &submissions, &3), "a peer's");
        submitting.remove(&[1, 2]);
        assert!(
            is_clients(&submitting, &submissions, &1),
            "the other submission of 1 is still in progress"
        );
        assert!(
            !is_clients(&submitting, &submissions, &2),
            "2 failed: not recorded"
        );
        submissions.record(1);
        submitting.remove(&[1]);
        assert!(is_clients(&submitting, &submissions, &1), "1 succeeded");
        assert!(lock(&submitting.0).is_empty(), "nothing left behind");
    }

    /// A ready iterator over numbers that records what it is told is invalid.
    struct Numbers(std::ops::Range<u32>, Arc<Mutex<Vec<u32>>>);

    impl Iterator for Numbers {
        type Item = u32;
        fn next(&mut self) -> Option<u32> {
            self.0.next()
        }
    }

    impl ReadyTransactions for Numbers {
        fn report_invalid(&mut self, tx: &u32) {
            lock(&self.1).push(*tx);
        }
    }

    #[test]
    fn a_gossip_round_offers_at_most_the_limit() {
        let invalid = Arc::new(Mutex::new(vec![]));
        let ready: Box<dyn ReadyTransactions<Item = u32> + Send> =
            Box::new(Numbers(0..5_000, invalid.clone()));
        let mut round = FirstReady {
            inner: ready,
            left: GOSSIP_ROUND_LIMIT,
        };
        round.report_invalid(&7);
        assert_eq!(
            *lock(&invalid),
            vec![7],
            "reports reach the pool's iterator"
        );
        let offered: Vec<u32> = round.collect();
        assert_eq!(offered, (0..GOSSIP_ROUND_LIMIT as u32).collect::<Vec<_>>());
        let short: Box<dyn ReadyTransactions<Item = u32> + Send> = Box::new(Numbers(0..3, invalid));
        let round = FirstReady {
            inner: short,
            left: GOSSIP_ROUND_LIMIT,
        };
        assert_eq!(round.count(), 3, "a small pool is offered whole");
    }

    #[test]
    fn the_door_refuses_at_the_backlog_limit_and_not_without_one() {
        let t0 = Instant::now();
        let door = Door::new(100);
        assert!(door.admits(0, t0));
        assert!(door.admits(99, t0));
        assert!(!door.admits(100, t0), "at the limit");
        assert!(!door.admits(5_000, t0));
        assert!(door.admits(99, t0), "open again once the backlog drains");
        let open = Door::new(0);
        assert!(open.admits(usize::MAX, t0), "0: no limit");
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

//! Which transactions this node received from a client.
//!
//! The issue's proposal rule is "a transaction is proposed by the validator that received it from
//! a client" (so a client's nearest validator orders it, with no detour through a leader or a
//! partition owner), "and by its sender's partition owner if still pending after a delay". The
//! pool cannot tell an RPC submission from a gossiped one (both are `External`), so the node hands
//! RPC a [`crate::pool_view::PoolView`] that records every transaction submitted through it here
//! ([`ClientSubmissions`]); the network gets another view of the pool, which records nothing. The
//! engine asks [`ClientSubmissions::contains`].
//!
//! A leaderless validator proposes its clients' transactions itself, and its batch carries them to
//! every validator; gossiping them as well made every other validator's pool validate each one
//! (a runtime call and a signature check per transaction and validator) for nothing. So while a
//! gossip hold is set ([`ClientSubmissions::set_gossip_hold`]), a client's transaction is
//! gossiped only if it is not ordered by the end of the hold (a batch of ours carrying it
//! decided, or a block holding it finished; [`ClientSubmissions::held_from_gossip`]): takeovers
//! (a receiver that fails to propose it, or crashes before its batch is decided) still get it,
//! one hold later. A crash inside the hold loses what was not gossiped (docs/consensus.md,
//! "Gossip a batch carries").
//!
//! The hold stretches with how long this node's clients' transactions lately took until a batch
//! of ours carrying them was decided ([`ClientSubmissions::gossip_hold_at`]): under a load beyond
//! what the chain finalizes every transaction queues here past a fixed hold, and gossiping it
//! then only made every other pool validate what our next batches carry, taking the CPU the
//! queue was waiting for (docs/performance.md, "A gossip hold that follows the queue"). The crash
//! window grows with it, and so does a takeover's start, by at most [`MAX_HOLD_STRETCH`].
//!
//! A sender seen in another member's batch is spread over validators (a client behind a
//! load-balanced RPC address): its next nonce may be waiting in that validator's pool for the
//! one submitted here. Its transactions are gossiped at once, as every Substrate node does
//! ([`ClientSubmissions::note_elsewhere`]): the batch hop (propose, announce, adopt) would cost
//! each nonce a batch interval or more.
//!
//! A client's transaction that was a future one (its nonce ahead of the pool) is watched until
//! it becomes ready ([`Awaiting`]), so the RPC view can gossip it then. Substrate gossips a
//! transaction at once only when it is ready on import (`sc-transaction-pool` 48,
//! `graph/validated_pool.rs`, `submit_one`: only an `Imported::Ready` hash goes to the import
//! notification sinks; transactions it promotes do not), and otherwise at the transactions
//! protocol's next periodic round, up to 2.9 s later. A client that spreads one sender's nonces
//! over two validators makes every other nonce a future one at its receiver, so each nonce would
//! wait for that round.

use bsmr_consensus_core::AccountId;
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// How many client submissions are remembered (oldest forgotten first): bounded memory on
/// RPC nodes that never propose, and far more than a pool holds.
pub const REMEMBERED_SUBMISSIONS: usize = 65_536;

/// A sender seen in another member's batch counts as spread over validators for this long.
pub const SPREAD_FOR: Duration = Duration::from_secs(10);
/// Senders remembered as spread at most (all are forgotten beyond, then seen again).
pub const MAX_SPREAD: usize = 16_384;
/// The gossip hold stretches by at most this much for the time transactions take to be ordered
/// here: it bounds how long a crash may lose a client's transaction that nothing ordered yet.
pub const MAX_HOLD_STRETCH: Duration = Duration::from_secs(10);
/// One transaction's time to order counts as at most this much (a client can make one wait as
/// long as it likes: a nonce gap, or resubmitting one it sent long ago).
const MAX_ORDERING_SAMPLE_MS: u64 = 5_000;
/// Each measured transaction moves the smoothed time to order by this fraction of the
/// difference: a batch of hundreds follows the queue at once, one client's few barely move it.
const ORDERING_WEIGHT: u64 = 64;
/// The stretch is in force only while a batch of ours was decided within this long: an idle
/// node, or one whose batches stopped being decided, holds for the plain hold, and its next
/// measure starts afresh. Under load our batches are decided many times a second.
pub const STRETCH_LAPSES_AFTER: Duration = Duration::from_secs(5);

/// The hashes of transactions clients submitted to this node (bounded, oldest forgotten first),
/// with what gossip needs to know of them.
#[derive(Clone, Debug)]
pub struct ClientSubmissions<H> {
    inner: Arc<Mutex<Remembered<H>>>,
    /// Senders seen in other members' batches, and when last.
    spread: Arc<Mutex<BTreeMap<AccountId, Instant>>>,
    /// The gossip hold in milliseconds (0: gossip at once), shared by every clone.
    hold_ms: Arc<AtomicU64>,
    /// How long our clients' transactions lately took from arrival to the decision of a batch of
    /// ours carrying them (ms, smoothed per transaction; [`Self::mark_decided_at`]), what the
    /// hold stretches by.
    ordering_ms: Arc<AtomicU64>,
    /// When a batch of ours carrying our clients' transactions was last decided: milliseconds
    /// after `epoch`, plus one (0: never). Read without the lock by every gossip check.
    last_decision: Arc<AtomicU64>,
    epoch: Instant,
    capacity: usize,
}

#[derive(Debug)]
struct Remembered<H> {
    by_hash: BTreeMap<H, Submission>,
    order: VecDeque<H>,
}

/// One client submission.
#[derive(Debug)]
struct Submission {
    /// When it was recorded (the start of its gossip hold).
    at: Instant,
    /// Whether it is ordered: a batch of ours carrying it was decided, or a block holding it was
    /// finished (it is never gossiped then).
    ordered: bool,
    /// Whether its time to a decision was measured (only the first time counts).
    measured: bool,
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
                by_hash: BTreeMap::new(),
                order: VecDeque::new(),
            })),
            spread: Default::default(),
            hold_ms: Default::default(),
            ordering_ms: Default::default(),
            last_decision: Default::default(),
            epoch: Instant::now(),
            capacity: capacity.max(1),
        }
    }

    /// Note that a client submitted `hash` here (now).
    pub fn record(&self, hash: H) {
        self.record_at(hash, Instant::now())
    }

    /// Note that a client submitted `hash` here at `at`; a second record changes nothing.
    pub fn record_at(&self, hash: H, at: Instant) {
        let mut r = self.lock();
        if r.by_hash.contains_key(&hash) {
            return;
        }
        let fresh = Submission {
            at,
            ordered: false,
            measured: false,
        };
        r.by_hash.insert(hash.clone(), fresh);
        r.order.push_back(hash);
        while r.order.len() > self.capacity {
            if let Some(old) = r.order.pop_front() {
                r.by_hash.remove(&old);
            }
        }
    }

    /// Whether a client submitted `hash` here (and it is not yet forgotten).
    pub fn contains(&self, hash: &H) -> bool {
        self.lock().by_hash.contains_key(hash)
    }

    /// How long before `now` a client submitted `hash` here, if one did (and it is not yet
    /// forgotten).
    pub fn waited(&self, hash: &H, now: Instant) -> Option<Duration> {
        self.lock()
            .by_hash
            .get(hash)
            .map(|s| now.saturating_duration_since(s.at))
    }

    /// Note that `hashes` are ordered: a block holding them was finished (a hash that is not a
    /// client's is ignored). Not measured: our clients' transactions that only a block orders
    /// were carried by another member's batch, a takeover after our gossip, and their wait
    /// would feed the stretch that delayed them.
    pub fn mark_ordered(&self, hashes: &[H]) {
        self.mark(hashes, None)
    }

    /// Note that a batch of ours carrying `hashes` was decided with its value (now): they are
    /// ordered, and measure the time to order.
    pub fn mark_decided(&self, hashes: &[H]) {
        self.mark_decided_at(hashes, Instant::now())
    }

    /// [`Self::mark_decided`] at `now`. Each transaction measured for the first time moves the
    /// smoothed time to order by 1/[`ORDERING_WEIGHT`] of its wait from arrival to `now`, counted
    /// as at most [`MAX_ORDERING_SAMPLE_MS`].
    pub fn mark_decided_at(&self, hashes: &[H], now: Instant) {
        self.mark(hashes, Some(now))
    }

    /// Marks `hashes` ordered; with `decided_at`, measures those not measured yet (see
    /// [`Self::mark_decided_at`]).
    fn mark(&self, hashes: &[H], decided_at: Option<Instant>) {
        let mut r = self.lock();
        let mut smoothed = self.ordering_ms.load(Ordering::Relaxed);
        // After a lapse the last measure is of another load: the first decision starts afresh.
        let mut lapsed = decided_at.is_some_and(|now| !self.decided_lately(now));
        let mut decided_any = false;
        for hash in hashes {
            let Some(s) = r.by_hash.get_mut(hash) else {
                continue;
            };
            s.ordered = true;
            let Some(now) = decided_at else {
                continue;
            };
            decided_any = true;
            if std::mem::take(&mut lapsed) {
                smoothed = 0;
            }
            if s.measured {
                continue;
            }
            s.measured = true;
            let waited = now.saturating_duration_since(s.at).as_millis();
            let sample = u64::try_from(waited)
                .unwrap_or(u64::MAX)
                .min(MAX_ORDERING_SAMPLE_MS);
            smoothed = (smoothed * (ORDERING_WEIGHT - 1) + sample) / ORDERING_WEIGHT;
        }
        self.ordering_ms.store(smoothed, Ordering::Relaxed);
        if let Some(now) = decided_at.filter(|_| decided_any) {
            let ms = now.saturating_duration_since(self.epoch).as_millis();
            let stamp = u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1;
            self.last_decision.fetch_max(stamp, Ordering::Relaxed);
        }
    }

    /// Note that `hashes` are not ordered after all: a batch of ours carrying them lands in no
    /// block, or the block holding them skipped them. The periodic gossip round may take them
    /// again (their hold has ended, or ends as it would have).
    pub fn mark_unordered(&self, hashes: &[H]) {
        let mut r = self.lock();
        for hash in hashes {
            if let Some(s) = r.by_hash.get_mut(hash) {
                s.ordered = false;
            }
        }
    }

    /// Whether `hash` is ordered (see [`Self::mark_ordered`]).
    pub fn ordered(&self, hash: &H) -> bool {
        self.lock().by_hash.get(hash).is_some_and(|s| s.ordered)
    }

    /// Hold clients' transactions back from gossip for `hold` (zero: gossip them at once). The
    /// engine sets it: a leaderless validator's batches carry its clients' transactions, an RPC
    /// node and the baseline's validators need gossip to reach a proposer.
    pub fn set_gossip_hold(&self, hold: Duration) {
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        self.hold_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a batch of ours was decided within [`STRETCH_LAPSES_AFTER`] before `now`.
    fn decided_lately(&self, now: Instant) -> bool {
        match self.last_decision.load(Ordering::Relaxed) {
            0 => false,
            stamp => {
                let at = self.epoch + Duration::from_millis(stamp - 1);
                now.saturating_duration_since(at) < STRETCH_LAPSES_AFTER
            }
        }
    }

    /// The gossip hold at `now`: the one set, stretched by twice the time our clients'
    /// transactions lately took until a batch of ours carrying them was decided (at most
    /// [`MAX_HOLD_STRETCH`] more), while a batch of ours was decided within
    /// [`STRETCH_LAPSES_AFTER`]; zero if none is set. A transaction that waits here for a batch
    /// of ours is in no other pool; gossiping it sooner only lets a takeover start sooner (its
    /// clock starts when a peer first has it), which matters only if this node never gets it
    /// ordered: it crashes (a takeover then starts up to [`MAX_HOLD_STRETCH`] later), or its
    /// batches stop being decided (the stretch lapses [`STRETCH_LAPSES_AFTER`] after the last).
    pub fn gossip_hold_at(&self, now: Instant) -> Duration {
        let set = self.hold_ms.load(Ordering::Relaxed);
        if set == 0 {
            return Duration::ZERO;
        }
        let set = Duration::from_millis(set);
        if !self.decided_lately(now) {
            return set;
        }
        let ordering = Duration::from_millis(self.ordering_ms.load(Ordering::Relaxed));
        set + (ordering * 2).min(MAX_HOLD_STRETCH)
    }

    /// Whether `hash` must not be gossiped at `now`: a client's transaction, while a hold is
    /// set, whose sender (`sender`, asked only then) is not spread, and that is ordered or whose
    /// hold has not ended. Anything else may be gossiped: a spread sender's transactions always
    /// are, since a later nonce at another validator may be waiting for this one.
    pub fn held_from_gossip(
        &self,
        hash: &H,
        now: Instant,
        sender: impl FnOnce() -> Option<AccountId>,
    ) -> bool {
        let hold = self.gossip_hold_at(now);
        if hold.is_zero() {
            return false;
        }
        let Some((ordered, at)) = self.lock().by_hash.get(hash).map(|s| (s.ordered, s.at)) else {
            return false;
        };
        (ordered || now.saturating_duration_since(at) < hold)
            && !sender().is_some_and(|s| self.spread(&s, now))
    }

    /// When the hold of `hash`, a client's, ends with the hold in force at `now` (None if it is
    /// not a client's, or no hold is set).
    pub fn hold_end(&self, hash: &H, now: Instant) -> Option<Instant> {
        let hold = self.gossip_hold_at(now);
        if hold.is_zero() {
            return None;
        }
        self.lock().by_hash.get(hash).map(|s| s.at + hold)
    }

    /// Note that other members' batches carry transactions of `senders` (at `now`).
    pub fn note_elsewhere(&self, senders: impl IntoIterator<Item = AccountId>, now: Instant) {
        let mut spread = crate::pool_view::lock(&self.spread);
        for s in senders {
            spread.insert(s, now);
        }
        if spread.len() > MAX_SPREAD {
            spread.retain(|_, at| now.saturating_duration_since(*at) < SPREAD_FOR);
            if spread.len() > MAX_SPREAD {
                spread.clear();
            }
        }
    }

    /// Whether `sender` was seen in another member's batch within [`SPREAD_FOR`] of `now`.
    pub fn spread(&self, sender: &AccountId, now: Instant) -> bool {
        crate::pool_view::lock(&self.spread)
            .get(sender)
            .is_some_and(|at| now.saturating_duration_since(*at) < SPREAD_FOR)
    }

    /// How many hashes are remembered.
    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered<H>> {
        crate::pool_view::lock(&self.inner)
    }
}

/// Client transactions awaiting at most this many at once (the oldest are given up first).
pub const MAX_AWAITING: usize = 1_024;
/// How long a client's future transaction is watched for becoming ready: the periodic gossip
/// round and the engine's stuck-future rule take over after that.
pub const AWAITING_FOR: Duration = Duration::from_secs(30);

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
    fn a_hold_keeps_a_clients_transaction_from_gossip_until_it_ends_or_for_good_once_ordered() {
        let t0 = Instant::now();
        let hold = Duration::from_millis(1_000);
        let s = ClientSubmissions::<u32>::default();
        s.record_at(1, t0);
        s.record_at(2, t0);
        let none = || None;
        assert!(
            !s.held_from_gossip(&1, t0, none),
            "no hold set: gossip at once"
        );
        s.clone().set_gossip_hold(hold);
        assert_eq!(s.gossip_hold_at(t0), hold, "clones share the hold");
        assert!(
            s.held_from_gossip(&1, t0 + hold / 2, none),
            "inside the hold"
        );
        assert!(!s.held_from_gossip(&1, t0 + hold, none), "the hold ended");
        let sender = [7u8; 32];
        s.note_elsewhere([sender], t0);
        assert!(
            !s.held_from_gossip(&1, t0 + hold / 2, || Some(sender)),
            "a spread sender's: gossiped at once"
        );
        s.record_at(4, t0 + SPREAD_FOR);
        assert!(
            s.held_from_gossip(&4, t0 + SPREAD_FOR + hold / 2, || Some(sender)),
            "its sender seen elsewhere too long ago: held"
        );
        assert!(!s.ordered(&2));
        s.mark_ordered(&[2, 3]); // 3 is not a client's: nothing to mark
        assert!(s.ordered(&2) && !s.ordered(&3));
        assert!(
            s.held_from_gossip(&2, t0 + hold * 10, none),
            "ordered: never gossiped"
        );
        assert!(
            !s.held_from_gossip(&2, t0 + hold * 5, || Some(sender)),
            "unless its sender is spread"
        );
        assert!(
            !s.held_from_gossip(&3, t0, none),
            "not a client's: gossiped"
        );
        s.mark_unordered(&[2]);
        assert!(
            !s.held_from_gossip(&2, t0 + hold, none) && s.held_from_gossip(&2, t0, none),
            "not ordered after all: held as before, then gossiped"
        );
        s.mark_ordered(&[2]);
        s.set_gossip_hold(Duration::ZERO);
        assert!(
            !s.held_from_gossip(&2, t0, none),
            "no hold: even an ordered one goes"
        );
    }

    #[test]
    fn the_hold_stretches_with_the_time_to_a_decision_up_to_its_cap() {
        let ms = Duration::from_millis;
        let long_ago = Instant::now();
        let t0 = long_ago + ms(100_000);
        let hold = ms(1_000);
        let none = || None;
        let s = ClientSubmissions::<u32>::default();
        s.set_gossip_hold(hold);
        for h in 1..=65 {
            s.record_at(h, t0);
        }
        for h in 66..900 {
            s.record_at(h, long_ago);
        }
        assert_eq!(s.gossip_hold_at(t0), hold, "nothing decided yet");
        s.mark_ordered(&[1]);
        assert_eq!(
            s.gossip_hold_at(t0),
            hold,
            "a finished block orders without measuring (a takeover's wait)"
        );
        // A batch of 64 decided 1.6 s after they arrived: each moves the smoothed time by a
        // 64th of the difference, so it is near 1.6 * (1 - (63/64)^64) s.
        let batch: Vec<u32> = (2..66).collect();
        s.mark_decided_at(&batch, t0 + ms(1_600));
        let stretch = s.gossip_hold_at(t0 + ms(1_600)) - hold;
        assert!(stretch > ms(1_900) && stretch < ms(2_100), "{stretch:?}");
        s.mark_decided_at(&[2, 3, 5_000], t0 + ms(2_000));
        assert_eq!(
            s.gossip_hold_at(t0 + ms(2_000)) - hold,
            stretch,
            "each transaction counts once; others' not at all"
        );
        // One client's transaction held back 100 s (a nonce gap) counts as 5 s, a 64th of it.
        s.mark_decided_at(&[66], t0 + ms(2_000));
        let one = s.gossip_hold_at(t0 + ms(2_000)) - hold - stretch;
        assert!(one > ms(0) && one < ms(200), "{one:?}");
        // A queue of 100 s for hundreds: counted as 5 s each, twice that is the cap.
        let many: Vec<u32> = (67..900).collect();
        let t = t0 + ms(3_000);
        s.mark_decided_at(&many, t);
        let long = s.gossip_hold_at(t);
        assert!(
            long > hold + MAX_HOLD_STRETCH * 9 / 10 && long <= hold + MAX_HOLD_STRETCH,
            "{long:?}"
        );
        let arrived = t - long + ms(500);
        s.record_at(950, arrived);
        assert!(s.held_from_gossip(&950, t, none));
        assert!(!s.held_from_gossip(&950, t + ms(500), none));
        assert_eq!(s.hold_end(&950, t), Some(arrived + long));
        assert_eq!(s.hold_end(&5_000, t), None, "not a client's");
        // A few decided as they arrive move it by a little each.
        let t = t0 + ms(4_000);
        let prompt: Vec<u32> = (2_000..2_010).collect();
        for h in &prompt {
            s.record_at(*h, t);
        }
        s.mark_decided_at(&prompt, t);
        let shorter = s.gossip_hold_at(t);
        assert!(
            shorter < long && shorter > hold + (long - hold) * 8 / 10,
            "{shorter:?}"
        );
        // No batch of ours decided for a while (idle, or stuck): the plain hold, and the next
        // decision measures afresh.
        let idle = t + STRETCH_LAPSES_AFTER;
        assert_eq!(s.gossip_hold_at(idle - ms(1)), shorter);
        assert_eq!(s.gossip_hold_at(idle), hold, "the stretch lapsed");
        s.record_at(951, idle);
        assert!(s.held_from_gossip(&951, idle + hold - ms(1), none));
        assert!(!s.held_from_gossip(&951, idle + hold, none));
        s.record_at(952, idle);
        s.mark_ordered(&[952]);
        s.mark_decided_at(&[99_999], idle);
        assert_eq!(
            s.gossip_hold_at(idle),
            hold,
            "neither a finished block nor a decision of no client's transaction renews it"
        );
        let later: Vec<u32> = (3_000..3_300).collect();
        for h in &later {
            s.record_at(*h, idle + ms(1_000));
        }
        s.mark_decided_at(&later, idle + ms(1_000));
        assert_eq!(
            s.gossip_hold_at(idle + ms(1_000)),
            hold,
            "measured afresh: decided as they arrived"
        );
        s.set_gossip_hold(Duration::ZERO);
        assert_eq!(
            s.gossip_hold_at(idle + ms(1_000)),
            Duration::ZERO,
            "no hold: no stretch either"
        );
        assert_eq!(s.hold_end(&951, idle), None);
    }

    #[test]
    fn clones_share_one_record() {
        let s = ClientSubmissions::<u32>::default();
        let t = s.clone();
        let at = Instant::now();
        t.record_at(7, at);
        assert!(s.contains(&7));
        assert!(!s.is_empty());
        let later = at + Duration::from_millis(1_500);
        assert_eq!(s.waited(&7, later), Some(Duration::from_millis(1_500)));
        assert_eq!(s.waited(&8, later), None, "not a client's");
    }
}

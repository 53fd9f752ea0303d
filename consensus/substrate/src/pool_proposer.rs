//! The transaction proposal policy: which ready pool transactions this validator puts into its
//! next batches, and when (docs/consensus.md, "Transaction pool"). Pure: the engine hands it the
//! ready transactions, the time and what the core and the chain say about its batches; it owns
//! every map of transaction state and returns the batches to give the core.
//!
//! The rules:
//! - leaderless: a transaction submitted to this node is proposed at once; one submitted
//!   elsewhere by its sender's partition owner after `owner_delay_ms`, by anyone after
//!   `anyone_delay_ms`, unless another validator announced it less than `anyone_delay_ms` ago;
//!   both delays grow by twice how long our own clients' transactions lately queued here
//!   (under load the receiver's queue is as long; at most 30 s more);
//!   the leader baseline's primary proposes everything, and another validator only its own
//!   clients' transactions still pending `anyone_delay_ms` after they arrived;
//! - a transaction a block built here included is never proposed again, whoever's it is (the
//!   pool drops it only once it processed the block);
//! - a proposed transaction is not proposed again for `anyone_delay_ms` (once its block is final
//!   and it is still pending, the builder skipped it: it may go again after a short grace);
//! - a sender with a transaction in one of our batches whose block is not finished gets its own
//!   later transactions into a later batch of ours only behind a carried transaction submitted
//!   elsewhere, passed over since our last proposal of that sender (two conflicting batches of
//!   one proposer may be ordered against their proposal order, which would run nonce n+1 before
//!   n: the builder retries within a block and the proposer re-proposes what a block skipped 1 s
//!   after it is final, so this costs latency, never a transaction; a sender whose transactions
//!   all come here gathers them into one batch per block instead, and a sender spread over
//!   validators, whose every other nonce arrives from elsewhere, is not held to one transaction
//!   per block), and each sender's transactions of one pass share one batch;
//! - at most `max_inflight_batches` own batches wait for a decision (Nagle-style batching: under
//!   load transactions gather into fewer, larger batches);
//! - a transaction goes with its sender's earlier ready transactions that are not ours to
//!   propose yet and that we did not propose recently (a client that spreads one sender's transactions over several
//!   validators: our batch with nonce n + 1 also carries n, so whichever copy of n is ordered
//!   first, n + 1 finds it applied; the block builder applies the second copy of n as a no-op
//!   skip).

use crate::config::Mode;
use crate::TxInfo;
use bsmr_consensus_core::{AccountId, CommandId, Membership, Tx, ValidatorId};
use sp_core::H256;
use std::collections::{BTreeMap, BTreeSet};

/// How long after its block is final a skipped own transaction may be proposed again.
const REPROPOSE_GRACE_MS: u64 = 1_000;
/// An own batch counts as undecided for the in-flight limit for at most this long.
const INFLIGHT_HORIZON_MS: u64 = 5_000;
/// How long an own batch's transactions are remembered (commit latency, status).
const OWN_BATCH_MEMORY_MS: u64 = 600_000;
/// Client batches waiting in the core above which no more are cut.
const MAX_PENDING_CORE_BATCHES: usize = 8;
/// At most this much is added to the takeover delays for our own queueing (see `queueing`).
const MAX_QUEUEING_ALLOWANCE_MS: u64 = 30_000;

/// The policy's settings (from the engine configuration).
#[derive(Clone, Debug)]
pub struct ProposerConfig {
    /// Leaderless or the leader baseline.
    pub mode: Mode,
    /// When a sender's partition owner takes over another node's transaction.
    pub owner_delay_ms: u64,
    /// When anyone takes over, and how long a proposed transaction is not proposed again.
    pub anyone_delay_ms: u64,
    /// Transactions per batch at most.
    pub max_batch_txs: usize,
    /// Own undecided batches at most (0 = no limit).
    pub max_inflight_batches: usize,
}

/// What the engine knows when it asks for batches.
pub struct Turn<'a> {
    /// The time.
    pub now: u64,
    /// This validator.
    pub me: ValidatorId,
    /// The validator set.
    pub membership: &'a Membership,
    /// The leader baseline's primary.
    pub primary: ValidatorId,
    /// The last finalized block number.
    pub finalized: u64,
    /// Client batches waiting in the core for a seq.
    pub core_pending: usize,
    /// Whether a client submitted this transaction to this node.
    pub submitted_here: &'a dyn Fn(&H256) -> bool,
}

/// One of this validator's batches, as the core proposed it.
#[derive(Clone, Debug)]
pub struct OwnBatch {
    /// When it was proposed.
    pub at: u64,
    /// Its transactions' hashes.
    pub txs: Vec<H256>,
}

/// The proposal policy's state.
#[derive(Debug)]
pub struct PoolProposer {
    cfg: ProposerConfig,
    /// Each ready transaction: when first seen, and its classification (None: not classifiable,
    /// never proposed). Classified once, not on every pass.
    seen: BTreeMap<H256, (u64, Option<TxInfo>)>,
    /// Transactions in batches other validators announced, and when.
    announced: BTreeMap<H256, u64>,
    /// Transactions we proposed, and when (or when they may go again, minus the delay).
    proposed: BTreeMap<H256, u64>,
    /// Our batches, by id.
    own: BTreeMap<CommandId, OwnBatch>,
    /// Our batches not decided yet, and when proposed.
    undecided: BTreeMap<CommandId, u64>,
    /// Our transactions by the finished block that holds their batch.
    in_block: BTreeMap<u64, Vec<H256>>,
    /// Our proposed transactions whose block is not finished yet, with their sender.
    inflight: BTreeMap<H256, (AccountId, u64)>,
    /// Transactions a block built here included (any proposer's), kept while the pool still
    /// lists them as ready: never proposed again (the pool drops them only once it has
    /// processed the block, which under load takes longer than any delay here).
    done: BTreeSet<H256>,
    /// How long our own clients' transactions have lately waited here before we could propose
    /// them (ms, smoothed over passes). Under load every validator's own transactions queue
    /// behind its in-flight allowance about as long; taking another validator's over before
    /// twice that would only make a copy that the block builder refuses, so the takeover
    /// delays grow by it (at most [`MAX_QUEUEING_ALLOWANCE_MS`], so a Byzantine or crashed
    /// receiver's transactions are still taken over).
    queueing: u64,
    /// What we proposed so far (for `bsmr_status`).
    counts: ProposalCounts,
}

/// Transactions this validator put into its batches since it started, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProposalCounts {
    /// Submitted to this node by a client.
    pub own: u64,
    /// Submitted elsewhere: taken over (partition owner or anyone) or carried with a later
    /// transaction of their sender.
    pub others: u64,
}

impl PoolProposer {
    /// A policy with no history.
    pub fn new(cfg: ProposerConfig) -> Self {
        PoolProposer {
            cfg,
            seen: BTreeMap::new(),
            announced: BTreeMap::new(),
            proposed: BTreeMap::new(),
            own: BTreeMap::new(),
            undecided: BTreeMap::new(),
            in_block: BTreeMap::new(),
            inflight: BTreeMap::new(),
            done: BTreeSet::new(),
            queueing: 0,
            counts: ProposalCounts::default(),
        }
    }

    /// What this validator proposed since it started.
    pub fn counts(&self) -> ProposalCounts {
        self.counts
    }

    /// Another validator announced a batch with these transactions.
    pub fn announced_by_other(&mut self, txs: impl IntoIterator<Item = H256>, now: u64) {
        for h in txs {
            self.announced.entry(h).or_insert(now);
        }
    }

    /// The core proposed our batch `id`; false if it was known already.
    pub fn proposed(&mut self, id: CommandId, txs: Vec<H256>, now: u64) -> bool {
        if self.own.contains_key(&id) {
            return false;
        }
        self.own.insert(id, OwnBatch { at: now, txs });
        self.undecided.insert(id, now);
        true
    }

    /// Command `id` was decided; our batch, if it is one.
    pub fn decided(&mut self, id: &CommandId) -> Option<&OwnBatch> {
        self.undecided.remove(id);
        self.own.get(id)
    }

    /// Block `index` was finished with these of our batches: their senders are free again,
    /// and their transactions may go again once the block is final if still pending.
    pub fn block_finished(&mut self, index: u64, ours: impl IntoIterator<Item = CommandId>) {
        for id in ours {
            if let Some(b) = self.own.get(&id) {
                for h in &b.txs {
                    self.inflight.remove(h);
                }
                self.in_block
                    .entry(index)
                    .or_default()
                    .extend(b.txs.iter().copied());
            }
        }
    }

    /// Block `index` is built and included these: they are done, ours and others'.
    pub fn included(&mut self, index: u64, included: &[H256]) {
        if let Some(list) = self.in_block.get_mut(&index) {
            let included: BTreeSet<&H256> = included.iter().collect();
            list.retain(|h| !included.contains(h));
        }
        self.done.extend(included.iter().copied());
    }

    /// A block was finalized: forget old batches.
    pub fn finalized(&mut self, now: u64) {
        self.own
            .retain(|_, b| now.saturating_sub(b.at) < OWN_BATCH_MEMORY_MS);
    }

    /// A new epoch: the transactions of the old epoch's void batches go again at once.
    pub fn new_epoch(&mut self) {
        self.proposed.clear();
        self.in_block.clear();
        self.inflight.clear();
    }

    /// The sender partition owner of a transaction.
    pub fn partition_owner(m: &Membership, sender: &AccountId) -> ValidatorId {
        let h = sp_crypto_hashing::blake2_256(sender);
        let k = u64::from_le_bytes(h[..8].try_into().expect("8 bytes; qed")) % m.n() as u64;
        m.validators()[k as usize]
    }

    /// The batches to propose now from the ready transactions (hash, encoded bytes on demand),
    /// each classified by `classify`.
    pub fn next_batches<F: Fn() -> Vec<u8>>(
        &mut self,
        ready: impl IntoIterator<Item = (H256, F)>,
        classify: impl Fn(&[u8]) -> Option<TxInfo>,
        turn: &Turn,
    ) -> Vec<Vec<Tx>> {
        let now = turn.now;
        // A decision never seen (a batch adopted with a synced block) must not block for long.
        self.undecided
            .retain(|_, at| now.saturating_sub(*at) < INFLIGHT_HORIZON_MS);
        if !self.may_propose(turn) {
            // The core's queue is full (let it drain), or our in-flight allowance is used (let
            // the transactions gather into the next batch).
            return vec![];
        }
        // Own transactions whose block is final but which are still pending were skipped by
        // the builder: eligible again after a grace period (the pool first drops what the
        // block included).
        while let Some(entry) = self.in_block.first_entry() {
            if *entry.key() > turn.finalized {
                break;
            }
            for h in entry.remove() {
                if let Some(at) = self.proposed.get_mut(&h) {
                    *at = (now + REPROPOSE_GRACE_MS).saturating_sub(self.cfg.anyone_delay_ms);
                }
            }
        }
        let delay = self.cfg.anyone_delay_ms;
        self.inflight.retain(|_, (_, at)| now < *at + delay);
        let busy: BTreeSet<AccountId> = self.inflight.values().map(|(s, _)| *s).collect();
        let mut present = BTreeSet::new();
        let mut in_earlier_batch = BTreeSet::new();
        let mut in_this_batch = BTreeSet::new();
        // Busy senders whose own next transaction waits for their block: nothing more of
        // theirs this pass.
        let mut held = BTreeSet::new();
        // Per sender, the earlier ready transactions this pass passed over (the ready set lists
        // a sender's transactions in nonce order).
        let mut passed_over: BTreeMap<AccountId, Vec<(H256, F, Vec<AccountId>)>> = BTreeMap::new();
        let mut batch: Vec<Tx> = vec![];
        let mut batches = vec![];
        // The longest an own transaction proposed in this pass waited here.
        let mut own_waited = 0;
        for (h, bytes) in ready {
            present.insert(h);
            let (first, info) = self
                .seen
                .entry(h)
                .or_insert_with(|| (now, classify(&bytes())))
                .clone();
            let Some(info) = info else {
                continue;
            };
            if in_earlier_batch.contains(&info.sender) || held.contains(&info.sender) {
                continue;
            }
            // Ours already (maybe in a block the pool has not pruned yet): not carried again,
            // and what was passed over before it is not carried past it (a carried chain is
            // contiguous up to the transaction it goes with).
            if self.proposed.get(&h).is_some_and(|at| now < at + delay) {
                passed_over.remove(&info.sender);
                continue;
            }
            // In a block already (the pool has not dropped it yet): not proposed, whoever's it
            // is and however long it waited, and its sender's earlier ones are not carried.
            if self.done.contains(&h) {
                passed_over.remove(&info.sender);
                continue;
            }
            if !self.proposes(&h, &info.sender, first, turn) {
                let earlier = passed_over.entry(info.sender).or_default();
                if earlier.len() + 1 < self.cfg.max_batch_txs {
                    earlier.push((h, bytes, info.access));
                }
                continue;
            }
            let earlier = passed_over.remove(&info.sender).unwrap_or_default();
            // A busy sender's own transaction goes only behind a carried one (see the rules).
            if busy.contains(&info.sender)
                && earlier.is_empty()
                && !in_this_batch.contains(&info.sender)
            {
                held.insert(info.sender);
                continue;
            }
            // A sender's chain goes whole into one batch: close the current one first if the
            // chain would overflow it (unless the sender is in it already).
            if !batch.is_empty()
                && !in_this_batch.contains(&info.sender)
                && batch.len() + earlier.len() + 1 > self.cfg.max_batch_txs
            {
                batches.push(std::mem::take(&mut batch));
                in_earlier_batch.append(&mut in_this_batch);
            }
            let own = std::iter::once((h, bytes, info.access));
            for (h, bytes, access) in earlier.into_iter().chain(own) {
                if (turn.submitted_here)(&h) {
                    self.counts.own += 1;
                    let first = self.seen.get(&h).map_or(now, |(at, _)| *at);
                    own_waited = own_waited.max(now.saturating_sub(first));
                } else {
                    self.counts.others += 1;
                }
                self.proposed.insert(h, now);
                self.inflight.insert(h, (info.sender, now));
                batch.push(Tx {
                    access,
                    data: bytes(),
                });
            }
            in_this_batch.insert(info.sender);
            if batch.len() >= self.cfg.max_batch_txs {
                batches.push(std::mem::take(&mut batch));
                in_earlier_batch.append(&mut in_this_batch);
            }
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        self.queueing = (3 * self.queueing + own_waited) / 4;
        self.seen.retain(|h, _| present.contains(h));
        // Announcements may precede the transaction's arrival here: keep them while it is
        // pending here, or by age.
        self.announced
            .retain(|h, at| present.contains(h) || now.saturating_sub(*at) < 2 * delay);
        self.proposed.retain(|h, _| present.contains(h));
        self.inflight.retain(|h, _| present.contains(h));
        self.done.retain(|h| present.contains(h));
        batches
    }

    /// Whether a pass now could propose anything: the core's queue of client batches has room
    /// and our undecided batches leave some of the in-flight allowance.
    pub fn may_propose(&self, turn: &Turn) -> bool {
        if turn.core_pending > MAX_PENDING_CORE_BATCHES {
            return false;
        }
        // The baseline's primary proposes every validator's share, so it gets every
        // validator's allowance.
        let allowance = match self.cfg.mode {
            Mode::Leaderless => self.cfg.max_inflight_batches,
            Mode::Leader => self.cfg.max_inflight_batches * turn.membership.n(),
        };
        let undecided = self
            .undecided
            .values()
            .filter(|at| turn.now.saturating_sub(**at) < INFLIGHT_HORIZON_MS)
            .count();
        allowance == 0 || undecided < allowance
    }

    /// Whether this validator proposes transaction `h` of `sender`, first seen at `first`.
    fn proposes(&self, h: &H256, sender: &AccountId, first: u64, turn: &Turn) -> bool {
        let now = turn.now;
        match self.cfg.mode {
            Mode::Leaderless => {
                // Takeovers wait for our own queueing on top of their delays (see `queueing`).
                let waited = now
                    .saturating_sub(first)
                    .saturating_sub(2 * self.queueing.min(MAX_QUEUEING_ALLOWANCE_MS / 2));
                let in_flight = self
                    .announced
                    .get(h)
                    .is_some_and(|at| now < at + self.cfg.anyone_delay_ms);
                (turn.submitted_here)(h)
                    || (!in_flight
                        && ((waited >= self.cfg.owner_delay_ms
                            && Self::partition_owner(turn.membership, sender) == turn.me)
                            || waited >= self.cfg.anyone_delay_ms))
            }
            // The primary proposes everything. Gossip to it is best effort (Substrate's
            // transactions protocol drops what arrives while 8,192 are pending validation, and
            // sends a transaction to a peer once), so a client's transaction no batch has carried
            // `anyone_delay_ms` after it arrived is proposed by the validator it was submitted to.
            // An announcement holds the fallback back for twice the delay only: a Byzantine
            // member's announcement of others' transactions must not hold it back for good.
            Mode::Leader => {
                turn.primary == turn.me
                    || ((turn.submitted_here)(h)
                        && now.saturating_sub(first) >= self.cfg.anyone_delay_ms
                        && self
                            .announced
                            .get(h)
                            .is_none_or(|at| now >= at + 2 * self.cfg.anyone_delay_ms))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: ValidatorId = [1; 32];

    fn members() -> Membership {
        Membership::new([0; 32], 0, (1..=4u8).map(|i| [i; 32]).collect())
    }

    fn cfg(mode: Mode) -> ProposerConfig {
        ProposerConfig {
            mode,
            owner_delay_ms: 2_000,
            anyone_delay_ms: 6_000,
            max_batch_txs: 2,
            max_inflight_batches: 3,
        }
    }

    /// Transaction `n` of sender `s`: its bytes are (s, n); hash from both.
    fn tx(s: u8, n: u8) -> (H256, Vec<u8>) {
        (H256([s * 16 + n; 32]), vec![s, n])
    }

    fn classify(b: &[u8]) -> Option<TxInfo> {
        Some(TxInfo {
            sender: [b[0]; 32],
            access: vec![[b[0]; 32]],
        })
    }

    fn run(
        p: &mut PoolProposer,
        ready: &[(H256, Vec<u8>)],
        now: u64,
        here: &dyn Fn(&H256) -> bool,
    ) -> Vec<Vec<Vec<u8>>> {
        let m = members();
        let turn = Turn {
            now,
            me: ME,
            membership: &m,
            primary: [2; 32],
            finalized: 0,
            core_pending: 0,
            submitted_here: here,
        };
        let ready = ready.iter().map(|(h, b)| (*h, || b.clone()));
        p.next_batches(ready, classify, &turn)
            .into_iter()
            .map(|b| b.into_iter().map(|t| t.data).collect())
            .collect()
    }

    #[test]
    fn own_submissions_go_at_once_one_batch_per_sender_and_never_twice() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let ready = [tx(5, 0), tx(5, 1), tx(6, 0)];
        let batches = run(&mut p, &ready, 0, &|_| true);
        assert_eq!(
            batches,
            vec![vec![vec![5, 0], vec![5, 1]], vec![vec![6, 0]]]
        );
        assert!(
            run(&mut p, &ready, 10, &|_| true).is_empty(),
            "proposed already"
        );
        assert_eq!(p.counts(), ProposalCounts { own: 3, others: 0 });
    }

    #[test]
    fn what_a_built_block_included_is_never_proposed_again() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let here = |h: &H256| *h == tx(5, 0).0 || *h == tx(7, 0).0;
        assert_eq!(run(&mut p, &[tx(5, 0), tx(6, 0)], 0, &here).len(), 1);
        let id = [9; 32];
        p.proposed(id, vec![tx(5, 0).0], 0);
        p.block_finished(1, [id]);
        // Block 1 included ours and another validator's transaction; the pool still lists
        // both as ready long after every delay (taken over, or ours proposed again, before).
        p.included(1, &[tx(5, 0).0, tx(6, 0).0]);
        let ready = [tx(5, 0), tx(6, 0), tx(7, 0)];
        assert_eq!(
            run(&mut p, &ready, 60_000, &here),
            vec![vec![vec![7, 0]]],
            "only the one no block included goes"
        );
        // Once the pool dropped them, nothing of them is kept.
        run(&mut p, &[tx(7, 0)], 60_001, &here);
        assert!(p.done.is_empty());
    }

    #[test]
    fn takeovers_wait_longer_while_our_own_transactions_queue() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let m = members();
        let owned = (6..=255u8)
            .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == ME && *s < 16)
            .expect("some sender from 6 to 15 is ours to take over");
        let here = |h: &H256| *h == tx(5, 0).0 || *h == tx(5, 1).0;
        // Our client's sender 5: nonce 1 waits 10 s for the block of nonce 0.
        run(&mut p, &[tx(5, 0)], 0, &here);
        let id = [9; 32];
        p.proposed(id, vec![tx(5, 0).0], 0);
        assert!(run(&mut p, &[tx(5, 0), tx(5, 1)], 100, &here).is_empty());
        p.block_finished(1, [id]);
        let gossiped = tx(owned, 0);
        assert_eq!(
            run(&mut p, &[tx(5, 1), gossiped.clone()], 10_100, &here),
            vec![vec![vec![5, 1]]]
        );
        // Without queueing, the owner takes over after 2 s; now it waits on.
        assert!(
            run(&mut p, std::slice::from_ref(&gossiped), 12_100, &|_| false).is_empty(),
            "our own transactions queued 10 s: not yet"
        );
        assert_eq!(
            run(&mut p, &[gossiped], 18_100, &|_| false),
            vec![vec![vec![owned, 0]]],
            "the allowance shrinks once ours stop queueing"
        );
    }

    #[test]
    fn a_busy_sender_waits_for_its_block() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let batches = run(&mut p, &[tx(5, 0)], 0, &|_| true);
        assert_eq!(batches.len(), 1);
        let id = [9; 32];
        assert!(p.proposed(id, vec![tx(5, 0).0], 0));
        assert!(!p.proposed(id, vec![], 0), "known");
        let later = [tx(5, 0), tx(5, 1)];
        assert!(
            run(&mut p, &later, 10, &|_| true).is_empty(),
            "sender 5 is busy"
        );
        p.block_finished(1, [id]);
        assert_eq!(run(&mut p, &later, 20, &|_| true), vec![vec![vec![5, 1]]]);
    }

    #[test]
    fn a_busy_sender_spread_over_validators_goes_on_behind_a_carried_transaction() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let here: BTreeSet<H256> = [tx(5, 0).0, tx(5, 2).0, tx(6, 0).0, tx(6, 1).0].into();
        let is_here = |h: &H256| here.contains(h);
        assert_eq!(run(&mut p, &[tx(5, 0), tx(6, 0)], 0, &is_here).len(), 1);
        p.proposed([9; 32], vec![tx(5, 0).0, tx(6, 0).0], 0);
        // Sender 5's nonce 1 came from elsewhere, nonce 2 here: they go at once. Sender 6's
        // nonce 1 came here too: it waits for the block, gathering with later ones.
        let later = [tx(5, 0), tx(5, 1), tx(5, 2), tx(6, 0), tx(6, 1)];
        assert_eq!(
            run(&mut p, &later, 10, &is_here),
            vec![vec![vec![5, 1], vec![5, 2]]]
        );
        // Nothing after a held transaction of a busy sender goes, carried or not.
        let mut q = PoolProposer::new(cfg(Mode::Leaderless));
        let here: BTreeSet<H256> = [tx(7, 0).0, tx(7, 1).0, tx(7, 3).0].into();
        let is_here = |h: &H256| here.contains(h);
        run(&mut q, &[tx(7, 0)], 0, &is_here);
        let chain = [tx(7, 0), tx(7, 1), tx(7, 2), tx(7, 3)];
        assert!(run(&mut q, &chain, 10, &is_here).is_empty(), "7 is held");
    }

    #[test]
    fn a_busy_senders_carried_chain_is_contiguous_and_may_be_long() {
        let mut p = PoolProposer::new(ProposerConfig {
            max_batch_txs: 8,
            ..cfg(Mode::Leaderless)
        });
        // Ours: nonces 2, 5 and 6; 3 and 4 came from elsewhere, 0 and 1 too (not ours yet).
        let here: BTreeSet<H256> = [tx(5, 2).0, tx(5, 5).0, tx(5, 6).0].into();
        let is_here = |h: &H256| here.contains(h);
        assert_eq!(
            run(&mut p, &[tx(5, 0), tx(5, 1), tx(5, 2)], 0, &is_here),
            vec![vec![vec![5, 0], vec![5, 1], vec![5, 2]]]
        );
        // Busy now. Nonces 3 and 4 are carried in front of 5, and 6 follows in the same batch
        // (the sender is in it already).
        let chain: Vec<_> = (0..=6).map(|n| tx(5, n)).collect();
        assert_eq!(
            run(&mut p, &chain, 10, &is_here),
            vec![(3..=6).map(|n| vec![5, n]).collect::<Vec<_>>()]
        );
    }

    #[test]
    fn nothing_passed_over_before_our_own_proposal_is_carried_past_it() {
        let mut p = PoolProposer::new(ProposerConfig {
            max_batch_txs: 8,
            ..cfg(Mode::Leaderless)
        });
        // We proposed nonce 1 (ours); nonce 0 came from elsewhere and is not ours yet.
        let here: BTreeSet<H256> = [tx(5, 1).0, tx(5, 2).0].into();
        let is_here = |h: &H256| here.contains(h);
        run(&mut p, &[tx(5, 1)], 0, &is_here);
        // Nonce 2 arrives: carrying 0 past our 1 would leave a gap; the sender is busy, so 2
        // waits for the block of 1, then goes.
        let chain = [tx(5, 0), tx(5, 1), tx(5, 2)];
        assert!(run(&mut p, &chain, 10, &is_here).is_empty());
        let id = [9; 32];
        p.proposed(id, vec![tx(5, 1).0], 0);
        p.block_finished(1, [id]);
        assert_eq!(run(&mut p, &chain, 20, &is_here), vec![vec![vec![5, 2]]]);
    }

    #[test]
    fn others_submissions_wait_for_their_owner_or_anyone() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let m = members();
        let mine = (0..=255u8)
            .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == ME && *s < 16)
            .expect("some sender below 16 is ours");
        let theirs = (0..16u8)
            .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) != ME)
            .expect("some sender is not ours");
        let ready = [tx(mine, 0), tx(theirs, 0)];
        assert!(run(&mut p, &ready, 0, &|_| false).is_empty());
        assert_eq!(
            run(&mut p, &ready, 2_000, &|_| false),
            vec![vec![vec![mine, 0]]]
        );
        assert_eq!(p.counts(), ProposalCounts { own: 0, others: 1 });
        p.announced_by_other([tx(theirs, 0).0], 3_000);
        assert!(
            run(&mut p, &ready, 6_000, &|_| false).is_empty(),
            "being ordered"
        );
        // Still pending an anyone-delay after its announcement, and ours still pending an
        // anyone-delay after we proposed it: both go.
        assert_eq!(
            run(&mut p, &ready, 9_000, &|_| false),
            vec![vec![vec![mine, 0], vec![theirs, 0]]]
        );
    }

    #[test]
    fn a_sender_spread_over_validators_carries_its_earlier_transactions() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        // Sender 5's nonce 0 was submitted elsewhere and nonce 1 here; sender 6's only
        // transaction elsewhere; sender 7's here.
        let ready = [tx(5, 0), tx(6, 0), tx(5, 1), tx(7, 0)];
        let here: BTreeSet<H256> = [tx(5, 1).0, tx(7, 0).0].into();
        let batches = run(&mut p, &ready, 0, &|h| here.contains(h));
        assert_eq!(
            batches,
            vec![vec![vec![5, 0], vec![5, 1]], vec![vec![7, 0]]],
            "nonce 1 carries nonce 0; sender 6 waits for its owner"
        );
        assert!(
            run(&mut p, &ready, 10, &|h| here.contains(h)).is_empty(),
            "both carried transactions count as proposed"
        );
    }

    #[test]
    fn a_carried_chain_that_would_overflow_the_batch_starts_the_next() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        // Batches of at most 2: sender 7's transaction fills one slot, sender 5's chain of two
        // (nonce 0 elsewhere, nonce 1 here) goes whole into the next batch.
        let ready = [tx(7, 0), tx(5, 0), tx(5, 1)];
        let here: BTreeSet<H256> = [tx(7, 0).0, tx(5, 1).0].into();
        assert_eq!(
            run(&mut p, &ready, 0, &|h| here.contains(h)),
            vec![vec![vec![7, 0]], vec![vec![5, 0], vec![5, 1]]]
        );
    }

    #[test]
    fn the_inflight_limit_lets_transactions_gather() {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        for i in 0..3u8 {
            p.proposed([i; 32], vec![], 0);
        }
        assert!(run(&mut p, &[tx(5, 0)], 0, &|_| true).is_empty());
        p.decided(&[0; 32]);
        assert_eq!(run(&mut p, &[tx(5, 0)], 1, &|_| true).len(), 1);
    }

    #[test]
    fn the_baseline_primary_proposes_everything_and_others_nothing() {
        let mut p = PoolProposer::new(cfg(Mode::Leader));
        assert!(
            run(&mut p, &[tx(5, 0)], 0, &|_| true).is_empty(),
            "not the primary"
        );
        assert!(
            run(&mut p, &[tx(5, 0), tx(6, 0)], 6_000, &|_| false).is_empty(),
            "not submitted here"
        );
        p.announced_by_other([tx(6, 0).0], 5_000);
        assert_eq!(
            run(&mut p, &[tx(5, 0), tx(6, 0)], 6_000, &|_| true),
            vec![vec![vec![5, 0]]],
            "a client's transaction the primary never ordered goes after the delay"
        );
    }
}

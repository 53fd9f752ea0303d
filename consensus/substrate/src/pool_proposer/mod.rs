//! The transaction proposal policy: which ready pool transactions this validator puts into its
//! next batches, and when (docs/consensus.md, "Transaction pool"). Pure: the engine hands it the
//! ready transactions, the time and what the core and the chain say about its batches; it owns
//! every map of transaction state and returns the batches to give the core.
//!
//! The rules:
//! - leaderless: a transaction submitted to this node is proposed at once; one submitted
//!   elsewhere by its sender's partition owner after `owner_delay_ms`, by anyone after
//!   `anyone_delay_ms`, unless another validator announced it in a batch not finished into a
//!   block here yet (at most `UNFINISHED_HOLD_MS`), or finished less than `anyone_delay_ms` ago
//!   (its block is built by then, and what that included is never proposed again), and
//!   unless an earlier transaction of its sender is held so (its receiver holds the later ones
//!   in order, and a takeover would carry that one as a copy);
//!   both delays grow by twice the longest queue a receiver lately showed: how long our own
//!   clients' transactions waited here until the core announced their batch, measured on their
//!   first proposal, or how long another member's clients' transactions waited here until it
//!   announced them (a takeover before that would only make a copy; at most 30 s more, and a
//!   member's measure is below `anyone_delay_ms - owner_delay_ms`);
//!   the leader baseline's primary proposes everything, and another validator only its own
//!   clients' transactions still pending `anyone_delay_ms` after they arrived, plus twice how
//!   long its clients' transactions lately waited for the primary's announcement (the same
//!   allowance, measured where that mode queues them), and held back by an announcement the
//!   same way;
//! - a transaction a block built here included is never proposed again, whoever's it is (the
//!   pool drops it only once it processed the block);
//! - a proposed transaction is not proposed again while the batch holding it has not been
//!   finished into a block (the core proposes again, itself, a batch of ours that lands in no
//!   block: decided Noop, void below a floor, skipped by a rejoin; so a copy from here would only
//!   be refused), at most `UNFINISHED_HOLD_MS` as a safety net, and at least `anyone_delay_ms`;
//!   once finished, until its block is final: if it is still pending then, the builder skipped
//!   it, and it may go again after a short grace;
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
//!   propose yet and that we did not propose recently (a client that spreads one sender's
//!   transactions over several validators: our batch with nonce n + 1 also carries n, so
//!   whichever copy of n is ordered first, n + 1 finds it applied; the block builder applies
//!   the second copy of n as a no-op skip).

use crate::config::Mode;
use crate::TxInfo;
use bsmr_consensus_core::discovery::covered::COVER_HOLD_MS;
use bsmr_consensus_core::{AccountId, CommandId, Membership, ValidatorId};
use sp_core::H256;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How long after its block is final a skipped own transaction may be proposed again.
const REPROPOSE_GRACE_MS: u64 = 1_000;
/// A transaction of ours whose batch is not finished into a block is held at most this long
/// (only a safety net: within an epoch the core proposes again what lands in no block, and a
/// new epoch releases everything).
const UNFINISHED_HOLD_MS: u64 = 30_000;
/// Announced transactions remembered at most: a member's announcements are noted before the
/// core checks them, so their number is bounded here (those holding shortest go first).
const MAX_ANNOUNCED: usize = 65_536;
/// `proposed` for a transaction whose block is finished but not final yet: held until then.
const HELD_UNTIL_FINAL: u64 = u64::MAX;
/// An own batch counts as undecided for the in-flight limit for at most this long.
const INFLIGHT_HORIZON_MS: u64 = 5_000;
/// How long an own batch's transactions are remembered (commit latency, status).
const OWN_BATCH_MEMORY_MS: u64 = 600_000;
/// Client batches waiting in the core above which no more are cut.
const MAX_PENDING_CORE_BATCHES: usize = 8;
/// At most this much is added to the takeover delays for the receivers' queueing (see
/// [`PoolProposer::queueing_allowance`]).
const MAX_QUEUEING_ALLOWANCE_MS: u64 = 30_000;
/// A member's queueing estimate not renewed for this long no longer stretches the takeover
/// clocks (see `peer_queueing`).
const PEER_QUEUEING_MEMORY_MS: u64 = 30_000;

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
    /// How long our own batches lately took to gather a quorum of replies (the core's
    /// retransmission timeout, 0 before it measured one): another member's batch takes about
    /// as long to reach us, so a takeover waits for it ([`PoolProposer::queueing_allowance`]).
    /// A quorum's time is what the f slowest members cannot lengthen.
    pub round_trip_ms: u64,
    /// Whether a client submitted this transaction to this node.
    pub submitted_here: &'a dyn Fn(&H256) -> bool,
    /// How long ago (ms) a client submitted this transaction to this node, if one did: our
    /// clients' queueing is measured from their arrival, not from a pass's first sight of them
    /// (passes do not look at the pool while the in-flight allowance is used).
    pub waited_here: &'a dyn Fn(&H256) -> Option<u64>,
}

/// A member's message announcing a batch of transactions.
pub struct Announcement<'a> {
    /// The member whose link (or fetch answer) it came over.
    pub from: ValidatorId,
    /// The batch's proposer, as its header says (not checked yet).
    pub proposer: ValidatorId,
    /// Sent over the link as announced, not answering our fetch.
    pub live: bool,
    /// The batch's transactions.
    pub txs: &'a [H256],
}

/// One of this validator's batches, as the core proposed it.
#[derive(Clone, Debug)]
pub struct OwnBatch {
    /// When it was proposed.
    pub at: u64,
    /// Its transactions' hashes.
    pub txs: Vec<H256>,
}

/// A ready transaction as the passes know it.
#[derive(Debug)]
struct Seen {
    /// When first seen (by the pass that first listed it).
    first: u64,
    /// What our queueing is measured from: for a client's transaction here, when it arrived
    /// (`Turn::waited_here`) or `since` if later (a future one entered the ready set only when
    /// its nonce gap closed, so a client cannot make its wait look longer than the queue's);
    /// otherwise `first`.
    arrived: u64,
    /// When the pass before that one looked at the ready set: it entered our ready set after
    /// this (passes stop while the in-flight allowance is used, so `first` may be late), though
    /// not necessarily the announcer's as early.
    since: u64,
    /// Its classification (None: not classifiable, never proposed); shared, so a pass does not
    /// copy its access list.
    info: Option<Arc<TxInfo>>,
    /// The last pass that saw it in the ready set.
    pass: u64,
}

/// The proposal policy's state.
#[derive(Debug)]
pub struct PoolProposer {
    cfg: ProposerConfig,
    /// Each ready transaction: when first seen, its classification (classified once, not on
    /// every pass), and the last pass that saw it.
    seen: BTreeMap<H256, Seen>,
    /// Passes so far (stamps `seen`).
    passes: u64,
    /// Transactions in batches other validators announced, and until when that holds them
    /// back from a takeover (or the baseline's fallback): while the batch is not finished into a
    /// block here, at most [`UNFINISHED_HOLD_MS`] from the announcement, so that a Byzantine
    /// member's announcement holds nothing for longer; once finished, `anyone_delay_ms` more.
    announced: BTreeMap<H256, u64>,
    /// Transactions we proposed, and when (or when they may go again, minus the delay;
    /// [`HELD_UNTIL_FINAL`] once their block is finished).
    proposed: BTreeMap<H256, u64>,
    /// Our batches, by id.
    own: BTreeMap<CommandId, OwnBatch>,
    /// Other validators' batches carrying our transactions that the core took out of its
    /// queue for them (`Output::Checked`): held like our own batches' until the batch is
    /// finished into a block (if it lands in no block, the core proposes them again itself).
    covering: BTreeMap<CommandId, OwnBatch>,
    /// Our clients' transactions, not handed to the core yet, that another validator's batch
    /// carries which our core checked and replied to (`Output::Checked`): neither they nor
    /// their senders' later ones go into our batches until the batch is finished into a block
    /// here (then `anyone_delay_ms` more while the block is built: what it included is then
    /// never proposed, what it skipped goes), until the core says it lands in no block (at
    /// once), or for at most [`COVER_HOLD_MS`]. A copy from us would only be refused by the
    /// builder.
    elsewhere: BTreeMap<H256, u64>,
    /// The batches behind `elsewhere`, with the transactions of ours they hold.
    elsewhere_by: BTreeMap<CommandId, Vec<H256>>,
    /// Transactions whose hold in `elsewhere` ended, and when: never held so again (nor a
    /// later transaction of their sender), so that no member can hold one of our clients'
    /// transactions twice, or a chain of them once per nonce; remembered for
    /// [`OWN_BATCH_MEMORY_MS`], across epochs.
    elsewhere_done: BTreeMap<H256, u64>,
    /// Our batches not decided yet, and when proposed.
    undecided: BTreeMap<CommandId, u64>,
    /// Our transactions by the finished block that holds their batch.
    in_block: BTreeMap<u64, Vec<H256>>,
    /// Our proposed transactions whose block is not finished yet, with their sender and when
    /// (held, and their sender busy, up to [`UNFINISHED_HOLD_MS`] from the core's latest
    /// announcement of a batch holding them, or from the hand-over before that).
    inflight: BTreeMap<H256, (AccountId, u64)>,
    /// Transactions a block built here included (any proposer's), kept while the pool still
    /// lists them as ready: never proposed again (the pool drops them only once it has
    /// processed the block, which under load takes longer than any delay here).
    done: BTreeSet<H256>,
    /// How long our clients' transactions have lately waited here, from arrival to the core's
    /// announcement of the batch first holding them (ms, the mean per batch, smoothed over
    /// batches; taken-over, carried and re-proposed ones are not measured): in the pool behind the
    /// in-flight allowance, then in the core's queue for a seq inside the window. Under load
    /// every validator's own transactions queue about as long before others see them
    /// announced; taking another validator's over before twice that would only make a copy
    /// that the block builder refuses, so the takeover delays grow by it, or by a longer
    /// queue another member shows (see `peer_queueing` and
    /// [`PoolProposer::queueing_allowance`]; at most [`MAX_QUEUEING_ALLOWANCE_MS`], so a
    /// Byzantine or crashed receiver's transactions are still taken over). The leader baseline
    /// off the primary measures instead the wait from arrival to the primary's own
    /// announcement (see `awaiting_primary`), and its fallback waits twice that longer.
    queueing: u64,
    /// Leaderless: how long each other member's clients' transactions lately waited here before
    /// it announced them as their receiver, and when that was last measured (see
    /// [`PoolProposer::peer_announced`]). Clients do not spread evenly over validators: the
    /// busiest receiver queues longest, and a takeover clock stretched by our own queue alone
    /// let the validators with the fewest clients take over its transactions, which only made
    /// copies (docs/performance.md, "The receivers' queues"). One entry per member, set only by
    /// what arrives live over that member's own authenticated link.
    peer_queueing: BTreeMap<ValidatorId, PeerQueue>,
    /// The queueing the takeover clocks of the current pass stretch by (see
    /// [`PoolProposer::queueing_allowance`]).
    allowance: u64,
    /// When a pass last looked at the ready set (stamps `Seen::since`).
    last_look: u64,
    /// Our clients' transactions handed to the core on their first proposal and not announced
    /// yet: the ones `queueing` measures (leaderless, and the baseline's primary).
    unannounced_own: BTreeSet<H256>,
    /// The leader baseline off the primary: our clients' transactions not announced by anyone
    /// when first seen here. `queueing` measures them at the primary's own announcement (its
    /// queue); one our fallback proposes first is dropped unmeasured.
    awaiting_primary: BTreeSet<H256>,
    /// What we proposed so far (for `bsmr_status`).
    counts: ProposalCounts,
    /// Another member's batch whose announcement the core is being fed now, with its
    /// transactions: what an `Output::Checked` for it refers to (see
    /// [`PoolProposer::core_checked`]).
    feeding: Option<(CommandId, Vec<H256>)>,
}

/// A member's queue as its announcements show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PeerQueue {
    /// The smoothed mean wait (ms), under [`PoolProposer::measured_window`].
    wait: u64,
    /// When last measured.
    at: u64,
}

/// Transactions this validator put into its batches since it started, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProposalCounts {
    /// Submitted to this node by a client.
    pub own: u64,
    /// Submitted elsewhere and proposed for their own sake: taken over by the sender's
    /// partition owner or anyone after their delays, or by the leader baseline's primary.
    pub taken_over: u64,
    /// Submitted elsewhere and carried in front of a later transaction of their sender.
    pub carried: u64,
    /// Of all these, the ones the core took back out of its queue, unproposed, because another
    /// validator's batch it checked carried them (see [`PoolProposer::covered`]).
    pub covered: u64,
}

impl ProposalCounts {
    /// Submitted elsewhere, taken over or carried.
    pub fn others(&self) -> u64 {
        self.taken_over + self.carried
    }
}

impl PoolProposer {
    /// A policy with no history.
    pub fn new(cfg: ProposerConfig) -> Self {
        PoolProposer {
            cfg,
            seen: BTreeMap::new(),
            passes: 0,
            announced: BTreeMap::new(),
            proposed: BTreeMap::new(),
            own: BTreeMap::new(),
            covering: BTreeMap::new(),
            elsewhere: BTreeMap::new(),
            elsewhere_by: BTreeMap::new(),
            elsewhere_done: BTreeMap::new(),
            undecided: BTreeMap::new(),
            in_block: BTreeMap::new(),
            inflight: BTreeMap::new(),
            done: BTreeSet::new(),
            queueing: 0,
            peer_queueing: BTreeMap::new(),
            allowance: 0,
            last_look: 0,
            unannounced_own: BTreeSet::new(),
            awaiting_primary: BTreeSet::new(),
            counts: ProposalCounts::default(),
            feeding: None,
        }
    }

    /// What this validator proposed since it started.
    pub fn counts(&self) -> ProposalCounts {
        self.counts
    }

    /// Member `from` sent us `proposer`'s batch with these transactions (not ours): held back
    /// from takeovers, and what measures the receivers' queues. `live`: over its link as it
    /// announced it, not a fetch answer (whose timing is ours).
    pub fn member_announced(
        &mut self,
        a: Announcement,
        (membership, primary): (&Membership, ValidatorId),
        submitted_here: &dyn Fn(&H256) -> bool,
        now: u64,
    ) {
        if a.live {
            self.peer_announced((a.from, a.proposer), a.txs, membership, submitted_here, now);
        }
        // Only the baseline primary's own batch over its own link measures its queue: another
        // member could otherwise stretch our fallback.
        let by_primary = a.live && a.from == primary && a.proposer == primary;
        self.announced_by_other(a.txs.iter().copied(), now, by_primary);
    }

    /// Another validator announced a batch with these transactions; `by_primary`: the leader
    /// baseline's primary announced its own batch (the only announcements that measure the
    /// primary's queue).
    fn announced_by_other(
        &mut self,
        txs: impl IntoIterator<Item = H256>,
        now: u64,
        by_primary: bool,
    ) {
        let txs: Vec<H256> = txs.into_iter().collect();
        for h in &txs {
            self.announced.entry(*h).or_insert(now + UNFINISHED_HOLD_MS);
        }
        if self.announced.len() > MAX_ANNOUNCED {
            self.keep_longest_holding_announcements();
        }
        if by_primary {
            self.measure_queueing(&txs, |p, h| p.awaiting_primary.remove(h), now);
        }
    }

    /// Member `from` sent live, over its own link, an announcement of `proposer`'s batch with
    /// these transactions (before [`Self::announced_by_other`] marks them announced). Only a
    /// member's own batch measures it (a relay's timing is the relay's, and the proposer is
    /// not checked yet). Leaderless: the mean wait, from our first sight to now, of those it
    /// proposed as their receiver folds into its `peer_queueing`: transactions nobody announced
    /// before, not submitted here (a carried copy of our client's), whose sender it does not
    /// own (its partition-owner takeovers), and which entered our ready set less than
    /// [`Self::measured_window`] ago. An anyone-takeover comes at least `anyone_delay_ms` after
    /// the taker's first sight, so it counts only if it reached our ready set `owner_delay_ms`
    /// later than the taker's; then it counts as less than the window, and ages out (a crashed
    /// receiver's transactions taken over stretch the clock that takes them over by at most
    /// twice the window, and only while takeovers keep coming that late). So one member,
    /// Byzantine or not, stretches the takeover clocks by less than twice the window, and only
    /// while it keeps announcing.
    fn peer_announced(
        &mut self,
        (from, proposer): (ValidatorId, ValidatorId),
        txs: &[H256],
        membership: &Membership,
        submitted_here: &dyn Fn(&H256) -> bool,
        now: u64,
    ) {
        if self.cfg.mode != Mode::Leaderless || from != proposer || !membership.contains(&from) {
            return;
        }
        let waits: Vec<u64> = txs
            .iter()
            .filter(|h| !self.announced.contains_key(h) && !submitted_here(h))
            .filter_map(|h| self.seen.get(h))
            .filter(|s| {
                s.info
                    .as_ref()
                    .is_some_and(|i| Self::partition_owner(membership, &i.sender) != proposer)
            })
            .filter(|s| now.saturating_sub(s.since) < self.measured_window())
            .map(|s| now.saturating_sub(s.first))
            .collect();
        let prev = self
            .peer_queueing
            .get(&proposer)
            .filter(|q| Self::fresh(q, now))
            .map(|q| q.wait);
        if let Some(wait) = Self::smoothed(prev, &waits) {
            self.peer_queueing
                .insert(proposer, PeerQueue { wait, at: now });
        }
    }

    /// `prev` smoothed with the mean of `waits` (a quarter weight for each new mean), or that
    /// mean with no `prev`; None without waits. Our queue and each member's are measured alike.
    fn smoothed(prev: Option<u64>, waits: &[u64]) -> Option<u64> {
        let mean = waits.iter().sum::<u64>().checked_div(waits.len() as u64)?;
        Some(prev.map_or(mean, |p| (3 * p + mean) / 4))
    }

    /// Waits measured as a member's queue are shorter than this: `anyone_delay_ms` less
    /// `owner_delay_ms`, the room left for an anyone-takeover to reach us later than the taker.
    fn measured_window(&self) -> u64 {
        self.cfg
            .anyone_delay_ms
            .saturating_sub(self.cfg.owner_delay_ms)
    }

    /// Whether a member's measure still stretches the clocks (not if the clock went back).
    fn fresh(q: &PeerQueue, now: u64) -> bool {
        q.at <= now && now - q.at < PEER_QUEUEING_MEMORY_MS
    }

    /// The queueing the takeover clocks stretch by now: the longest of ours and, leaderless,
    /// every other member's lately measured (see `peer_queueing`). The longest, not the
    /// (f+1)-th: the receiver whose transactions would be copied is one member, the busiest.
    ///
    /// On a slow network, half the round trip our own batches' quorums took
    /// (`Turn::round_trip_ms`): a takeover clock stretched by twice the allowance then waits out
    /// the time another member's batch needs to reach us (before that, a takeover only makes a
    /// copy, and on a thin link every copy slows every batch: docs/performance.md, "Thin links:
    /// where the bytes go").
    fn queueing_allowance(&self, turn: &Turn, now: u64) -> u64 {
        self.peer_queueing
            .iter()
            .filter(|(v, q)| **v != turn.me && turn.membership.contains(v) && Self::fresh(q, now))
            .map(|(_, q)| q.wait)
            .fold(self.queueing, u64::max)
            .max(turn.round_trip_ms / 2)
    }

    /// Keeps half of [`MAX_ANNOUNCED`] announcements, those holding longest (by time, then
    /// hash).
    fn keep_longest_holding_announcements(&mut self) {
        let mut all: Vec<(u64, H256)> = self.announced.iter().map(|(h, u)| (*u, *h)).collect();
        all.sort_unstable();
        let keep = all.split_off(all.len().saturating_sub(MAX_ANNOUNCED / 2));
        self.announced = keep.into_iter().map(|(u, h)| (h, u)).collect();
    }

    /// Other validators' batches with these transactions were finished into a block here: an
    /// announcement, or a checked batch holding our clients' (`elsewhere`), holds them
    /// `anyone_delay_ms` more, while the block is built (what
    /// it includes is then never proposed again; what it skipped may be taken over after).
    pub fn others_finished(&mut self, txs: impl IntoIterator<Item = H256>, now: u64) {
        let until = now.saturating_add(self.cfg.anyone_delay_ms);
        for h in txs {
            if let Some(u) = self.announced.get_mut(&h) {
                *u = (*u).min(until);
            }
            if let Some(u) = self.elsewhere.get_mut(&h) {
                *u = (*u).min(until);
            }
        }
    }

    /// Folds into `queueing` the mean wait, from arrival here to `now`, of those of `txs` that
    /// `measured` picks (and forgets), if any.
    fn measure_queueing(
        &mut self,
        txs: &[H256],
        measured: impl Fn(&mut Self, &H256) -> bool,
        now: u64,
    ) {
        let mut waits = vec![];
        for h in txs {
            if measured(self, h) {
                if let Some(seen) = self.seen.get(h) {
                    // One wait counts as at most the allowance's cap.
                    waits.push(
                        now.saturating_sub(seen.arrived)
                            .min(MAX_QUEUEING_ALLOWANCE_MS),
                    );
                }
            }
        }
        if let Some(q) = Self::smoothed(Some(self.queueing), &waits) {
            self.queueing = q;
        }
    }

    /// The core proposed our batch `id`; false if it was known already.
    pub fn proposed(&mut self, id: CommandId, txs: Vec<H256>, now: u64) -> bool {
        if self.own.contains_key(&id) {
            return false;
        }
        // Only our clients' transactions on their first proposal: a taken-over, carried or
        // re-proposed one waited for other reasons, and would make the estimate feed itself.
        self.measure_queueing(&txs, |p, h| p.unannounced_own.remove(h), now);
        // The safety net on a held transaction runs from the announcement (the core's queue
        // may have held the batch for long), and again from a re-proposal of a batch that
        // landed in no block.
        for h in &txs {
            if let Some((_, at)) = self.inflight.get_mut(h) {
                *at = now;
            }
        }
        self.own.insert(id, OwnBatch { at: now, txs });
        self.undecided.insert(id, now);
        true
    }

    /// The core took these of our transactions out of its queue for another validator's batch
    /// `by`, which it checked and which carries them. They stay held, their senders busy, as
    /// in a batch of ours; the safety net runs from when the core would put them back in its
    /// queue ([`COVER_HOLD_MS`] from now), as from a hand-over. They are not measured as
    /// queueing (we never announced them).
    pub fn covered(&mut self, by: CommandId, txs: Vec<H256>, now: u64) {
        let back = now.saturating_add(COVER_HOLD_MS);
        self.counts.covered += txs.len() as u64;
        for h in &txs {
            self.unannounced_own.remove(h);
            if let Some((_, at)) = self.inflight.get_mut(h) {
                *at = back;
            }
        }
        self.covering
            .entry(by)
            .or_insert(OwnBatch {
                at: now,
                txs: vec![],
            })
            .txs
            .extend(txs);
    }

    /// The core is being fed another member's announcement of batch `id`, carrying `txs`: an
    /// `Output::Checked` for `id` before [`PoolProposer::fed`] refers to them.
    pub fn feeding(&mut self, id: CommandId, txs: Vec<H256>) {
        self.feeding = Some((id, txs));
    }

    /// The announcement is fed: no later `Output::Checked` refers to its transactions.
    pub fn fed(&mut self) {
        self.feeding = None;
    }

    /// The core checked and replied to another validator's batch `by` (`Output::Checked`). If
    /// it is the batch being fed (the core reports it while handling that announcement), our
    /// clients' transactions it carries (`submitted_here`) are held back from our batches while
    /// it may land ([`PoolProposer::checked_elsewhere`]); a report for any other batch holds
    /// nothing, since only the announcement's own transactions are known to be in it. `taken`:
    /// ours it carries that were waiting in the core's queue, taken out of it
    /// ([`PoolProposer::covered`]).
    pub fn core_checked(
        &mut self,
        by: CommandId,
        taken: Vec<H256>,
        submitted_here: &dyn Fn(&H256) -> bool,
        now: u64,
    ) {
        if let Some((_, txs)) = self.feeding.take_if(|(id, _)| *id == by) {
            let ours = txs.into_iter().filter(|h| submitted_here(h));
            self.checked_elsewhere(by, ours, now);
        }
        if !taken.is_empty() {
            self.covered(by, taken, now);
        }
    }

    /// Our core checked and replied to another validator's batch `by` carrying these of our
    /// clients' transactions: held back from our batches (see `elsewhere`), unless handed to
    /// the core already (the core took them out of its queue itself, or proposed them) or held
    /// so before.
    pub fn checked_elsewhere(
        &mut self,
        by: CommandId,
        ours: impl IntoIterator<Item = H256>,
        now: u64,
    ) {
        let until = now.saturating_add(COVER_HOLD_MS);
        let mut held = vec![];
        for h in ours {
            if self.proposed.contains_key(&h)
                || self.elsewhere_done.contains_key(&h)
                || self.elsewhere.contains_key(&h)
            {
                continue;
            }
            self.elsewhere.insert(h, until);
            held.push(h);
        }
        if !held.is_empty() {
            self.elsewhere_by.entry(by).or_default().extend(held);
        }
    }

    /// The core rejoined from the certified chain at `now`, over blocks it did not build: it
    /// no longer says which checked batches land nowhere, so every hold behind one ends for
    /// good. What those blocks included has left the pool or is skipped by the builder; the
    /// rest goes at once instead of after [`COVER_HOLD_MS`].
    pub fn rejoined(&mut self, now: u64) {
        self.end_holds_behind_checked(now);
    }

    /// Every hold behind a checked batch ends, and is remembered as ended.
    fn end_holds_behind_checked(&mut self, now: u64) {
        for h in std::mem::take(&mut self.elsewhere).into_keys() {
            self.elsewhere_done.insert(h, now);
        }
        self.elsewhere_by.clear();
    }

    /// The hold of `h` behind a checked batch, if any, ends at `now` for good: remembered in
    /// `elsewhere_done`, so it is never held so again.
    fn end_hold(&mut self, h: H256, now: u64) {
        if self.elsewhere.remove(&h).is_some() {
            self.elsewhere_done.insert(h, now);
        }
    }

    /// Command `id` lands in no block (decided Noop, a fence behind the built blocks, or void
    /// below the floors): what it held of our clients' transactions goes at once.
    pub fn void_elsewhere(&mut self, id: &CommandId, now: u64) {
        for h in self.elsewhere_by.remove(id).unwrap_or_default() {
            self.end_hold(h, now);
        }
    }

    /// The transactions of our batch `id`, if it is one we remember.
    pub fn own_txs(&self, id: &CommandId) -> Option<&[H256]> {
        self.own.get(id).map(|b| &b.txs[..])
    }

    /// Command `id` was decided; our batch, if it is one.
    pub fn decided(&mut self, id: &CommandId) -> Option<&OwnBatch> {
        self.undecided.remove(id);
        self.own.get(id)
    }

    /// Block `index` was finished with these batches: the senders of ours, and of ours that
    /// another validator's batch carried, are free again, and those transactions may go again
    /// once the block is final if still pending.
    pub fn block_finished(&mut self, index: u64, batches: impl IntoIterator<Item = CommandId>) {
        for id in batches {
            if let Some(b) = self.own.get(&id).or_else(|| self.covering.get(&id)) {
                for h in &b.txs {
                    self.inflight.remove(h);
                    if let Some(at) = self.proposed.get_mut(h) {
                        *at = HELD_UNTIL_FINAL;
                    }
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
        self.covering
            .retain(|_, b| now.saturating_sub(b.at) < OWN_BATCH_MEMORY_MS);
    }

    /// A new epoch at `now`: the old epoch's batches are void, so what they held goes again
    /// at once, ours and others' (their announcements hold no takeover). A hold behind a
    /// checked batch ends for good, as if it ran out: a batch of the new epoch cannot hold the
    /// same transaction again.
    pub fn new_epoch(&mut self, now: u64) {
        self.announced.clear();
        self.end_holds_behind_checked(now);
        self.proposed.clear();
        self.peer_queueing.clear();
        self.unannounced_own.clear();
        self.awaiting_primary.clear();
        self.in_block.clear();
        self.inflight.clear();
        self.covering.clear();
    }
}

mod pass;
mod rules;
#[cfg(test)]
mod tests;

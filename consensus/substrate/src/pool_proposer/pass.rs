//! One pass over the ready transactions: which this validator proposes now, cut into batches
//! that keep each sender's chain whole (the rules are in the parent module's doc).

use super::{
    PoolProposer, Seen, Turn, COVER_HOLD_MS, INFLIGHT_HORIZON_MS, MAX_ANNOUNCED,
    OWN_BATCH_MEMORY_MS, REPROPOSE_GRACE_MS, UNFINISHED_HOLD_MS,
};
use crate::config::Mode;
use crate::TxInfo;
use bsmr_consensus_core::{AccountId, Tx};
use sp_core::H256;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl PoolProposer {
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
        self.end_elsewhere_holds(now);
        self.allowance = self.queueing_allowance(turn, now);
        let since = std::mem::replace(&mut self.last_look, now);
        let first_look = self.passes == 0;
        self.inflight
            .retain(|_, (_, at)| now < *at + UNFINISHED_HOLD_MS);
        let busy: BTreeSet<AccountId> = self.inflight.values().map(|(s, _)| *s).collect();
        self.passes += 1;
        let pass = self.passes;
        let mut in_earlier_batch = BTreeSet::new();
        let mut in_this_batch = BTreeSet::new();
        // Busy senders whose own next transaction waits for their block: nothing more of
        // theirs this pass.
        let mut held = BTreeSet::new();
        // Senders with an earlier ready transaction held by another validator's announcement.
        let mut ordered_elsewhere = BTreeSet::new();
        // Senders with an earlier ready transaction that is ours already or whose hold behind a
        // checked batch ended: their later ones are not held so (one hold per chain at most).
        let mut released = BTreeSet::new();
        // Per sender, the earlier ready transactions this pass passed over (the ready set lists
        // a sender's transactions in nonce order).
        let mut passed_over: BTreeMap<AccountId, Vec<(H256, F, Arc<TxInfo>)>> = BTreeMap::new();
        let mut batch: Vec<Tx> = vec![];
        let mut batches = vec![];
        let off_primary = self.cfg.mode == Mode::Leader && turn.primary != turn.me;
        for (h, bytes) in ready {
            let (first, info) = match self.seen.entry(h) {
                Entry::Occupied(mut e) => {
                    let seen = e.get_mut();
                    seen.pass = pass;
                    (seen.first, seen.info.clone())
                }
                Entry::Vacant(e) => {
                    // The baseline off the primary measures how long the primary takes to
                    // announce our clients' transactions (see `awaiting_primary`).
                    if off_primary && (turn.submitted_here)(&h) && !self.announced.contains_key(&h)
                    {
                        self.awaiting_primary.insert(h);
                    }
                    let info = classify(&bytes()).map(Arc::new);
                    // It entered the ready set after the last look and after its client
                    // submitted it here (a future one, much later). The first look has no
                    // look before it: counted from now.
                    let arrived = (turn.waited_here)(&h)
                        .filter(|_| !first_look)
                        .map_or(now, |waited| now.saturating_sub(waited).max(since));
                    e.insert(Seen {
                        first: now,
                        arrived,
                        since,
                        info: info.clone(),
                        pass,
                    });
                    (now, info)
                }
            };
            let Some(info) = info else {
                continue;
            };
            if in_earlier_batch.contains(&info.sender) || held.contains(&info.sender) {
                continue;
            }
            // Ours already (in a batch not finished into a block yet, proposed recently, or in a
            // block the pool has not pruned yet): not carried again, and what was passed over
            // before it is not carried past it (a carried chain is contiguous up to the
            // transaction it goes with).
            if self.inflight.contains_key(&h)
                || self
                    .proposed
                    .get(&h)
                    .is_some_and(|at| now < at.saturating_add(delay))
            {
                passed_over.remove(&info.sender);
                released.insert(info.sender);
                continue;
            }
            // In a block already (the pool has not dropped it yet): not proposed, whoever's it
            // is and however long it waited, and its sender's earlier ones are not carried.
            if self.done.contains(&h) {
                passed_over.remove(&info.sender);
                continue;
            }
            // Our client's, carried by another validator's batch our core checked: held, and its
            // sender's later ones with it (see `elsewhere`), unless an earlier one of the sender
            // is ours already or was held so (a member copying a chain one nonce at a time
            // would otherwise hold it again and again).
            if self.elsewhere_done.contains_key(&h) {
                released.insert(info.sender);
            }
            if self.elsewhere.contains_key(&h) {
                if released.contains(&info.sender) || in_this_batch.contains(&info.sender) {
                    self.end_hold(h, now);
                } else {
                    passed_over.remove(&info.sender);
                    held.insert(info.sender);
                    continue;
                }
            }
            // A leaderless takeover waits behind an earlier transaction of its sender that another
            // validator's batch is ordering: that receiver holds the later ones in order, and
            // taking one over would carry the earlier one as a copy. (Our clients' own go, and
            // carry it: they must not wait on another validator.)
            let behind_ordered = self.cfg.mode == Mode::Leaderless
                && ordered_elsewhere.contains(&info.sender)
                && !(turn.submitted_here)(&h);
            if behind_ordered || !self.proposes(&h, &info.sender, first, turn) {
                if self.held_by_announcement(&h, first, now) {
                    ordered_elsewhere.insert(info.sender);
                }
                let earlier = passed_over.entry(info.sender).or_default();
                if earlier.len() + 1 < self.cfg.max_batch_txs {
                    earlier.push((h, bytes, info));
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
            let carried = earlier.len();
            let sender = info.sender;
            let own = std::iter::once((h, bytes, info));
            for (i, (h, bytes, info)) in earlier.into_iter().chain(own).enumerate() {
                if (turn.submitted_here)(&h) {
                    self.counts.own += 1;
                    // Our fallback proposes it first: it waited for our delay, not for the
                    // primary's queue, so it is not measured.
                    self.awaiting_primary.remove(&h);
                    if !off_primary && !self.proposed.contains_key(&h) {
                        self.unannounced_own.insert(h);
                    }
                } else if i < carried {
                    self.counts.carried += 1;
                } else {
                    self.counts.taken_over += 1;
                }
                self.proposed.insert(h, now);
                self.inflight.insert(h, (sender, now));
                batch.push(Tx {
                    access: info.access.clone(),
                    data: bytes(),
                });
            }
            in_this_batch.insert(sender);
            if batch.len() >= self.cfg.max_batch_txs {
                batches.push(std::mem::take(&mut batch));
                in_earlier_batch.append(&mut in_this_batch);
            }
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        // What this pass did not see left the ready set: forget it (`seen` then holds exactly
        // what this pass saw).
        self.seen.retain(|_, seen| seen.pass == pass);
        let present = |h: &H256| self.seen.contains_key(h);
        // Announcements may precede the transaction's arrival here: keep them while it is
        // pending here, or while they hold.
        self.announced.retain(|h, until| present(h) || now < *until);
        self.proposed.retain(|h, _| present(h));
        self.inflight.retain(|h, _| present(h));
        self.unannounced_own.retain(|h| present(h));
        self.awaiting_primary.retain(|h| present(h));
        self.done.retain(|h| present(h));
        // A hold whose transaction left the ready set ends for good too.
        let gone: Vec<H256> = self
            .elsewhere
            .keys()
            .filter(|h| !present(h))
            .copied()
            .collect();
        for h in gone {
            self.end_hold(h, now);
        }
        let elsewhere = &self.elsewhere;
        self.elsewhere_by.retain(|_, hs| {
            hs.retain(|h| elsewhere.contains_key(h));
            !hs.is_empty()
        });
        batches
    }

    /// Holds in `elsewhere` that ran out end for good (none lasts longer than
    /// [`COVER_HOLD_MS`] from now, should the clock go back); what ended is remembered for
    /// [`OWN_BATCH_MEMORY_MS`], at most [`MAX_ANNOUNCED`] of it (the oldest half goes first).
    fn end_elsewhere_holds(&mut self, now: u64) {
        let latest = now.saturating_add(COVER_HOLD_MS);
        let mut ended = vec![];
        for (h, until) in self.elsewhere.iter_mut() {
            *until = (*until).min(latest);
            if now >= *until {
                ended.push(*h);
            }
        }
        for h in ended {
            self.end_hold(h, now);
        }
        self.elsewhere_done
            .retain(|_, at| now.saturating_sub(*at) < OWN_BATCH_MEMORY_MS);
        if self.elsewhere_done.len() > MAX_ANNOUNCED {
            let mut by_age: Vec<(u64, H256)> = self
                .elsewhere_done
                .iter()
                .map(|(h, at)| (*at, *h))
                .collect();
            by_age.sort_unstable();
            let keep = by_age.split_off(by_age.len() / 2);
            self.elsewhere_done = keep.into_iter().map(|(at, h)| (h, at)).collect();
        }
    }
}

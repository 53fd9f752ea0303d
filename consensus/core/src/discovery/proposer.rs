//! Dependency discovery, proposer side (protocol.md, "Dependency discovery"): this replica's
//! client batches and checkpoint candidates are signed, stored and announced; once a quorum of
//! signed dependency replies for one of them is counted, the value they make is handed on as a
//! [`Event::Collected`] proposal for its single-shot instance.
//!
//! The service owns the batches waiting for a seq, the collections in progress and the
//! candidates it announced. It reads the rest through [`Ctx`] and writes only to the
//! [`Outbox`]; the replica routes its events (a signed batch to the payload store, a collected
//! proposal to the normal case).

use crate::crypto::Signed;
use crate::ctx::Ctx;
use crate::discovery::collect::{Collector, Proposal, ReplyLimits, ReplyOutcome};
use crate::discovery::covered::{Covered, COVER_HOLD_MS};
use crate::discovery::own::OwnBatches;
use crate::discovery::pacing::Pacing;
use crate::misbehaviour::Proof;
use crate::outbox::Outbox;
use crate::storage::{Key, Record, StorageOp};
use crate::types::*;
use crate::wire::*;
use crate::Output;
use codec::Encode;
use std::collections::BTreeMap;

/// A batch reported checked: when, and how many blocks were built then.
#[derive(Debug, Clone, Copy)]
struct Checked {
    at: u64,
    built: BlockIndex,
}

/// Most checked batches remembered for [`Output::LandsNowhere`] (each is a valid batch of a
/// member inside its window, so far more than correct members ever have pending); past it, a
/// batch is not remembered and the engine's hold behind it simply runs its full time.
const MAX_CHECKED: usize = 65_536;

/// What the proposer side hands on, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// A batch this replica signed and persisted: the payload store holds it from now on.
    Signed(SignedBatch),
    /// A quorum replied to one of our announced values: propose it.
    Collected(Proposal),
    /// A peer signed two different replies to one of our batches.
    Misbehaved(Proof),
}

/// The proposer side of dependency discovery.
#[derive(Debug, Default)]
pub struct Proposer {
    /// Client batches waiting for a seq inside our window.
    own: OwnBatches,
    /// Waiting transactions taken out because another validator's batch carries them.
    covered: Covered,
    /// Other validators' batches reported checked (`Output::Checked`) whose fate is not known
    /// here yet: when, and how many blocks were built then. Only these are reported as landing
    /// nowhere, so that a command that landed long ago and is named again (a replay, once its
    /// decision was collected) is never reported so. Forgotten when they land, when they land
    /// nowhere, and after [`COVER_HOLD_MS`] (the engine's hold behind them is over by then).
    checked: BTreeMap<CommandId, Checked>,
    /// The values we collect replies for.
    collector: Collector,
    /// How much of our own batches may be in flight ([`Pacing`]).
    pacing: Pacing,
    /// Our batches proposed and still in our log (at or above our window's start), by seq:
    /// their bytes.
    in_flight: BTreeMap<Seq, u64>,
    /// Our checkpoint candidates, by (block index, view).
    candidates: BTreeMap<(BlockIndex, View), CommandId>,
    /// A block is due: announce the next candidate once we lead its view 0.
    ckpt_due: bool,
}

impl Proposer {
    /// A proposer whose pacing counts a queueing delay of replies above `queueing_target_ms` as
    /// congestion (0: never paced; [`Pacing`]).
    pub fn new(queueing_target_ms: u64) -> Self {
        Proposer {
            pacing: Pacing::new(queueing_target_ms),
            ..Default::default()
        }
    }

    /// Client transactions to propose, cut into batches of at most `max_batch_txs`.
    pub fn add_client_batch(&mut self, txs: &[Tx], max_batch_txs: usize) {
        self.own.add(txs, max_batch_txs);
    }

    /// Batches of ours that landed in no block: proposed again first, lowest seq first.
    pub fn requeue(&mut self, batches: Vec<(Seq, Vec<Tx>)>) {
        self.own.requeue(batches);
    }

    /// Never use a seq below `seq` again.
    pub fn skip_below(&mut self, seq: Seq) {
        self.own.skip_below(seq);
    }

    /// Another validator's batch `b`, checked and replied to: our waiting copies of its
    /// transactions come out of the queue (unsigned yet, so nothing is taken back) and wait
    /// for its fate (see [`crate::discovery::covered`]); the engine hears of the batch and of
    /// them. Not for a batch decided already (its fate is known).
    pub fn cover(&mut self, ctx: &Ctx, b: &SignedBatch, out: &mut Outbox) {
        let h = &b.header.body;
        if h.proposer == ctx.me || h.is_checkpoint() || ctx.is_decided_inst(&h.dep_ref().instance())
        {
            return;
        }
        let now = ctx.now;
        self.checked
            .retain(|_, c| now.saturating_sub(c.at) < COVER_HOLD_MS);
        if self.checked.len() < MAX_CHECKED {
            let built = ctx.built;
            self.checked.insert(b.id(), Checked { at: now, built });
        }
        let taken = self.own.take_out(&b.txs);
        out.emit(Output::Checked {
            by: b.id(),
            taken: taken.clone(),
        });
        if !taken.is_empty() {
            self.covered.hold(b.id(), taken, now);
        }
    }

    /// Command `id` will land in no block (decided with fence `fence` behind the built blocks,
    /// or `None`: decided Noop or void below the floors): the copies of ours it carried go
    /// first again, and the engine hears of it (`Output::LandsNowhere`) if we reported it
    /// checked less than [`COVER_HOLD_MS`] ago. Whether any copy came back. Only for an id
    /// under its own header's name (see [`Ctx::misnamed`]).
    ///
    /// A fence behind the blocks built when we checked it is not reported: the block it names
    /// was built before (or skipped by a rejoin), so whether it carried the batch is not known
    /// here (a replay of a batch that landed in a block a rejoin skipped looks just so).
    pub fn uncover(
        &mut self,
        id: &CommandId,
        fence: Option<BlockIndex>,
        now: u64,
        out: &mut Outbox,
    ) -> bool {
        let report = self.checked.remove(id).is_some_and(|c| {
            now.saturating_sub(c.at) < COVER_HOLD_MS && fence.is_none_or(|after| after >= c.built)
        });
        if report {
            out.emit(Output::LandsNowhere { id: *id });
        }
        let txs = self.covered.release(id);
        let any = !txs.is_empty();
        self.own.push_back_returned(txs);
        any
    }

    /// Another validator's batch `id` landed in a block: the copies it carried are done.
    pub fn cover_landed(&mut self, id: &CommandId) {
        self.checked.remove(id);
        self.covered.landed(id);
    }

    /// The replica jumped ahead over blocks it did not build: which checked batches they
    /// carried is not known here, so none is reported as landing nowhere any more.
    pub fn rejoined(&mut self) {
        self.checked.clear();
    }

    /// Client batches waiting for a seq.
    pub fn pending(&self) -> usize {
        self.own.len()
    }

    /// The client batches not proposed yet, in order, then the copies held because another
    /// validator's batch carries them (a crash loses both).
    pub fn unproposed(&self) -> impl Iterator<Item = &Vec<Tx>> {
        self.own.iter().chain(self.covered.iter())
    }

    /// Sign, persist and announce every waiting client batch our window, as paced
    /// ([`Pacing`]), has room for; waiting batches merge up to `max_batch_txs` transactions.
    pub fn propose_own(&mut self, ctx: &Ctx, out: &mut Outbox, max_batch_txs: usize) -> Vec<Event> {
        let mut events = vec![];
        for late in self.covered.expired(ctx.now) {
            self.own.push_back_returned(late);
        }
        let start = ctx.window_start(&ctx.me);
        let window_end = start + ctx.window;
        loop {
            let in_flight = self.in_flight_bytes(start);
            let room = self.pacing.room(in_flight);
            let Some((seq, txs)) = self
                .own
                .next(window_end, max_batch_txs, room, in_flight == 0)
            else {
                break;
            };
            let access = union_access(txs.iter().map(|t| &t.access[..]));
            let weight = crate::discovery::own::weight(&txs);
            self.in_flight.insert(seq, weight);
            let header = BatchHeader {
                epoch: ctx.membership.epoch,
                proposer: ctx.me,
                seq,
                base: ctx.chain.id(ctx.chain.last()).unwrap_or([0; 32]),
                kind: BatchKind::Txs,
                access,
                txs_root: hash(&txs.encode()),
                weight,
            };
            let batch = SignedBatch {
                header: Signed::sign(header, &ctx.genesis(), ctx.signer),
                txs: Txs::new(txs),
            };
            out.persist(vec![StorageOp::Put(
                Key::OwnBatch(seq),
                Record::Batch(batch.clone()),
            )]);
            let inst = batch.header.body.dep_ref().instance();
            self.collector.open(batch.clone(), inst, 0, vec![]);
            self.collector.time(&batch.id(), ctx.now);
            out.emit(Output::Proposed {
                id: batch.id(),
                txs: batch.txs.clone(),
            });
            out.broadcast(Message::Announce(batch.clone()));
            events.push(Event::Signed(batch));
        }
        events
    }

    /// A block is due: announce its candidate if we lead view 0 of its checkpoint
    /// (`next_view` is the view its instance is in here).
    pub fn checkpoint_due(&mut self, ctx: &Ctx, out: &mut Outbox, next_view: View) -> Vec<Event> {
        self.ckpt_due = true;
        self.announce_due_candidate(ctx, out, next_view)
    }

    /// Announce the next checkpoint's view-0 candidate if a block is due, we lead that view,
    /// have not announced it yet, and its instance has not left view 0 (`next_view`, the view
    /// it is in here).
    pub fn announce_due_candidate(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        next_view: View,
    ) -> Vec<Event> {
        let b = ctx.chain.next();
        if !self.ckpt_due
            || ctx.chain.leader(ctx.membership, b, 0) != Some(ctx.me)
            || self.candidates.contains_key(&(b, 0))
        {
            return vec![];
        }
        if next_view > 0 {
            return vec![];
        }
        self.ckpt_due = false;
        self.announce_candidate(ctx, out, b, 0, vec![])
    }

    /// Announce our candidate for checkpoint `b` in `view` (the one signed before, or a new
    /// one), justified by `new_view`, and collect replies for it.
    pub fn announce_candidate(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        b: BlockIndex,
        view: View,
        new_view: Vec<Signed<ViewChangeBody>>,
    ) -> Vec<Event> {
        let Some((base, prev_ts)) = ctx.chain.id_and_time(b - 1) else {
            return vec![];
        };
        let mut events = vec![];
        let held = self
            .candidates
            .get(&(b, view))
            .and_then(|id| ctx.payloads.get(id));
        let batch = match held {
            Some(c) => c.clone(),
            None => {
                let header = BatchHeader {
                    epoch: ctx.membership.epoch,
                    proposer: ctx.me,
                    seq: 0,
                    base,
                    kind: BatchKind::Checkpoint {
                        index: b,
                        view,
                        timestamp_ms: ctx.now.max(prev_ts + 1),
                        floors: crate::floors::propose(
                            ctx.membership,
                            ctx.chain.floors(b - 1),
                            |p| ctx.record.proposed_floor(p),
                        ),
                    },
                    access: vec![],
                    txs_root: hash(&Vec::<Tx>::new().encode()),
                    weight: 0,
                };
                let c = SignedBatch {
                    header: Signed::sign(header, &ctx.genesis(), ctx.signer),
                    txs: Txs::default(),
                };
                out.persist(vec![StorageOp::Put(
                    Key::OwnCandidate(b, view),
                    Record::Batch(c.clone()),
                )]);
                self.candidates.insert((b, view), c.id());
                events.push(Event::Signed(c.clone()));
                c
            }
        };
        let id = batch.id();
        self.collector
            .open(batch.clone(), InstanceId::Ckpt(b), view, new_view);
        out.broadcast(Message::Announce(batch));
        events.extend(self.collect(ctx, id));
        events
    }

    /// As the leader of `view` of `inst`, collect replies for `batch` anew, justified by the
    /// view changes `new_view`, and announce the batch again (replies already counted stay:
    /// see [`Proposer::collect`]).
    pub fn lead(
        &mut self,
        out: &mut Outbox,
        inst: InstanceId,
        batch: SignedBatch,
        view: View,
        new_view: Vec<Signed<ViewChangeBody>>,
    ) {
        self.collector.open(batch.clone(), inst, view, new_view);
        out.broadcast(Message::Announce(batch));
    }

    /// Judge a dependency reply; a quorum makes a proposal.
    pub fn on_reply(&mut self, ctx: &Ctx, r: Signed<ReplyBody>) -> Vec<Event> {
        let id = r.body.cmd.id;
        let limits = ReplyLimits {
            membership: ctx.membership,
            verifier: ctx.verifier,
            window: ctx.window,
            last_checkpoint: ctx.chain.last(),
            within_reach: &|d| ctx.within_reach(d),
            now: ctx.now,
        };
        match self.collector.on_reply(r, &limits) {
            ReplyOutcome::Counted => self.collect(ctx, id),
            ReplyOutcome::Equivocation(old, new) => {
                vec![Event::Misbehaved(Proof::ReplyEquivocation(*old, *new))]
            }
            ReplyOutcome::Dropped | ReplyOutcome::Parked => vec![],
        }
    }

    /// The proposal for `id` if a quorum replied while we collect for it.
    pub fn collect(&mut self, ctx: &Ctx, id: CommandId) -> Vec<Event> {
        let q = ctx.membership.q();
        let Some((proposal, timing)) = self.collector.ready(&id, q, ctx.now) else {
            return vec![];
        };
        if let Some(t) = timing {
            let in_flight = self.in_flight_bytes(ctx.window_start(&ctx.me));
            let f = ctx.membership.f();
            self.pacing
                .on_quorum(&t.replies, f, t.bytes, ctx.now, in_flight);
        }
        vec![Event::Collected(proposal)]
    }

    /// Replies parked for fences ahead of our checkpoints: judge them again once the
    /// checkpoints advanced (with [`Proposer::on_reply`]).
    pub fn take_parked(&mut self) -> Vec<Signed<ReplyBody>> {
        self.collector.take_parked()
    }

    /// Checkpoint `b` is decided: no more collecting for candidates up to it.
    pub fn checkpoint_decided(&mut self, b: BlockIndex) {
        self.collector.drop_checkpoints_upto(b);
    }

    /// Whether we collect for `id` in `view`.
    pub fn collecting(&self, id: &CommandId, view: View) -> bool {
        self.collector.collecting(id, view)
    }

    /// Stop collecting for `id` as `inst` (a recovery leader proposes Noop instead).
    pub fn stop(&mut self, id: &CommandId, inst: &InstanceId) {
        self.collector.stop(id, inst);
    }

    /// Command `id` is decided or collected: forget its collection.
    pub fn forget(&mut self, id: &CommandId) {
        self.collector.remove(id);
    }

    /// Announce again every batch we still collect for, to everyone, and report our own
    /// (a restart).
    pub fn reannounce(&self, ctx: &Ctx, out: &mut Outbox) {
        for b in self.collector.to_announce() {
            if b.header.body.proposer == ctx.me && !b.header.body.is_checkpoint() {
                let txs = b.txs.clone();
                out.emit(Output::Proposed { id: b.id(), txs });
            }
            out.broadcast(Message::Announce(b));
        }
    }

    /// The round trip our own batches' quorums measured.
    pub fn round_trip(&self) -> crate::backoff::RoundTrip {
        self.collector.round_trip()
    }

    /// How many bytes of our own batches may be in flight now (`None`: as many as the seq
    /// window allows; [`Pacing`]).
    pub fn send_window(&self) -> Option<u64> {
        self.pacing.window()
    }

    /// Bytes of our batches in flight: proposed and still in our log (a seq at or above
    /// `start`, our window's start, as the seq window counts them: a batch leaves once its
    /// block is built, and the checkpoint that cuts it is traffic too); forgets the others.
    fn in_flight_bytes(&mut self, start: Seq) -> u64 {
        self.in_flight = self.in_flight.split_off(&start);
        self.in_flight.values().sum()
    }

    /// Announce again the batches we still collect for whose resend is due ([`Backoff`]), to
    /// the members that have not replied (a retransmission tick of `period`).
    ///
    /// [`Backoff`]: crate::backoff::Backoff
    pub fn reannounce_due(&mut self, ctx: &Ctx, out: &mut Outbox, period: u64) {
        let members = ctx.membership.validators();
        for (b, silent) in self.collector.to_announce_again(ctx.now, period, members) {
            for v in silent {
                out.send(v, Message::Announce(b.clone()));
            }
        }
    }

    /// Restore: our batch `batch` was persisted and is not decided; collect for it again.
    pub fn restore_batch(&mut self, batch: SignedBatch) {
        let h = &batch.header.body;
        self.in_flight.insert(h.seq, h.weight);
        let inst = h.dep_ref().instance();
        self.collector.open(batch, inst, 0, vec![]);
    }

    /// Restore: our candidate `id` for checkpoint `b` in `view` was persisted.
    pub fn restore_candidate(&mut self, b: BlockIndex, view: View, id: CommandId) {
        self.candidates.insert((b, view), id);
    }

    /// Checkpoint `b` is collected up to `view`: our candidates for it, to delete.
    pub fn retire_candidates(&mut self, b: BlockIndex, view: View) -> Vec<(View, CommandId)> {
        (0..=view)
            .filter_map(|v| self.candidates.remove(&(b, v)).map(|id| (v, id)))
            .collect()
    }

    /// Forget candidates for checkpoints up to `b`.
    pub fn trim_candidates(&mut self, b: BlockIndex) {
        self.candidates.retain(|(i, _), _| *i > b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;
    use crate::ctx::testing::World;
    use crate::dds::Dds;
    use crate::discovery::pacing::MIN_WINDOW_BYTES;

    const ME: ValidatorId = [1; 32];

    fn txs(n: u8) -> Vec<Tx> {
        (0..n)
            .map(|i| Tx {
                access: vec![[i; 32]],
                data: vec![i],
            })
            .collect()
    }

    fn signed(events: &[Event]) -> Vec<SignedBatch> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Signed(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    /// Validator `who`'s reply to `b`, from an empty conflict log.
    fn reply(who: u8, b: &SignedBatch) -> Signed<ReplyBody> {
        Dds::default().reply(&b.header.body, &[0; 32], &InsecureTestCrypto([who; 32]))
    }

    /// The batches `out` reports as landing nowhere.
    fn nowhere(out: &mut Outbox) -> Vec<CommandId> {
        out.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::LandsNowhere { id } => Some(id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lands_nowhere_is_reported_once_for_a_recent_checked_batch_not_landed_nor_fenced_early() {
        use crate::ctx::testing::command;
        let mut w = World::new();
        w.built = 5;
        let mut p = Proposer::default();
        let mut out = Outbox::new(ME);
        let batches: Vec<SignedBatch> = (0..6u8)
            .map(|i| command(2 + i % 3, Seq::from(i / 3), i))
            .collect();
        let id = |i: usize| batches[i].id();
        for b in &batches[..5] {
            p.cover(&w.ctx(), b, &mut out);
        }
        out.take();
        p.uncover(&id(5), None, 1, &mut out);
        assert_eq!(nowhere(&mut out), Vec::<CommandId>::new(), "never checked");
        // Decided Noop, or void below the floors: reported once.
        p.uncover(&id(0), None, 1, &mut out);
        assert_eq!(nowhere(&mut out), vec![id(0)]);
        p.uncover(&id(0), None, 1, &mut out);
        assert_eq!(nowhere(&mut out), Vec::<CommandId>::new(), "once");
        // A fence at the blocks built when it was checked, or later: reported. Behind them:
        // that block was built before the check, so whether it carried the batch is unknown.
        p.uncover(&id(1), Some(5), 1, &mut out);
        assert_eq!(nowhere(&mut out), vec![id(1)]);
        p.uncover(&id(2), Some(4), 1, &mut out);
        assert_eq!(nowhere(&mut out), Vec::<CommandId>::new());
        // Landed: never.
        p.cover_landed(&id(3));
        p.uncover(&id(3), None, 1, &mut out);
        assert_eq!(nowhere(&mut out), Vec::<CommandId>::new());
        // Checked 20 s ago: the engine's hold is over, nothing to report.
        p.uncover(&id(4), None, COVER_HOLD_MS, &mut out);
        assert_eq!(nowhere(&mut out), Vec::<CommandId>::new());
        // A rejoin forgets every check.
        p.cover(&w.ctx(), &batches[5], &mut out);
        p.rejoined();
        out.take();
        p.uncover(&id(5), None, 1, &mut out);
        assert_eq!(nowhere(&mut out), Vec::<CommandId>::new());
    }

    #[test]
    fn client_batches_are_written_reported_and_announced_in_seq_order() {
        let w = World::new();
        let mut p = Proposer::default();
        let mut out = Outbox::new(ME);
        p.add_client_batch(&txs(3), 2);
        let events = p.propose_own(&w.ctx(), &mut out, 2);
        let batches = signed(&events);
        assert_eq!(batches.len(), 2);
        for (seq, b) in batches.iter().enumerate() {
            let h = &b.header.body;
            assert_eq!(
                (h.proposer, h.seq, h.kind.clone()),
                (ME, seq as Seq, BatchKind::Txs)
            );
            assert!(b.header.verify(&[0; 32], &w.crypto));
        }
        assert_eq!(*batches[0].txs, txs(2));
        assert_eq!(*batches[1].txs, txs(3)[2..].to_vec());
        let shape: Vec<String> = out
            .take()
            .into_iter()
            .map(|o| match o {
                Output::Persist(ops) => format!("{:?}", ops[0].key()),
                Output::Proposed { id, .. } => format!("proposed {}", batches[0].id() == id),
                Output::Send {
                    to: None,
                    msg: Message::Announce(b),
                } => format!("announce {}", b.header.body.seq),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "OwnBatch(0)",
                "proposed true",
                "OwnBatch(1)",
                "proposed false",
                "announce 0",
                "announce 1",
            ]
        );
        assert_eq!(p.pending(), 0);
    }

    /// `n` client transactions of about 1 KiB each.
    fn big_txs(n: u8) -> Vec<Tx> {
        (0..n)
            .map(|i| Tx {
                access: vec![[i; 32]],
                data: vec![i; 1_000],
            })
            .collect()
    }

    #[test]
    fn queued_replies_narrow_the_send_window_and_waiting_batches_merge_into_its_room() {
        let mut w = World::new();
        let mut p = Proposer::new(500);
        let mut out = Outbox::new(ME);
        let quorum = |p: &mut Proposer, w: &World, b: &SignedBatch| {
            let events: Vec<Event> = (2..=4)
                .flat_map(|who| p.on_reply(&w.ctx(), reply(who, b)))
                .collect();
            assert!(events.iter().any(|e| matches!(e, Event::Collected(_))));
        };
        // Each member replies in 100 ms: its base.
        p.add_client_batch(&big_txs(1), 512);
        let b0 = signed(&p.propose_own(&w.ctx(), &mut out, 512)).remove(0);
        w.now = 100;
        quorum(&mut p, &w, &b0);
        assert_eq!(p.send_window(), None, "no queueing: open");
        // The next batch's replies come 2 s late: the window closes to its floor (half of the
        // 2 KiB in flight is less).
        p.add_client_batch(&big_txs(1), 512);
        let b1 = signed(&p.propose_own(&w.ctx(), &mut out, 512)).remove(0);
        w.now = 2_200;
        quorum(&mut p, &w, &b1);
        assert_eq!(p.send_window(), Some(MIN_WINDOW_BYTES));
        // Twenty 1 KiB client batches wait: the next batch takes what fits in the 6 KiB of room
        // left, the rest waits.
        for _ in 0..20 {
            p.add_client_batch(&big_txs(1), 512);
        }
        let more = signed(&p.propose_own(&w.ctx(), &mut out, 512));
        assert_eq!(more.len(), 1, "one batch");
        let in_flight = b0.header.body.weight + b1.header.body.weight;
        assert!(more[0].header.body.weight <= MIN_WINDOW_BYTES - in_flight);
        assert!(
            more[0].txs.len() > 1,
            "merged: {} transactions",
            more[0].txs.len()
        );
        assert_eq!(p.pending(), 20 - more[0].txs.len());
        assert!(
            signed(&p.propose_own(&w.ctx(), &mut out, 512)).is_empty(),
            "no room"
        );
    }

    #[test]
    fn batches_wait_for_room_in_the_window() {
        let w = World::new();
        let mut p = Proposer::default();
        let mut out = Outbox::new(ME);
        p.add_client_batch(&txs(20), 1);
        let proposed = signed(&p.propose_own(&w.ctx(), &mut out, 1));
        assert_eq!(proposed.len(), 16, "W = 16 above watermark 0");
        assert_eq!(p.pending(), 4);
        p.requeue(vec![(3, txs(1))]);
        assert_eq!(p.unproposed().next(), Some(&txs(1)), "requeued goes first");
    }

    #[test]
    fn a_quorum_of_replies_makes_one_proposal_and_a_changed_reply_a_proof() {
        let w = World::new();
        let mut p = Proposer::default();
        let mut out = Outbox::new(ME);
        p.add_client_batch(&txs(1), 1);
        let b = signed(&p.propose_own(&w.ctx(), &mut out, 512)).remove(0);
        assert!(p.on_reply(&w.ctx(), reply(1, &b)).is_empty());
        assert!(p.on_reply(&w.ctx(), reply(2, &b)).is_empty());
        let mut changed = reply(2, &b).body;
        changed.fence += 1;
        let changed = Signed::sign(changed, &[0; 32], &InsecureTestCrypto([2; 32]));
        let events = p.on_reply(&w.ctx(), changed);
        assert!(
            matches!(
                &events[..],
                [Event::Misbehaved(Proof::ReplyEquivocation(..))]
            ),
            "{events:?}"
        );
        let events = p.on_reply(&w.ctx(), reply(3, &b));
        let [Event::Collected(proposal)] = &events[..] else {
            panic!("q = 3 replies collect: {events:?}");
        };
        assert_eq!(proposal.inst, b.header.body.dep_ref().instance());
        assert_eq!(proposal.view, 0);
        assert_eq!(proposal.proof.len(), 3);
        assert!(proposal.payload.is_none(), "voters hold a view-0 batch");
        assert!(
            p.on_reply(&w.ctx(), reply(4, &b)).is_empty(),
            "collected once"
        );
    }

    #[test]
    fn replies_from_outside_the_set_or_for_unknown_batches_count_for_nothing() {
        let w = World::new();
        let mut p = Proposer::default();
        let mut out = Outbox::new(ME);
        p.add_client_batch(&txs(1), 1);
        let b = signed(&p.propose_own(&w.ctx(), &mut out, 512)).remove(0);
        let mut other = b.clone();
        other.header.body.seq = 7;
        assert!(p.on_reply(&w.ctx(), reply(2, &other)).is_empty());
        for who in [9, 10, 11] {
            assert!(p.on_reply(&w.ctx(), reply(who, &b)).is_empty());
        }
        assert!(p.collect(&w.ctx(), b.id()).is_empty());
    }

    #[test]
    fn a_due_checkpoint_is_announced_once_by_its_view_0_leader() {
        let leader = World::new()
            .chain
            .leader(&World::new().membership, 1, 0)
            .expect("block 1's rotation is known");
        let other = World::new()
            .membership
            .validators()
            .iter()
            .copied()
            .find(|v| *v != leader)
            .expect("four validators");
        let w = World::as_validator(other);
        let mut p = Proposer::default();
        let mut out = Outbox::new(other);
        assert!(p.checkpoint_due(&w.ctx(), &mut out, 0).is_empty());
        assert!(out.take().is_empty(), "not the leader: nothing goes out");

        let mut w = World::as_validator(leader);
        w.now = 42;
        let mut p = Proposer::default();
        let mut out = Outbox::new(leader);
        assert!(
            p.checkpoint_due(&w.ctx(), &mut out, 1).is_empty(),
            "its instance left view 0: the view change leads it"
        );
        assert!(out.take().is_empty());
        let events = p.announce_due_candidate(&w.ctx(), &mut out, 0);
        let [Event::Signed(c)] = &events[..] else {
            panic!("one candidate: {events:?}");
        };
        let BatchKind::Checkpoint {
            index,
            view,
            timestamp_ms,
            ..
        } = c.header.body.kind
        else {
            panic!("a checkpoint candidate");
        };
        assert_eq!((index, view, timestamp_ms), (1, 0, 42));
        let outputs = out.take();
        assert!(
            matches!(&outputs[0], Output::Persist(ops) if *ops[0].key() == Key::OwnCandidate(1, 0))
        );
        assert!(
            matches!(&outputs[1], Output::Send { to: None, msg: Message::Announce(a) } if a.id() == c.id())
        );
        assert_eq!(outputs.len(), 2);
        assert!(
            p.checkpoint_due(&w.ctx(), &mut out, 0).is_empty(),
            "view 0 is announced"
        );
        assert!(out.take().is_empty());

        // Announced again in the same view (a resend): the same candidate, not written again.
        w.payloads.insert(c.clone());
        assert!(p
            .announce_candidate(&w.ctx(), &mut out, 1, 0, vec![])
            .is_empty());
        let outputs = out.take();
        assert!(
            matches!(&outputs[..], [Output::Send { msg: Message::Announce(a), .. }] if a.id() == c.id())
        );
        assert_eq!(p.retire_candidates(1, 3), vec![(0, c.id())]);
    }

    #[test]
    fn a_restart_reports_our_own_collecting_batches_and_a_resend_does_not() {
        let mut w = World::new();
        let mut p = Proposer::default();
        let mut out = Outbox::new(ME);
        p.add_client_batch(&txs(1), 1);
        let b = signed(&p.propose_own(&w.ctx(), &mut out, 512)).remove(0);
        out.take();
        let theirs = {
            let mut other = b.clone();
            other.header.body.proposer = [2; 32];
            other
        };
        p.restore_batch(theirs.clone());
        let describe = |outs: Vec<Output>| {
            let mut d = outs
                .into_iter()
                .map(|o| match o {
                    Output::Proposed { id, .. } => format!("proposed {}", id == b.id()),
                    Output::Send {
                        to,
                        msg: Message::Announce(a),
                    } => format!("announce {} to {:?}", a.id() == b.id(), to.map(|v| v[0])),
                    other => panic!("unexpected {other:?}"),
                })
                .collect::<Vec<_>>();
            d.sort();
            d
        };
        let mut restart = Outbox::new(ME);
        p.reannounce(&w.ctx(), &mut restart);
        assert_eq!(
            describe(restart.take()),
            [
                "announce false to None",
                "announce true to None",
                "proposed true"
            ]
        );
        // A retransmission tick: to each other member (none replied yet), our own not reported.
        let resend = |p: &mut Proposer, w: &World| {
            let mut out = Outbox::new(ME);
            p.reannounce_due(&w.ctx(), &mut out, 1_000);
            describe(out.take())
        };
        w.now = 1_000;
        let to_others: Vec<String> = [false, true]
            .iter()
            .flat_map(|ours| (2..=4).map(move |v| format!("announce {ours} to Some({v})")))
            .collect();
        assert_eq!(resend(&mut p, &w), to_others);
        // Not again before two periods without a reply (backoff), then again.
        w.now = 2_500;
        assert!(resend(&mut p, &w).is_empty());
        w.now = 3_000;
        assert_eq!(resend(&mut p, &w), to_others);
    }
}

//! Recovery: how a replica that fell behind gets back in step. Through its peers first
//! ([`catch_up`]: finished blocks f+1 of them vouch for), and when they no longer hold what it
//! misses, from the certified chain ([`settled`] asks what is settled at a chain block;
//! [`rejoin`] says what a claim may say and how f+1 claims combine).
//!
//! [`Recovery`] is the service: it owns the blocks kept for laggards, the chain head the engine
//! reported and the settled exchange, reads the rest through [`Ctx`], sends through the
//! [`Outbox`], and hands the replica what only the replica can apply: a vouched block to adopt
//! ([`Recovery::vouched`]) and a chain position to rejoin at ([`Rejoin`]).

pub mod catch_up;
pub mod rejoin;
pub mod settled;

use crate::ctx::Ctx;
use crate::io::ChainPosition;
use crate::outbox::Outbox;
use crate::types::*;
use crate::wire::*;
use catch_up::CatchUp;
use rejoin::Combined;
use settled::SettledExchange;
use std::collections::BTreeMap;

/// Continue after the chain block `pos`, with what f+1 claims say is settled there.
#[derive(Debug)]
pub struct Rejoin {
    /// The chain block.
    pub pos: ChainPosition,
    /// Per proposer, what the claims establish.
    pub settled: BTreeMap<ValidatorId, Combined>,
}

/// What one resend period found before any rejoin it leads to (the rest of the period runs
/// after it, see [`Recovery::resend_after_rejoin`]).
#[derive(Clone, Copy, Debug)]
#[must_use = "the rest of the resend period runs with it"]
pub struct ResendPlan {
    idle: bool,
    chain_ahead: bool,
    far_behind: bool,
}

/// The recovery service.
#[derive(Debug)]
pub struct Recovery {
    /// Finished blocks for laggards, blocks offered to us, chain blocks above us.
    catch_up: CatchUp,
    /// What is settled at a chain block: asked, answered, collected.
    settled: SettledExchange,
    /// Resend periods so far (rotates the peer asked for a missing decision).
    resend_rounds: u64,
    /// The resend period (ms): how long before asking again.
    resend_ms: u64,
    /// Finished blocks kept for laggards.
    retain_sync_blocks: u64,
}

impl Recovery {
    /// A service with nothing kept, resending every `resend_ms` and keeping
    /// `retain_sync_blocks` finished blocks for laggards.
    pub fn new(resend_ms: u64, retain_sync_blocks: u64) -> Self {
        Recovery {
            catch_up: CatchUp::default(),
            settled: SettledExchange::default(),
            resend_rounds: 0,
            resend_ms,
            retain_sync_blocks,
        }
    }

    /// The engine saw chain block `pos`.
    pub fn chain_block(&mut self, pos: ChainPosition, built: BlockIndex) {
        self.catch_up.chain_block(pos, built);
    }

    /// We finished `block`: keep it for laggards and note what it settled.
    pub fn block_finished(&mut self, block: &FinishedBlock) {
        self.catch_up.block_finished(block);
        let batches = block.batches.iter();
        let batches = batches.map(|(h, _)| (h.proposer, h.seq, h.id())).collect();
        self.settled.block_finished(block.index, batches);
    }

    /// We rejoined at chain block `c`.
    pub fn rejoined(&mut self, c: BlockIndex) {
        self.catch_up.rejoined(c);
    }

    /// Block `b` is collected: forget what is no longer needed.
    pub fn trim(&mut self, b: BlockIndex) {
        self.catch_up.trim(b, self.retain_sync_blocks);
        self.settled.trim(b);
    }

    /// A candidate was refused only because a floor passed our watermark.
    pub fn note_floor_gap(&mut self) {
        self.settled.note_floor_gap();
    }

    /// Send `from` the finished blocks we keep from `b` on.
    pub fn serve(&self, out: &mut Outbox, from: ValidatorId, b: BlockIndex) {
        for blk in self.catch_up.serve(b) {
            out.send(from, Message::SyncBlock(blk));
        }
    }

    /// A finished block offered by `from`; false if it is of no use.
    pub fn offer(&mut self, from: ValidatorId, blk: FinishedBlock, built: BlockIndex) -> bool {
        self.catch_up.offer(from, blk, built)
    }

    /// Block `b` if `vouchers` validators offered it identically.
    pub fn vouched(&self, b: BlockIndex, vouchers: usize) -> Option<FinishedBlock> {
        self.catch_up.vouched(b, vouchers)
    }

    /// Ask what is settled at `pos` (the same question is kept a while, see
    /// [`SettledExchange::ask`]).
    pub fn ask_settled(&mut self, ctx: &Ctx, out: &mut Outbox, pos: ChainPosition) {
        let at = self.settled.ask(pos, ctx.built, ctx.now);
        let epoch = ctx.membership.epoch;
        out.ask_others(Message::SettledRequest { epoch, at });
    }

    /// Answer `from` what is settled at block `at` (see [`SettledExchange::answer`]).
    pub fn answer_settled(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        from: ValidatorId,
        epoch: Epoch,
        at: BlockIndex,
    ) {
        if epoch != ctx.membership.epoch {
            return;
        }
        let committed = ctx.committed.headers();
        let answer =
            self.settled
                .answer(from, at, ctx.built, ctx.membership, ctx.record, committed);
        if let Some(proposers) = answer {
            let msg = Message::Settled {
                epoch,
                at,
                proposers,
            };
            out.send(from, msg);
        }
    }

    /// `from` claims what is settled at block `at`; a rejoin once enough claims agree.
    pub fn on_settled(
        &mut self,
        ctx: &Ctx,
        from: ValidatorId,
        epoch: Epoch,
        at: BlockIndex,
        proposers: Vec<SettledSeqs>,
    ) -> Option<Rejoin> {
        let counted = epoch == ctx.membership.epoch
            && from != ctx.me
            && self
                .settled
                .on_claim(from, at, proposers, ctx.built, ctx.membership);
        if counted {
            self.ready(ctx)
        } else {
            None
        }
    }

    /// A rejoin once the settled exchange has enough claims (see [`SettledExchange::ready`]).
    pub fn ready(&mut self, ctx: &Ctx) -> Option<Rejoin> {
        let (pos, settled) =
            self.settled
                .ready(ctx.membership, ctx.built, ctx.now, self.resend_ms)?;
        Some(Rejoin { pos, settled })
    }

    /// A resend period, up to the rejoin it may lead to: ask for the headers of decisions
    /// that hold a watermark back, and for finished blocks when none was built since
    /// `last_build_ms` for a while or the chain is ahead.
    pub fn resend_before_rejoin(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        last_build_ms: u64,
    ) -> (ResendPlan, Option<Rejoin>) {
        self.resend_rounds += 1;
        self.ask_headers_of_uncounted(ctx, out);
        let chain_ahead = self.catch_up.chain_ahead_by(ctx.built, 1);
        let idle = ctx.now.saturating_sub(last_build_ms) >= 2 * self.resend_ms;
        if idle || chain_ahead {
            out.ask_others(Message::SyncRequest(ctx.built + 1));
        }
        // Rejoin from the chain when stuck behind it, or when so far behind that peers will soon
        // no longer hold the blocks to catch up with.
        let far_behind = self
            .catch_up
            .chain_ahead_by(ctx.built, (self.retain_sync_blocks / 2).max(4));
        let plan = ResendPlan {
            idle,
            chain_ahead,
            far_behind,
        };
        (plan, self.ready(ctx))
    }

    /// The rest of a resend period (after the rejoin it may have led to): ask what is settled
    /// at the chain head when stuck behind it, or at our own last block when a watermark or a
    /// floor waits on a gap; behind the chain, ask for the next checkpoint's decision and the
    /// decisions its block waits for.
    /// `last_progress` says when a live single-shot instance last made progress here.
    pub fn resend_after_rejoin(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        plan: ResendPlan,
        last_progress: impl Fn(&InstanceId) -> Option<u64>,
    ) {
        let ResendPlan {
            idle,
            chain_ahead,
            far_behind,
        } = plan;
        if (idle && chain_ahead) || far_behind {
            if let Some(head) = self.catch_up.chain_head().cloned() {
                self.ask_settled(ctx, out, head);
            }
        } else if !chain_ahead && (watermark_stuck(ctx) || self.settled.floor_gap()) {
            // Caught up, but a proposer's watermark waits on a seq nobody listed when we
            // rejoined, or we refused a candidate whose floor passed it: ask again about our
            // own last block; the marks f+1 peers vouch for fill the gap.
            self.settled.clear_floor_gap();
            if let Some(own) = ctx.chain.position(ctx.built) {
                self.ask_settled(ctx, out, own);
            }
        }
        if !chain_ahead {
            return;
        }
        // Behind the chain: the next checkpoint made no progress here for a while, so ask for
        // its decision (peers do not resend votes of decided instances).
        let (now, horizon) = (ctx.now, self.resend_ms);
        let next = InstanceId::Ckpt(ctx.chain.next());
        let stalled = last_progress(&next).is_none_or(|t| now.saturating_sub(t) >= horizon);
        if stalled {
            out.ask_others(Message::Fetch(next));
        }
        // ... and when the next block's checkpoint is decided but some of its commands made no
        // progress here, ask one peer each (rotating) for their decisions.
        let Some(k) = ctx.chain.decided(ctx.built + 1) else {
            return;
        };
        let floors = k.floors();
        let missing: Vec<InstanceId> = k
            .deps
            .iter()
            .filter(|d| {
                matches!(d.kind, DepKind::Txs { .. })
                    && !crate::floors::voids(floors, d)
                    && !ctx.dep_decided(d)
            })
            .map(|d| d.instance())
            .filter(|i| last_progress(i).is_none_or(|t| now.saturating_sub(t) >= horizon))
            .take(16)
            .collect();
        self.fetch_in_turn(ctx, out, missing);
    }

    /// Ask for the decisions, and so the headers, of commands decided here without their header
    /// where they hold a proposer's watermark back. A Byzantine proposer that showed a batch
    /// to a few replicas only leaves the others' watermarks behind theirs, and a replica judges
    /// floors and the reach of replies by its watermark: left apart, the two sides refuse each
    /// other's checkpoint work for good (docs/consensus.md, "Headers of decided commands").
    /// Only the seq at each proposer's watermark is asked about (the one that holds it), each
    /// id of one peer, rotating, so that one proposer's uncountable marks cannot crowd out
    /// another's and no mark costs a broadcast and n - 1 certificates per resend.
    fn ask_headers_of_uncounted(&self, ctx: &Ctx, out: &mut Outbox) {
        let asks: Vec<InstanceId> = ctx
            .membership
            .validators()
            .iter()
            .flat_map(|p| {
                ctx.record
                    .uncounted_from_watermark(p, 1)
                    .into_iter()
                    .map(move |(seq, id)| InstanceId::Cmd {
                        proposer: *p,
                        seq,
                        id,
                    })
            })
            .collect();
        self.fetch_in_turn(ctx, out, asks);
    }

    /// Ask one peer for each of `insts`, the peers taken in turn across resends.
    fn fetch_in_turn(&self, ctx: &Ctx, out: &mut Outbox, insts: Vec<InstanceId>) {
        let peers: Vec<ValidatorId> = ctx
            .membership
            .validators()
            .iter()
            .copied()
            .filter(|v| *v != ctx.me)
            .collect();
        if peers.is_empty() {
            return;
        }
        for (k, inst) in insts.into_iter().enumerate() {
            let to = peers[(self.resend_rounds as usize + k) % peers.len()];
            out.send(to, Message::Fetch(inst));
        }
    }
}

/// Some proposer has more than 2W decided seqs above its watermark: a correct proposer cannot
/// get that far ahead of an undecided seq (replies stop W above it), so the seq at our
/// watermark was decided without us learning of it.
fn watermark_stuck(ctx: &Ctx) -> bool {
    ctx.membership
        .validators()
        .iter()
        .any(|p| ctx.record.decided_above_watermark(p) > 2 * ctx.window as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::testing::World;
    use crate::rotation::Rotation;
    use crate::Output;

    const PEER: ValidatorId = [2; 32];

    fn block(index: BlockIndex) -> FinishedBlock {
        FinishedBlock {
            index,
            ..Default::default()
        }
    }

    fn chain_block(index: BlockIndex) -> ChainPosition {
        ChainPosition {
            index,
            checkpoint: [index as u8; 32],
            timestamp_ms: index,
            next_rotation: Rotation::fresh(0),
            floors: vec![],
        }
    }

    /// Each message sent, with its recipient (None: every other member).
    fn sent(out: &mut Outbox) -> Vec<(Option<ValidatorId>, Message)> {
        out.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Send { to, msg } => Some((to, msg)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_laggard_gets_the_kept_blocks_from_its_index_on() {
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new([1; 32]);
        for b in 1..=3 {
            r.block_finished(&block(b));
        }
        r.serve(&mut out, PEER, 2);
        assert_eq!(
            sent(&mut out),
            vec![
                (Some(PEER), Message::SyncBlock(block(2))),
                (Some(PEER), Message::SyncBlock(block(3)))
            ]
        );
        r.trim(11);
        r.serve(&mut out, PEER, 0);
        assert_eq!(
            sent(&mut out),
            vec![(Some(PEER), Message::SyncBlock(block(3)))],
            "from 8 blocks below the collected one on"
        );
    }

    #[test]
    fn a_block_f_plus_1_peers_offer_identically_is_vouched_for() {
        let mut r = Recovery::new(1_000, 8);
        assert!(r.offer(PEER, block(1), 0));
        assert_eq!(r.vouched(1, 2), None);
        assert!(r.offer([3; 32], block(1), 0));
        assert_eq!(r.vouched(1, 2), Some(block(1)));
        assert!(!r.offer(PEER, block(1), 1), "built already");
    }

    #[test]
    fn behind_the_chain_a_resend_asks_for_blocks_the_settled_state_and_the_next_checkpoint() {
        let mut w = World::new();
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new(w.me);
        r.chain_block(chain_block(9), 0);
        w.now = 5_000;
        let (plan, rejoin) = r.resend_before_rejoin(&w.ctx(), &mut out, 4_500);
        assert!(rejoin.is_none(), "nobody claimed anything yet");
        r.resend_after_rejoin(&w.ctx(), &mut out, plan, |_| None);
        assert_eq!(
            sent(&mut out),
            vec![
                (None, Message::SyncRequest(1)),
                (None, Message::SettledRequest { epoch: 0, at: 9 }),
                (None, Message::Fetch(InstanceId::Ckpt(1))),
            ],
            "far behind (more than max(8 / 2, 4) blocks): ask what is settled at the head"
        );
    }

    #[test]
    fn in_step_and_busy_a_resend_asks_nothing() {
        let mut w = World::new();
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new(w.me);
        w.now = 5_000;
        let (plan, _) = r.resend_before_rejoin(&w.ctx(), &mut out, 4_500);
        r.resend_after_rejoin(&w.ctx(), &mut out, plan, |_| None);
        assert_eq!(sent(&mut out), vec![]);
        let (plan, _) = r.resend_before_rejoin(&w.ctx(), &mut out, 3_000);
        r.resend_after_rejoin(&w.ctx(), &mut out, plan, |_| None);
        assert_eq!(
            sent(&mut out),
            vec![(None, Message::SyncRequest(1))],
            "idle 2 s"
        );
    }

    #[test]
    fn a_decision_without_its_header_is_asked_of_one_peer_in_turn() {
        let mut w = World::new();
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new(w.me);
        w.record.mark([3; 32], 0, [7; 32], false);
        let inst = InstanceId::Cmd {
            proposer: [3; 32],
            seq: 0,
            id: [7; 32],
        };
        let mut asked = vec![];
        for _ in 0..3 {
            let (plan, _) = r.resend_before_rejoin(&w.ctx(), &mut out, 0);
            r.resend_after_rejoin(&w.ctx(), &mut out, plan, |_| None);
            for (to, msg) in sent(&mut out) {
                if msg == Message::Fetch(inst) {
                    asked.push(to);
                }
            }
        }
        assert_eq!(asked, vec![Some([3; 32]), Some([4; 32]), Some([2; 32])]);
    }

    #[test]
    fn claims_of_another_epoch_or_our_own_count_for_nothing() {
        let w = World::new();
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new(w.me);
        r.ask_settled(&w.ctx(), &mut out, chain_block(9));
        assert_eq!(
            sent(&mut out),
            vec![(None, Message::SettledRequest { epoch: 0, at: 9 })]
        );
        // n = 4: f + 1 = 2 claims, and 3 (every other member) rejoin at once.
        assert!(r.on_settled(&w.ctx(), [3; 32], 0, 9, vec![]).is_none());
        assert!(r.on_settled(&w.ctx(), PEER, 1, 9, vec![]).is_none());
        assert!(r.on_settled(&w.ctx(), w.me, 0, 9, vec![]).is_none());
        assert!(
            r.on_settled(&w.ctx(), [4; 32], 0, 8, vec![]).is_none(),
            "another block"
        );
        assert!(
            r.on_settled(&w.ctx(), [4; 32], 0, 9, vec![]).is_none(),
            "two claims count: the other epoch's and our own did not"
        );
        let rejoin = r
            .on_settled(&w.ctx(), PEER, 0, 9, vec![])
            .expect("every other member claimed: no need to wait");
        assert_eq!(rejoin.pos, chain_block(9));
    }

    #[test]
    fn a_question_of_another_epoch_gets_no_answer() {
        let mut w = World::new();
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new(w.me);
        w.built = 1;
        r.block_finished(&block(1));
        r.answer_settled(&w.ctx(), &mut out, PEER, 0, 1);
        let answered = sent(&mut out);
        assert!(
            matches!(
                &answered[..],
                [(Some(PEER), Message::Settled { at: 1, .. })]
            ),
            "{answered:?}"
        );
        r.answer_settled(&w.ctx(), &mut out, [3; 32], 1, 1);
        assert_eq!(sent(&mut out), vec![], "another epoch's question");
    }

    #[test]
    fn a_resend_that_rejoins_asks_the_rest_from_the_new_position() {
        let mut w = World::new();
        let mut r = Recovery::new(1_000, 8);
        let mut out = Outbox::new(w.me);
        r.chain_block(chain_block(9), 0);
        r.ask_settled(&w.ctx(), &mut out, chain_block(9));
        for who in [2, 3] {
            assert!(r.on_settled(&w.ctx(), [who; 32], 0, 9, vec![]).is_none());
        }
        sent(&mut out);
        w.now = 1_000;
        let (plan, rejoin) = r.resend_before_rejoin(&w.ctx(), &mut out, 1_000);
        assert_eq!(rejoin.expect("f + 1 claims and patience").pos.index, 9);
        assert_eq!(sent(&mut out), vec![(None, Message::SyncRequest(1))]);
        // The replica rejoined at 9 (its chain is not this test's: the next checkpoint stays 1).
        r.rejoined(9);
        r.resend_after_rejoin(&w.ctx(), &mut out, plan, |_| None);
        assert_eq!(
            sent(&mut out),
            vec![(None, Message::Fetch(InstanceId::Ckpt(1)))],
            "behind before the rejoin: the next checkpoint is asked for; the head is no longer \
             above us, so nothing is asked about it"
        );
    }
}

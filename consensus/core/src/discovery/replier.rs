//! Dependency discovery, replier side (protocol.md, "Dependency discovery"): what a replica
//! answers to an announced batch. A command batch gets a reply once per (proposer, seq) slot
//! and only inside our window; a checkpoint candidate only from the leader of its view, on the
//! last decided checkpoint, with floors we can accept. The rules are pure: they read [`Ctx`]
//! and return an [`Answer`]; the replica signs and persists the reply (the conflict log is the
//! state a reply changes) and routes the rest.
//!
//! Every rule judges the header the batch carries, whose signature the replica checked first:
//! an id always travels with the header it names.

use crate::checkpoint::{self, CandidateAction};
use crate::crypto::Signed;
use crate::ctx::Ctx;
use crate::misbehaviour::Proof;
use crate::types::*;
use crate::wire::*;

/// Checkpoint candidates held per signer for an index above the next (judged once the
/// previous checkpoint commits): enough for the views a correct leader may reach, so that no
/// member can crowd out the others' candidates.
pub const HELD_CANDIDATES_PER_SIGNER: usize = checkpoint::MAX_VIEW_AHEAD as usize + 1;

/// What to do with an announced batch that is not decided here.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Reply: the first header for its slot, inside our window.
    Reply,
    /// We replied to this batch before: send the same reply again.
    Again(Box<Signed<ReplyBody>>),
    /// Its proposer signed another header for this slot: the two prove it.
    Conflict(Box<Proof>),
    /// A command outside our window (below the watermark, or a full window above it): no
    /// reply now; its proposer announces it again.
    Outside,
    /// A checkpoint candidate for this later index: held until the one before it commits.
    Hold(BlockIndex),
    /// A checkpoint candidate we take no part in (stale, not its view's leader, other base).
    Ignore,
    /// A checkpoint candidate whose floors we cannot accept. `gap`: they are well formed and
    /// extend the last agreed ones, only our decided record is short of them (peers' settled
    /// marks fill such a gap).
    Floors {
        /// Only our watermark is short.
        gap: bool,
    },
}

/// Whether `b` is known decided here; if so, whether its decision was marked but could not
/// count until its header arrived (it counts now: the batch is checked).
pub fn decided(ctx: &Ctx, b: &SignedBatch) -> Option<bool> {
    let h = &b.header.body;
    match h.kind {
        BatchKind::Txs => {
            let inst = h.dep_ref().instance();
            ctx.is_decided_inst(&inst)
                .then(|| ctx.record.uncounted(&h.proposer, h.seq, &b.id()))
        }
        BatchKind::Checkpoint { index, .. } => (index <= ctx.chain.last()).then_some(false),
    }
}

/// Whether `b` is the batch of a command instance we lack; `live` says whether its instance
/// is live here (we vote on it, or lead its recovery with the batch).
pub fn awaited(ctx: &Ctx, b: &SignedBatch, live: bool) -> bool {
    matches!(b.header.body.kind, BatchKind::Txs) && live && !ctx.payloads.contains(&b.id())
}

/// The answer to an announced batch that is not decided here. Call [`decided`] first, and
/// store (and act on) an [`awaited`] batch before: the answer reads the state after that.
/// `view` is the view of the batch's instance here (a checkpoint candidate's view is judged
/// against it).
pub fn answer(ctx: &Ctx, b: &SignedBatch, view: View) -> Answer {
    let h = &b.header.body;
    if let Some(r) = ctx.dds.cached(&b.id()) {
        return Answer::Again(Box::new(r.clone()));
    }
    match h.kind {
        BatchKind::Txs => {
            if let Some(p) = ctx.headers.conflict(&b.header) {
                return Answer::Conflict(Box::new(p));
            }
            if h.seq < ctx.record.watermark(&h.proposer) || h.seq >= ctx.window_end(&h.proposer) {
                return Answer::Outside;
            }
            Answer::Reply
        }
        BatchKind::Checkpoint {
            index, ref floors, ..
        } => {
            let current_view = view;
            let last = ctx.chain.last();
            let k_prev = ctx.chain.id(last).unwrap_or([0; 32]);
            let rotation = ctx.chain.rotation(ctx.chain.next());
            match checkpoint::classify(ctx.membership, h, last, &k_prev, current_view, &rotation) {
                CandidateAction::Ignore => Answer::Ignore,
                CandidateAction::Buffer => Answer::Hold(index),
                CandidateAction::Reply => {
                    if let Some(p) = ctx.headers.conflict(&b.header) {
                        return Answer::Conflict(Box::new(p));
                    }
                    // Floors that go down, or past what we know decided: no reply (the leader
                    // announces again; a later view's leader proposes its own). The header is
                    // not recorded, so a second one for this view is judged afresh.
                    let prev = ctx.chain.floors(last);
                    let m = ctx.membership;
                    if !crate::floors::acceptable(floors, prev, m, |p| ctx.record.watermark(p)) {
                        let gap = crate::floors::well_formed(floors, m)
                            && crate::floors::extends(floors, prev);
                        return Answer::Floors { gap };
                    }
                    Answer::Reply
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;
    use crate::ctx::testing::{command, World};
    use crate::rotation::Rotation;
    use codec::Encode;

    fn signed(header: BatchHeader, txs: Vec<Tx>) -> SignedBatch {
        let who = header.proposer;
        SignedBatch {
            header: Signed::sign(header, &[0; 32], &InsecureTestCrypto(who)),
            txs: txs.into(),
        }
    }

    /// The candidate for checkpoint `index` in `view` by that view's leader (or `by`), on
    /// genesis, with floors `floor` for every member.
    fn candidate(
        w: &World,
        index: BlockIndex,
        view: View,
        by: Option<ValidatorId>,
        floor: Seq,
    ) -> SignedBatch {
        let m = &w.membership;
        let header = BatchHeader {
            epoch: 0,
            proposer: by.unwrap_or_else(|| Rotation::fresh(0).leader(m, index, view)),
            seq: 0,
            base: [0; 32],
            kind: BatchKind::Checkpoint {
                index,
                view,
                timestamp_ms: 1,
                floors: crate::floors::propose(m, &[], |_| floor),
            },
            access: vec![],
            txs_root: hash(&Vec::<Tx>::new().encode()),
            weight: 0,
        };
        signed(header, vec![])
    }

    #[test]
    fn the_first_header_of_a_slot_gets_a_reply_and_a_second_one_a_proof() {
        let mut w = World::new();
        let b = command(2, 0, 1);
        assert_eq!(answer(&w.ctx(), &b, 0), Answer::Reply);
        w.headers.replied(&b.header);
        let other = command(2, 0, 2);
        assert_eq!(
            answer(&w.ctx(), &other, 0),
            Answer::Conflict(Box::new(Proof::BatchEquivocation(
                b.header.clone(),
                other.header.clone()
            )))
        );
        let r = w.dds.reply(&b.header.body, &[0; 32], &w.crypto);
        assert_eq!(
            answer(&w.ctx(), &b, 0),
            Answer::Again(Box::new(r)),
            "the same reply, again"
        );
    }

    #[test]
    fn a_command_a_window_above_the_watermark_waits() {
        let w = World::new();
        assert_eq!(answer(&w.ctx(), &command(2, 15, 1), 0), Answer::Reply);
        assert_eq!(answer(&w.ctx(), &command(2, 16, 1), 0), Answer::Outside);
        assert_eq!(
            answer(&w.ctx(), &command(2, u64::MAX, 1), 0),
            Answer::Outside
        );
    }

    #[test]
    fn a_decided_batch_is_answered_with_its_decision_and_counts_once_checked() {
        let mut w = World::new();
        let b = command(2, 0, 1);
        assert_eq!(decided(&w.ctx(), &b), None);
        w.record.mark([2; 32], 0, b.id(), false);
        assert_eq!(decided(&w.ctx(), &b), Some(true), "marked, header lacking");
        let c = command(3, 0, 1);
        w.record.mark([3; 32], 0, c.id(), true);
        assert_eq!(decided(&w.ctx(), &c), Some(false));
        assert_eq!(
            decided(&w.ctx(), &candidate(&w, 0, 0, None, 0)),
            Some(false)
        );
    }

    #[test]
    fn a_live_instance_awaits_the_batch_it_lacks() {
        let mut w = World::new();
        let b = command(2, 0, 1);
        assert!(!awaited(&w.ctx(), &b, false), "no live instance");
        assert!(awaited(&w.ctx(), &b, true));
        w.payloads.insert(b.clone());
        assert!(!awaited(&w.ctx(), &b, true), "held already");
    }

    #[test]
    fn candidates_are_answered_by_leader_index_and_floors() {
        let w = World::new();
        assert_eq!(
            answer(&w.ctx(), &candidate(&w, 1, 0, None, 0), 0),
            Answer::Reply
        );
        let leader = Rotation::fresh(0).leader(&w.membership, 1, 0);
        let other = *w
            .membership
            .validators()
            .iter()
            .find(|v| **v != leader)
            .unwrap();
        assert_eq!(
            answer(&w.ctx(), &candidate(&w, 1, 0, Some(other), 0), 0),
            Answer::Ignore
        );
        assert_eq!(
            answer(&w.ctx(), &candidate(&w, 2, 0, None, 0), 0),
            Answer::Hold(2)
        );
        let far = crate::checkpoint::MAX_INDEX_AHEAD + 1;
        assert_eq!(
            answer(&w.ctx(), &candidate(&w, far, 0, None, 0), 0),
            Answer::Ignore
        );
        assert_eq!(
            answer(&w.ctx(), &candidate(&w, 1, 0, None, 5), 0),
            Answer::Floors { gap: true },
            "floors above our watermarks: our record is short"
        );
    }
}

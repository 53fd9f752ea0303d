//! Single-shot Byzantine consensus: one PBFT instance per Txs command (CONS_c) and one per
//! block index (CONS_ckpt(b)); protocol.md, "Single-shot consensus".
//!
//! [`SingleShot`] is the service: it owns the instances ([`Instances`]) and when each member
//! was last heard from ([`timers::Silence`]), reads the other services through the read-only
//! [`Ctx`], writes what it signs, persists and sends to the [`Outbox`], and returns the
//! [`Event`]s another service takes: a decision (to execution and the decided record), or a
//! new view to lead by collecting (to dependency discovery's proposer side).
//!
//! The handlers live in files named for the step they take: [`normal_case`] (pre-prepare,
//! votes, prepared, decided), [`view_change`] (ask, join, lead), [`decisions`] (answer for a
//! decided instance, record a decision, restore), [`timers`] (view timers and their rules).
//! [`instance`] is one instance's state and vote arithmetic; [`progress`] says what a new vote
//! or pre-prepare leads to.

pub mod decisions;
pub mod instance;
pub mod instances;
pub mod normal_case;
pub mod progress;
pub mod timers;
pub mod view_change;

pub use instance::Instance;
pub use instances::{persisted, Instances};

use crate::crypto::Signed;
use crate::ctx::Ctx;
use crate::storage::StorageOp;
use crate::types::*;
use crate::wire::{SignedBatch, ViewChangeBody, VoteBody};
use timers::Silence;

/// The highest view a vote or view change may name: no instance gets near it after GST (each
/// view is led by another member), and it bounds what one member's signed messages can store.
pub const MAX_VIEW: View = 64;

/// Most instances one (proposer, seq) slot gets from what peers send about ids whose header we
/// do not hold: any member can sign votes and view changes for made-up ids, and an
/// equivocating proposer makes only a few ids per seq real.
pub const MAX_UNKNOWN_IDS_PER_SLOT: usize = 4;

/// The timing the service's rules use (from [`crate::Config`]).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// View-0 timeout of a command instance (its recovery by another leader).
    pub cmd_timeout_ms: u64,
    /// View-0 timeout of a checkpoint instance.
    pub ckpt_timeout_ms: u64,
    /// How far a checkpoint's timestamp may run ahead of ours.
    pub drift_ms: u64,
}

/// What the single-shot service hands to other services, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// A quorum committed `value` for `inst`: record it, execute it.
    Decided {
        /// The instance.
        inst: InstanceId,
        /// Its value.
        value: Value,
        /// The q commit votes.
        cert: Vec<Signed<VoteBody>>,
    },
    /// Lead `view` of a command instance by collecting replies anew for its batch (held):
    /// announce it, collect, and propose Noop at `deadline_ms` from now if no quorum replied.
    Collect(Box<Collect>),
    /// Lead `view` of checkpoint `index` with a candidate of our own.
    Candidate {
        /// The block index.
        index: BlockIndex,
        /// The view we lead.
        view: View,
        /// The q view changes that made the view.
        new_view: Vec<Signed<ViewChangeBody>>,
    },
    /// We proposed Noop for `inst` as its recovery leader: stop collecting for `id`.
    Abandon {
        /// The command.
        id: CommandId,
        /// The instance we led.
        inst: InstanceId,
    },
}

/// A new view of a command instance to lead by collecting ([`Event::Collect`]).
#[derive(Debug)]
pub struct Collect {
    /// The instance.
    pub inst: InstanceId,
    /// The view we lead.
    pub view: View,
    /// Its batch.
    pub batch: SignedBatch,
    /// The q view changes that made the view.
    pub new_view: Vec<Signed<ViewChangeBody>>,
    /// When the collection gives up, from now.
    pub deadline_ms: u64,
}

/// What the door of a pre-prepare says, before any state is created or payload taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Door {
    /// Decided here already: answer with the decision.
    Decided,
    /// Out of reach, a retransmission, or not validly signed by a leader of this epoch.
    Drop,
    /// Signed by a possible leader: its payload may be stored, and the proposal judged.
    Open,
}

/// The single-shot consensus service.
#[derive(Debug)]
pub struct SingleShot {
    insts: Instances,
    silence: Silence,
    timing: Timing,
}

impl SingleShot {
    /// The service of validator `me`, with no instance.
    pub fn new(me: ValidatorId, timing: Timing) -> Self {
        SingleShot {
            insts: Instances::default(),
            silence: Silence::new(me, timing.ckpt_timeout_ms),
            timing,
        }
    }

    /// The instances, read-only.
    pub fn instances(&self) -> &Instances {
        &self.insts
    }

    /// The instances, to mark their resends.
    pub fn instances_mut(&mut self) -> &mut Instances {
        &mut self.insts
    }

    /// Garbage collection at block `at_block`: `inst`'s state goes, its decision (with the
    /// payload `payload_of` finds for its value) is kept for laggards. Returns the view it had
    /// reached, if live, and the deletes of everything persisted for it.
    pub fn retire(
        &mut self,
        inst: InstanceId,
        at_block: BlockIndex,
        payload_of: impl Fn(&Value) -> Option<SignedBatch>,
    ) -> (Option<View>, Vec<StorageOp>) {
        self.insts.retire(inst, at_block, payload_of)
    }

    /// Forget the decisions kept for laggards of instances collected before block `keep_from`.
    pub fn trim_collected(&mut self, keep_from: BlockIndex) {
        self.insts.trim_old(keep_from);
    }

    /// The replica started at `now` (members never heard from count as heard then).
    pub fn started(&mut self, now: u64) {
        self.silence.started(now);
    }

    /// A member's message arrived at `now`.
    pub fn heard(&mut self, from: ValidatorId, now: u64) {
        self.silence.heard(from, now);
    }

    /// The view `inst` is in here (0 if not live).
    pub fn view_of(&self, inst: &InstanceId) -> View {
        self.insts.get(inst).map_or(0, |s| s.view)
    }

    /// When `inst` last made progress here, if live.
    pub fn last_progress(&self, inst: &InstanceId) -> Option<u64> {
        self.insts.get(inst).map(|s| s.last_progress_ms)
    }

    /// The leader of `inst` in `view` (of a checkpoint once its rotation is known).
    fn leader_of(ctx: &Ctx, inst: &InstanceId, view: View) -> Option<ValidatorId> {
        match inst {
            InstanceId::Cmd { proposer, .. } => Some(ctx.membership.leader_cmd(proposer, view)),
            InstanceId::Ckpt(b) => ctx.chain.leader(ctx.membership, *b, view),
        }
    }

    /// The view timeout of `inst` in view 0.
    fn base_timeout(&self, inst: &InstanceId) -> u64 {
        match inst {
            InstanceId::Cmd { .. } => self.timing.cmd_timeout_ms,
            InstanceId::Ckpt(_) => self.timing.ckpt_timeout_ms,
        }
    }

    /// May a peer's message create state for `inst`? Always for checkpoint instances (their
    /// index is bounded at the door) and for commands whose header we hold or a decided
    /// checkpoint waits for ([`Ctx::grounded`]); other ids only while their slot has named few
    /// ids so far, live or decided (a decided id leaving the live set frees no room: otherwise
    /// one member could have every slot decide new made-up ids without end).
    pub fn may_create(&self, ctx: &Ctx, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { proposer, seq, .. } = *inst else {
            return true;
        };
        if !ctx.membership.contains(&proposer) {
            return false;
        }
        if self.insts.contains(inst) || ctx.grounded(inst) {
            return true;
        }
        let mut ids = self.insts.ids_in_slot(proposer, seq);
        ids.extend(ctx.record.ids_in_slot(&proposer, seq));
        ids.len() < MAX_UNKNOWN_IDS_PER_SLOT
    }

    /// May a message `signer` signed about `inst` create its state ([`Self::may_create`])?
    /// When the slot is full, its own proposer's message takes the place of an idle instance
    /// only others named (a member can fill every slot with made-up ids; those never decide).
    fn admit(&mut self, ctx: &Ctx, inst: &InstanceId, signer: &ValidatorId) -> bool {
        if self.may_create(ctx, inst) {
            return true;
        }
        match *inst {
            InstanceId::Cmd { proposer, seq, .. } if proposer == *signer => {
                self.insts.evict_idle(proposer, seq)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;

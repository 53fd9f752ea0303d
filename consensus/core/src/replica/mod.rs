//! The replica: owns the services (discovery, single-shot instances, the checkpoint chain,
//! execution, the decided record, recovery) and routes each input through them.
//!
//! This file holds the state, the dispatch and the shared helpers; the handlers live in files
//! named for the protocol step they take, in the order a command meets them: `proposer`
//! (announce, collect, propose), `replier` (reply), `single_shot` (pre-prepare, votes, view
//! changes, their timers), `decisions` (a decision to execution and the decided record),
//! `execution` (checkpoints to blocks), `collect` (garbage collection), `recovery` (catch-up,
//! settled, rejoin, resend), `timers` and `restore`.
//!
//! Sans-io contract: [`Replica::handle`] takes the current virtual time and one [`Input`] and
//! returns the [`Output`]s in order. The caller MUST apply every `Persist` before performing any
//! later `Send` of the same batch (persist before send). There is no clock, no thread, no
//! randomness; everything ordered iterates BTreeMaps.

use crate::chain::{CheckpointChain, DecidedCheckpoint};
use crate::crypto::{Signed, Signer, Verifier};
use crate::ctx::Ctx;
use crate::dds::Dds;
use crate::decided::DecidedRecord;
use crate::discovery::headers::{Headers, Slot};
use crate::discovery::payloads::{self, Payloads};
use crate::discovery::proposer::Proposer;
use crate::execution::Execution;
use crate::membership::Membership;
use crate::misbehaviour::Proof;
use crate::outbox::{Outbox, WriteMark};
use crate::recovery::catch_up::SYNC_BATCH;
use crate::recovery::rejoin::Combined;
pub use crate::recovery::settled::SETTLED_ANSWER_BLOCKS;
use crate::recovery::Recovery;
use crate::rotation::Rotation;
use crate::single_shot::{SingleShot, Timing};
use crate::storage::{Key, Meta, Record, Storage, StorageOp};
use crate::types::*;
use crate::validity::check_votes;
use crate::wire::*;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::io::{
    ChainPosition, Config, Input, Output, Stats, TimerId, DEFAULT_RETAIN_SYNC_BLOCKS,
};

/// The read-only [`Ctx`] of a replica, borrowed field by field so that one service (and the
/// outbox) can be borrowed mutably beside it.
macro_rules! ctx {
    ($r:ident) => {
        Ctx {
            me: $r.me,
            now: $r.now,
            signer: &*$r.signer,
            verifier: &*$r.verifier,
            membership: &$r.cfg.membership,
            window: $r.cfg.window,
            record: &$r.record,
            chain: &$r.chain,
            built: $r.execution.built(),
            dds: &$r.dds,
            payloads: &$r.payloads,
            committed: $r.execution.committed(),
            headers: &$r.headers,
        }
    };
}

/// A consensus replica.
pub struct Replica {
    cfg: Config,
    signer: Box<dyn Signer + Send>,
    verifier: Box<dyn Verifier + Send>,
    me: ValidatorId,
    now: u64,
    dds: Dds,
    record: DecidedRecord,
    /// Single-shot consensus: the instances, live and recently collected, and their timers.
    single_shot: SingleShot,
    /// The batches we hold.
    payloads: Payloads,
    /// The first header replied to per slot, and candidates held for their turn.
    headers: Headers,
    /// Dependency discovery, proposer side: our batches and candidates, their collections.
    proposer: Proposer,
    /// Decided checkpoints, their floors and rotations, per block index.
    chain: CheckpointChain,
    /// Execution: commands decided with dependencies waiting for their blocks, the last block
    /// built.
    execution: Execution,
    /// Recovery: finished blocks for laggards, the chain head, the settled exchange.
    recovery: Recovery,
    /// What this input emits, and the messages we send ourselves.
    outbox: Outbox,
}

mod collect;
mod decisions;
mod execution;
mod proposer;
mod recovery;
mod replier;
mod restore;
mod single_shot;
mod timers;

impl Replica {
    /// Build a replica from persisted state (empty storage = fresh start). Call
    /// [`Replica::start`] next to get the initial timers and retransmissions.
    pub fn new(
        cfg: Config,
        storage: &dyn Storage,
        signer: Box<dyn Signer + Send>,
        verifier: Box<dyn Verifier + Send>,
    ) -> Self {
        let me = signer.public();
        let retain = cfg.window * 4;
        let chain = CheckpointChain::new(cfg.membership.epoch);
        let single_shot = SingleShot::new(
            me,
            Timing {
                cmd_timeout_ms: cfg.recovery_timeout_ms,
                ckpt_timeout_ms: cfg.ckpt_timeout_ms,
                drift_ms: cfg.drift_ms,
            },
        );
        let recovery = Recovery::new(cfg.resend_ms, cfg.retain_sync_blocks);
        let proposer = Proposer::new(cfg.pacing_target_ms);
        let mut r = Replica {
            cfg,
            signer,
            verifier,
            me,
            now: 0,
            dds: Dds::default(),
            record: DecidedRecord::new(retain),
            single_shot,
            payloads: Payloads::default(),
            headers: Headers::default(),
            proposer,
            chain,
            execution: Execution::default(),
            recovery,
            outbox: Outbox::new(me),
        };
        r.restore(storage.load());
        r
    }

    /// Our identity.
    pub fn id(&self) -> ValidatorId {
        self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Memory/progress statistics.
    pub fn stats(&self) -> Stats {
        Stats {
            log: self.dds.len(),
            instances: self.single_shot.instances().len(),
            payloads: self.payloads.len(),
            committed: self.execution.committed().len(),
            old_decisions: self.single_shot.instances().old_len(),
            marks: self.record.len(),
            built: self.execution.built(),
            last_ckpt: self.chain.last(),
        }
    }

    /// Diagnostics: what the next block waits for: the dependencies of its decided checkpoint
    /// above the agreed floors that are not known decided (empty if its checkpoint is not
    /// decided, or nothing is missing).
    pub fn next_block_waits_for(&self) -> Vec<DepRef> {
        let Some(k) = self.chain.decided(self.execution.built() + 1) else {
            return vec![];
        };
        k.deps
            .iter()
            .filter(|d| !crate::floors::voids(k.floors(), d) && !self.ctx().dep_decided(d))
            .copied()
            .collect()
    }

    /// Diagnostics: undecided instances with (view, in view change, view changes held for it).
    pub fn undecided(&self) -> Vec<(InstanceId, View, bool, usize)> {
        self.single_shot
            .instances()
            .iter()
            .filter(|(i, s)| s.decided.is_none() && !self.ctx().is_decided_inst(i))
            .map(|(i, s)| {
                (
                    *i,
                    s.view,
                    s.in_view_change,
                    s.vcs.get(&s.view).map(|m| m.len()).unwrap_or(0),
                )
            })
            .collect()
    }

    /// Diagnostics: per proposer, (decided watermark, decided-record floor).
    pub fn watermarks(&self) -> Vec<(ValidatorId, Seq, Seq)> {
        self.membership()
            .validators()
            .iter()
            .map(|p| (*p, self.record.watermark(p), self.record.floor(p)))
            .collect()
    }

    /// Diagnostics: the exact decided marks of `p` (seq, id, counts for the watermark).
    pub fn marks_of(&self, p: &ValidatorId) -> Vec<(Seq, CommandId, bool)> {
        self.record.marks_of(p)
    }

    /// How many finished blocks this replica keeps for laggards: a replica further behind the
    /// chain than this cannot catch up through its peers.
    pub fn retained_sync_blocks(&self) -> u64 {
        self.cfg.retain_sync_blocks
    }

    /// How long our own batches lately took from announcement to a quorum of replies, as a
    /// retransmission timeout (smoothed round trip plus four deviations; 0 before the first):
    /// another member's batch takes about as long to reach us.
    pub fn round_trip_timeout_ms(&self) -> u64 {
        self.proposer.round_trip().timeout()
    }

    /// Bytes of our own batches in flight at most now (`None`: as many as the seq window
    /// allows), narrowed while our batches' round trips show queueing
    /// ([`crate::discovery::pacing`]).
    pub fn send_window(&self) -> Option<u64> {
        self.proposer.send_window()
    }

    /// Transactions waiting for a free seq in the window.
    pub fn pending_batches(&self) -> usize {
        self.proposer.pending()
    }

    /// The client batches not yet proposed (held in memory only: a crash loses them, as it
    /// loses a node's transaction pool, and their clients must submit them again).
    pub fn unproposed(&self) -> impl Iterator<Item = &Vec<Tx>> {
        self.proposer.unproposed()
    }

    /// Initial outputs: timers and re-announcements after a restart.
    pub fn start(&mut self, now_ms: u64) -> Vec<Output> {
        self.now = self.now.max(now_ms);
        self.single_shot.started(self.now);
        self.set_timer(TimerId::Resend, self.cfg.resend_ms);
        self.arm_view_timer(InstanceId::Ckpt(self.chain.next()));
        self.single_shot
            .arm_undecided(&ctx!(self), &mut self.outbox);
        self.proposer.reannounce(&ctx!(self), &mut self.outbox);
        self.drain();
        self.outbox.take()
    }

    /// Process one input at virtual time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        self.now = self.now.max(now_ms);
        match input {
            Input::Message { from, msg } => self.outbox.receive(from, msg),
            Input::Bytes { from, bytes } => {
                if let Ok(msg) = decode_message(&bytes) {
                    self.outbox.receive(from, msg);
                }
            }
            Input::ClientBatch(txs) => {
                self.proposer.add_client_batch(&txs, self.cfg.max_batch_txs);
                self.try_propose_own();
            }
            Input::Timer(t) => self.on_timer(t),
            Input::CheckpointDue => {
                let next_view = self.next_checkpoint_view();
                let events = self
                    .proposer
                    .checkpoint_due(&ctx!(self), &mut self.outbox, next_view);
                self.route_discovery(events);
            }
            Input::Tick => {}
            Input::ChainBlock(pos) => self.recovery.chain_block(pos, self.execution.built()),
        }
        self.drain();
        self.outbox.take()
    }

    fn drain(&mut self) {
        while let Some((from, msg)) = self.outbox.next_received() {
            self.on_message(from, msg);
        }
    }

    fn membership(&self) -> &Membership {
        &self.cfg.membership
    }

    fn genesis(&self) -> Digest {
        self.cfg.membership.genesis
    }

    fn send(&mut self, to: ValidatorId, msg: Message) {
        self.outbox.send(to, msg);
    }

    fn persist(&mut self, ops: Vec<StorageOp>) {
        self.outbox.persist(ops);
    }

    fn set_timer(&mut self, id: TimerId, after_ms: u64) {
        self.outbox.set_timer(id, after_ms);
    }

    /// Emit a misbehaviour proof, once, and only if anyone can check it.
    fn report(&mut self, p: Proof) {
        self.outbox.report(&ctx!(self), p);
    }

    fn meta(&self) -> StorageOp {
        let built = self.execution.built();
        let (built_ckpt, built_ts) = self.chain.id_and_time(built).unwrap_or(([0; 32], 0));
        StorageOp::Put(
            Key::Meta,
            Record::Meta(Meta {
                fence: self.dds.fence(),
                next_pos: self.dds.next_pos(),
                built,
                built_ckpt,
                built_ts,
                next_rotation: self.chain.rotation(built + 1),
                built_floors: self.chain.floors(built).to_vec(),
            }),
        )
    }

    /// What the services know, read-only, for the rules that need several of them.
    fn ctx(&self) -> Ctx<'_> {
        ctx!(self)
    }

    fn verify_batch(&self, b: &SignedBatch) -> bool {
        payloads::valid(
            b,
            self.membership(),
            self.cfg.max_batch_txs,
            &*self.verifier,
        )
    }

    /// Store a payload after verification; returns whether it is (now) held.
    fn accept_payload(&mut self, b: &SignedBatch) -> bool {
        let (m, max, v) = (
            &self.cfg.membership,
            self.cfg.max_batch_txs,
            &*self.verifier,
        );
        self.payloads.accept(b, |b| payloads::valid(b, m, max, v))
    }

    fn on_message(&mut self, from: ValidatorId, msg: Message) {
        if !self.membership().contains(&from) {
            return;
        }
        self.single_shot.heard(from, self.now);
        match msg {
            Message::Announce(b) => self.on_announce(from, b),
            Message::Reply(r) => self.on_reply(r),
            Message::PrePrepare(pp, p) => self.on_preprepare(from, pp, p),
            Message::Vote(v) => self.on_vote(v),
            Message::ViewChange(vc) => self.on_view_change(from, vc),
            Message::Decided(d, p) => self.on_decided(d, p),
            Message::Fetch(inst) => self.on_fetch(from, inst),
            Message::SyncRequest(b) => self.on_sync_request(from, b),
            Message::SyncBlock(blk) => self.on_sync_block(from, blk),
            Message::SettledRequest { epoch, at } => self.on_settled_request(from, epoch, at),
            Message::Settled {
                epoch,
                at,
                proposers,
            } => self.on_settled(from, epoch, at, proposers),
            Message::Header(h) => self.on_header(h),
        }
    }
}

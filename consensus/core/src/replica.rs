//! The replica: glue between the services (dds, instance, checkpoint, executor, gc, storage).
//!
//! Sans-io contract: [`Replica::handle`] takes the current virtual time and one [`Input`] and
//! returns the [`Output`]s in order. The caller MUST apply every `Persist` before performing any
//! later `Send` of the same batch (persist before send). There is no clock, no thread, no
//! randomness; everything ordered iterates BTreeMaps.

use crate::checkpoint::{self, CandidateAction};
use crate::crypto::{Signed, Signer, Verifier};
use crate::dds::Dds;
use crate::executor::{canonical_order, cut, Cut, Member};
use crate::gc::DecidedRecord;
use crate::instance::Instance;
use crate::membership::Membership;
use crate::misbehaviour::Proof;
use crate::rotation::Rotation;
use crate::storage::{Key, Meta, Record, Storage, StorageOp};
use crate::types::*;
use crate::validity::{
    self, check_preprepare, check_reply_shape, check_view_change, check_votes, value_from_replies,
};
use crate::wire::*;
use codec::Encode;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use crate::io::{
    ChainPosition, Config, Input, Output, Stats, TimerId, DEFAULT_RETAIN_SYNC_BLOCKS,
};

/// How many blocks back a settled question is answered. Answering about block `at` needs the
/// batches of every block after it, so their references are kept this long even when the full
/// finished blocks are kept for fewer (`Config::retain_sync_blocks`): a replica rejoining a chain
/// that moves several blocks per round trip asks about a head its peers have already passed.
pub const SETTLED_ANSWER_BLOCKS: u64 = 64;

/// How long a view whose leader is already silent is kept (long enough for the view changes
/// of the replicas that moved to it first to arrive).
const SILENT_VIEW_MS: u64 = 100;
/// Most instances one (proposer, seq) slot gets from what peers send about ids whose header we
/// do not hold: any member can sign votes and view changes for made-up ids, and an
/// equivocating proposer makes only a few ids per seq real.
const MAX_UNKNOWN_IDS_PER_SLOT: usize = 4;

#[derive(Clone, Debug)]
struct Collect {
    batch: SignedBatch,
    dep: DepRef,
    inst: InstanceId,
    replies: BTreeMap<ValidatorId, Signed<ReplyBody>>,
    parked: Vec<Signed<ReplyBody>>,
    /// View to propose in, None once proposed (or not leading).
    view: Option<View>,
    new_view: Vec<Signed<ViewChangeBody>>,
}

#[derive(Clone, Debug)]
struct CommittedCmd {
    batch: SignedBatch,
    deps: Vec<DepRef>,
    after: BlockIndex,
}

#[derive(Clone, Debug)]
struct CkptDecided {
    header: BatchHeader,
    deps: Vec<DepRef>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Slot {
    Seq(ValidatorId, Seq),
    Ckpt(BlockIndex, View),
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
    insts: BTreeMap<InstanceId, Instance>,
    payloads: BTreeMap<CommandId, SignedBatch>,
    first_header: BTreeMap<Slot, Signed<BatchHeader>>,
    buffered: BTreeMap<BlockIndex, Vec<(ValidatorId, SignedBatch)>>,
    next_seq: Seq,
    pending: VecDeque<Vec<Tx>>,
    collects: BTreeMap<CommandId, Collect>,
    announced: BTreeMap<(BlockIndex, View), CommandId>,
    last_ckpt: BlockIndex,
    ckpt_ids: BTreeMap<BlockIndex, (CommandId, u64)>,
    /// K_b's agreed floors, for the same indexes as `ckpt_ids`.
    floors_at: BTreeMap<BlockIndex, Floors>,
    ckpt_decided: BTreeMap<BlockIndex, CkptDecided>,
    /// Checkpoint-leader rotation in force for each block index (known up to last_ckpt + 1).
    rotations: BTreeMap<BlockIndex, Rotation>,
    ckpt_due: bool,
    committed: BTreeMap<CommandId, CommittedCmd>,
    built: BlockIndex,
    last_build_ms: u64,
    recent_blocks: BTreeMap<BlockIndex, FinishedBlock>,
    /// The batches (proposer, seq, id) of each of the last [`SETTLED_ANSWER_BLOCKS`] finished
    /// blocks: what is not settled at an older block.
    block_batches: BTreeMap<BlockIndex, Vec<(ValidatorId, Seq, CommandId)>>,
    sync_votes: BTreeMap<BlockIndex, BTreeMap<Digest, (FinishedBlock, BTreeSet<ValidatorId>)>>,
    old_decisions: BTreeMap<InstanceId, (BlockIndex, Decision, Option<SignedBatch>)>,
    reported: BTreeSet<Digest>,
    /// Finalized chain blocks above `built` (the last few fed by the engine).
    chain: BTreeMap<BlockIndex, ChainPosition>,
    /// The chain block we last asked what is settled at, the claims received about it per
    /// sender, and when the first arrived.
    settled_asked: Option<ChainPosition>,
    settled_claims: BTreeMap<ValidatorId, Vec<SettledSeqs>>,
    settled_asked_ms: u64,
    /// Settled requests answered, per requester, for the block they asked about (once each).
    settled_answered: BTreeMap<ValidatorId, BlockIndex>,
    /// When each other member was last heard from (silence shortens the timers of instances
    /// it leads).
    last_heard: BTreeMap<ValidatorId, u64>,
    /// When `start` ran (in views above 0, a member never heard from counts as heard then, see
    /// `silent_view`).
    started_ms: u64,
    /// A candidate was refused only because a floor passed our watermark: ask peers what is
    /// settled at our last block (their marks fill the gap) on the next resend.
    floor_gap: bool,
    /// Resend periods so far (rotates the peer asked for a missing decision).
    resend_rounds: u64,
    out: Vec<Output>,
    inbox: VecDeque<(ValidatorId, Message)>,
}

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
        let mut r = Replica {
            cfg,
            signer,
            verifier,
            me,
            now: 0,
            dds: Dds::default(),
            record: DecidedRecord::new(retain),
            insts: BTreeMap::new(),
            payloads: BTreeMap::new(),
            first_header: BTreeMap::new(),
            buffered: BTreeMap::new(),
            next_seq: 0,
            pending: VecDeque::new(),
            collects: BTreeMap::new(),
            announced: BTreeMap::new(),
            last_ckpt: 0,
            ckpt_ids: BTreeMap::new(),
            floors_at: BTreeMap::new(),
            ckpt_decided: BTreeMap::new(),
            rotations: BTreeMap::new(),
            ckpt_due: false,
            committed: BTreeMap::new(),
            built: 0,
            last_build_ms: 0,
            recent_blocks: BTreeMap::new(),
            block_batches: BTreeMap::new(),
            sync_votes: BTreeMap::new(),
            old_decisions: BTreeMap::new(),
            reported: BTreeSet::new(),
            chain: BTreeMap::new(),
            settled_asked: None,
            settled_claims: BTreeMap::new(),
            settled_asked_ms: 0,
            settled_answered: BTreeMap::new(),
            floor_gap: false,
            last_heard: BTreeMap::new(),
            started_ms: 0,
            resend_rounds: 0,
            out: Vec::new(),
            inbox: VecDeque::new(),
        };
        r.ckpt_ids.insert(0, ([0u8; 32], 0));
        r.floors_at.insert(0, Floors::new());
        r.rotations.insert(1, Rotation::fresh(r.m().epoch));
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
            instances: self.insts.len(),
            payloads: self.payloads.len(),
            committed: self.committed.len(),
            old_decisions: self.old_decisions.len(),
            marks: self.record.len(),
            built: self.built,
            last_ckpt: self.last_ckpt,
        }
    }
    /// Diagnostics: what the next block waits for: the dependencies of its decided checkpoint
    /// above the agreed floors that are not known decided (empty if its checkpoint is not
    /// decided, or nothing is missing).
    pub fn next_block_waits_for(&self) -> Vec<DepRef> {
        let Some(k) = self.ckpt_decided.get(&(self.built + 1)) else {
            return vec![];
        };
        let BatchKind::Checkpoint { ref floors, .. } = k.header.kind else {
            return vec![];
        };
        k.deps
            .iter()
            .filter(|d| !crate::floors::voids(floors, d) && !self.dep_decided(d))
            .copied()
            .collect()
    }
    /// Diagnostics: undecided instances with (view, in view change, view changes held for it).
    pub fn undecided(&self) -> Vec<(InstanceId, View, bool, usize)> {
        self.insts
            .iter()
            .filter(|(i, s)| s.decided.is_none() && !self.is_decided_inst(i))
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
        self.m()
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
    /// Transactions waiting for a free seq in the window.
    pub fn pending_batches(&self) -> usize {
        self.pending.len()
    }
    /// The client batches not yet proposed (held in memory only: a crash loses them, as it
    /// loses a node's transaction pool, and their clients must submit them again).
    pub fn unproposed(&self) -> impl Iterator<Item = &Vec<Tx>> {
        self.pending.iter()
    }

    fn restore(&mut self, records: Vec<(Key, Record)>) {
        let mut decisions = Vec::new();
        for (k, v) in records {
            match (k, v) {
                (Key::Meta, Record::Meta(m)) => {
                    self.dds.restore_counters(m.fence, m.next_pos);
                    self.built = m.built;
                    self.last_ckpt = self.last_ckpt.max(m.built);
                    self.ckpt_ids.insert(m.built, (m.built_ckpt, m.built_ts));
                    // A rotation of another epoch (a replica seeded from the chain at an epoch
                    // boundary) does not apply: the new epoch starts with nobody suspended.
                    // Floors of another epoch do not apply either: seqs start again.
                    let (rotation, floors) = if m.next_rotation.epoch == self.m().epoch {
                        (m.next_rotation, m.built_floors)
                    } else {
                        (Rotation::fresh(self.m().epoch), Floors::new())
                    };
                    self.rotations.insert(m.built + 1, rotation);
                    // Marks below were deleted when the floors rose.
                    let _ = self.take_floors(&floors);
                    self.floors_at.insert(m.built, floors);
                }
                (Key::OwnBatch(seq), Record::Batch(b)) => {
                    self.next_seq = self.next_seq.max(seq + 1);
                    self.payloads.insert(b.id(), b);
                }
                (Key::OwnCandidate(b, v), Record::Batch(c)) => {
                    self.announced.insert((b, v), c.id());
                    self.payloads.insert(c.id(), c);
                }
                (Key::Reply(_), Record::Reply(r, h)) => {
                    let slot = slot_of(&h.body);
                    self.first_header.entry(slot).or_insert_with(|| h.clone());
                    self.dds.restore(r, &h.body);
                }
                (Key::Vote(inst, view, phase), Record::Vote(v)) => {
                    let st = self.insts.entry(inst).or_default();
                    st.view = st.view.max(view);
                    st.my_votes.insert((view, phase), v);
                }
                (Key::ViewChange(inst, view), Record::ViewChange(vc)) => {
                    let st = self.insts.entry(inst).or_default();
                    if view >= st.view {
                        st.view = view;
                        st.in_view_change = true;
                    }
                    st.my_vcs.insert(view, vc);
                }
                (Key::PrePrepare(inst, view), Record::PrePrepare(pp)) => {
                    self.insts
                        .entry(inst)
                        .or_default()
                        .my_preprepares
                        .insert(view, pp);
                }
                (Key::Prepared(inst), Record::Prepared(c)) => {
                    self.insts.entry(inst).or_default().note_prepared(c);
                }
                (Key::Decided(p, s, id), Record::Marked(counts)) => {
                    if p == self.me && counts {
                        // Never reuse a seq, even when every own batch was collected.
                        self.next_seq = self.next_seq.max(s + 1);
                    }
                    self.record.mark(p, s, id, counts);
                }
                (Key::Decision(_), Record::Decision(d, p)) => decisions.push((d, p)),
                _ => {}
            }
        }
        // Replay decisions: checkpoints in index order first, then commands.
        // Commands first: a checkpoint replayed before its dependencies would see them marked
        // decided (marks are restored above) but not yet committed, and cut a short block.
        decisions.sort_by_key(|(d, _)| match d.inst {
            InstanceId::Cmd { .. } => (0, 0),
            InstanceId::Ckpt(b) => (1, b),
        });
        for (d, p) in decisions {
            if let Some(p) = p {
                self.payloads.insert(p.id(), p);
            }
            // Marks were restored above, so only the instance state tells what was replayed.
            let replayed = self
                .insts
                .get(&d.inst)
                .map(|s| s.decided.is_some())
                .unwrap_or(false);
            let ckpt_done = matches!(d.inst, InstanceId::Ckpt(b) if b <= self.last_ckpt);
            if !replayed && !ckpt_done {
                self.decide(d.inst, d.value, d.cert);
            }
        }
        // Own undecided batches go back to collection.
        let own: Vec<SignedBatch> = self
            .payloads
            .values()
            .filter(|b| b.header.body.proposer == self.me && !b.header.body.is_checkpoint())
            .cloned()
            .collect();
        for b in own {
            let h = &b.header.body;
            if !self.record.is_decided(&h.proposer, h.seq, &b.id()) {
                let dep = h.dep_ref();
                self.collects.insert(
                    b.id(),
                    Collect {
                        inst: dep.instance(),
                        dep,
                        batch: b,
                        replies: BTreeMap::new(),
                        parked: vec![],
                        view: Some(0),
                        new_view: vec![],
                    },
                );
            }
        }
        // Keep only blocks rebuilt from persisted decisions (handed out by `start`).
        self.out.retain(|o| matches!(o, Output::BlockReady(_)));
    }

    /// Initial outputs: timers and re-announcements after a restart.
    pub fn start(&mut self, now_ms: u64) -> Vec<Output> {
        self.now = self.now.max(now_ms);
        self.started_ms = self.now;
        self.set_timer(TimerId::Resend, self.cfg.resend_ms);
        let b = self.last_ckpt + 1;
        self.know(InstanceId::Ckpt(b));
        let undecided: Vec<InstanceId> = self
            .insts
            .keys()
            .copied()
            .filter(|i| !self.is_decided_inst(i))
            .collect();
        for i in undecided {
            self.know(i);
        }
        let ann: Vec<SignedBatch> = self
            .collects
            .values()
            .filter(|c| c.view.is_some())
            .map(|c| c.batch.clone())
            .collect();
        for b in ann {
            self.broadcast(Message::Announce(b));
        }
        self.drain();
        std::mem::take(&mut self.out)
    }

    /// Process one input at virtual time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        self.now = self.now.max(now_ms);
        match input {
            Input::Message { from, msg } => self.inbox.push_back((from, msg)),
            Input::Bytes { from, bytes } => {
                if let Ok(msg) = decode_message(&bytes) {
                    self.inbox.push_back((from, msg));
                }
            }
            Input::ClientBatch(txs) => {
                for chunk in txs.chunks(self.cfg.max_batch_txs.max(1)) {
                    self.pending.push_back(chunk.to_vec());
                }
                self.try_propose_own();
            }
            Input::Timer(t) => self.on_timer(t),
            Input::CheckpointDue => {
                self.ckpt_due = true;
                self.maybe_announce_candidate();
            }
            Input::Tick => {}
            Input::ChainBlock(pos) => self.on_chain_block(pos),
        }
        self.drain();
        std::mem::take(&mut self.out)
    }

    fn drain(&mut self) {
        while let Some((from, msg)) = self.inbox.pop_front() {
            self.on_message(from, msg);
        }
    }

    // ---------------------------------------------------------------- output helpers

    fn m(&self) -> &Membership {
        &self.cfg.membership
    }
    fn g(&self) -> Digest {
        self.cfg.membership.genesis
    }
    fn send(&mut self, to: ValidatorId, msg: Message) {
        if to == self.me {
            self.inbox.push_back((to, msg));
        } else {
            self.out.push(Output::Send { to: Some(to), msg });
        }
    }
    fn broadcast(&mut self, msg: Message) {
        // Emitted even when n = 1 (to nobody) so that observers see every broadcast.
        self.out.push(Output::Send {
            to: None,
            msg: msg.clone(),
        });
        self.inbox.push_back((self.me, msg));
    }
    fn persist(&mut self, ops: Vec<StorageOp>) {
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
    }
    fn set_timer(&mut self, id: TimerId, after_ms: u64) {
        self.out.push(Output::SetTimer { id, after_ms });
    }
    /// Emit a misbehaviour proof, once, and only if anyone can check it: a proof that does not
    /// convict would be refused on chain and accuse without evidence.
    fn report(&mut self, p: Proof) {
        if p.check(self.m(), &*self.verifier, self.cfg.window)
            .is_none()
        {
            return;
        }
        let d = hash(&p.encode());
        if self.reported.insert(d) {
            self.out.push(Output::Misbehaviour(p));
        }
    }
    fn meta(&self) -> StorageOp {
        let (built_ckpt, built_ts) = self
            .ckpt_ids
            .get(&self.built)
            .copied()
            .unwrap_or(([0; 32], 0));
        StorageOp::Put(
            Key::Meta,
            Record::Meta(Meta {
                fence: self.dds.fence(),
                next_pos: self.dds.next_pos(),
                built: self.built,
                built_ckpt,
                built_ts,
                next_rotation: self.rotation(self.built + 1),
                built_floors: self.floors_at.get(&self.built).cloned().unwrap_or_default(),
            }),
        )
    }
    /// The rotation in force for block `b` (known for b <= last_ckpt + 1).
    fn rotation(&self, b: BlockIndex) -> Rotation {
        self.rotations
            .get(&b)
            .cloned()
            .unwrap_or_else(|| Rotation::fresh(self.m().epoch))
    }
    /// leader(b, view) of CONS_ckpt(b), once the rotation for b is known.
    fn ckpt_leader(&self, b: BlockIndex, view: View) -> Option<ValidatorId> {
        self.rotations.get(&b).map(|r| r.leader(self.m(), b, view))
    }
    /// The leader of `inst` in `view` (of a checkpoint once its rotation is known).
    fn leader_of(&self, inst: &InstanceId, view: View) -> Option<ValidatorId> {
        match inst {
            InstanceId::Cmd { proposer, .. } => Some(self.m().leader_cmd(proposer, view)),
            InstanceId::Ckpt(b) => self.ckpt_leader(*b, view),
        }
    }
    fn timeout(&self, inst: &InstanceId, view: View) -> u64 {
        let base = match inst {
            InstanceId::Cmd { .. } => self.cfg.recovery_timeout_ms,
            InstanceId::Ckpt(_) => self.cfg.ckpt_timeout_ms,
        };
        base << view.min(8)
    }

    // ---------------------------------------------------------------- queries

    fn is_decided_inst(&self, inst: &InstanceId) -> bool {
        match inst {
            InstanceId::Cmd { proposer, seq, id } => self.record.is_decided(proposer, *seq, id),
            InstanceId::Ckpt(b) => *b <= self.last_ckpt,
        }
    }
    fn dep_decided(&self, d: &DepRef) -> bool {
        match d.kind {
            DepKind::Txs { seq } => self.record.is_decided(&d.proposer, seq, &d.id),
            DepKind::Ckpt { index, .. } => index <= self.last_ckpt,
        }
    }
    /// Replier window [design]: a replica replies to seq s of p only if s < low(p) + W, where
    /// low(p) is the lowest seq of p still in its log (else the decided watermark). A correct log
    /// therefore never holds more than W entries of one proposer, which is what makes the
    /// "|R_i| <= W entries per proposer" validity bound hold for correct replies even when
    /// decided commands wait several blocks to be collected (see docs/consensus.md).
    fn window_end(&self, p: &ValidatorId) -> Seq {
        let wm = self.record.watermark(p);
        self.dds.lowest_seq(p).map(|l| l.min(wm)).unwrap_or(wm) + self.cfg.window
    }
    /// The reference the header of command `id` names, if we hold that header (payload, commit
    /// or our own reply to it).
    fn held_ref(&self, id: &CommandId) -> Option<DepRef> {
        if let Some(b) = self.payloads.get(id) {
            return Some(b.header.body.dep_ref());
        }
        if let Some(c) = self.committed.get(id) {
            return Some(c.batch.header.body.dep_ref());
        }
        self.dds.cached(id).map(|r| r.body.cmd)
    }
    /// Does `inst` name a command id under another (proposer, seq) than the header we hold for
    /// it? An id is only ever used together with the header it names: a Byzantine validator
    /// may put a real id under another member's name (in a reply or a view change). Such an
    /// instance can only be decided Noop, and never touches the real command's payload,
    /// collect, log entry, commit or watermark.
    fn misnamed(&self, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { id, .. } = inst else {
            return false;
        };
        self.held_ref(id).is_some_and(|r| r.instance() != *inst)
    }
    /// Did the proposer of `inst` sign another command for the same seq (a header we hold, or
    /// another id for the slot in a decided, unbuilt checkpoint)?
    fn equivocated(&self, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { proposer, seq, id } = *inst else {
            return false;
        };
        let other =
            |d: &DepRef| d.proposer == proposer && d.kind == DepKind::Txs { seq } && d.id != id;
        self.first_header
            .get(&Slot::Seq(proposer, seq))
            .is_some_and(|h| h.body.id() != id)
            || self
                .ckpt_decided
                .range(self.built + 1..)
                .any(|(_, k)| k.deps.iter().any(other))
    }
    /// Is `inst` a dependency of a decided checkpoint whose block is not built yet? Its block
    /// waits for its decision, so it is taken part in whatever our window says.
    fn needed_by_checkpoint(&self, inst: &InstanceId) -> bool {
        let Some(d) = inst.txs_ref() else {
            return false;
        };
        self.ckpt_decided
            .range(self.built + 1..)
            .any(|(_, k)| k.deps.binary_search(&d).is_ok())
    }
    /// Is a command of this seq within reach of our window (as far above the watermark as
    /// proposals and votes are taken: 4 W)? A checkpoint's dependencies are what its block
    /// waits for: a correct checkpoint leader takes no reply naming one beyond.
    fn within_reach(&self, d: &DepRef) -> bool {
        match d.kind {
            DepKind::Txs { seq } => seq < self.record.watermark(&d.proposer) + 4 * self.cfg.window,
            DepKind::Ckpt { .. } => true,
        }
    }
    /// May a peer's message create state for `inst`? Always for checkpoint instances (their
    /// index is bounded at the door) and for commands whose header we hold or a decided
    /// checkpoint waits for; other ids only while their slot has few instances.
    fn may_create(&self, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { proposer, seq, id } = *inst else {
            return true;
        };
        if !self.m().contains(&proposer) {
            return false;
        }
        if self.insts.contains_key(inst)
            || self.held_ref(&id).is_some_and(|r| r.instance() == *inst)
            || self.needed_by_checkpoint(inst)
        {
            return true;
        }
        let slot = |id| InstanceId::Cmd { proposer, seq, id };
        self.insts.range(slot([0; 32])..=slot([0xff; 32])).count() < MAX_UNKNOWN_IDS_PER_SLOT
    }
    /// K_b's agreed floors (none if unknown).
    fn floors_of(&self, b: BlockIndex) -> &[(ValidatorId, Seq)] {
        self.floors_at.get(&b).map_or(&[][..], |f| &f[..])
    }
    fn k_id(&self, b: BlockIndex) -> Option<CommandId> {
        self.ckpt_ids.get(&b).map(|x| x.0)
    }

    fn verify_batch(&self, b: &SignedBatch) -> bool {
        let h = &b.header.body;
        if b.header.signer != h.proposer
            || !self.m().contains(&h.proposer)
            || h.epoch != self.m().epoch
        {
            return false;
        }
        if h.txs_root != hash(&b.txs.encode()) {
            return false;
        }
        match h.kind {
            BatchKind::Txs => {
                if b.txs.is_empty() || b.txs.len() > self.cfg.max_batch_txs {
                    return false;
                }
                let acc = union_access(b.txs.iter().map(|t| &t.access[..]));
                if acc != h.access {
                    return false;
                }
            }
            BatchKind::Checkpoint { .. } => {
                if !b.txs.is_empty() || !h.access.is_empty() || h.seq != 0 {
                    return false;
                }
            }
        }
        b.header.verify(&self.g(), &*self.verifier)
    }

    /// Store a payload after verification; returns whether it is (now) held.
    fn accept_payload(&mut self, b: &SignedBatch) -> bool {
        let id = b.id();
        if self.payloads.contains_key(&id) {
            return true;
        }
        if !self.verify_batch(b) {
            return false;
        }
        self.payloads.insert(id, b.clone());
        true
    }

    // ---------------------------------------------------------------- dispatch

    fn on_message(&mut self, from: ValidatorId, msg: Message) {
        if !self.m().contains(&from) {
            return;
        }
        self.last_heard.insert(from, self.now);
        match msg {
            Message::Announce(b) => self.on_announce(from, b),
            Message::Reply(r) => self.on_reply(r),
            Message::PrePrepare(pp, p) => self.on_preprepare(from, pp, p),
            Message::Vote(v) => self.on_vote(from, v),
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
        }
    }

    fn on_timer(&mut self, t: TimerId) {
        match t {
            TimerId::Resend => {
                self.resend();
                self.set_timer(TimerId::Resend, self.cfg.resend_ms);
            }
            TimerId::View(inst, v) => {
                if self.is_decided_inst(&inst) {
                    return;
                }
                if let InstanceId::Ckpt(b) = inst {
                    if b != self.last_ckpt + 1 {
                        // Not the current checkpoint yet (a vote for it came early): disarm, so
                        // that `know` arms it afresh when K_(b-1) commits. Left armed, no timer
                        // would ever run for it, and a replica that missed its decision would
                        // wait for it forever.
                        if let Some(st) = self.insts.get_mut(&inst) {
                            if st.view == v {
                                st.timer_armed = false;
                            }
                        }
                        return;
                    }
                }
                let Some(st) = self.insts.get_mut(&inst) else {
                    return;
                };
                if st.view != v || !st.timer_armed {
                    return;
                }
                st.timer_armed = false;
                self.start_view_change(inst, v + 1);
            }
            TimerId::Deadline(inst, v) => {
                if self.is_decided_inst(&inst) {
                    return;
                }
                if let InstanceId::Cmd { id, .. } = inst {
                    let already = self
                        .insts
                        .get(&inst)
                        .map(|s| s.my_preprepares.contains_key(&v))
                        .unwrap_or(false);
                    let new_view = self
                        .insts
                        .get(&inst)
                        .and_then(|s| s.lead_vcs.get(&v))
                        .cloned();
                    if !already {
                        if let Some(nv) = new_view {
                            if nv.len() == self.m().q()
                                && nv.iter().all(|vc| vc.body.prepared.is_none())
                            {
                                if let Some(c) = self.collects.get_mut(&id) {
                                    if c.inst == inst {
                                        c.view = None;
                                    }
                                }
                                let p = if self.misnamed(&inst) {
                                    None
                                } else {
                                    self.payloads.get(&id).cloned()
                                };
                                self.propose(inst, v, Value::Noop, vec![], nv, p);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Arm the view timer of an instance we know of and have not seen decided.
    fn know(&mut self, inst: InstanceId) {
        if self.is_decided_inst(&inst) {
            return;
        }
        let now = self.now;
        let st = self.insts.entry(inst).or_default();
        if st.timer_armed {
            return;
        }
        st.timer_armed = true;
        if st.last_progress_ms == 0 {
            st.last_progress_ms = now;
        }
        st.view_began_ms.get_or_insert(now);
        let v = st.view;
        // View 0 ends no later than its leader falls silent. A later view keeps the exponential
        // back-off (a capped timer would let a slow view-change round cycle through views
        // forever) unless its leader is a silent one and f+1 of us are in it (see
        // `silent_view`).
        let t = if v == 0 {
            self.timeout(&inst, v).min(self.until_silent(&inst, v))
        } else if self.silent_view(&inst) {
            SILENT_VIEW_MS
        } else {
            self.timeout(&inst, v)
        };
        self.set_timer(TimerId::View(inst, v), t);
    }

    /// Whether the current view (above 0) of `inst` may be left after [`SILENT_VIEW_MS`]: its
    /// leader had said nothing for a checkpoint timeout already when the view before began here,
    /// nor since, and f+1 replicas (us included) asked for this view. Waiting out the doubled
    /// timers of views whose leaders say nothing made f silent leaders in a row cost
    /// `base * (2^(f+1) - 1)`. Silence is judged from before the previous view began because a
    /// correct member can be quiet for a whole view at low load (nothing to vote on until it
    /// sends its own view change); the f+1 view changes keep a replica cut off from the others
    /// (before GST) from racing through views alone, which would leave it ahead of everyone
    /// once the network heals.
    fn silent_view(&self, inst: &InstanceId) -> bool {
        let Some(st) = self.insts.get(inst) else {
            return false;
        };
        let v = st.view;
        let Some(l) = self.leader_of(inst, v).filter(|l| *l != self.me) else {
            return false;
        };
        let heard = self.last_heard.get(&l).copied().unwrap_or(self.started_ms);
        let began = st.prev_view_began_ms.unwrap_or(self.now);
        v > 0 && heard + self.cfg.ckpt_timeout_ms <= began && st.vcs_for(v) >= self.m().join()
    }

    /// How long until the leader of `inst` in view `v` has been unheard for `ckpt_timeout_ms`
    /// (at least [`SILENT_VIEW_MS`]; unbounded for ourselves or an unknown leader). A crashed
    /// proposer's batches and a crashed or silent leader's view are then recovered from the
    /// moment it fell silent, not a full timeout after we learned of them. A member never heard
    /// from is not known to have fallen silent (at a network's start it may not be up,
    /// connected or caught up yet: validators started one after another would cut the
    /// latecomers' first turns short).
    fn until_silent(&self, inst: &InstanceId, v: View) -> u64 {
        match self.leader_of(inst, v) {
            Some(l) if l != self.me => {
                let Some(heard) = self.last_heard.get(&l).copied() else {
                    return u64::MAX;
                };
                (heard + self.cfg.ckpt_timeout_ms)
                    .saturating_sub(self.now)
                    .max(SILENT_VIEW_MS)
            }
            _ => u64::MAX,
        }
    }

    // ---------------------------------------------------------------- proposer side

    fn try_propose_own(&mut self) {
        while !self.pending.is_empty() && self.next_seq < self.window_end(&self.me) {
            let txs = self.pending.pop_front().expect("checked non-empty; qed");
            let access = union_access(txs.iter().map(|t| &t.access[..]));
            let weight = txs.iter().map(|t| t.encoded_size() as u64).sum();
            let header = BatchHeader {
                epoch: self.m().epoch,
                proposer: self.me,
                seq: self.next_seq,
                base: self.k_id(self.last_ckpt).unwrap_or([0; 32]),
                kind: BatchKind::Txs,
                access,
                txs_root: hash(&txs.encode()),
                weight,
            };
            self.next_seq += 1;
            let batch = SignedBatch {
                header: Signed::sign(header, &self.g(), &*self.signer),
                txs,
            };
            let id = batch.id();
            self.persist(vec![StorageOp::Put(
                Key::OwnBatch(batch.header.body.seq),
                Record::Batch(batch.clone()),
            )]);
            self.payloads.insert(id, batch.clone());
            let dep = batch.header.body.dep_ref();
            self.collects.insert(
                id,
                Collect {
                    inst: dep.instance(),
                    dep,
                    batch: batch.clone(),
                    replies: BTreeMap::new(),
                    parked: vec![],
                    view: Some(0),
                    new_view: vec![],
                },
            );
            self.broadcast(Message::Announce(batch));
        }
    }

    fn maybe_announce_candidate(&mut self) {
        let b = self.last_ckpt + 1;
        if !self.ckpt_due
            || self.ckpt_leader(b, 0) != Some(self.me)
            || self.announced.contains_key(&(b, 0))
        {
            return;
        }
        let in_vc = self
            .insts
            .get(&InstanceId::Ckpt(b))
            .map(|s| s.view > 0)
            .unwrap_or(false);
        if in_vc {
            return;
        }
        self.ckpt_due = false;
        self.announce_candidate(b, 0, vec![]);
    }

    fn announce_candidate(
        &mut self,
        b: BlockIndex,
        view: View,
        new_view: Vec<Signed<ViewChangeBody>>,
    ) {
        let Some((base, prev_ts)) = self.ckpt_ids.get(&(b - 1)).copied() else {
            return;
        };
        let batch = match self
            .announced
            .get(&(b, view))
            .and_then(|id| self.payloads.get(id))
        {
            Some(c) => c.clone(),
            None => {
                let header = BatchHeader {
                    epoch: self.m().epoch,
                    proposer: self.me,
                    seq: 0,
                    base,
                    kind: BatchKind::Checkpoint {
                        index: b,
                        view,
                        timestamp_ms: self.now.max(prev_ts + 1),
                        floors: crate::floors::propose(self.m(), self.floors_of(b - 1), |p| {
                            self.record.proposed_floor(p)
                        }),
                    },
                    access: vec![],
                    txs_root: hash(&Vec::<Tx>::new().encode()),
                    weight: 0,
                };
                let c = SignedBatch {
                    header: Signed::sign(header, &self.g(), &*self.signer),
                    txs: vec![],
                };
                self.persist(vec![StorageOp::Put(
                    Key::OwnCandidate(b, view),
                    Record::Batch(c.clone()),
                )]);
                self.announced.insert((b, view), c.id());
                self.payloads.insert(c.id(), c.clone());
                c
            }
        };
        let dep = batch.header.body.dep_ref();
        let id = batch.id();
        let e = self.collects.entry(id).or_insert_with(|| Collect {
            inst: InstanceId::Ckpt(b),
            dep,
            batch: batch.clone(),
            replies: BTreeMap::new(),
            parked: vec![],
            view: Some(view),
            new_view: vec![],
        });
        e.view = Some(view);
        e.new_view = new_view;
        self.broadcast(Message::Announce(batch));
        self.try_collect(id);
    }

    fn on_reply(&mut self, r: Signed<ReplyBody>) {
        let id = r.body.cmd.id;
        let q = self.m().q();
        let last = self.last_ckpt;
        let window = self.cfg.window;
        let Some(c) = self.collects.get(&id) else {
            return;
        };
        if r.body.epoch != self.m().epoch || !self.m().contains(&r.signer) || r.body.cmd != c.dep {
            return;
        }
        if let Some(old) = c.replies.get(&r.signer) {
            if old.body != r.body && r.verify(&self.g(), &*self.verifier) {
                let p = Proof::ReplyEquivocation(old.clone(), r);
                self.report(p);
            }
            return;
        }
        if c.replies.len() >= q && c.view.is_none() {
            return;
        }
        if check_reply_shape(&r.body, window, self.m()).is_err() {
            return;
        }
        if c.batch.header.body.is_checkpoint() && !r.body.deps.iter().all(|d| self.within_reach(d))
        {
            return;
        }
        if !r.verify(&self.g(), &*self.verifier) {
            return;
        }
        let c = self.collects.get_mut(&id).expect("looked up above; qed");
        if r.body.fence > last + 1 {
            c.parked.push(r);
            return;
        }
        c.replies.insert(r.signer, r);
        self.try_collect(id);
    }

    fn try_collect(&mut self, id: CommandId) {
        let q = self.m().q();
        let Some(c) = self.collects.get(&id) else {
            return;
        };
        let Some(view) = c.view else { return };
        if c.replies.len() < q {
            return;
        }
        let proof: Vec<Signed<ReplyBody>> = c.replies.values().take(q).cloned().collect();
        let value = value_from_replies(&c.dep, &proof);
        let (inst, nv, batch) = (c.inst, c.new_view.clone(), c.batch.clone());
        let payload = if view > 0 || batch.header.body.is_checkpoint() {
            Some(batch)
        } else {
            None
        };
        self.collects.get_mut(&id).expect("present; qed").view = None;
        self.propose(inst, view, value, proof, nv, payload);
    }

    fn propose(
        &mut self,
        inst: InstanceId,
        view: View,
        value: Value,
        proof: Vec<Signed<ReplyBody>>,
        new_view: Vec<Signed<ViewChangeBody>>,
        payload: Option<SignedBatch>,
    ) {
        let st = self.insts.entry(inst).or_default();
        if st.my_preprepares.contains_key(&view) {
            return;
        }
        let body = PrePrepareBody {
            epoch: self.m().epoch,
            inst,
            view,
            value,
            proof,
            new_view,
        };
        let pp = Signed::sign(body, &self.g(), &*self.signer);
        self.insts
            .get_mut(&inst)
            .expect("inserted above; qed")
            .my_preprepares
            .insert(view, pp.clone());
        self.persist(vec![StorageOp::Put(
            Key::PrePrepare(inst, view),
            Record::PrePrepare(pp.clone()),
        )]);
        self.broadcast(Message::PrePrepare(pp, payload));
    }

    // ---------------------------------------------------------------- replier side

    fn on_announce(&mut self, from: ValidatorId, b: SignedBatch) {
        let id = b.id();
        let h = b.header.body.clone();
        if !self.payloads.contains_key(&id) && !self.verify_batch(&b) {
            return;
        }
        match h.kind {
            BatchKind::Txs => {
                let inst = InstanceId::Cmd {
                    proposer: h.proposer,
                    seq: h.seq,
                    id,
                };
                if self.is_decided_inst(&inst) {
                    self.send_decided(from, inst);
                    return;
                }
                // A payload we were waiting for (to vote, or to lead a recovery).
                if self.insts.contains_key(&inst) && !self.payloads.contains_key(&id) {
                    self.payloads.insert(id, b.clone());
                    self.resume_lead(inst);
                    self.recheck_parked(inst);
                }
                if let Some(r) = self.dds.cached(&id).cloned() {
                    self.payloads.entry(id).or_insert(b);
                    self.send(from, Message::Reply(r));
                    self.resume_lead(inst);
                    return;
                }
                let slot = Slot::Seq(h.proposer, h.seq);
                if let Some(first) = self.first_header.get(&slot) {
                    if first.body != h {
                        let p = Proof::BatchEquivocation(first.clone(), b.header.clone());
                        self.report(p);
                        return;
                    }
                }
                if h.seq < self.record.watermark(&h.proposer)
                    || h.seq >= self.window_end(&h.proposer)
                {
                    return;
                }
                self.first_header.insert(slot, b.header.clone());
                self.payloads.insert(id, b.clone());
                self.reply_to(from, &b.header);
                self.know(inst);
                self.resume_lead(inst);
                self.recheck_parked(inst);
            }
            BatchKind::Checkpoint { index, view, .. } => {
                let inst = InstanceId::Ckpt(index);
                if index <= self.last_ckpt {
                    self.send_decided(from, inst);
                    return;
                }
                if let Some(r) = self.dds.cached(&id).cloned() {
                    self.payloads.entry(id).or_insert(b);
                    self.send(from, Message::Reply(r));
                    return;
                }
                let cur = self.insts.get(&inst).map(|s| s.view).unwrap_or(0);
                let k_prev = self.k_id(self.last_ckpt).unwrap_or([0; 32]);
                let rotation = self.rotation(self.last_ckpt + 1);
                match checkpoint::classify(self.m(), &h, self.last_ckpt, &k_prev, cur, &rotation) {
                    CandidateAction::Ignore => {}
                    CandidateAction::Buffer => {
                        // Judged when K_(index-1) commits; at most a few per signer, so that no
                        // member can crowd out the others' candidates.
                        let per_signer = checkpoint::MAX_VIEW_AHEAD as usize + 1;
                        let buf = self.buffered.entry(index).or_default();
                        if buf.len() < per_signer * self.cfg.membership.n()
                            && buf
                                .iter()
                                .filter(|(_, x)| x.header.body.proposer == h.proposer)
                                .count()
                                < per_signer
                            && !buf.iter().any(|(_, x)| x.id() == id)
                        {
                            buf.push((from, b));
                        }
                    }
                    CandidateAction::Reply => {
                        let slot = Slot::Ckpt(index, view);
                        if let Some(first) = self.first_header.get(&slot) {
                            if first.body != h {
                                let p = Proof::BatchEquivocation(first.clone(), b.header.clone());
                                self.report(p);
                                return;
                            }
                        }
                        // Floors that go down, or past what we know decided: no reply (the
                        // leader re-announces; a later view's leader proposes its own). The
                        // header is not recorded, so a second one for this view is judged
                        // afresh.
                        let BatchKind::Checkpoint { floors, .. } = &h.kind else {
                            return;
                        };
                        let prev = self.floors_of(self.last_ckpt);
                        if !crate::floors::acceptable(floors, prev, self.m(), |p| {
                            self.record.watermark(p)
                        }) {
                            if crate::floors::well_formed(floors, self.m())
                                && crate::floors::extends(floors, prev)
                            {
                                // Only our watermark is short: our record has a gap that
                                // peers' settled marks fill.
                                self.floor_gap = true;
                            }
                            return;
                        }
                        self.first_header.insert(slot, b.header.clone());
                        self.payloads.insert(id, b.clone());
                        self.reply_to(from, &b.header);
                    }
                }
            }
        }
    }

    fn reply_to(&mut self, to: ValidatorId, header: &Signed<BatchHeader>) {
        let g = self.g();
        let r = self.dds.reply(&header.body, &g, &*self.signer);
        let id = header.body.id();
        let meta = self.meta();
        self.persist(vec![
            StorageOp::Put(Key::Reply(id), Record::Reply(r.clone(), header.clone())),
            meta,
        ]);
        self.send(to, Message::Reply(r));
    }

    // ---------------------------------------------------------------- PBFT

    fn on_preprepare(
        &mut self,
        from: ValidatorId,
        pp: Signed<PrePrepareBody>,
        payload: Option<SignedBatch>,
    ) {
        let inst = pp.body.inst;
        if self.is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        if let InstanceId::Cmd { proposer, seq, .. } = inst {
            if seq < self.record.floor(&proposer)
                || (seq >= self.record.watermark(&proposer) + 4 * self.cfg.window
                    && !self.needed_by_checkpoint(&inst))
            {
                return;
            }
        } else if let InstanceId::Ckpt(b) = inst {
            if b > self.last_ckpt + checkpoint::MAX_INDEX_AHEAD {
                return;
            }
        }
        // A retransmission of the pre-prepare we accepted costs no signature check.
        if self
            .insts
            .get(&inst)
            .and_then(|st| st.accepted.get(&pp.body.view))
            == Some(&pp)
        {
            return;
        }
        // Signature before any state: an unsigned or outsider's pre-prepare creates no
        // instance, parks nothing and makes us fetch nothing.
        let leader_ok = match inst {
            InstanceId::Cmd { proposer, .. } => {
                pp.signer == self.m().leader_cmd(&proposer, pp.body.view)
            }
            InstanceId::Ckpt(_) => self.m().contains(&pp.signer),
        };
        if pp.body.epoch != self.m().epoch
            || !leader_ok
            || !pp.verify(&self.cfg.membership.genesis, &*self.verifier)
        {
            return;
        }
        if let Some(p) = &payload {
            self.accept_payload(p);
        }
        if !self.may_create(&inst) {
            return;
        }
        let view = pp.body.view;
        let st = self.insts.entry(inst).or_default();
        if view < st.view {
            return;
        }
        if let Some(acc) = st.accepted.get(&view) {
            // Only another value is an equivocation (what `Proof::check` convicts): the same
            // value with another proof or view-change set is a retransmission.
            if acc.body.value != pp.body.value && acc.signer == pp.signer {
                let p = Proof::PrePrepareEquivocation(acc.clone(), pp);
                self.report(p);
                self.leave_faulty_view(inst, view);
            }
            return;
        }
        // The command the value names.
        let cmd_header: Option<Signed<BatchHeader>> = match &pp.body.value {
            Value::Deps { cmd, .. } => self.payloads.get(cmd).map(|b| b.header.clone()),
            Value::Noop => None,
        };
        let cmd_ref = match inst {
            InstanceId::Cmd { .. } => inst.txs_ref(),
            InstanceId::Ckpt(_) => cmd_header.as_ref().map(|h| h.body.dep_ref()),
        };
        let needs_payload = matches!(pp.body.value, Value::Deps { .. });
        if needs_payload && cmd_header.is_none() {
            // Fetch the payload first; judge later.
            let st = self.insts.get_mut(&inst).expect("inserted above; qed");
            if st.parked.len() < 8 {
                st.parked.push((from, pp));
            }
            // The leader may not hold it either (a re-proposed prepared value): ask everyone.
            self.out.push(Output::Send {
                to: None,
                msg: Message::Fetch(inst),
            });
            // A signed proposal names a real instance: if the payload never comes, its timer
            // takes it to a view change (and a Noop) like any other.
            self.know(inst);
            return;
        }
        if let InstanceId::Ckpt(b) = inst {
            if b != self.last_ckpt + 1 {
                // Its leader depends on the rotation for b, known once K_(b-1) commits.
                let st = self.insts.get_mut(&inst).expect("inserted above; qed");
                if st.parked.len() < 8 {
                    st.parked.push((from, pp));
                }
                return;
            }
        }
        let ckpt_leader = match inst {
            InstanceId::Ckpt(b) => self.ckpt_leader(b, pp.body.view),
            InstanceId::Cmd { .. } => None,
        };
        if let Err(e) = check_preprepare(
            self.m(),
            &*self.verifier,
            self.cfg.window,
            &pp,
            cmd_ref.as_ref(),
            ckpt_leader.as_ref(),
        ) {
            if !matches!(
                e,
                validity::Invalid::NotLeader | validity::Invalid::Signature
            ) {
                self.report(Proof::InvalidProposal(pp, cmd_header));
                self.leave_faulty_view(inst, view);
            }
            return;
        }
        // Local-state checks.
        if let Value::Deps { after, .. } = &pp.body.value {
            if *after > self.last_ckpt + 1 {
                let st = self.insts.get_mut(&inst).expect("inserted above; qed");
                if st.parked.len() < 8 {
                    st.parked.push((from, pp));
                }
                return;
            }
        }
        if let (InstanceId::Ckpt(b), Some(h)) = (inst, &cmd_header) {
            // b = last_ckpt + 1 here: later indexes were parked above.
            let BatchKind::Checkpoint {
                index,
                timestamp_ms,
                ref floors,
                ..
            } = h.body.kind
            else {
                return;
            };
            let (k_prev, prev_ts) = self.ckpt_ids.get(&(b - 1)).copied().unwrap_or(([0; 32], 0));
            let prev_floors = self.floors_of(b - 1);
            if index != b
                || h.body.base != k_prev
                || !checkpoint::timestamp_ok(prev_ts, timestamp_ms, self.now, self.cfg.drift_ms)
                || !crate::floors::well_formed(floors, self.m())
                || !crate::floors::extends(floors, prev_floors)
            {
                return;
            }
        }
        // Accept.
        let now = self.now;
        let st = self.insts.get_mut(&inst).expect("inserted above; qed");
        if view > st.view || (view == st.view && st.in_view_change) {
            st.enter_view(view, now);
            st.in_view_change = false;
            st.timer_armed = false;
        }
        st.last_progress_ms = now;
        let digest = pp.body.value.digest();
        st.values.insert(digest, pp.body.value.clone());
        st.accepted.insert(view, pp);
        st.accepted_digest.insert(view, digest);
        let voted = st.my_votes.get(&(view, Phase::Prepare)).cloned();
        self.know(inst);
        match voted {
            Some(v) if v.body.value == digest => self.broadcast(Message::Vote(v)),
            Some(_) => {}
            None => self.vote(inst, view, Phase::Prepare, digest),
        }
        self.check_progress(inst, view, digest);
    }

    fn recheck_parked(&mut self, inst: InstanceId) {
        let Some(st) = self.insts.get_mut(&inst) else {
            return;
        };
        let parked = std::mem::take(&mut st.parked);
        for (from, pp) in parked {
            self.on_preprepare(from, pp, None);
        }
    }

    fn vote(&mut self, inst: InstanceId, view: View, phase: Phase, digest: Digest) {
        let body = VoteBody {
            epoch: self.m().epoch,
            inst,
            view,
            phase,
            value: digest,
        };
        let v = Signed::sign(body, &self.g(), &*self.signer);
        self.insts
            .get_mut(&inst)
            .expect("callers create the instance; qed")
            .my_votes
            .insert((view, phase), v.clone());
        self.persist(vec![StorageOp::Put(
            Key::Vote(inst, view, phase),
            Record::Vote(v.clone()),
        )]);
        self.broadcast(Message::Vote(v));
    }

    fn on_vote(&mut self, _from: ValidatorId, v: Signed<VoteBody>) {
        let inst = v.body.inst;
        if self.is_decided_inst(&inst)
            || v.body.epoch != self.m().epoch
            || !self.m().contains(&v.signer)
        {
            return;
        }
        match inst {
            InstanceId::Cmd { proposer, seq, .. } => {
                if seq < self.record.floor(&proposer)
                    || (seq >= self.record.watermark(&proposer) + 4 * self.cfg.window
                        && !self.needed_by_checkpoint(&inst))
                {
                    return;
                }
            }
            InstanceId::Ckpt(b) => {
                if b > self.last_ckpt + checkpoint::MAX_INDEX_AHEAD {
                    return;
                }
            }
        }
        if let Some(st) = self.insts.get(&inst) {
            if let Some(old) = st
                .votes
                .get(&(v.body.view, v.body.phase))
                .and_then(|m| m.get(&v.signer))
            {
                if *old == v {
                    return;
                }
            }
            if v.body.view + 16 < st.view {
                return;
            }
        }
        if !v.verify(&self.g(), &*self.verifier) || !self.may_create(&inst) {
            return;
        }
        let now = self.now;
        let st = self.insts.entry(inst).or_default();
        st.last_progress_ms = now;
        let (view, digest) = (v.body.view, v.body.value);
        if let Some(old) = st.add_vote(v.clone()) {
            self.report(Proof::VoteEquivocation(old, v));
            return;
        }
        self.know(inst);
        self.check_progress(inst, view, digest);
    }

    fn check_progress(&mut self, inst: InstanceId, view: View, digest: Digest) {
        let q = self.m().q();
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        if st.count(view, Phase::Commit, &digest) >= q {
            if let Some(value) = st.values.get(&digest).cloned() {
                let mut cert = st.matching(view, Phase::Commit, &digest);
                cert.truncate(q);
                let have_payload = match (&inst, &value) {
                    (_, Value::Noop) => true,
                    (_, Value::Deps { cmd, .. }) => self.payloads.contains_key(cmd),
                };
                if have_payload {
                    self.decide(inst, value, cert);
                    return;
                }
            }
            let voter = st
                .matching(view, Phase::Commit, &digest)
                .first()
                .map(|v| v.signer);
            if let Some(to) = voter {
                if to != self.me {
                    self.send(to, Message::Fetch(inst));
                }
            }
            return;
        }
        let accepted_here = st.accepted_digest.get(&view) == Some(&digest);
        if accepted_here && st.count(view, Phase::Prepare, &digest) >= q {
            let value = st.values[&digest].clone();
            let mut votes = st.matching(view, Phase::Prepare, &digest);
            votes.truncate(q);
            let higher = st.prepared.as_ref().map(|c| view > c.view).unwrap_or(true);
            let may_commit = view == st.view
                && !st.in_view_change
                && !st.my_votes.contains_key(&(view, Phase::Commit));
            if higher {
                let cert = PreparedCert { view, value, votes };
                self.insts
                    .get_mut(&inst)
                    .expect("present; qed")
                    .note_prepared(cert.clone());
                self.persist(vec![StorageOp::Put(
                    Key::Prepared(inst),
                    Record::Prepared(cert),
                )]);
            }
            if may_commit {
                self.vote(inst, view, Phase::Commit, digest);
            }
        }
    }

    // ---------------------------------------------------------------- view change

    /// The leader of `inst` in `view` is proven Byzantine (we just reported its proposal): if
    /// that is our current view, ask for the next one now rather than when its timer runs out.
    /// Its leader cannot be correct, so the wait would only delay; with doubling timers and f
    /// Byzantine leaders in a row it is most of the time an instance can take after GST. Asking
    /// for a view change is always safe; the others join once f+1 of us ask.
    fn leave_faulty_view(&mut self, inst: InstanceId, view: View) {
        if self.is_decided_inst(&inst) {
            return;
        }
        if self.insts.get(&inst).is_some_and(|st| st.view == view) {
            self.start_view_change(inst, view + 1);
        }
    }

    fn start_view_change(&mut self, inst: InstanceId, nv: View) {
        let has_payload = match inst {
            InstanceId::Cmd { id, .. } => self.payloads.contains_key(&id) && !self.misnamed(&inst),
            InstanceId::Ckpt(_) => false,
        };
        let st = self.insts.entry(inst).or_default();
        if nv < st.view || (nv == st.view && st.in_view_change && st.my_vcs.contains_key(&nv)) {
            return;
        }
        st.enter_view(nv, self.now);
        st.in_view_change = true;
        st.timer_armed = false;
        let vc = match st.my_vcs.get(&nv) {
            Some(vc) => vc.clone(),
            None => {
                let body = ViewChangeBody {
                    epoch: self.cfg.membership.epoch,
                    inst,
                    new_view: nv,
                    prepared: st.prepared.clone(),
                    has_payload,
                };
                let vc = Signed::sign(body, &self.cfg.membership.genesis, &*self.signer);
                st.my_vcs.insert(nv, vc.clone());
                self.persist(vec![StorageOp::Put(
                    Key::ViewChange(inst, nv),
                    Record::ViewChange(vc.clone()),
                )]);
                vc
            }
        };
        self.broadcast(Message::ViewChange(vc));
        self.know(inst);
    }

    fn on_view_change(&mut self, from: ValidatorId, vc: Signed<ViewChangeBody>) {
        let inst = vc.body.inst;
        if self.is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        match inst {
            InstanceId::Cmd { proposer, seq, .. } => {
                // Below the watermark an undecided id (equivocation, fake dependency) still needs
                // a decision (Noop): only pruned seqs are ignored.
                if !self.m().contains(&proposer)
                    || seq < self.record.floor(&proposer)
                    || (seq >= self.record.watermark(&proposer) + self.cfg.window
                        && !self.needed_by_checkpoint(&inst))
                {
                    return;
                }
            }
            InstanceId::Ckpt(b) => {
                if b != self.last_ckpt + 1 {
                    return;
                }
            }
        }
        let nv = vc.body.new_view;
        if nv > 64 {
            return;
        }
        if let Some(st) = self.insts.get(&inst) {
            if st
                .vcs
                .get(&nv)
                .map(|m| m.contains_key(&vc.signer))
                .unwrap_or(false)
            {
                return;
            }
        }
        if !check_view_change(self.m(), &*self.verifier, &vc) || !self.may_create(&inst) {
            return;
        }
        let f1 = self.m().join();
        let q = self.m().q();
        let st = self.insts.entry(inst).or_default();
        st.vcs.entry(nv).or_default().insert(vc.signer, vc);
        // Join: f+1 validators ask for views above ours.
        let higher = st.higher_vcs(st.view);
        let join = if higher.len() >= f1 {
            let mut views: Vec<View> = higher.values().copied().collect();
            views.sort_unstable_by(|a, b| b.cmp(a));
            Some(views[f1 - 1])
        } else {
            None
        };
        let enough = st.vcs.get(&nv).map(|m| m.len() >= q).unwrap_or(false)
            && !st.led.contains(&nv)
            && nv >= st.view;
        self.know(inst);
        if let Some(target) = join {
            self.start_view_change(inst, target);
        }
        let f1_now = self
            .insts
            .get(&inst)
            .is_some_and(|st| st.view == nv && st.timer_armed && st.vcs_for(nv) == f1);
        if f1_now && self.silent_view(&inst) {
            // f+1 of us just reached the view of a silent leader: leave it soon.
            self.set_timer(TimerId::View(inst, nv), SILENT_VIEW_MS);
        }
        let leader = self.leader_of(&inst, nv);
        if enough && leader == Some(self.me) {
            self.lead_new_view(inst, nv);
        }
    }

    fn lead_new_view(&mut self, inst: InstanceId, v: View) {
        let q = self.m().q();
        let st = self
            .insts
            .get_mut(&inst)
            .expect("caller holds q view changes; qed");
        st.led.insert(v);
        let vcs: Vec<Signed<ViewChangeBody>> = st.vcs[&v].values().take(q).cloned().collect();
        st.lead_vcs.insert(v, vcs.clone());
        let best = vcs
            .iter()
            .filter_map(|vc| vc.body.prepared.as_ref())
            .max_by_key(|c| c.view)
            .cloned();
        if let Some(cert) = best {
            let payload = match &cert.value {
                Value::Deps { cmd, .. } => self.payloads.get(cmd).cloned(),
                Value::Noop => None,
            };
            if payload.is_none() && matches!(cert.value, Value::Deps { .. }) {
                // Voters fetch it from the holders; so do we, to attach it when retransmitting.
                self.out.push(Output::Send {
                    to: None,
                    msg: Message::Fetch(inst),
                });
            }
            self.propose(inst, v, cert.value, vec![], vcs, payload);
            return;
        }
        match inst {
            InstanceId::Cmd { .. } if self.misnamed(&inst) || self.equivocated(&inst) => {
                // No command has this name, or its proposer signed two for this seq: nothing
                // worth collecting for (no prepared value binds us, see above).
                self.propose(inst, v, Value::Noop, vec![], vcs, None);
            }
            InstanceId::Cmd { id, .. } => {
                if let Some(batch) = self.payloads.get(&id).cloned() {
                    self.lead_collect(inst, id, batch, v, vcs);
                    let t = self.timeout(&inst, v) / 2;
                    self.set_timer(TimerId::Deadline(inst, v), t);
                    self.try_collect(id);
                } else if vcs.iter().any(|vc| vc.body.has_payload) {
                    let holders: Vec<ValidatorId> = vcs
                        .iter()
                        .filter(|vc| vc.body.has_payload)
                        .map(|vc| vc.signer)
                        .collect();
                    for h in holders {
                        self.send(h, Message::Fetch(inst));
                    }
                    let t = self.timeout(&inst, v) / 2;
                    self.set_timer(TimerId::Deadline(inst, v), t);
                } else {
                    self.propose(inst, v, Value::Noop, vec![], vcs, None);
                }
            }
            InstanceId::Ckpt(b) => {
                if b == self.last_ckpt + 1 {
                    self.announce_candidate(b, v, vcs);
                }
            }
        }
    }

    /// A recovery leader that was waiting for the payload got it: re-announce and collect.
    fn resume_lead(&mut self, inst: InstanceId) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        if self.misnamed(&inst) {
            return;
        }
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        let Some(&v) = st.led.iter().next_back() else {
            return;
        };
        if st.my_preprepares.contains_key(&v)
            || self
                .collects
                .get(&id)
                .map(|c| c.view == Some(v))
                .unwrap_or(false)
        {
            return;
        }
        let Some(batch) = self.payloads.get(&id).cloned() else {
            return;
        };
        let vcs: Vec<Signed<ViewChangeBody>> = st.lead_vcs.get(&v).cloned().unwrap_or_default();
        self.lead_collect(inst, id, batch, v, vcs);
        self.try_collect(id);
    }

    /// As the leader of view `v` of `inst`, collect dependency replies for `batch` (id `id`)
    /// anew, justified by the view changes `vcs`, and announce the batch again.
    fn lead_collect(
        &mut self,
        inst: InstanceId,
        id: CommandId,
        batch: SignedBatch,
        v: View,
        vcs: Vec<Signed<ViewChangeBody>>,
    ) {
        let dep = batch.header.body.dep_ref();
        let c = self.collects.entry(id).or_insert_with(|| Collect {
            inst,
            dep,
            batch: batch.clone(),
            replies: BTreeMap::new(),
            parked: vec![],
            view: None,
            new_view: vec![],
        });
        c.view = Some(v);
        c.new_view = vcs;
        self.broadcast(Message::Announce(batch));
    }

    // ---------------------------------------------------------------- decisions

    fn send_decided(&mut self, to: ValidatorId, inst: InstanceId) {
        if to == self.me {
            return;
        }
        let found = if let Some(d) = self.insts.get(&inst).and_then(|s| s.decided.clone()) {
            let payload = match (&d.value, inst) {
                (Value::Deps { cmd, .. }, _) => self.payloads.get(cmd).cloned(),
                (Value::Noop, InstanceId::Cmd { id, .. }) => self.payloads.get(&id).cloned(),
                (Value::Noop, InstanceId::Ckpt(_)) => None,
            };
            Some((d, payload))
        } else {
            self.old_decisions
                .get(&inst)
                .map(|(_, d, p)| (d.clone(), p.clone()))
        };
        if let Some((d, p)) = found {
            self.send(to, Message::Decided(d, p));
        }
    }

    fn on_fetch(&mut self, from: ValidatorId, inst: InstanceId) {
        if self.is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        if let InstanceId::Cmd { id, .. } = inst {
            if let Some(b) = self.payloads.get(&id).cloned() {
                self.send(from, Message::Announce(b));
            }
        } else if let Some(st) = self.insts.get(&inst) {
            // Re-send our accepted proposal with its payload.
            if let Some((_, pp)) = st.accepted.iter().next_back() {
                let pp = pp.clone();
                let payload = match &pp.body.value {
                    Value::Deps { cmd, .. } => self.payloads.get(cmd).cloned(),
                    Value::Noop => None,
                };
                self.send(from, Message::PrePrepare(pp, payload));
            }
        }
    }

    fn on_decided(&mut self, d: Decision, payload: Option<SignedBatch>) {
        let inst = d.inst;
        if self.is_decided_inst(&inst) {
            return;
        }
        let Some(first) = d.cert.first() else { return };
        let view = first.body.view;
        if !check_votes(
            self.m(),
            &*self.verifier,
            &inst,
            view,
            Phase::Commit,
            &d.value.digest(),
            &d.cert,
        ) {
            return;
        }
        match (&inst, &d.value) {
            (InstanceId::Ckpt(_), Value::Noop) => return,
            (InstanceId::Cmd { id, .. }, Value::Noop) => {
                // The header (when sent) tells that the command was real: it advances the watermark.
                if let Some(p) = payload.as_ref().filter(|p| p.id() == *id) {
                    self.accept_payload(p);
                }
            }
            (_, Value::Deps { cmd, .. }) => {
                let ok = payload
                    .as_ref()
                    .map(|p| p.id() == *cmd && self.accept_payload(p))
                    .unwrap_or(false);
                if !ok && !self.payloads.contains_key(cmd) {
                    return;
                }
                if let InstanceId::Cmd { id, .. } = inst {
                    if id != *cmd {
                        return;
                    }
                }
            }
        }
        self.decide(inst, d.value, d.cert);
    }

    fn decide(&mut self, inst: InstanceId, value: Value, cert: Vec<Signed<VoteBody>>) {
        let view = cert.first().map(|v| v.body.view).unwrap_or(0);
        let decision = Decision {
            inst,
            value: value.clone(),
            cert,
        };
        let payload = match &value {
            Value::Deps { cmd, .. } => self.payloads.get(cmd).cloned(),
            Value::Noop => None,
        };
        let st = self.insts.entry(inst).or_default();
        st.decided = Some(decision.clone());
        st.parked.clear();
        st.votes.clear();
        st.vcs.clear();
        let mut ops = vec![StorageOp::Put(
            Key::Decision(inst),
            Record::Decision(decision, payload),
        )];
        self.out.push(Output::Committed {
            inst,
            value: value.clone(),
            view,
        });
        match inst {
            InstanceId::Cmd { proposer, seq, id } => {
                let misnamed = self.misnamed(&inst);
                let counts = !misnamed
                    && (self.payloads.contains_key(&id)
                        || self
                            .first_header
                            .get(&Slot::Seq(proposer, seq))
                            .map(|h| h.body.id() == id)
                            .unwrap_or(false));
                ops.extend(self.record_decided(proposer, seq, id, counts));
                self.persist(ops);
                if !misnamed {
                    self.collects.remove(&id);
                }
                match value {
                    Value::Deps { deps, after, .. } => {
                        let batch = self
                            .payloads
                            .get(&id)
                            .cloned()
                            .expect("decide is only called with the payload held; qed");
                        if after < self.built {
                            // Would land in no block: the S11 checker reports it.
                            self.collect_garbage_cmd(inst, self.built);
                        } else {
                            self.committed
                                .insert(id, CommittedCmd { batch, deps, after });
                        }
                    }
                    Value::Noop => {
                        if proposer == self.me && !misnamed {
                            if let Some(b) = self.payloads.get(&id) {
                                self.pending.push_front(b.txs.clone());
                            }
                        }
                        self.collect_garbage_cmd(inst, self.built);
                    }
                }
                if proposer == self.me {
                    self.try_propose_own();
                }
            }
            InstanceId::Ckpt(b) => {
                self.persist(ops);
                let Value::Deps { cmd, deps, .. } = value else {
                    return;
                };
                let Some(h) = self.payloads.get(&cmd).map(|p| p.header.body.clone()) else {
                    return;
                };
                let BatchKind::Checkpoint {
                    timestamp_ms,
                    ref floors,
                    ..
                } = h.kind
                else {
                    return;
                };
                self.ckpt_ids.insert(b, (cmd, timestamp_ms));
                self.floors_at.insert(b, floors.clone());
                self.ckpt_decided.insert(
                    b,
                    CkptDecided {
                        header: h,
                        deps: deps.clone(),
                    },
                );
                self.advance_ckpts();
                // Dependencies below K_b's floors are void: nothing to wait or recover for.
                let floors = self.floors_at.get(&b).cloned().unwrap_or_default();
                for d in &deps {
                    if matches!(d.kind, DepKind::Txs { .. }) && !crate::floors::voids(&floors, d) {
                        self.know(d.instance());
                    }
                }
                // Two ids of one (proposer, seq) in K_b prove that proposer equivocated (every
                // replica sees the same K_b): its undecided ones go to a view change at once
                // instead of holding block b for a whole view-0 timeout.
                for w in deps.windows(2) {
                    let same_slot = w[0].proposer == w[1].proposer
                        && matches!((w[0].kind, w[1].kind),
                            (DepKind::Txs { seq: a }, DepKind::Txs { seq: c }) if a == c);
                    if !same_slot || crate::floors::voids(&floors, &w[0]) {
                        continue;
                    }
                    for d in w {
                        let inst = d.instance();
                        let view0 = self
                            .insts
                            .get(&inst)
                            .is_none_or(|st| st.view == 0 && !st.in_view_change);
                        if !self.is_decided_inst(&inst) && view0 {
                            self.start_view_change(inst, 1);
                        }
                    }
                }
            }
        }
        self.try_build_blocks();
    }

    fn advance_ckpts(&mut self) {
        let mut advanced = false;
        while self.ckpt_ids.contains_key(&(self.last_ckpt + 1)) {
            self.last_ckpt += 1;
            advanced = true;
            let b = self.last_ckpt;
            if !self.rotations.contains_key(&(b + 1)) {
                let view = match self.ckpt_decided.get(&b).map(|k| &k.header.kind) {
                    Some(BatchKind::Checkpoint { view, .. }) => *view,
                    _ => 0,
                };
                let next = self.rotation(b).after(self.m(), b, view);
                self.rotations.insert(b + 1, next);
            }
            // Losing candidates for b are decided Noop.
            let winner = self.ckpt_ids[&b].0;
            let losers: Vec<CommandId> = self
                .dds
                .entries()
                .filter(|e| {
                    matches!(e.dep.kind, DepKind::Ckpt { index, .. } if index == b)
                        && e.dep.id != winner
                })
                .map(|e| e.dep.id)
                .collect();
            let mut ops = vec![];
            for id in losers {
                self.dds.remove(&id);
                self.payloads.remove(&id);
                ops.push(StorageOp::Delete(Key::Reply(id)));
            }
            self.persist(ops);
            self.collects
                .retain(|_, c| !matches!(c.inst, InstanceId::Ckpt(i) if i <= b));
        }
        if !advanced {
            return;
        }
        let next = self.last_ckpt + 1;
        self.know(InstanceId::Ckpt(next));
        let stale: Vec<BlockIndex> = self
            .buffered
            .range(..=self.last_ckpt)
            .map(|(b, _)| *b)
            .collect();
        for b in stale {
            self.buffered.remove(&b);
        }
        if let Some(buf) = self.buffered.remove(&next) {
            for (from, b) in buf {
                self.inbox.push_back((from, Message::Announce(b)));
            }
        }
        let parked: Vec<InstanceId> = self
            .insts
            .iter()
            .filter(|(_, s)| !s.parked.is_empty())
            .map(|(i, _)| *i)
            .collect();
        for i in parked {
            self.recheck_parked(i);
        }
        let replies: Vec<CommandId> = self
            .collects
            .iter()
            .filter(|(_, c)| !c.parked.is_empty())
            .map(|(i, _)| *i)
            .collect();
        for id in replies {
            let c = self.collects.get_mut(&id).expect("listed above; qed");
            let parked = std::mem::take(&mut c.parked);
            for r in parked {
                self.on_reply(r);
            }
        }
        self.maybe_announce_candidate();
    }

    // ---------------------------------------------------------------- blocks

    fn try_build_blocks(&mut self) {
        loop {
            let b = self.built + 1;
            let Some(k) = self.ckpt_decided.get(&b) else {
                return;
            };
            let BatchKind::Checkpoint {
                timestamp_ms,
                view,
                ref floors,
                ..
            } = k.header.kind
            else {
                return;
            };
            // Below K_b's agreed floors nothing is waited for and nothing lands (void): the
            // same cut-off on every replica, whatever each knows locally.
            let Cut::Ready {
                members: member_ids,
                ..
            } = cut(
                b,
                &k.deps,
                floors,
                |d| self.dep_decided(d),
                // A commit is a member only under the name its header gives it (a misnamed
                // reference to the same id is not).
                |d| {
                    self.committed
                        .get(&d.id)
                        .filter(|c| c.batch.header.body.dep_ref() == *d)
                        .map(|c| c.after)
                },
            )
            else {
                return;
            };
            let floors = floors.clone();
            let k = k.clone();
            let mut members: BTreeMap<CommandId, Member> = member_ids
                .iter()
                .map(|id| {
                    let c = &self.committed[id];
                    let member = Member {
                        key: c.batch.header.body.canonical_key(),
                        deps: c.deps.iter().map(|x| x.id).collect(),
                    };
                    (*id, member)
                })
                .collect();
            let kid = k.header.id();
            members.insert(
                kid,
                Member {
                    key: k.header.canonical_key(),
                    deps: k.deps.iter().map(|x| x.id).collect(),
                },
            );
            let order = canonical_order(&members);
            let batches = order
                .iter()
                .filter(|id| **id != kid)
                .map(|id| {
                    let c = &self.committed[id];
                    (c.batch.header.body.clone(), c.batch.txs.clone())
                })
                .collect();
            let block = FinishedBlock {
                index: b,
                timestamp_ms,
                checkpoint_view: view,
                next_rotation: self.rotation(b + 1),
                floors,
                checkpoint: kid,
                batches,
            };
            self.finish_block(block);
        }
    }

    fn finish_block(&mut self, block: FinishedBlock) {
        let first_output = self.out.len();
        self.finish_block_with(block, first_output);
    }

    /// Finish a block; every write since output `first_output`, the block meta included, goes
    /// out as one `Persist`.
    fn finish_block_with(&mut self, block: FinishedBlock, first_output: usize) {
        let b = block.index;
        self.built = b;
        self.last_build_ms = self.now;
        self.ckpt_ids
            .insert(b, (block.checkpoint, block.timestamp_ms));
        // Our own batches this block voids (their fence names it, their seq is below our floor
        // in it; built or adopted alike): their transactions are proposed again, lowest first.
        let own_floor = crate::floors::floor_of(&block.floors, &self.me);
        let mut own_voided: Vec<(Seq, Vec<Tx>)> = self
            .committed
            .values()
            .map(|c| (&c.batch.header.body, c))
            .filter(|(h, c)| h.proposer == self.me && h.seq < own_floor && c.after + 1 == b)
            .map(|(h, c)| (h.seq, c.batch.txs.clone()))
            .collect();
        own_voided.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        for (_, txs) in own_voided {
            self.pending.push_front(txs);
        }
        // The decided record's floors are the agreed floors of the last block taken.
        let ops = self.take_floors(&block.floors);
        self.persist(ops);
        self.collect_below_floors(b);
        self.floors_at.insert(b, block.floors.clone());
        self.recent_blocks.insert(b, block.clone());
        let batches = block
            .batches
            .iter()
            .map(|(h, _)| (h.proposer, h.seq, h.id()));
        self.block_batches.insert(b, batches.collect());
        self.chain = self.chain.split_off(&(b + 1));
        self.out.push(Output::BlockReady(block));
        self.gc(b);
        let meta = self.meta();
        self.persist(vec![meta]);
        self.merge_persists_since(first_output);
        self.try_propose_own();
    }

    /// Commands below the agreed floors that are not committed (so in no block, now or later)
    /// are decided by the floor: nothing decides them any more (every message about them is
    /// dropped). Our own go back to the pool, lowest first (a copy already in a block is skipped
    /// by every builder), and every one is collected, so that no log entry below a floor pins
    /// the proposer's window.
    fn collect_below_floors(&mut self, b: BlockIndex) {
        let below = |r: &Self, p: &ValidatorId, seq: Seq, id: &CommandId| {
            seq < r.record.floor(p) && !r.committed.contains_key(id)
        };
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.insts.keys() {
            if let InstanceId::Cmd { proposer, seq, id } = inst {
                if below(self, proposer, *seq, id) {
                    refs.insert((*proposer, *seq, *id));
                }
            }
        }
        for e in self.dds.entries() {
            if let DepKind::Txs { seq } = e.dep.kind {
                if below(self, &e.dep.proposer, seq, &e.dep.id) {
                    refs.insert((e.dep.proposer, seq, e.dep.id));
                }
            }
        }
        for (id, batch) in &self.payloads {
            let h = &batch.header.body;
            if !h.is_checkpoint() && below(self, &h.proposer, h.seq, id) {
                refs.insert((h.proposer, h.seq, *id));
            }
        }
        let mut requeue: Vec<(Seq, Vec<Tx>)> = vec![];
        for (proposer, seq, id) in refs {
            if proposer == self.me {
                if let Some(batch) = self.payloads.get(&id) {
                    let h = &batch.header.body;
                    if h.proposer == self.me && h.seq == seq {
                        requeue.push((seq, batch.txs.clone()));
                    }
                }
            }
            self.collect_garbage_cmd(InstanceId::Cmd { proposer, seq, id }, b);
        }
        requeue.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        for (_, txs) in requeue {
            self.pending.push_front(txs);
        }
    }

    fn collect_garbage_cmd(&mut self, inst: InstanceId, at_block: BlockIndex) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        // A misnamed instance owns only its own consensus state, never what is keyed by the id
        // of the real command it borrowed.
        let owns_id = !self.misnamed(&inst);
        let mut ops = vec![
            StorageOp::Delete(Key::Decision(inst)),
            StorageOp::Delete(Key::Prepared(inst)),
        ];
        if owns_id {
            ops.push(StorageOp::Delete(Key::Reply(id)));
        }
        if let Some(st) = self.insts.remove(&inst) {
            for v in 0..=st.view {
                ops.push(StorageOp::Delete(Key::Vote(inst, v, Phase::Prepare)));
                ops.push(StorageOp::Delete(Key::Vote(inst, v, Phase::Commit)));
                ops.push(StorageOp::Delete(Key::ViewChange(inst, v)));
                ops.push(StorageOp::Delete(Key::PrePrepare(inst, v)));
            }
            if let Some(d) = st.decided {
                let payload = match &d.value {
                    Value::Deps { cmd, .. } => self.payloads.get(cmd).cloned(),
                    Value::Noop => None,
                };
                self.old_decisions.insert(inst, (at_block, d, payload));
            }
        }
        if owns_id {
            // Our own batch record goes only with our own batch: an instance naming our seq
            // with an id we never proposed (a Byzantine validator's invention) must not delete
            // the record of the real batch at that seq, or a restart would reuse the seq.
            let own_batch = self
                .held_ref(&id)
                .is_some_and(|r| r.proposer == self.me && r.instance() == inst);
            if own_batch {
                if let InstanceId::Cmd { seq, .. } = inst {
                    ops.push(StorageOp::Delete(Key::OwnBatch(seq)));
                }
            }
            self.dds.remove(&id);
            self.payloads.remove(&id);
            self.committed.remove(&id);
            self.collects.remove(&id);
        }
        self.persist(ops);
    }

    fn gc(&mut self, b: BlockIndex) {
        let done: Vec<InstanceId> = self
            .committed
            .iter()
            .filter(|(_, c)| c.after < b)
            .map(|(id, c)| {
                let h = &c.batch.header.body;
                InstanceId::Cmd {
                    proposer: h.proposer,
                    seq: h.seq,
                    id: *id,
                }
            })
            .collect();
        for inst in done {
            self.collect_garbage_cmd(inst, b);
        }
        // Checkpoint instances up to b.
        let ck: Vec<InstanceId> = self
            .insts
            .range(InstanceId::Ckpt(0)..=InstanceId::Ckpt(b))
            .map(|(i, _)| *i)
            .collect();
        let mut ops = vec![];
        for inst in ck {
            if let Some(st) = self.insts.remove(&inst) {
                for v in 0..=st.view {
                    ops.push(StorageOp::Delete(Key::Vote(inst, v, Phase::Prepare)));
                    ops.push(StorageOp::Delete(Key::Vote(inst, v, Phase::Commit)));
                    ops.push(StorageOp::Delete(Key::ViewChange(inst, v)));
                    ops.push(StorageOp::Delete(Key::PrePrepare(inst, v)));
                    if let Some(id) = self.announced.remove(&(
                        match inst {
                            InstanceId::Ckpt(i) => i,
                            _ => 0,
                        },
                        v,
                    )) {
                        if let InstanceId::Ckpt(i) = inst {
                            ops.push(StorageOp::Delete(Key::OwnCandidate(i, v)));
                        }
                        self.payloads.remove(&id);
                    }
                }
                ops.push(StorageOp::Delete(Key::Decision(inst)));
                ops.push(StorageOp::Delete(Key::Prepared(inst)));
                if let Some(d) = st.decided {
                    let payload = match &d.value {
                        Value::Deps { cmd, .. } => self.payloads.get(cmd).cloned(),
                        Value::Noop => None,
                    };
                    self.old_decisions.insert(inst, (b, d, payload));
                }
            }
        }
        if let Some(k) = self.ckpt_decided.remove(&b) {
            let kid = k.header.id();
            self.dds.remove(&kid);
            self.payloads.remove(&kid);
            ops.push(StorageOp::Delete(Key::Reply(kid)));
        }
        self.persist(ops);
        let keep_from = b.saturating_sub(self.cfg.retain_blocks);
        self.old_decisions.retain(|_, (at, _, _)| *at >= keep_from);
        self.recent_blocks = self
            .recent_blocks
            .split_off(&b.saturating_sub(self.cfg.retain_sync_blocks));
        self.block_batches = self
            .block_batches
            .split_off(&b.saturating_sub(SETTLED_ANSWER_BLOCKS));
        self.ckpt_ids = self.ckpt_ids.split_off(&keep_from.min(b.saturating_sub(1)));
        self.floors_at = self
            .floors_at
            .split_off(&keep_from.min(b.saturating_sub(1)));
        self.rotations = self.rotations.split_off(&keep_from.min(b));
        self.sync_votes = self.sync_votes.split_off(&(b + 1));
        let record = &self.record;
        self.first_header.retain(|s, _| match s {
            Slot::Seq(p, seq) => *seq >= record.floor(p),
            Slot::Ckpt(i, _) => *i > b,
        });
        self.announced.retain(|(i, _), _| *i > b);
    }

    // ---------------------------------------------------------------- sync and retransmission

    fn on_sync_request(&mut self, from: ValidatorId, b: BlockIndex) {
        let blocks: Vec<FinishedBlock> = self
            .recent_blocks
            .range(b..b + 16)
            .map(|(_, x)| x.clone())
            .collect();
        for blk in blocks {
            self.send(from, Message::SyncBlock(blk));
        }
    }

    fn on_sync_block(&mut self, from: ValidatorId, blk: FinishedBlock) {
        if blk.index <= self.built || blk.index > self.built + 16 {
            return;
        }
        let f1 = self.m().join();
        let d = blk.digest();
        // One vote per sender and index (its latest): what a peer sends never grows this past
        // n blocks per index.
        let votes = self.sync_votes.entry(blk.index).or_default();
        for (_, voters) in votes.values_mut() {
            voters.remove(&from);
        }
        votes.retain(|_, (_, voters)| !voters.is_empty());
        votes
            .entry(d)
            .or_insert_with(|| (blk.clone(), BTreeSet::new()))
            .1
            .insert(from);
        // Adopt every consecutive block that f+1 validators vouch for.
        let before = self.built;
        loop {
            let next = self.built + 1;
            let Some(blk) = self
                .sync_votes
                .get(&next)
                .and_then(|m| m.values().find(|(_, s)| s.len() >= f1))
                .map(|(b, _)| b.clone())
            else {
                break;
            };
            self.adopt(blk);
        }
        if self.built >= before + 16 {
            // A full batch was adopted: keep pulling.
            let next = self.built + 1;
            self.out.push(Output::Send {
                to: None,
                msg: Message::SyncRequest(next),
            });
        }
    }

    fn adopt(&mut self, blk: FinishedBlock) {
        // f+1 identical blocks: at least one correct validator built it. Its marks go out in one
        // write with the block meta (a crash between them must not restart with the marks and the
        // old position): everything up to the block meta is merged below.
        let first_output = self.out.len();
        let mut ops = vec![];
        for (h, _) in &blk.batches {
            let id = h.id();
            ops.extend(self.record_decided(h.proposer, h.seq, id, true));
        }
        self.persist(ops);
        let b = blk.index;
        if self.last_ckpt < b {
            self.ckpt_ids.insert(b, (blk.checkpoint, blk.timestamp_ms));
            self.floors_at.insert(b, blk.floors.clone());
            self.ckpt_decided.remove(&b);
            self.rotations.insert(b + 1, blk.next_rotation.clone());
        }
        for (h, _) in &blk.batches {
            let id = h.id();
            self.committed.remove(&id);
            let inst = InstanceId::Cmd {
                proposer: h.proposer,
                seq: h.seq,
                id,
            };
            self.collect_garbage_cmd(inst, b);
        }
        self.finish_block_with(blk, first_output);
        self.advance_ckpts();
        self.try_build_blocks();
    }

    // ---------------------------------------------------------------- rejoining from the chain

    /// The engine saw a finalized chain block: remember the last few above our position.
    fn on_chain_block(&mut self, pos: ChainPosition) {
        if pos.index <= self.built {
            return;
        }
        self.chain.insert(pos.index, pos);
        while self.chain.len() > 8 {
            self.chain.pop_first();
        }
    }

    /// Ask what is settled at `pos`: keep asking about the same block until the rejoin happens
    /// or the chain is 16 blocks past it (a new question would drop the answers so far, and with
    /// a head that moves every period no question would ever collect them), then move on.
    fn ask_settled(&mut self, pos: ChainPosition) {
        let keep = self
            .settled_asked
            .as_ref()
            .is_some_and(|a| a.index >= self.built && pos.index <= a.index + 16);
        if !keep {
            self.settled_asked = Some(pos);
            self.settled_claims.clear();
            self.settled_asked_ms = self.now;
        }
        let at = self.settled_asked.as_ref().map_or(0, |a| a.index);
        let epoch = self.m().epoch;
        self.out.push(Output::Send {
            to: None,
            msg: Message::SettledRequest { epoch, at },
        });
    }

    /// Our own position at the last block built, to ask what is settled there (a floor refresh
    /// when a watermark is stuck, see `resend`).
    fn own_position(&self) -> Option<ChainPosition> {
        let (checkpoint, timestamp_ms) = *self.ckpt_ids.get(&self.built)?;
        Some(ChainPosition {
            index: self.built,
            checkpoint,
            timestamp_ms,
            next_rotation: self.rotation(self.built + 1),
            floors: self.floors_at.get(&self.built).cloned().unwrap_or_default(),
        })
    }

    /// Answer what is settled at block `at`, if we built it, it is recent, and we still know
    /// the batches of every block after it (their commands are not settled at `at`).
    fn on_settled_request(&mut self, from: ValidatorId, epoch: Epoch, at: BlockIndex) {
        if epoch != self.m().epoch
            || at > self.built
            || at == 0
            || self.built - at > SETTLED_ANSWER_BLOCKS
            || self.settled_answered.get(&from) == Some(&at)
        {
            return;
        }
        self.settled_answered.insert(from, at);
        let after = self.block_batches.range(at + 1..);
        if after.clone().count() as u64 != self.built - at {
            return;
        }
        let mut unsettled = crate::rejoin::Unsettled::default();
        for h in self.committed.values().map(|c| &c.batch.header.body) {
            unsettled.add(h.proposer, h.seq, h.id());
        }
        for (p, seq, id) in after.flat_map(|(_, batches)| batches) {
            unsettled.add(*p, *seq, *id);
        }
        let proposers = crate::rejoin::claim(self.m(), &self.record, &unsettled);
        self.send(
            from,
            Message::Settled {
                epoch,
                at,
                proposers,
            },
        );
    }

    fn on_settled(
        &mut self,
        from: ValidatorId,
        epoch: Epoch,
        at: BlockIndex,
        proposers: Vec<SettledSeqs>,
    ) {
        if epoch != self.m().epoch
            || from == self.me
            || self.settled_asked.as_ref().map(|a| a.index) != Some(at)
            || at < self.built
            || !crate::rejoin::well_formed(&proposers, self.m())
        {
            return;
        }
        self.settled_claims.insert(from, proposers);
        self.try_rejoin();
    }

    /// Rejoin at the block asked about once f+1 validators answered and either 2f+1 (or every
    /// other member) did or a resend period passed since the question: with more answers than
    /// f+1, the (f+1)-th highest floor is a correct validator's even if f answer low.
    fn try_rejoin(&mut self) {
        let Some(pos) = self.settled_asked.clone() else {
            return;
        };
        let (m, have) = (self.m(), self.settled_claims.len());
        let all = (m.n() - 1).min(2 * m.f() + 1);
        let waited = self.now.saturating_sub(self.settled_asked_ms) >= self.cfg.resend_ms;
        if pos.index < self.built || have < m.f() + 1 || (have < all && !waited) {
            return;
        }
        let settled = crate::rejoin::combine(self.m(), &self.settled_claims);
        self.settled_asked = None;
        self.settled_claims.clear();
        self.rejoin(pos, settled);
    }

    /// Some proposer has more than 2W decided seqs above its watermark: a correct proposer
    /// cannot get that far ahead of an undecided seq (replies stop W above it), so the seq at our
    /// watermark was decided without us learning of it.
    fn watermark_stuck(&self) -> bool {
        self.m()
            .validators()
            .iter()
            .any(|p| self.record.decided_above_watermark(p) > 2 * self.cfg.window as usize)
    }

    /// Record a decision: the mark (nothing below the floor).
    fn record_decided(
        &mut self,
        p: ValidatorId,
        seq: Seq,
        id: CommandId,
        counts: bool,
    ) -> Vec<StorageOp> {
        if seq < self.record.floor(&p) {
            return vec![];
        }
        self.record.mark(p, seq, id, counts);
        let counts = self.record.counts(&p, seq, &id);
        vec![StorageOp::Put(
            Key::Decided(p, seq, id),
            Record::Marked(counts),
        )]
    }

    /// Raise the decided record to a taken block's agreed floors (our own next seq never falls
    /// below ours); returns the writes deleting the marks pruned under them (the floors
    /// themselves are stored with the block meta).
    fn take_floors(&mut self, floors: &Floors) -> Vec<StorageOp> {
        let mut ops = vec![];
        for (p, floor) in floors {
            let pruned = self.record.raise_floor(*p, *floor);
            ops.extend(
                pruned
                    .into_iter()
                    .map(|(p, s, i)| StorageOp::Delete(Key::Decided(p, s, i))),
            );
            if *p == self.me {
                self.next_seq = self.next_seq.max(*floor);
            }
        }
        ops
    }

    /// Continue after chain block `pos`: take its position, count what f+1 validators vouch
    /// settled as decided, and drop every command we hold that is now known settled.
    fn rejoin(
        &mut self,
        pos: ChainPosition,
        settled: BTreeMap<ValidatorId, crate::rejoin::Combined>,
    ) {
        let (from, c) = (self.built, pos.index);
        if self.last_ckpt >= c && self.ckpt_ids.get(&c).is_some_and(|k| k.0 != pos.checkpoint) {
            // We decided another K_c than the certified chain holds: never adopt over it (the
            // engine halts when it checks the block it builds against the chain).
            return;
        }
        // Everything written below goes out as one write with the block meta: a crash in the
        // middle must not leave raised floors with the old block position.
        let first_output = self.out.len();
        // The floors are c's agreed floors, from the certified chain; the claims add exact
        // marks above them.
        let mut ops = self.take_floors(&pos.floors);
        let mut fetch = vec![];
        for (
            p,
            crate::rejoin::Combined {
                decided,
                unvouched,
                seqs,
                ..
            },
        ) in &settled
        {
            for seq in seqs {
                self.record.mark_seq(*p, *seq);
            }
            fetch.extend(unvouched.iter().map(|(seq, id)| InstanceId::Cmd {
                proposer: *p,
                seq: *seq,
                id: *id,
            }));
            for (seq, id) in decided {
                ops.extend(self.record_decided(*p, *seq, *id, true));
            }
            if *p == self.me {
                let top = decided.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
                self.next_seq = self.next_seq.max(top);
            }
        }
        self.persist(ops);
        // Commands now known decided: in a block up to c unless we know it lands later.
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.insts.keys() {
            if let InstanceId::Cmd { proposer, seq, id } = inst {
                refs.insert((*proposer, *seq, *id));
            }
        }
        for e in self.dds.entries() {
            if let DepKind::Txs { seq } = e.dep.kind {
                refs.insert((e.dep.proposer, seq, e.dep.id));
            }
        }
        for (id, b) in &self.payloads {
            let h = &b.header.body;
            if !h.is_checkpoint() {
                refs.insert((h.proposer, h.seq, *id));
            }
        }
        let mut requeue: Vec<(Seq, Vec<Tx>)> = vec![];
        for (p, seq, id) in refs {
            let lands_later = self.committed.get(&id).is_some_and(|k| k.after >= c);
            if !self.record.is_decided(&p, seq, &id) || lands_later {
                continue;
            }
            let maybe_void = seq < crate::floors::floor_of(&pos.floors, &self.me);
            if p == self.me && (!self.committed.contains_key(&id) || maybe_void) {
                // Ours, outcome unknown (in a skipped block, Noop, or void below c's floor):
                // propose its transactions again; a copy already in a block is skipped by every
                // builder.
                if let Some(b) = self.payloads.get(&id) {
                    requeue.push((seq, b.txs.clone()));
                }
            }
            self.collect_garbage_cmd(
                InstanceId::Cmd {
                    proposer: p,
                    seq,
                    id,
                },
                c,
            );
        }
        requeue.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        for (_, txs) in requeue {
            self.pending.push_front(txs);
        }
        // Checkpoint candidates up to c.
        let stale: Vec<CommandId> = self
            .dds
            .entries()
            .filter(|e| matches!(e.dep.kind, DepKind::Ckpt { index, .. } if index <= c))
            .map(|e| e.dep.id)
            .collect();
        let mut ops = vec![];
        for id in stale {
            self.dds.remove(&id);
            self.payloads.remove(&id);
            ops.push(StorageOp::Delete(Key::Reply(id)));
        }
        self.persist(ops);
        self.ckpt_decided = self.ckpt_decided.split_off(&(c + 1));
        if self.last_ckpt < c {
            self.ckpt_ids.insert(c, (pos.checkpoint, pos.timestamp_ms));
            self.floors_at.insert(c, pos.floors.clone());
            self.rotations.insert(c + 1, pos.next_rotation.clone());
            self.last_ckpt = c - 1;
        }
        self.dds.restore_counters(c, 0);
        self.built = c;
        self.last_build_ms = self.now;
        self.sync_votes = self.sync_votes.split_off(&(c + 1));
        self.chain = self.chain.split_off(&(c + 1));
        self.gc(c);
        let meta = self.meta();
        self.persist(vec![meta]);
        self.merge_persists_since(first_output);
        if c > from {
            self.out.push(Output::Rejoined { from, to: c });
        }
        // Peers still hold the few blocks finished since c, and the decisions some of them
        // listed but too few to vouch for.
        if self.m().n() > 1 {
            self.out.push(Output::Send {
                to: None,
                msg: Message::SyncRequest(c + 1),
            });
            let fetch: Vec<InstanceId> = fetch
                .into_iter()
                .filter(|i| !self.is_decided_inst(i))
                .take(64)
                .collect();
            for inst in fetch {
                self.out.push(Output::Send {
                    to: None,
                    msg: Message::Fetch(inst),
                });
            }
        }
        self.advance_ckpts();
        self.try_build_blocks();
        self.try_propose_own();
    }

    /// Merge the `Persist` outputs from `first` on into one, placed after the other outputs of
    /// that range (none of them a `Send`, so persist-before-send holds; a `BlockReady` stays
    /// ahead of the meta that says it was handed out).
    fn merge_persists_since(&mut self, first: usize) {
        if self.out[first..]
            .iter()
            .any(|o| matches!(o, Output::Send { .. }))
        {
            return; // never move a write after a message (not expected: callers send nothing here)
        }
        let tail: Vec<Output> = self.out.drain(first..).collect();
        let mut ops = vec![];
        let mut rest = vec![];
        for o in tail {
            match o {
                Output::Persist(mut p) => ops.append(&mut p),
                other => rest.push(other),
            }
        }
        self.out.extend(rest);
        self.persist(ops);
    }

    fn resend(&mut self) {
        let now = self.now;
        let horizon = self.cfg.resend_ms;
        let ann: Vec<SignedBatch> = self
            .collects
            .values()
            .filter(|c| c.view.is_some())
            .map(|c| c.batch.clone())
            .collect();
        for b in ann {
            self.broadcast(Message::Announce(b));
        }
        let mut msgs = vec![];
        for (inst, st) in &self.insts {
            if st.decided.is_some() || now.saturating_sub(st.last_progress_ms) < horizon {
                continue;
            }
            if matches!(inst, InstanceId::Ckpt(b) if *b != self.last_ckpt + 1) {
                continue;
            }
            if st.in_view_change {
                if let Some(vc) = st.my_vcs.get(&st.view) {
                    msgs.push(Message::ViewChange(vc.clone()));
                }
                continue;
            }
            if let Some(pp) = st.my_preprepares.get(&st.view) {
                let payload = match &pp.body.value {
                    Value::Deps { cmd, .. } => self.payloads.get(cmd).cloned(),
                    Value::Noop => None,
                };
                msgs.push(Message::PrePrepare(pp.clone(), payload));
            }
            for ph in [Phase::Prepare, Phase::Commit] {
                if let Some(v) = st.my_votes.get(&(st.view, ph)) {
                    msgs.push(Message::Vote(v.clone()));
                }
            }
        }
        for m in msgs {
            if self.m().n() > 1 {
                self.out.push(Output::Send { to: None, msg: m });
            }
        }
        if self.m().n() == 1 {
            return;
        }
        self.resend_rounds += 1;
        // Ask for finished blocks when none was built for a while, or when the chain shows we are
        // behind; when idle and the chain is ahead, also what is settled there (rejoining).
        let chain_ahead = self
            .chain
            .keys()
            .next_back()
            .is_some_and(|c| *c > self.built + 1);
        let idle = now.saturating_sub(self.last_build_ms) >= 2 * horizon;
        if idle || chain_ahead {
            let next = self.built + 1;
            self.out.push(Output::Send {
                to: None,
                msg: Message::SyncRequest(next),
            });
        }
        // Rejoin from the chain when stuck behind it, or when so far behind that peers will soon
        // no longer hold the blocks to catch up with.
        let far_behind = self
            .chain
            .keys()
            .next_back()
            .is_some_and(|c| *c > self.built + (self.cfg.retain_sync_blocks / 2).max(4));
        self.try_rejoin();
        if (idle && chain_ahead) || far_behind {
            if let Some(head) = self.chain.values().next_back().cloned() {
                self.ask_settled(head);
            }
        } else if !chain_ahead && (self.watermark_stuck() || self.floor_gap) {
            // Caught up, but a proposer's watermark waits on a seq nobody listed when we
            // rejoined, or we refused a candidate whose floor passed it: ask again about our
            // own last block; the marks f+1 peers vouch for fill the gap.
            self.floor_gap = false;
            if let Some(own) = self.own_position() {
                self.ask_settled(own);
            }
        }
        if !chain_ahead {
            return;
        }
        // Behind the chain: the next checkpoint made no progress here for a while, so ask for
        // its decision (peers do not resend votes of decided instances).
        let next = InstanceId::Ckpt(self.last_ckpt + 1);
        let stalled = self
            .insts
            .get(&next)
            .is_none_or(|st| now.saturating_sub(st.last_progress_ms) >= horizon);
        if stalled {
            self.out.push(Output::Send {
                to: None,
                msg: Message::Fetch(next),
            });
        }
        // ... and when the next block's checkpoint is decided but some of its commands made no
        // progress here, ask one peer each (rotating) for their decisions.
        let Some(k) = self.ckpt_decided.get(&(self.built + 1)) else {
            return;
        };
        let BatchKind::Checkpoint { floors, .. } = &k.header.kind else {
            return;
        };
        let missing: Vec<InstanceId> = k
            .deps
            .iter()
            .filter(|d| {
                matches!(d.kind, DepKind::Txs { .. })
                    && !crate::floors::voids(floors, d)
                    && !self.dep_decided(d)
            })
            .map(|d| d.instance())
            .filter(|i| {
                self.insts
                    .get(i)
                    .is_none_or(|st| now.saturating_sub(st.last_progress_ms) >= horizon)
            })
            .take(16)
            .collect();
        let peers: Vec<ValidatorId> = self
            .m()
            .validators()
            .iter()
            .copied()
            .filter(|v| *v != self.me)
            .collect();
        for (k, inst) in missing.into_iter().enumerate() {
            let to = peers[(self.resend_rounds as usize + k) % peers.len()];
            self.out.push(Output::Send {
                to: Some(to),
                msg: Message::Fetch(inst),
            });
        }
    }
}

fn slot_of(h: &BatchHeader) -> Slot {
    match h.kind {
        BatchKind::Txs => Slot::Seq(h.proposer, h.seq),
        BatchKind::Checkpoint { index, view, .. } => Slot::Ckpt(index, view),
    }
}

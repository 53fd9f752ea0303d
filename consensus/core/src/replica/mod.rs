//! The replica: glue between the services (dds, instance, checkpoint, executor, gc, storage).
//!
//! Sans-io contract: [`Replica::handle`] takes the current virtual time and one [`Input`] and
//! returns the [`Output`]s in order. The caller MUST apply every `Persist` before performing any
//! later `Send` of the same batch (persist before send). There is no clock, no thread, no
//! randomness; everything ordered iterates BTreeMaps.

use crate::chain::{CheckpointChain, DecidedCheckpoint};
use crate::checkpoint::{self, CandidateAction};
use crate::crypto::{Signed, Signer, Verifier};
use crate::ctx::Ctx;
use crate::dds::Dds;
use crate::discovery::collect::{Collector, ReplyLimits, ReplyOutcome};
use crate::discovery::headers::{Headers, Slot};
use crate::discovery::own::OwnBatches;
use crate::discovery::payloads::{self, Payloads};
use crate::execution::blocks::Committed;
use crate::gc::DecidedRecord;
use crate::membership::Membership;
use crate::misbehaviour::Proof;
use crate::outbox::{Outbox, WriteMark};
use crate::recovery::catch_up::{CatchUp, SYNC_BATCH};
use crate::recovery::rejoin::Combined;
use crate::recovery::settled::SettledExchange;
pub use crate::recovery::settled::SETTLED_ANSWER_BLOCKS;
use crate::rotation::Rotation;
use crate::single_shot::progress::{step, Step};
use crate::single_shot::timers::{backed_off, Silence, SILENT_VIEW_MS};
use crate::single_shot::{Instances, MAX_VIEW};
use crate::storage::{Key, Meta, Record, Storage, StorageOp};
use crate::types::*;
use crate::validity::{self, check_preprepare, check_view_change, check_votes};
use crate::wire::*;
use codec::Encode;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::io::{
    ChainPosition, Config, Input, Output, Stats, TimerId, DEFAULT_RETAIN_SYNC_BLOCKS,
};

/// A consensus replica.
pub struct Replica {
    cfg: Config,
    signer: Box<dyn Signer + Send>,
    verifier: Box<dyn Verifier + Send>,
    me: ValidatorId,
    now: u64,
    dds: Dds,
    record: DecidedRecord,
    /// The single-shot instances, live and recently collected.
    insts: Instances,
    /// The batches we hold.
    payloads: Payloads,
    /// The first header replied to per slot, and candidates held for their turn.
    headers: Headers,
    /// Our client batches waiting for a seq, and the next seq.
    own: OwnBatches,
    /// The batches we collect dependency replies for.
    collector: Collector,
    announced: BTreeMap<(BlockIndex, View), CommandId>,
    /// Decided checkpoints, their floors and rotations, per block index.
    chain: CheckpointChain,
    ckpt_due: bool,
    /// Commands decided with dependencies, waiting for their blocks.
    committed: Committed,
    built: BlockIndex,
    last_build_ms: u64,
    /// Finished blocks for laggards, blocks offered to us, chain blocks above us.
    catch_up: CatchUp,
    /// What is settled at a chain block: asked, answered, collected.
    settled: SettledExchange,
    /// When each member was last heard from (silence shortens view timers).
    silence: Silence,
    /// Resend periods so far (rotates the peer asked for a missing decision).
    resend_rounds: u64,
    /// What this input emits, and the messages we send ourselves.
    outbox: Outbox,
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
        let chain = CheckpointChain::new(cfg.membership.epoch);
        let silence = Silence::new(me, cfg.ckpt_timeout_ms);
        let mut r = Replica {
            cfg,
            signer,
            verifier,
            me,
            now: 0,
            dds: Dds::default(),
            record: DecidedRecord::new(retain),
            insts: Instances::default(),
            payloads: Payloads::default(),
            headers: Headers::default(),
            own: OwnBatches::default(),
            collector: Collector::default(),
            announced: BTreeMap::new(),
            chain,
            ckpt_due: false,
            committed: Committed::default(),
            built: 0,
            last_build_ms: 0,
            catch_up: CatchUp::default(),
            settled: SettledExchange::default(),
            silence,
            resend_rounds: 0,
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
            instances: self.insts.len(),
            payloads: self.payloads.len(),
            committed: self.committed.len(),
            old_decisions: self.insts.old_len(),
            marks: self.record.len(),
            built: self.built,
            last_ckpt: self.chain.last(),
        }
    }
    /// Diagnostics: what the next block waits for: the dependencies of its decided checkpoint
    /// above the agreed floors that are not known decided (empty if its checkpoint is not
    /// decided, or nothing is missing).
    pub fn next_block_waits_for(&self) -> Vec<DepRef> {
        let Some(k) = self.chain.decided(self.built + 1) else {
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
        self.insts
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
    /// Transactions waiting for a free seq in the window.
    pub fn pending_batches(&self) -> usize {
        self.own.len()
    }
    /// The client batches not yet proposed (held in memory only: a crash loses them, as it
    /// loses a node's transaction pool, and their clients must submit them again).
    pub fn unproposed(&self) -> impl Iterator<Item = &Vec<Tx>> {
        self.own.iter()
    }

    fn restore(&mut self, records: Vec<(Key, Record)>) {
        let mut decisions = Vec::new();
        for (k, v) in records {
            match (k, v) {
                (Key::Meta, Record::Meta(m)) => {
                    self.dds.restore_counters(m.fence, m.next_pos);
                    self.built = m.built;
                    // A rotation of another epoch (a replica seeded from the chain at an epoch
                    // boundary) does not apply: the new epoch starts with nobody suspended.
                    // Floors of another epoch do not apply either: seqs start again.
                    let (rotation, floors) = if m.next_rotation.epoch == self.membership().epoch {
                        (m.next_rotation, m.built_floors)
                    } else {
                        (Rotation::fresh(self.membership().epoch), Floors::new())
                    };
                    // Marks below were deleted when the floors rose.
                    let _ = self.take_floors(&floors);
                    self.chain.restore(&ChainPosition {
                        index: m.built,
                        checkpoint: m.built_ckpt,
                        timestamp_ms: m.built_ts,
                        next_rotation: rotation,
                        floors,
                    });
                }
                (Key::OwnBatch(seq), Record::Batch(b)) => {
                    self.own.skip_below(seq + 1);
                    self.payloads.insert(b);
                }
                (Key::OwnCandidate(b, v), Record::Batch(c)) => {
                    self.announced.insert((b, v), c.id());
                    self.payloads.insert(c);
                }
                (Key::Reply(_), Record::Reply(r, h)) => {
                    self.headers.replied(&h);
                    self.dds.restore(r, &h.body);
                }
                (Key::Vote(inst, view, phase), Record::Vote(v)) => {
                    let st = self.insts.entry(inst);
                    st.view = st.view.max(view);
                    st.my_votes.insert((view, phase), v);
                }
                (Key::ViewChange(inst, view), Record::ViewChange(vc)) => {
                    let st = self.insts.entry(inst);
                    if view >= st.view {
                        st.view = view;
                        st.in_view_change = true;
                    }
                    st.my_vcs.insert(view, vc);
                }
                (Key::PrePrepare(inst, view), Record::PrePrepare(pp)) => {
                    self.insts.entry(inst).my_preprepares.insert(view, pp);
                }
                (Key::Prepared(inst), Record::Prepared(c)) => {
                    self.insts.entry(inst).note_prepared(c);
                }
                (Key::Decided(p, s, id), Record::Marked(counts)) => {
                    if p == self.me && counts {
                        // Never reuse a seq, even when every own batch was collected.
                        self.own.skip_below(s + 1);
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
                self.payloads.insert(p);
            }
            // Marks were restored above, so only the instance state tells what was replayed.
            let replayed = self
                .insts
                .get(&d.inst)
                .map(|s| s.decided.is_some())
                .unwrap_or(false);
            let ckpt_done = matches!(d.inst, InstanceId::Ckpt(b) if b <= self.chain.last());
            if !replayed && !ckpt_done {
                self.decide(d.inst, d.value, d.cert);
            }
        }
        // Own undecided batches go back to collection.
        let own: Vec<SignedBatch> = self
            .payloads
            .iter()
            .map(|(_, b)| b)
            .filter(|b| b.header.body.proposer == self.me && !b.header.body.is_checkpoint())
            .cloned()
            .collect();
        for b in own {
            let h = &b.header.body;
            if !self.record.is_decided(&h.proposer, h.seq, &b.id()) {
                let inst = h.dep_ref().instance();
                self.collector.open(b, inst, 0, vec![]);
            }
        }
        // Keep only blocks rebuilt from persisted decisions (handed out by `start`). The timers
        // replaying armed are dropped with the rest: `start` arms them again.
        self.outbox.retain(|o| matches!(o, Output::BlockReady(_)));
        self.insts.disarm_all();
    }

    /// Initial outputs: timers and re-announcements after a restart.
    pub fn start(&mut self, now_ms: u64) -> Vec<Output> {
        self.now = self.now.max(now_ms);
        self.silence.started(self.now);
        self.set_timer(TimerId::Resend, self.cfg.resend_ms);
        self.arm_view_timer(InstanceId::Ckpt(self.chain.next()));
        let undecided: Vec<InstanceId> = self
            .insts
            .ids()
            .copied()
            .filter(|i| !self.ctx().is_decided_inst(i))
            .collect();
        for i in undecided {
            self.arm_view_timer(i);
        }
        for b in self.collector.to_announce() {
            if b.header.body.proposer == self.me && !b.header.body.is_checkpoint() {
                let txs = b.txs.clone();
                self.outbox.emit(Output::Proposed { id: b.id(), txs });
            }
            self.broadcast(Message::Announce(b));
        }
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
                self.own.add(&txs, self.cfg.max_batch_txs);
                self.try_propose_own();
            }
            Input::Timer(t) => self.on_timer(t),
            Input::CheckpointDue => {
                self.ckpt_due = true;
                self.maybe_announce_candidate();
            }
            Input::Tick => {}
            Input::ChainBlock(pos) => self.catch_up.chain_block(pos, self.built),
        }
        self.drain();
        self.outbox.take()
    }

    fn drain(&mut self) {
        while let Some((from, msg)) = self.outbox.next_received() {
            self.on_message(from, msg);
        }
    }

    // ---------------------------------------------------------------- output helpers

    fn membership(&self) -> &Membership {
        &self.cfg.membership
    }
    fn genesis(&self) -> Digest {
        self.cfg.membership.genesis
    }
    fn send(&mut self, to: ValidatorId, msg: Message) {
        self.outbox.send(to, msg);
    }
    fn broadcast(&mut self, msg: Message) {
        self.outbox.broadcast(msg);
    }
    fn persist(&mut self, ops: Vec<StorageOp>) {
        self.outbox.persist(ops);
    }
    fn set_timer(&mut self, id: TimerId, after_ms: u64) {
        self.outbox.set_timer(id, after_ms);
    }
    /// Emit a misbehaviour proof, once, and only if anyone can check it: a proof that does not
    /// convict would be refused on chain and accuse without evidence.
    fn report(&mut self, p: Proof) {
        if p.check(self.membership(), &*self.verifier, self.cfg.window)
            .is_none()
        {
            return;
        }
        self.outbox.misbehaviour(p);
    }
    fn meta(&self) -> StorageOp {
        let (built_ckpt, built_ts) = self.chain.id_and_time(self.built).unwrap_or(([0; 32], 0));
        StorageOp::Put(
            Key::Meta,
            Record::Meta(Meta {
                fence: self.dds.fence(),
                next_pos: self.dds.next_pos(),
                built: self.built,
                built_ckpt,
                built_ts,
                next_rotation: self.chain.rotation(self.built + 1),
                built_floors: self.chain.floors(self.built).to_vec(),
            }),
        )
    }
    /// leader(b, view) of CONS_ckpt(b), once the rotation for b is known.
    fn ckpt_leader(&self, b: BlockIndex, view: View) -> Option<ValidatorId> {
        self.chain.leader(self.membership(), b, view)
    }
    /// The leader of `inst` in `view` (of a checkpoint once its rotation is known).
    fn leader_of(&self, inst: &InstanceId, view: View) -> Option<ValidatorId> {
        match inst {
            InstanceId::Cmd { proposer, .. } => Some(self.membership().leader_cmd(proposer, view)),
            InstanceId::Ckpt(b) => self.ckpt_leader(*b, view),
        }
    }
    /// The view timeout of `inst` in view 0.
    fn base_timeout(&self, inst: &InstanceId) -> u64 {
        match inst {
            InstanceId::Cmd { .. } => self.cfg.recovery_timeout_ms,
            InstanceId::Ckpt(_) => self.cfg.ckpt_timeout_ms,
        }
    }

    // ---------------------------------------------------------------- queries

    /// What the services know, read-only, for the rules that need several of them.
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            membership: &self.cfg.membership,
            window: self.cfg.window,
            record: &self.record,
            chain: &self.chain,
            built: self.built,
            dds: &self.dds,
            payloads: &self.payloads,
            committed: &self.committed,
            headers: &self.headers,
            insts: &self.insts,
        }
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

    // ---------------------------------------------------------------- dispatch

    fn on_message(&mut self, from: ValidatorId, msg: Message) {
        if !self.membership().contains(&from) {
            return;
        }
        self.silence.heard(from, self.now);
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
                if self.ctx().is_decided_inst(&inst) {
                    return;
                }
                if let InstanceId::Ckpt(b) = inst {
                    if b != self.chain.next() {
                        // Not the current checkpoint yet (a vote for it came early): disarm, so
                        // that `arm_view_timer` arms it afresh when K_(b-1) commits. Left armed, no timer
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
                if self.ctx().is_decided_inst(&inst) {
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
                            if nv.len() == self.membership().q()
                                && nv.iter().all(|vc| vc.body.prepared.is_none())
                            {
                                self.collector.stop(&id, &inst);
                                let p = if self.ctx().misnamed(&inst) {
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
    fn arm_view_timer(&mut self, inst: InstanceId) {
        if self.ctx().is_decided_inst(&inst) {
            return;
        }
        let now = self.now;
        let st = self.insts.entry(inst);
        if st.timer_armed {
            return;
        }
        st.timer_armed = true;
        if st.last_progress_ms == 0 {
            st.last_progress_ms = now;
        }
        st.view_began_ms.get_or_insert(now);
        let v = st.view;
        let st = self.insts.get(&inst).expect("armed above; qed");
        let (leader, base, join) = (
            self.leader_of(&inst, v),
            self.base_timeout(&inst),
            self.membership().one_correct(),
        );
        let t = self.silence.view_timer(st, leader, base, now, join);
        self.set_timer(TimerId::View(inst, v), t);
    }

    /// May a message `signer` signed about `inst` create its state ([`Ctx::may_create`])? When
    /// the slot is full, its own proposer's message takes the place of an idle instance only
    /// others named (a member can fill every slot with made-up ids; those never decide).
    fn admit(&mut self, inst: &InstanceId, signer: &ValidatorId) -> bool {
        if self.ctx().may_create(inst) {
            return true;
        }
        match *inst {
            InstanceId::Cmd { proposer, seq, .. } if proposer == *signer => {
                self.insts.evict_idle(proposer, seq)
            }
            _ => false,
        }
    }

    /// Whether a vote or view change `signer` sent about `inst` makes us drive it: we have our
    /// own reason ([`Ctx::grounded`]) or the signer proposed the slot it names.
    fn vouched(&self, inst: &InstanceId, signer: &ValidatorId) -> bool {
        self.ctx().grounded(inst)
            || matches!(inst, InstanceId::Cmd { proposer, .. } if proposer == signer)
    }

    /// Whether the current view of `inst` may be left after [`SILENT_VIEW_MS`] (see
    /// [`Silence::silent_view`]).
    fn silent_view(&self, inst: &InstanceId) -> bool {
        let Some(st) = self.insts.get(inst) else {
            return false;
        };
        let leader = self.leader_of(inst, st.view);
        self.silence
            .silent_view(st, leader, self.now, self.membership().one_correct())
    }

    // ---------------------------------------------------------------- proposer side

    fn try_propose_own(&mut self) {
        let window_end = self.ctx().window_end(&self.me);
        while let Some((seq, txs)) = self.own.next(window_end) {
            let access = union_access(txs.iter().map(|t| &t.access[..]));
            let weight = txs.iter().map(|t| t.encoded_size() as u64).sum();
            let header = BatchHeader {
                epoch: self.membership().epoch,
                proposer: self.me,
                seq,
                base: self.chain.id(self.chain.last()).unwrap_or([0; 32]),
                kind: BatchKind::Txs,
                access,
                txs_root: hash(&txs.encode()),
                weight,
            };
            let batch = SignedBatch {
                header: Signed::sign(header, &self.genesis(), &*self.signer),
                txs,
            };
            self.persist(vec![StorageOp::Put(
                Key::OwnBatch(seq),
                Record::Batch(batch.clone()),
            )]);
            self.payloads.insert(batch.clone());
            let inst = batch.header.body.dep_ref().instance();
            self.collector.open(batch.clone(), inst, 0, vec![]);
            self.outbox.emit(Output::Proposed {
                id: batch.id(),
                txs: batch.txs.clone(),
            });
            self.broadcast(Message::Announce(batch));
        }
    }

    fn maybe_announce_candidate(&mut self) {
        let b = self.chain.next();
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
        let Some((base, prev_ts)) = self.chain.id_and_time(b - 1) else {
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
                    epoch: self.membership().epoch,
                    proposer: self.me,
                    seq: 0,
                    base,
                    kind: BatchKind::Checkpoint {
                        index: b,
                        view,
                        timestamp_ms: self.now.max(prev_ts + 1),
                        floors: crate::floors::propose(
                            self.membership(),
                            self.chain.floors(b - 1),
                            |p| self.record.proposed_floor(p),
                        ),
                    },
                    access: vec![],
                    txs_root: hash(&Vec::<Tx>::new().encode()),
                    weight: 0,
                };
                let c = SignedBatch {
                    header: Signed::sign(header, &self.genesis(), &*self.signer),
                    txs: vec![],
                };
                self.persist(vec![StorageOp::Put(
                    Key::OwnCandidate(b, view),
                    Record::Batch(c.clone()),
                )]);
                self.announced.insert((b, view), c.id());
                self.payloads.insert(c.clone());
                c
            }
        };
        let id = batch.id();
        self.collector
            .open(batch.clone(), InstanceId::Ckpt(b), view, new_view);
        self.broadcast(Message::Announce(batch));
        self.try_collect(id);
    }

    fn on_reply(&mut self, r: Signed<ReplyBody>) {
        let id = r.body.cmd.id;
        let (record, window) = (&self.record, self.cfg.window);
        let limits = ReplyLimits {
            membership: &self.cfg.membership,
            verifier: &*self.verifier,
            window,
            last_checkpoint: self.chain.last(),
            within_reach: &|d| within_reach(record, window, d),
        };
        match self.collector.on_reply(r, &limits) {
            ReplyOutcome::Counted => self.try_collect(id),
            ReplyOutcome::Equivocation(old, new) => {
                self.report(Proof::ReplyEquivocation(*old, *new))
            }
            ReplyOutcome::Dropped | ReplyOutcome::Parked => {}
        }
    }

    /// Propose for `id` once a quorum replied.
    fn try_collect(&mut self, id: CommandId) {
        if let Some(p) = self.collector.ready(&id, self.membership().q()) {
            self.propose(p.inst, p.view, p.value, p.proof, p.new_view, p.payload);
        }
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
        let st = self.insts.entry(inst);
        if st.my_preprepares.contains_key(&view) {
            return;
        }
        let body = PrePrepareBody {
            epoch: self.membership().epoch,
            inst,
            view,
            value,
            proof,
            new_view,
        };
        let pp = Signed::sign(body, &self.genesis(), &*self.signer);
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
        if !self.payloads.contains(&id) && !self.verify_batch(&b) {
            return;
        }
        match h.kind {
            BatchKind::Txs => {
                let inst = InstanceId::Cmd {
                    proposer: h.proposer,
                    seq: h.seq,
                    id,
                };
                if self.ctx().is_decided_inst(&inst) {
                    self.send_decided(from, inst);
                    return;
                }
                // A payload we were waiting for (to vote, or to lead a recovery).
                if self.insts.contains(&inst) && !self.payloads.contains(&id) {
                    self.payloads.insert(b.clone());
                    // Its header makes it ours to drive (it may have been made by others'
                    // votes only, with no timer).
                    self.arm_view_timer(inst);
                    self.resume_lead(inst);
                    self.recheck_parked(inst);
                }
                if let Some(r) = self.dds.cached(&id).cloned() {
                    self.payloads.insert(b);
                    self.send(from, Message::Reply(r));
                    self.resume_lead(inst);
                    return;
                }
                if let Some(p) = self.headers.conflict(&b.header) {
                    self.report(p);
                    return;
                }
                if h.seq < self.record.watermark(&h.proposer)
                    || h.seq >= self.ctx().window_end(&h.proposer)
                {
                    return;
                }
                self.headers.replied(&b.header);
                self.payloads.insert(b.clone());
                self.reply_to(from, &b.header);
                self.arm_view_timer(inst);
                self.resume_lead(inst);
                self.recheck_parked(inst);
            }
            BatchKind::Checkpoint { index, .. } => {
                let inst = InstanceId::Ckpt(index);
                if index <= self.chain.last() {
                    self.send_decided(from, inst);
                    return;
                }
                if let Some(r) = self.dds.cached(&id).cloned() {
                    self.payloads.insert(b);
                    self.send(from, Message::Reply(r));
                    return;
                }
                let cur = self.insts.get(&inst).map(|s| s.view).unwrap_or(0);
                let k_prev = self.chain.id(self.chain.last()).unwrap_or([0; 32]);
                let rotation = self.chain.rotation(self.chain.next());
                match checkpoint::classify(
                    self.membership(),
                    &h,
                    self.chain.last(),
                    &k_prev,
                    cur,
                    &rotation,
                ) {
                    CandidateAction::Ignore => {}
                    CandidateAction::Buffer => {
                        // Judged when K_(index-1) commits; at most a few per signer, so that no
                        // member can crowd out the others' candidates.
                        let per_signer = checkpoint::MAX_VIEW_AHEAD as usize + 1;
                        let n = self.membership().n();
                        self.headers.hold_early(index, from, b, per_signer, n);
                    }
                    CandidateAction::Reply => {
                        if let Some(p) = self.headers.conflict(&b.header) {
                            self.report(p);
                            return;
                        }
                        // Floors that go down, or past what we know decided: no reply (the
                        // leader re-announces; a later view's leader proposes its own). The
                        // header is not recorded, so a second one for this view is judged
                        // afresh.
                        let BatchKind::Checkpoint { floors, .. } = &h.kind else {
                            return;
                        };
                        let prev = self.chain.floors(self.chain.last());
                        if !crate::floors::acceptable(floors, prev, self.membership(), |p| {
                            self.record.watermark(p)
                        }) {
                            if crate::floors::well_formed(floors, self.membership())
                                && crate::floors::extends(floors, prev)
                            {
                                // Only our watermark is short: our record has a gap that
                                // peers' settled marks fill.
                                self.settled.note_floor_gap();
                            }
                            return;
                        }
                        self.headers.replied(&b.header);
                        self.payloads.insert(b.clone());
                        self.reply_to(from, &b.header);
                    }
                }
            }
        }
    }

    fn reply_to(&mut self, to: ValidatorId, header: &Signed<BatchHeader>) {
        let g = self.genesis();
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
        if self.ctx().is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        if !self.ctx().in_reach(&inst, 4) {
            return;
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
                pp.signer == self.membership().leader_cmd(&proposer, pp.body.view)
            }
            InstanceId::Ckpt(_) => self.membership().contains(&pp.signer),
        };
        if pp.body.epoch != self.membership().epoch
            || !leader_ok
            || !pp.verify(&self.cfg.membership.genesis, &*self.verifier)
        {
            return;
        }
        if let Some(p) = &payload {
            self.accept_payload(p);
        }
        if !self.admit(&inst, &pp.signer) {
            return;
        }
        let view = pp.body.view;
        let st = self.insts.entry(inst);
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
            self.outbox.ask_others(Message::Fetch(inst));
            // A signed proposal names a real instance: if the payload never comes, its timer
            // takes it to a view change (and a Noop) like any other.
            self.arm_view_timer(inst);
            return;
        }
        if let InstanceId::Ckpt(b) = inst {
            if b != self.chain.next() {
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
            self.membership(),
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
            if *after > self.chain.next() {
                let st = self.insts.get_mut(&inst).expect("inserted above; qed");
                if st.parked.len() < 8 {
                    st.parked.push((from, pp));
                }
                return;
            }
        }
        if let (InstanceId::Ckpt(b), Some(h)) = (inst, &cmd_header) {
            // b = last_ckpt + 1 here: later indexes were parked above.
            let (m, drift) = (&self.cfg.membership, self.cfg.drift_ms);
            if !self.chain.extended_by(&h.body, b, m, self.now, drift) {
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
        self.arm_view_timer(inst);
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
            epoch: self.membership().epoch,
            inst,
            view,
            phase,
            value: digest,
        };
        let v = Signed::sign(body, &self.genesis(), &*self.signer);
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
        if self.ctx().is_decided_inst(&inst)
            || v.body.epoch != self.membership().epoch
            || !self.membership().contains(&v.signer)
        {
            return;
        }
        if !self.ctx().in_reach(&inst, 4) {
            return;
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
        if v.body.view > MAX_VIEW
            || !v.verify(&self.genesis(), &*self.verifier)
            || !self.admit(&inst, &v.signer)
        {
            return;
        }
        let now = self.now;
        let st = self.insts.entry(inst);
        st.last_progress_ms = now;
        let (view, digest) = (v.body.view, v.body.value);
        if let Some(old) = st.add_vote(v.clone()) {
            self.report(Proof::VoteEquivocation(old, v));
            return;
        }
        if self.vouched(&inst, &v.signer) {
            self.arm_view_timer(inst);
        }
        self.check_progress(inst, view, digest);
    }

    fn check_progress(&mut self, inst: InstanceId, view: View, digest: Digest) {
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        match step(st, view, &digest, self.membership().q(), |c| {
            self.payloads.contains(c)
        }) {
            Step::Decide { value, cert } => self.decide(inst, value, cert),
            Step::Fetch(voter) if voter != self.me => self.send(voter, Message::Fetch(inst)),
            Step::Prepared { cert, commit } => {
                if let Some(cert) = cert {
                    self.insts.entry(inst).note_prepared(cert.clone());
                    self.persist(vec![StorageOp::Put(
                        Key::Prepared(inst),
                        Record::Prepared(cert),
                    )]);
                }
                if commit {
                    self.vote(inst, view, Phase::Commit, digest);
                }
            }
            Step::Fetch(_) | Step::Wait => {}
        }
    }

    // ---------------------------------------------------------------- view change

    /// The leader of `inst` in `view` is proven Byzantine (we just reported its proposal): if
    /// that is our current view, ask for the next one now rather than when its timer runs out.
    /// Its leader cannot be correct, so the wait would only delay; with doubling timers and f
    /// Byzantine leaders in a row it is most of the time an instance can take after GST. Asking
    /// for a view change is always safe; the others join once f+1 of us ask.
    fn leave_faulty_view(&mut self, inst: InstanceId, view: View) {
        if self.ctx().is_decided_inst(&inst) {
            return;
        }
        if self.insts.get(&inst).is_some_and(|st| st.view == view) {
            self.start_view_change(inst, view + 1);
        }
    }

    fn start_view_change(&mut self, inst: InstanceId, nv: View) {
        let has_payload = match inst {
            InstanceId::Cmd { id, .. } => {
                self.payloads.contains(&id) && !self.ctx().misnamed(&inst)
            }
            InstanceId::Ckpt(_) => false,
        };
        let st = self.insts.entry(inst);
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
        self.arm_view_timer(inst);
    }

    fn on_view_change(&mut self, from: ValidatorId, vc: Signed<ViewChangeBody>) {
        let inst = vc.body.inst;
        if self.ctx().is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        // Below the watermark an undecided id (equivocation, fake dependency) still needs a
        // decision (Noop): only pruned seqs are ignored. A checkpoint's view changes count only
        // for the one being decided.
        let taken = match inst {
            InstanceId::Cmd { proposer, .. } => {
                self.membership().contains(&proposer) && self.ctx().in_reach(&inst, 1)
            }
            InstanceId::Ckpt(b) => b == self.chain.next(),
        };
        if !taken {
            return;
        }
        let nv = vc.body.new_view;
        if nv > MAX_VIEW {
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
        if !check_view_change(self.membership(), &*self.verifier, &vc)
            || !self.admit(&inst, &vc.signer)
        {
            return;
        }
        let f1 = self.membership().one_correct();
        let q = self.membership().q();
        let signer = vc.signer;
        let st = self.insts.entry(inst);
        st.vcs.entry(nv).or_default().insert(signer, vc);
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
        if self.vouched(&inst, &signer) {
            self.arm_view_timer(inst);
        }
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
        let q = self.membership().q();
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
            let payload = self.payloads.of_value(&cert.value);
            if payload.is_none() && matches!(cert.value, Value::Deps { .. }) {
                // Voters fetch it from the holders; so do we, to attach it when retransmitting.
                self.outbox.ask_others(Message::Fetch(inst));
            }
            self.propose(inst, v, cert.value, vec![], vcs, payload);
            return;
        }
        match inst {
            InstanceId::Cmd { .. }
                if self.ctx().misnamed(&inst) || self.ctx().equivocated(&inst) =>
            {
                // No command has this name, or its proposer signed two for this seq: nothing
                // worth collecting for (no prepared value binds us, see above).
                self.propose(inst, v, Value::Noop, vec![], vcs, None);
            }
            InstanceId::Cmd { id, .. } => {
                if let Some(batch) = self.payloads.get(&id).cloned() {
                    self.lead_collect(inst, batch, v, vcs);
                    let t = backed_off(self.base_timeout(&inst), v) / 2;
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
                    let t = backed_off(self.base_timeout(&inst), v) / 2;
                    self.set_timer(TimerId::Deadline(inst, v), t);
                } else {
                    self.propose(inst, v, Value::Noop, vec![], vcs, None);
                }
            }
            InstanceId::Ckpt(b) => {
                if b == self.chain.next() {
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
        if self.ctx().misnamed(&inst) {
            return;
        }
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        let Some(&v) = st.led.iter().next_back() else {
            return;
        };
        if st.my_preprepares.contains_key(&v) || self.collector.collecting(&id, v) {
            return;
        }
        let Some(batch) = self.payloads.get(&id).cloned() else {
            return;
        };
        let vcs: Vec<Signed<ViewChangeBody>> = st.lead_vcs.get(&v).cloned().unwrap_or_default();
        self.lead_collect(inst, batch, v, vcs);
        self.try_collect(id);
    }

    /// As the leader of view `v` of `inst`, collect dependency replies for `batch` (id `id`)
    /// anew, justified by the view changes `vcs`, and announce the batch again.
    fn lead_collect(
        &mut self,
        inst: InstanceId,
        batch: SignedBatch,
        v: View,
        vcs: Vec<Signed<ViewChangeBody>>,
    ) {
        self.collector.open(batch.clone(), inst, v, vcs);
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
            self.insts.old_decision(&inst)
        };
        if let Some((d, p)) = found {
            self.send(to, Message::Decided(d, p));
        }
    }

    fn on_fetch(&mut self, from: ValidatorId, inst: InstanceId) {
        if self.ctx().is_decided_inst(&inst) {
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
                let payload = self.payloads.of_value(&pp.body.value);
                self.send(from, Message::PrePrepare(pp, payload));
            }
        }
    }

    fn on_decided(&mut self, d: Decision, payload: Option<SignedBatch>) {
        let inst = d.inst;
        if self.ctx().is_decided_inst(&inst) {
            return;
        }
        let Some(first) = d.cert.first() else { return };
        let view = first.body.view;
        if !check_votes(
            self.membership(),
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
                if !ok && !self.payloads.contains(cmd) {
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
        let payload = self.payloads.of_value(&value);
        let st = self.insts.entry(inst);
        st.decided = Some(decision.clone());
        st.parked.clear();
        st.votes.clear();
        st.vcs.clear();
        let mut ops = vec![StorageOp::Put(
            Key::Decision(inst),
            Record::Decision(decision, payload),
        )];
        self.outbox.emit(Output::Committed {
            inst,
            value: value.clone(),
            view,
        });
        match inst {
            InstanceId::Cmd { proposer, seq, id } => {
                let misnamed = self.ctx().misnamed(&inst);
                let counts = !misnamed
                    && (self.payloads.contains(&id)
                        || self
                            .headers
                            .first(&Slot::Seq(proposer, seq))
                            .map(|h| h.body.id() == id)
                            .unwrap_or(false));
                ops.extend(self.record_decided(proposer, seq, id, counts));
                self.persist(ops);
                if !misnamed {
                    self.collector.remove(&id);
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
                            self.committed.insert(batch, deps, after);
                        }
                    }
                    Value::Noop => {
                        if proposer == self.me && !misnamed {
                            if let Some(b) = self.payloads.get(&id) {
                                self.own.requeue(vec![(seq, b.txs.clone())]);
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
                if !h.is_checkpoint() {
                    return;
                }
                let k = DecidedCheckpoint { header: h, deps };
                self.chain.decide(b, k.header.clone(), k.deps.clone());
                self.advance_ckpts();
                // Dependencies below K_b's floors are void: nothing to wait or recover for.
                for d in k.waits_for() {
                    self.arm_view_timer(d.instance());
                }
                // Two ids of one (proposer, seq) in K_b prove that proposer equivocated (every
                // replica sees the same K_b): its undecided ones go to a view change at once
                // instead of holding block b for a whole view-0 timeout.
                for d in k.equivocations() {
                    let inst = d.instance();
                    let view0 = self
                        .insts
                        .get(&inst)
                        .is_none_or(|st| st.view == 0 && !st.in_view_change);
                    if !self.ctx().is_decided_inst(&inst) && view0 {
                        self.start_view_change(inst, 1);
                    }
                }
            }
        }
        self.try_build_blocks();
    }

    fn advance_ckpts(&mut self) {
        let passed = self.chain.advance(&self.cfg.membership);
        let advanced = !passed.is_empty();
        for b in passed {
            // Losing candidates for b are decided Noop.
            let winner = self.chain.id(b).expect("passed indexes are known; qed");
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
            self.collector.drop_checkpoints_upto(b);
        }
        if !advanced {
            return;
        }
        let next = self.chain.next();
        self.arm_view_timer(InstanceId::Ckpt(next));
        for (from, b) in self.headers.take_early(next) {
            self.outbox.receive(from, Message::Announce(b));
        }
        for i in self.insts.with_parked() {
            self.recheck_parked(i);
        }
        for r in self.collector.take_parked() {
            self.on_reply(r);
        }
        self.maybe_announce_candidate();
    }

    // ---------------------------------------------------------------- blocks

    fn try_build_blocks(&mut self) {
        loop {
            let b = self.built + 1;
            let Some(k) = self.chain.decided(b) else {
                return;
            };
            let next_rotation = self.chain.rotation(b + 1);
            let decided = |d: &DepRef| self.ctx().dep_decided(d);
            let Some(block) = self.committed.block(b, k, decided, next_rotation) else {
                return;
            };
            self.finish_block(block);
        }
    }

    fn finish_block(&mut self, block: FinishedBlock) {
        let write = self.outbox.begin_write();
        self.finish_block_with(block, write);
    }

    /// Finish a block; every write since `write` began, the block meta included, goes
    /// out as one `Persist`.
    fn finish_block_with(&mut self, block: FinishedBlock, write: WriteMark) {
        let b = block.index;
        self.built = b;
        self.last_build_ms = self.now;
        self.chain
            .built(b, block.checkpoint, block.timestamp_ms, &block.floors);
        // Our own batches this block voids (their fence names it, their seq is below our floor
        // in it; built or adopted alike): their transactions are proposed again, lowest first.
        let own_floor = crate::floors::floor_of(&block.floors, &self.me);
        let own_voided = self.committed.voided_own(&self.me, own_floor, b);
        self.own.requeue(own_voided);
        // The decided record's floors are the agreed floors of the last block taken.
        let ops = self.take_floors(&block.floors);
        self.persist(ops);
        self.collect_below_floors(b);
        self.catch_up.block_finished(&block);
        let batches = block.batches.iter();
        let batches = batches.map(|(h, _)| (h.proposer, h.seq, h.id())).collect();
        self.settled.block_finished(b, batches);
        self.outbox.emit(Output::BlockReady(block));
        self.gc(b);
        let meta = self.meta();
        self.persist(vec![meta]);
        self.outbox.end_write(write);
        self.try_propose_own();
    }

    /// Commands below the agreed floors that are not committed (so in no block, now or later)
    /// are decided by the floor: nothing decides them any more (every message about them is
    /// dropped). Our own go back to the pool, lowest first (a copy already in a block is skipped
    /// by every builder), and every one is collected, so that no log entry below a floor pins
    /// the proposer's window.
    fn collect_below_floors(&mut self, b: BlockIndex) {
        let below = |r: &Self, p: &ValidatorId, seq: Seq, id: &CommandId| {
            seq < r.record.floor(p) && !r.committed.contains(id)
        };
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.insts.ids() {
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
        for (id, batch) in self.payloads.iter() {
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
        self.own.requeue(requeue);
    }

    fn collect_garbage_cmd(&mut self, inst: InstanceId, at_block: BlockIndex) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        // A misnamed instance owns only its own consensus state, never what is keyed by the id
        // of the real command it borrowed.
        let owns_id = !self.ctx().misnamed(&inst);
        let payloads = &self.payloads;
        let (_, mut ops) = self.insts.retire(inst, at_block, |v| payloads.of_value(v));
        if owns_id {
            ops.push(StorageOp::Delete(Key::Reply(id)));
            // Our own batch record goes only with our own batch: an instance naming our seq
            // with an id we never proposed (a Byzantine validator's invention) must not delete
            // the record of the real batch at that seq, or a restart would reuse the seq.
            let own_batch = self
                .ctx()
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
            self.collector.remove(&id);
        }
        self.persist(ops);
    }

    fn gc(&mut self, b: BlockIndex) {
        for inst in self.committed.landed_before(b) {
            self.collect_garbage_cmd(inst, b);
        }
        // Checkpoint instances up to b.
        let mut ops = vec![];
        for inst in self.insts.checkpoints_upto(b) {
            let InstanceId::Ckpt(i) = inst else { continue };
            let payloads = &self.payloads;
            let (view, deletes) = self.insts.retire(inst, b, |v| payloads.of_value(v));
            ops.extend(deletes);
            // Our own candidates for it, in every view it reached.
            for v in 0..=view.unwrap_or(0) {
                if let Some(id) = self.announced.remove(&(i, v)) {
                    ops.push(StorageOp::Delete(Key::OwnCandidate(i, v)));
                    self.payloads.remove(&id);
                }
            }
        }
        let keep_from = b.saturating_sub(self.cfg.retain_blocks);
        if let Some(k) = self.chain.trim(b, keep_from) {
            let kid = k.header.id();
            self.dds.remove(&kid);
            self.payloads.remove(&kid);
            ops.push(StorageOp::Delete(Key::Reply(kid)));
        }
        self.persist(ops);
        self.insts.trim_old(keep_from);
        self.catch_up.trim(b, self.cfg.retain_sync_blocks);
        self.settled.trim(b);
        let record = &self.record;
        self.headers.trim(b, |p| record.floor(p));
        self.announced.retain(|(i, _), _| *i > b);
    }

    // ---------------------------------------------------------------- sync and retransmission

    fn on_sync_request(&mut self, from: ValidatorId, b: BlockIndex) {
        for blk in self.catch_up.serve(b) {
            self.send(from, Message::SyncBlock(blk));
        }
    }

    fn on_sync_block(&mut self, from: ValidatorId, blk: FinishedBlock) {
        if !self.catch_up.offer(from, blk, self.built) {
            return;
        }
        // Adopt every consecutive block that f+1 validators vouch for.
        let before = self.built;
        while let Some(blk) = self
            .catch_up
            .vouched(self.built + 1, self.membership().one_correct())
        {
            self.adopt(blk);
        }
        if self.built >= before + SYNC_BATCH {
            // A full batch was adopted: keep pulling.
            let next = self.built + 1;
            self.outbox.ask_others(Message::SyncRequest(next));
        }
    }

    fn adopt(&mut self, blk: FinishedBlock) {
        // f+1 identical blocks: at least one correct validator built it. Its marks go out in one
        // write with the block meta (a crash between them must not restart with the marks and the
        // old position): everything up to the block meta is merged below.
        let write = self.outbox.begin_write();
        let mut ops = vec![];
        for (h, _) in &blk.batches {
            let id = h.id();
            ops.extend(self.record_decided(h.proposer, h.seq, id, true));
        }
        self.persist(ops);
        let b = blk.index;
        self.chain.take(&ChainPosition {
            index: b,
            checkpoint: blk.checkpoint,
            timestamp_ms: blk.timestamp_ms,
            next_rotation: blk.next_rotation.clone(),
            floors: blk.floors.clone(),
        });
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
        self.finish_block_with(blk, write);
        self.advance_ckpts();
        self.try_build_blocks();
    }

    // ---------------------------------------------------------------- rejoining from the chain

    /// Ask what is settled at `pos` (the same question is kept a while, see
    /// [`SettledExchange::ask`]).
    fn ask_settled(&mut self, pos: ChainPosition) {
        let at = self.settled.ask(pos, self.built, self.now);
        let epoch = self.membership().epoch;
        self.outbox
            .ask_others(Message::SettledRequest { epoch, at });
    }

    /// Answer what is settled at block `at` (see [`SettledExchange::answer`]).
    fn on_settled_request(&mut self, from: ValidatorId, epoch: Epoch, at: BlockIndex) {
        if epoch != self.membership().epoch {
            return;
        }
        let committed = self.committed.headers();
        let answer = self.settled.answer(
            from,
            at,
            self.built,
            &self.cfg.membership,
            &self.record,
            committed,
        );
        if let Some(proposers) = answer {
            let msg = Message::Settled {
                epoch,
                at,
                proposers,
            };
            self.send(from, msg);
        }
    }

    fn on_settled(
        &mut self,
        from: ValidatorId,
        epoch: Epoch,
        at: BlockIndex,
        proposers: Vec<SettledSeqs>,
    ) {
        if epoch == self.membership().epoch
            && from != self.me
            && self
                .settled
                .on_claim(from, at, proposers, self.built, &self.cfg.membership)
        {
            self.try_rejoin();
        }
    }

    /// Rejoin once the settled exchange has enough claims (see [`SettledExchange::ready`]).
    fn try_rejoin(&mut self) {
        let ready = self.settled.ready(
            &self.cfg.membership,
            self.built,
            self.now,
            self.cfg.resend_ms,
        );
        if let Some((pos, settled)) = ready {
            self.rejoin(pos, settled);
        }
    }

    /// Some proposer has more than 2W decided seqs above its watermark: a correct proposer
    /// cannot get that far ahead of an undecided seq (replies stop W above it), so the seq at our
    /// watermark was decided without us learning of it.
    fn watermark_stuck(&self) -> bool {
        self.membership()
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
                self.own.skip_below(*floor);
            }
        }
        ops
    }

    /// Continue after chain block `pos`: take its position, count what f+1 validators vouch
    /// settled as decided, and drop every command we hold that is now known settled.
    fn rejoin(&mut self, pos: ChainPosition, settled: BTreeMap<ValidatorId, Combined>) {
        let (from, c) = (self.built, pos.index);
        if self.chain.last() >= c && self.chain.id(c).is_some_and(|k| k != pos.checkpoint) {
            // We decided another K_c than the certified chain holds: never adopt over it (the
            // engine halts when it checks the block it builds against the chain).
            return;
        }
        // Everything written below goes out as one write with the block meta: a crash in the
        // middle must not leave raised floors with the old block position.
        let write = self.outbox.begin_write();
        // The floors are c's agreed floors, from the certified chain; the claims add exact
        // marks above them.
        let mut ops = self.take_floors(&pos.floors);
        let mut fetch = vec![];
        for (
            p,
            Combined {
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
                self.own.skip_below(top);
            }
        }
        self.persist(ops);
        // Commands now known decided: in a block up to c unless we know it lands later.
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.insts.ids() {
            if let InstanceId::Cmd { proposer, seq, id } = inst {
                refs.insert((*proposer, *seq, *id));
            }
        }
        for e in self.dds.entries() {
            if let DepKind::Txs { seq } = e.dep.kind {
                refs.insert((e.dep.proposer, seq, e.dep.id));
            }
        }
        for (id, b) in self.payloads.iter() {
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
            if p == self.me && (!self.committed.contains(&id) || maybe_void) {
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
        self.own.requeue(requeue);
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
        self.chain.rejoin_at(&pos);
        self.dds.restore_counters(c, 0);
        self.built = c;
        self.last_build_ms = self.now;
        self.catch_up.rejoined(c);
        self.gc(c);
        let meta = self.meta();
        self.persist(vec![meta]);
        self.outbox.end_write(write);
        if c > from {
            self.outbox.emit(Output::Rejoined { from, to: c });
        }
        // Peers still hold the few blocks finished since c, and the decisions some of them
        // listed but too few to vouch for.
        if self.membership().n() > 1 {
            self.outbox.ask_others(Message::SyncRequest(c + 1));
            let fetch: Vec<InstanceId> = fetch
                .into_iter()
                .filter(|i| !self.ctx().is_decided_inst(i))
                .take(64)
                .collect();
            for inst in fetch {
                self.outbox.ask_others(Message::Fetch(inst));
            }
        }
        self.advance_ckpts();
        self.try_build_blocks();
        self.try_propose_own();
    }

    fn resend(&mut self) {
        let now = self.now;
        let horizon = self.cfg.resend_ms;
        for b in self.collector.to_announce() {
            self.broadcast(Message::Announce(b));
        }
        let payloads = &self.payloads;
        let msgs = self
            .insts
            .stalled_messages(now, horizon, self.chain.next(), |v| payloads.of_value(v));
        for m in msgs {
            if self.membership().n() > 1 {
                self.outbox.ask_others(m);
            }
        }
        if self.membership().n() == 1 {
            return;
        }
        self.resend_rounds += 1;
        // Ask for finished blocks when none was built for a while, or when the chain shows we are
        // behind; when idle and the chain is ahead, also what is settled there (rejoining).
        let chain_ahead = self.catch_up.chain_ahead_by(self.built, 1);
        let idle = now.saturating_sub(self.last_build_ms) >= 2 * horizon;
        if idle || chain_ahead {
            let next = self.built + 1;
            self.outbox.ask_others(Message::SyncRequest(next));
        }
        // Rejoin from the chain when stuck behind it, or when so far behind that peers will soon
        // no longer hold the blocks to catch up with.
        let far_behind = self
            .catch_up
            .chain_ahead_by(self.built, (self.cfg.retain_sync_blocks / 2).max(4));
        self.try_rejoin();
        if (idle && chain_ahead) || far_behind {
            if let Some(head) = self.catch_up.chain_head().cloned() {
                self.ask_settled(head);
            }
        } else if !chain_ahead && (self.watermark_stuck() || self.settled.floor_gap()) {
            // Caught up, but a proposer's watermark waits on a seq nobody listed when we
            // rejoined, or we refused a candidate whose floor passed it: ask again about our
            // own last block; the marks f+1 peers vouch for fill the gap.
            self.settled.clear_floor_gap();
            if let Some(own) = self.chain.position(self.built) {
                self.ask_settled(own);
            }
        }
        if !chain_ahead {
            return;
        }
        // Behind the chain: the next checkpoint made no progress here for a while, so ask for
        // its decision (peers do not resend votes of decided instances).
        let next = InstanceId::Ckpt(self.chain.next());
        let stalled = self
            .insts
            .get(&next)
            .is_none_or(|st| now.saturating_sub(st.last_progress_ms) >= horizon);
        if stalled {
            self.outbox.ask_others(Message::Fetch(next));
        }
        // ... and when the next block's checkpoint is decided but some of its commands made no
        // progress here, ask one peer each (rotating) for their decisions.
        let Some(k) = self.chain.decided(self.built + 1) else {
            return;
        };
        let floors = k.floors();
        let missing: Vec<InstanceId> = k
            .deps
            .iter()
            .filter(|d| {
                matches!(d.kind, DepKind::Txs { .. })
                    && !crate::floors::voids(floors, d)
                    && !self.ctx().dep_decided(d)
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
            .membership()
            .validators()
            .iter()
            .copied()
            .filter(|v| *v != self.me)
            .collect();
        for (k, inst) in missing.into_iter().enumerate() {
            let to = peers[(self.resend_rounds as usize + k) % peers.len()];
            self.outbox.send(to, Message::Fetch(inst));
        }
    }
}

/// Is a command of this seq within reach of our window (as far above the watermark as
/// proposals and votes are taken: 4 W)? A checkpoint's dependencies are what its block waits
/// for: a correct checkpoint leader takes no reply naming one beyond.
fn within_reach(record: &DecidedRecord, window: u64, d: &DepRef) -> bool {
    match d.kind {
        DepKind::Txs { seq } => seq < record.watermark(&d.proposer) + 4 * window,
        DepKind::Ckpt { .. } => true,
    }
}

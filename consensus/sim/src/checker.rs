//! Invariant checkers S1-S12 (protocol.md, "Invariants the simulator checks after every step").
//!
//! The checker observes every output of correct validators as it happens (so each invariant is
//! checked after the step that could break it) and keeps global reference state:
//! - S1 agreement: one decided value per instance;
//! - S2 validity: a committed value names its own command (Deps.cmd == instance id), checkpoints
//!   never decide Noop, and a committed Txs value's payload carries a valid proposer signature;
//!   a correct leader's Txs proposal, and every Txs value a correct validator prepares, passes the
//!   self-contained check against its proof, re-run here: its dependencies are the union of q
//!   signed replies and its fence their largest (or it is a justified re-proposal or Noop);
//! - S3 visibility: two conflicting Txs commands of one block are related by deps*;
//! - S4 per-account order: per-account application sequences are prefix-consistent;
//! - S5 same block digest and state root per height;
//! - S6 no transaction applied twice; S8 total supply constant;
//! - S9 PBFT locking: once decided (view v, value x), no correct validator prepares or proposes
//!   anything but x in a view > v;
//! - S10 replies stable per (replier, command); positions strictly increase; fences never decrease;
//! - S11 every committed Txs command lands in exactly one block, the one its fence names, and K_b
//!   in block b (the "lands at all" half is checked at the end of a run), unless it is void:
//!   its seq is below its proposer's floor in that block, and then it lands nowhere; floors
//!   never go down from one block to the next; a command a correct validator reported as landing
//!   nowhere (`Output::LandsNowhere`) lands in no block of its epoch;
//! - S12 every misbehaviour proof verifies and convicts a Byzantine validator.

use crate::ledger::Ledger;
use bsmr_consensus_core::wire::Phase;
use bsmr_consensus_core::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
struct CommittedInfo {
    proposer: ValidatorId,
    seq: Seq,
    access: Vec<AccountId>,
    deps: Vec<CommandId>,
    after: BlockIndex,
    epoch: Epoch,
}

/// The global checker.
pub struct Checker {
    /// The validator set of each epoch, and the block index each later epoch starts at.
    memberships: BTreeMap<Epoch, Membership>,
    epoch_starts: BTreeMap<Epoch, BlockIndex>,
    verifier: Box<dyn Verifier>,
    window: u64,
    byz: BTreeSet<ValidatorId>,
    /// Violations found (empty = pass).
    pub violations: Vec<String>,
    /// Instances are per epoch: a later epoch's replicas can be told of an earlier epoch's id
    /// under the same (proposer, seq), which is another instance there (decided Noop).
    decided: BTreeMap<(Epoch, InstanceId), (View, Digest)>,
    prepares: BTreeMap<(Epoch, InstanceId), BTreeMap<View, BTreeSet<Digest>>>,
    /// Txs pre-prepares seen on the wire, by (epoch, instance, view, value digest): whether one
    /// of them passed the self-contained check (S2 against the proof).
    proposals: BTreeMap<(Epoch, InstanceId, View, Digest), bool>,
    /// The epoch each node's replica runs (set by the simulator at a set change).
    node_epochs: BTreeMap<usize, Epoch>,
    committed: BTreeMap<CommandId, CommittedInfo>,
    replies: BTreeMap<(ValidatorId, CommandId), wire::ReplyBody>,
    reply_progress: BTreeMap<(Epoch, ValidatorId), (u64, BlockIndex)>,
    blocks: BTreeMap<BlockIndex, (Digest, Digest)>,
    landed: BTreeMap<CommandId, BlockIndex>,
    /// Commands a correct validator reported as landing nowhere, by epoch (ids of an earlier
    /// epoch can be named again in a later one, where they are other instances): which one.
    nowhere: BTreeMap<(Epoch, CommandId), usize>,
    floors: BTreeMap<BlockIndex, Floors>,
    account_ref: BTreeMap<u32, Vec<u64>>,
    supply: u64,
    /// Proofs seen, per convicted validator.
    pub proofs: BTreeMap<ValidatorId, usize>,
    /// Number of distinct decisions.
    pub decisions: u64,
}

impl Checker {
    /// A checker for one run.
    pub fn new(
        membership: Membership,
        verifier: Box<dyn Verifier>,
        window: u64,
        byz: BTreeSet<ValidatorId>,
        supply: u64,
    ) -> Self {
        Checker {
            memberships: BTreeMap::from([(membership.epoch, membership)]),
            epoch_starts: BTreeMap::new(),
            verifier,
            window,
            byz,
            violations: vec![],
            decided: BTreeMap::new(),
            prepares: BTreeMap::new(),
            proposals: BTreeMap::new(),
            node_epochs: BTreeMap::new(),
            committed: BTreeMap::new(),
            replies: BTreeMap::new(),
            reply_progress: BTreeMap::new(),
            blocks: BTreeMap::new(),
            landed: BTreeMap::new(),
            nowhere: BTreeMap::new(),
            floors: BTreeMap::new(),
            account_ref: BTreeMap::new(),
            supply,
            proofs: BTreeMap::new(),
            decisions: 0,
        }
    }

    /// A validator-set change: `m`'s epoch starts at block `start` (protocol.md, "Epochs"):
    /// earlier epochs' checkpoint instances from `start` on, and their Txs commands whose fence
    /// would land them there, are void.
    pub fn begin_epoch(&mut self, m: Membership, start: BlockIndex) {
        self.epoch_starts.insert(m.epoch, start);
        self.memberships.insert(m.epoch, m);
    }

    /// Node `node`'s replica now runs `epoch` (its decisions are that epoch's).
    pub fn node_in_epoch(&mut self, node: usize, epoch: Epoch) {
        self.node_epochs.insert(node, epoch);
    }

    /// The epoch block `b` belongs to.
    fn epoch_of_block(&self, b: BlockIndex) -> Epoch {
        self.epoch_starts
            .iter()
            .filter(|(_, s)| **s <= b)
            .map(|(e, _)| *e)
            .max()
            .unwrap_or(0)
    }

    /// The validator set of `epoch` (the nearest earlier one if unknown).
    fn membership_of(&self, epoch: Epoch) -> &Membership {
        self.memberships
            .range(..=epoch)
            .next_back()
            .or_else(|| self.memberships.iter().next())
            .map(|(_, m)| m)
            .expect("the checker holds the first epoch's set; qed")
    }

    /// Where the epoch after `epoch` starts, if a later one is known.
    fn next_start(&self, epoch: Epoch) -> Option<BlockIndex> {
        self.epoch_starts.range(epoch + 1..).next().map(|(_, s)| *s)
    }

    /// An instance of `epoch` that a later epoch made void: a checkpoint at or after its start.
    pub fn superseded(&self, epoch: Epoch, inst: &InstanceId) -> bool {
        match (inst, self.next_start(epoch)) {
            (InstanceId::Ckpt(b), Some(s)) => epoch::ckpt_void(*b, s),
            _ => false,
        }
    }

    fn fail(&mut self, s: String) {
        if self.violations.len() < 50 {
            self.violations.push(s);
        }
    }

    /// A correct validator decided.
    pub fn on_commit(
        &mut self,
        node: usize,
        inst: InstanceId,
        value: &Value,
        view: View,
        payload: Option<&SignedBatch>,
    ) {
        let d = value.digest();
        let epoch = self.node_epochs.get(&node).copied().unwrap_or(0);
        let key = (epoch, inst);
        match self.decided.get(&key) {
            Some((_, x)) if *x != d => self.fail(format!(
                "S1: node {node} decided a different value for {inst:?}"
            )),
            Some(_) => return,
            None => {}
        }
        self.decisions += 1;
        self.decided.insert(key, (view, d));
        // S9 against earlier-observed prepares.
        let bad: Vec<View> = self
            .prepares
            .get(&key)
            .map(|p| {
                p.range(view + 1..)
                    .filter(|(_, ds)| ds.iter().any(|x| *x != d))
                    .map(|(v, _)| *v)
                    .collect()
            })
            .unwrap_or_default();
        for v in bad {
            self.fail(format!("S9: a correct validator prepared another value in view {v} of {inst:?} decided in view {view}"));
        }
        // S2
        match (inst, value) {
            (InstanceId::Ckpt(_), Value::Noop) => self.fail(format!("S2: {inst:?} decided Noop")),
            (InstanceId::Cmd { id, .. }, Value::Deps { cmd, .. }) if id != *cmd => {
                self.fail(format!("S2: {inst:?} decided another command"))
            }
            _ => {}
        }
        if let (InstanceId::Cmd { id, .. }, Value::Deps { deps, after, .. }) = (inst, value) {
            match payload {
                Some(b)
                    if b.id() == id
                        && b.header.signer == b.header.body.proposer
                        && b.header
                            .verify(&self.membership_of(0).genesis, &*self.verifier) =>
                {
                    let mut ids: Vec<CommandId> = deps.iter().map(|x| x.id).collect();
                    ids.sort_unstable();
                    self.committed.insert(
                        id,
                        CommittedInfo {
                            proposer: b.header.body.proposer,
                            seq: b.header.body.seq,
                            access: b.header.body.access.clone(),
                            deps: ids,
                            after: *after,
                            epoch: b.header.body.epoch,
                        },
                    );
                }
                _ => self.fail(format!(
                    "S2: committed {inst:?} without a validly signed payload"
                )),
            }
        }
    }

    /// A correct validator sent a message.
    pub fn on_send(&mut self, node: usize, from: ValidatorId, msg: &Message) {
        match msg {
            Message::Reply(r) if r.signer == from => {
                if let Some(old) = self.replies.get(&(from, r.body.cmd.id)) {
                    if *old != r.body {
                        self.fail(format!(
                            "S10: node {node} sent two different replies to one command"
                        ));
                    }
                } else {
                    self.fail(format!("S10: node {node} sent a reply it never persisted"));
                }
            }
            Message::Vote(v) if self.superseded(v.body.epoch, &v.body.inst) => {}
            Message::PrePrepare(pp, _) if self.superseded(pp.body.epoch, &pp.body.inst) => {}
            Message::Vote(v) if v.signer == from && v.body.phase == Phase::Prepare => {
                let (epoch, inst, view) = (v.body.epoch, v.body.inst, v.body.view);
                if matches!(inst, InstanceId::Cmd { .. })
                    && self.proposals.get(&(epoch, inst, view, v.body.value)) != Some(&true)
                {
                    self.fail(format!(
                        "S2: node {node} prepared a value of {inst:?} in view {view} that no valid proposal carried"
                    ));
                }
                self.on_prepare(node, (epoch, inst), view, v.body.value)
            }
            Message::PrePrepare(pp, _) if pp.signer == from => {
                if !self.note_proposal(pp) {
                    self.fail(format!(
                        "S2: node {node} proposed for {:?} in view {} a value its proof does not support",
                        pp.body.inst, pp.body.view
                    ));
                }
                let key = (pp.body.epoch, pp.body.inst);
                self.on_prepare(node, key, pp.body.view, pp.body.value.digest())
            }
            _ => {}
        }
    }

    /// A message reached a correct validator: note the proposals it may vote for.
    pub fn on_deliver(&mut self, msg: &Message) {
        if let Message::PrePrepare(pp, _) = msg {
            self.note_proposal(pp);
        }
    }

    /// Re-run the self-contained check of a Txs pre-prepare (once per valid value) and remember
    /// whether its value is supported; true for checkpoint proposals, whose check needs the
    /// candidate's header.
    fn note_proposal(&mut self, pp: &Signed<wire::PrePrepareBody>) -> bool {
        let Some(cmd) = pp.body.inst.txs_ref() else {
            return true;
        };
        let key = (
            pp.body.epoch,
            pp.body.inst,
            pp.body.view,
            pp.body.value.digest(),
        );
        if self.proposals.get(&key) == Some(&true) {
            return true;
        }
        let valid = validity::check_preprepare(
            self.membership_of(pp.body.epoch),
            &*self.verifier,
            self.window,
            pp,
            Some(&cmd),
            None,
        )
        .is_ok();
        *self.proposals.entry(key).or_default() |= valid;
        valid
    }

    /// A correct validator created (persisted) a reply: positions strictly increase, fences never
    /// decrease, and a command gets one reply (across restarts too).
    pub fn on_reply_created(&mut self, node: usize, from: ValidatorId, r: &wire::ReplyBody) {
        let key = (from, r.cmd.id);
        if let Some(old) = self.replies.get(&key) {
            if old != r {
                self.fail(format!(
                    "S10: node {node} created two different replies to one command"
                ));
            }
            return;
        }
        let prev = self.reply_progress.get(&(r.epoch, from)).copied();
        if let Some((pos, fence)) = prev {
            if r.pos <= pos || r.fence < fence {
                self.fail(format!("S10: node {node} reply position/fence went back ({} after {pos}, fence {} after {fence})", r.pos, r.fence));
            }
        }
        let (pos, fence) = prev.unwrap_or((0, 0));
        self.reply_progress
            .insert((r.epoch, from), (r.pos.max(pos), r.fence.max(fence)));
        self.replies.insert(key, r.clone());
    }

    fn on_prepare(&mut self, node: usize, key: (Epoch, InstanceId), view: View, d: Digest) {
        if let Some((v, x)) = self.decided.get(&key) {
            if view > *v && d != *x {
                let inst = key.1;
                self.fail(format!("S9: node {node} prepared/proposed another value in view {view} of {inst:?} decided in view {v}"));
            }
        }
        self.prepares
            .entry(key)
            .or_default()
            .entry(view)
            .or_default()
            .insert(d);
    }

    /// A correct validator emitted a misbehaviour proof.
    pub fn on_proof(&mut self, node: usize, p: &Proof) {
        let m = self.membership_of(p.epoch()).clone();
        match p.check(&m, &*self.verifier, self.window) {
            Some(c) if self.byz.contains(&c) => *self.proofs.entry(c).or_default() += 1,
            Some(_) => {
                let why = match p {
                    Proof::InvalidProposal(pp, h) => {
                        let cmd = match (pp.body.inst, h) {
                            (InstanceId::Cmd { .. }, _) => pp.body.inst.txs_ref(),
                            (_, Some(h)) => Some(h.body.dep_ref()),
                            _ => None,
                        };
                        format!(
                            "{:?} (view {}, {} view changes, proof {})",
                            validity::check_preprepare(
                                &m,
                                &*self.verifier,
                                self.window,
                                pp,
                                cmd.as_ref(),
                                None
                            ),
                            pp.body.view,
                            pp.body.new_view.len(),
                            pp.body.proof.len()
                        )
                    }
                    _ => String::new(),
                };
                self.fail(format!(
                    "S12: node {node} produced a proof against a correct validator: {why} {}",
                    format!("{p:?}").chars().take(300).collect::<String>()
                ))
            }
            None => self.fail(format!(
                "S12: node {node} produced a proof that does not verify"
            )),
        }
    }

    /// A correct validator executed a block (ledger already updated).
    pub fn on_block(&mut self, node: usize, b: &FinishedBlock, ledger: &Ledger) {
        // S5
        let entry = (b.digest(), ledger.root());
        let first = match self.blocks.get(&b.index) {
            Some(x) if *x != entry => {
                self.fail(format!(
                    "S5: node {node} built a different block or state at height {}",
                    b.index
                ));
                true
            }
            Some(_) => false,
            None => {
                self.blocks.insert(b.index, entry);
                true
            }
        };
        // S11: K_b in block b; members with after == b - 1; each lands once.
        match self
            .decided
            .get(&(self.epoch_of_block(b.index), InstanceId::Ckpt(b.index)))
        {
            Some(_) => {}
            None => self.fail(format!(
                "S11: block {} built before its checkpoint was decided",
                b.index
            )),
        }
        if first {
            let prev = self.floors.get(&(b.index - 1)).cloned().unwrap_or_default();
            // Seqs start again in a new epoch, and so do floors.
            let epoch_start = self.epoch_starts.values().any(|s| *s == b.index);
            if b.index > 1
                && !epoch_start
                && self.floors.contains_key(&(b.index - 1))
                && !floors::extends(&b.floors, &prev)
            {
                self.fail(format!("S11: the floors of block {} went down", b.index));
            }
            self.floors.insert(b.index, b.floors.clone());
        }
        for (h, _) in &b.batches {
            let id = h.id();
            if h.seq < floors::floor_of(&b.floors, &h.proposer) {
                self.fail(format!(
                    "S11: a command below its proposer's floor landed in block {}",
                    b.index
                ));
            }
            match self.committed.get(&id) {
                Some(c) if c.after + 1 != b.index => self.fail(format!(
                    "S11: command with after {} landed in block {}",
                    c.after, b.index
                )),
                Some(_) => {}
                None => self.fail(format!("S11: uncommitted command in block {}", b.index)),
            }
            if let Some(n) = self.nowhere.get(&(self.epoch_of_block(b.index), id)) {
                let n = *n;
                self.fail(format!(
                    "S11: node {n} reported a command as landing nowhere; it landed in block {}",
                    b.index
                ));
            }
            match self.landed.get(&id) {
                Some(h2) if *h2 != b.index => self.fail(format!(
                    "S11: command landed in blocks {h2} and {}",
                    b.index
                )),
                _ => {
                    self.landed.insert(id, b.index);
                }
            }
        }
        // S3 inside the block (bodies are identical across replicas by S5: check each body once).
        let members: Vec<CommandId> = if first {
            b.batches.iter().map(|(h, _)| h.id()).collect()
        } else {
            vec![]
        };
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                let (a, c) = (&members[i], &members[j]);
                let (Some(ia), Some(ic)) = (self.committed.get(a), self.committed.get(c)) else {
                    continue;
                };
                let direct = ia.deps.binary_search(c).is_ok() || ic.deps.binary_search(a).is_ok();
                if !direct
                    && access_conflicts(&ia.access, &ic.access)
                    && !self.reaches(a, c)
                    && !self.reaches(c, a)
                {
                    self.fail(format!(
                        "S3: conflicting commands in block {} unrelated by deps*",
                        b.index
                    ));
                }
            }
        }
        // S6, S8
        if ledger.double_applied > 0 {
            self.fail(format!("S6: node {node} applied a transaction twice"));
        }
        if ledger.total() != self.supply {
            self.fail(format!(
                "S8: node {node} supply {} != {}",
                ledger.total(),
                self.supply
            ));
        }
        // S4 for accounts touched in this block.
        let mut touched = BTreeSet::new();
        for (h, _) in &b.batches {
            for a in &h.access {
                if *a != GLOBAL {
                    touched.insert(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
                }
            }
        }
        for a in touched {
            let mine = ledger.order.get(&a).cloned().unwrap_or_default();
            let r = self.account_ref.entry(a).or_default();
            let l = mine.len().min(r.len());
            if mine[..l] != r[..l] {
                self.violations
                    .push(format!("S4: node {node} account {a} order diverges"));
            } else if mine.len() > r.len() {
                *r = mine;
            }
        }
    }

    fn reaches(&self, from: &CommandId, to: &CommandId) -> bool {
        // Direct dependency first (the common case, by the quorum-intersection argument).
        if self
            .committed
            .get(from)
            .map(|c| c.deps.binary_search(to).is_ok())
            .unwrap_or(false)
        {
            return true;
        }
        let mut seen = BTreeSet::new();
        let mut stack = vec![*from];
        while let Some(x) = stack.pop() {
            if let Some(c) = self.committed.get(&x) {
                for d in &c.deps {
                    if d == to {
                        return true;
                    }
                    if seen.len() < 100_000 && seen.insert(*d) {
                        stack.push(*d);
                    }
                }
            }
        }
        false
    }

    /// Whether a committed command is void: below its proposer's floor in the block its fence
    /// names.
    fn is_void(&self, c: &CommittedInfo) -> bool {
        let by_epoch = self
            .next_start(c.epoch)
            .is_some_and(|s| epoch::txs_void(c.after, s));
        by_epoch
            || self
                .floors
                .get(&(c.after + 1))
                .is_some_and(|f| c.seq < floors::floor_of(f, &c.proposer))
    }

    /// Committed commands that were void (landed nowhere by agreement), as (proposer, seq).
    pub fn voided(&self) -> Vec<(ValidatorId, Seq)> {
        self.committed
            .values()
            .filter(|c| self.is_void(c))
            .map(|c| (c.proposer, c.seq))
            .collect()
    }

    /// Correct validator `node`, in `epoch`, reported command `id` as landing in no block (S11).
    pub fn on_lands_nowhere(&mut self, node: usize, epoch: Epoch, id: CommandId) {
        if let Some(b) = self.landed.get(&id) {
            if self.epoch_of_block(*b) == epoch {
                let b = *b;
                self.fail(format!(
                    "S11: node {node} reported a command as landing nowhere after it landed in block {b}"
                ));
            }
        }
        self.nowhere.entry((epoch, id)).or_insert(node);
    }

    /// End of run: every committed Txs command whose block height is reached by every live correct
    /// validator has landed (S11).
    pub fn final_check(&mut self, min_height: BlockIndex) {
        let missing: Vec<(CommandId, BlockIndex)> = self
            .committed
            .iter()
            .filter(|(id, c)| c.after < min_height && !self.landed.contains_key(*id))
            .filter(|(_, c)| !self.is_void(c))
            .map(|(id, c)| (*id, c.after))
            .collect();
        for (_, after) in missing.into_iter().take(5) {
            self.fail(format!(
                "S11: committed command with after {after} never landed (height {min_height})"
            ));
        }
    }
}

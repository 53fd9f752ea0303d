//! Byzantine behaviours (protocol.md, "Faults the simulator injects").
//!
//! A Byzantine validator runs the honest core and an [`Adversary`] rewrites what it sends (and
//! may add messages on its own ticks), re-signing with the validator's real sr25519 key, so that
//! every attack uses validly signed material and the checks in the core are exercised for real.

use crate::ledger::Transfer;
use crate::mutator::Mutator;
use bsmr_consensus_core::crypto::Signable;
use bsmr_consensus_core::wire::{PrePrepareBody, ReplyBody, SettledSeqs, ViewChangeBody, VoteBody};
use bsmr_consensus_core::*;
use codec::{Decode, Encode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::crypto::SharedSigner;

/// A named Byzantine behaviour.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends nothing at all.
    Silent,
    /// Equivocating proposer: two batches with one seq, to two halves.
    Equivocate,
    /// Dependency replies with every dependency omitted.
    OmitDeps,
    /// Dependency replies with fake dependency ids added.
    FakeDeps,
    /// Dependency replies with an inflated fence.
    InflateFence,
    /// Dependency replies with the fence lowered to 0.
    LowerFence,
    /// Two different replies to one command.
    ReplyEquivocate,
    /// Announces its batches to f+1 validators only.
    SubsetAnnounce,
    /// Announces to a bare quorum and never serves the payload.
    WithholdPayload,
    /// Pre-prepares whose value does not match the reply proof.
    InvalidProof,
    /// Two different pre-prepares in one view, to two halves.
    ConflictingPrePrepare,
    /// A second, conflicting vote for every vote, to half the validators.
    DoubleVote,
    /// Never votes.
    WithholdVotes,
    /// Floods view changes for random instances and views.
    VcSpam,
    /// As checkpoint leader, two candidates for one (b, v).
    DupCheckpoint,
    /// As checkpoint leader, says nothing (silent leader).
    SilentCheckpoint,
    /// Its clock runs far ahead: candidate timestamps far in the future.
    TimestampAhead,
    /// Replays old announces (also after garbage collection).
    ReplayAnnounce,
    /// Proposes the same transactions in two batches.
    DuplicateTx,
    /// When a validator rejoins from the chain, claims far more settled than it knows, or
    /// nothing at all, or does not answer (by the receiver).
    LieSettled,
    /// As checkpoint leader, candidates whose floors void every proposer's next seqs (to half
    /// the validators) or drop every floor (to the other half).
    BadFloors,
    /// Dependency replies naming fake commands of members at seqs far beyond any window.
    FarDeps,
    /// Dependency replies naming fake commands of a proposer outside the validator set.
    OutsiderDeps,
    /// Names real commands (the one it replies to, and those its reply lists) under other
    /// members' (proposer, seq): in its replies' dependencies and in a view change for each
    /// misnamed instance sent to everyone.
    MisnamedDeps,
    /// Mutation fuzzing (ByzzFuzz): every message, per recipient, passed on, mutated in one
    /// field (re-signed), sent twice, replaced by a replay, or dropped (see [`crate::mutator`]).
    Mutate,
    /// Twins (Bano et al.): the validator's key runs two honest replicas, each talking to its
    /// own half of the others before GST and to everyone after.
    Twins,
    /// Copies what correct validators' clients just submitted (transaction gossip brings it to
    /// every validator) into its own batches: each of its batches goes, to each validator, with
    /// that validator's latest client transactions instead (one seq, a different batch per
    /// recipient), and it never collects replies for them. A correct validator takes its
    /// waiting copies out of its queue for such a batch (`Output::Checked`), so the batch's fate
    /// must bring them back: decided Noop, or not landed in time.
    CoverPending,
}

impl Behaviour {
    /// Every Byzantine behaviour (not Honest).
    pub const ALL: [Behaviour; 27] = [
        Behaviour::Silent,
        Behaviour::Equivocate,
        Behaviour::OmitDeps,
        Behaviour::FakeDeps,
        Behaviour::InflateFence,
        Behaviour::LowerFence,
        Behaviour::ReplyEquivocate,
        Behaviour::SubsetAnnounce,
        Behaviour::WithholdPayload,
        Behaviour::InvalidProof,
        Behaviour::ConflictingPrePrepare,
        Behaviour::DoubleVote,
        Behaviour::WithholdVotes,
        Behaviour::VcSpam,
        Behaviour::DupCheckpoint,
        Behaviour::SilentCheckpoint,
        Behaviour::TimestampAhead,
        Behaviour::ReplayAnnounce,
        Behaviour::DuplicateTx,
        Behaviour::LieSettled,
        Behaviour::BadFloors,
        Behaviour::FarDeps,
        Behaviour::OutsiderDeps,
        Behaviour::MisnamedDeps,
        Behaviour::Mutate,
        Behaviour::Twins,
        Behaviour::CoverPending,
    ];
    /// CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Silent => "silent",
            Behaviour::Equivocate => "equivocate",
            Behaviour::OmitDeps => "omit-deps",
            Behaviour::FakeDeps => "fake-deps",
            Behaviour::InflateFence => "inflate-fence",
            Behaviour::LowerFence => "lower-fence",
            Behaviour::ReplyEquivocate => "reply-equivocate",
            Behaviour::SubsetAnnounce => "subset-announce",
            Behaviour::WithholdPayload => "withhold-payload",
            Behaviour::InvalidProof => "invalid-proof",
            Behaviour::ConflictingPrePrepare => "conflicting-preprepare",
            Behaviour::DoubleVote => "double-vote",
            Behaviour::WithholdVotes => "withhold-votes",
            Behaviour::VcSpam => "vc-spam",
            Behaviour::DupCheckpoint => "dup-checkpoint",
            Behaviour::SilentCheckpoint => "silent-checkpoint",
            Behaviour::TimestampAhead => "timestamp-ahead",
            Behaviour::ReplayAnnounce => "replay-announce",
            Behaviour::DuplicateTx => "duplicate-tx",
            Behaviour::LieSettled => "lie-settled",
            Behaviour::BadFloors => "bad-floors",
            Behaviour::FarDeps => "far-deps",
            Behaviour::OutsiderDeps => "outsider-deps",
            Behaviour::MisnamedDeps => "misnamed-deps",
            Behaviour::Mutate => "mutate",
            Behaviour::Twins => "twins",
            Behaviour::CoverPending => "cover-pending",
        }
    }
    /// Parse a CLI name.
    pub fn parse(s: &str) -> Option<Behaviour> {
        std::iter::once(Behaviour::Honest)
            .chain(Behaviour::ALL)
            .find(|b| b.name() == s)
    }
}

/// The rewriting state of one Byzantine validator.
pub struct Adversary {
    /// Behaviour.
    pub behaviour: Behaviour,
    signer: SharedSigner,
    me: ValidatorId,
    genesis: Digest,
    epoch: Epoch,
    validators: Vec<ValidatorId>,
    window: u64,
    alt_batches: BTreeMap<CommandId, SignedBatch>,
    replay: Vec<SignedBatch>,
    subset: Vec<ValidatorId>,
    /// Behaviour `cover-pending`: each validator's latest client transactions, as gossip
    /// brought them (at most [`COPIED_TXS`] each).
    copied: BTreeMap<ValidatorId, Vec<Tx>>,
    /// The mutation adversary's state (behaviour `mutate`).
    pub mutator: Option<Mutator>,
}

/// Client transactions of one validator that `cover-pending` keeps to copy.
const COPIED_TXS: usize = 64;

impl Adversary {
    /// A new adversary for validator `signer`.
    pub fn new(
        behaviour: Behaviour,
        signer: SharedSigner,
        m: &Membership,
        window: u64,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let me = signer.public();
        let signer_copy = Arc::clone(&signer);
        let mut others: Vec<ValidatorId> = m
            .validators()
            .iter()
            .copied()
            .filter(|v| *v != me)
            .collect();
        // A random subset for subset announces / payload withholding.
        for i in (1..others.len()).rev() {
            let j = rng.gen_range(0..=i);
            others.swap(i, j);
        }
        let k = match behaviour {
            Behaviour::WithholdPayload => m.q().saturating_sub(1),
            _ => m.f() + 1,
        };
        others.truncate(k.min(others.len()));
        Adversary {
            behaviour,
            signer,
            me,
            genesis: m.genesis,
            epoch: m.epoch,
            validators: m.validators().to_vec(),
            window,
            alt_batches: BTreeMap::new(),
            replay: Vec::new(),
            subset: others,
            copied: BTreeMap::new(),
            mutator: (behaviour == Behaviour::Mutate).then(|| Mutator::new(signer_copy, m)),
        }
    }

    fn sign<T: Signable>(&self, body: T) -> Signed<T> {
        Signed::sign(body, &self.genesis, &*self.signer)
    }

    fn fake_dep(&self, rng: &mut ChaCha8Rng) -> DepRef {
        let p = self.validators[rng.gen_range(0..self.validators.len())];
        let mut id = [0u8; 32];
        rng.fill(&mut id[..]);
        DepRef {
            proposer: p,
            kind: DepKind::Txs {
                seq: rng.gen_range(0..self.window),
            },
            id,
        }
    }

    /// A fake command of a member at a seq no window reaches.
    fn far_dep(&self, rng: &mut ChaCha8Rng) -> DepRef {
        let mut d = self.fake_dep(rng);
        d.kind = DepKind::Txs {
            seq: self.window * 1_000 + rng.gen_range(0..1_000),
        };
        d
    }

    /// A fake command of a proposer that is not a member.
    fn outsider_dep(&self, rng: &mut ChaCha8Rng) -> DepRef {
        let mut d = self.fake_dep(rng);
        rng.fill(&mut d.proposer[..]);
        d
    }

    /// The real command `real` under another member's name: same id, another proposer, and a
    /// seq at or next to the real one.
    fn misnamed(&self, real: &DepRef, rng: &mut ChaCha8Rng) -> Option<DepRef> {
        let DepKind::Txs { seq } = real.kind else {
            return None;
        };
        let others: Vec<ValidatorId> = self
            .validators
            .iter()
            .copied()
            .filter(|v| *v != real.proposer)
            .collect();
        let proposer = others[rng.gen_range(0..others.len())];
        Some(DepRef {
            proposer,
            kind: DepKind::Txs {
                seq: seq + rng.gen_range(0..2),
            },
            id: real.id,
        })
    }

    fn alt_batch(&mut self, b: &SignedBatch) -> SignedBatch {
        let id = b.id();
        if let Some(a) = self.alt_batches.get(&id) {
            return a.clone();
        }
        let mut txs = b.txs.to_vec();
        if let Some(t) = txs.first_mut() {
            if let Ok(mut tr) = Transfer::decode(&mut &t.data[..]) {
                tr.amount += 1;
                t.data = tr.encode();
            } else {
                t.data.push(1);
            }
        }
        let mut h = b.header.body.clone();
        h.txs_root = hash(&txs.encode());
        let a = SignedBatch {
            header: self.sign(h),
            txs: txs.into(),
        };
        self.alt_batches.insert(id, a.clone());
        a
    }

    /// Our batch `b` re-signed with `txs` instead of its own (same proposer and seq).
    fn with_txs(&self, b: &SignedBatch, txs: Vec<Tx>) -> SignedBatch {
        let mut h = b.header.body.clone();
        h.access = union_access(txs.iter().map(|t| &t.access[..]));
        h.txs_root = hash(&txs.encode());
        h.weight = txs.iter().map(|t| t.encoded_size() as u64).sum();
        SignedBatch {
            header: self.sign(h),
            txs: txs.into(),
        }
    }

    /// Behaviour `cover-pending`: validator `to`'s clients submitted `txs` (gossip brought
    /// them here).
    pub fn observe_client(&mut self, to: ValidatorId, txs: &[Tx]) {
        if self.behaviour != Behaviour::CoverPending || to == self.me {
            return;
        }
        let kept = self.copied.entry(to).or_default();
        kept.extend_from_slice(txs);
        let over = kept.len().saturating_sub(COPIED_TXS);
        kept.drain(..over);
    }

    fn alt_candidate(&mut self, b: &SignedBatch) -> SignedBatch {
        let id = b.id();
        if let Some(a) = self.alt_batches.get(&id) {
            return a.clone();
        }
        let mut h = b.header.body.clone();
        if let BatchKind::Checkpoint { timestamp_ms, .. } = &mut h.kind {
            *timestamp_ms += 1;
        }
        let a = SignedBatch {
            header: self.sign(h),
            txs: Default::default(),
        };
        self.alt_batches.insert(id, a.clone());
        a
    }

    /// The candidate with floors far above anything decided (`high`) or with none at all.
    fn bad_floors(&mut self, b: &SignedBatch, high: bool) -> SignedBatch {
        let mut h = b.header.body.clone();
        if let BatchKind::Checkpoint { floors, .. } = &mut h.kind {
            *floors = if high {
                let mut all: Floors = self.validators.iter().map(|v| (*v, 1 << 20)).collect();
                all.sort_unstable();
                all
            } else {
                vec![]
            };
        }
        SignedBatch {
            header: self.sign(h),
            txs: Default::default(),
        }
    }

    fn tamper(&self, pp: &Signed<PrePrepareBody>) -> Signed<PrePrepareBody> {
        let mut body = pp.body.clone();
        body.value = match body.value {
            Value::Deps {
                cmd,
                mut deps,
                after,
            } => {
                if deps.pop().is_none() {
                    return self.sign(PrePrepareBody {
                        value: Value::Deps {
                            cmd,
                            deps,
                            after: after + 1,
                        },
                        ..body
                    });
                }
                Value::Deps { cmd, deps, after }
            }
            Value::Noop => Value::Deps {
                cmd: [9; 32],
                deps: vec![],
                after: 0,
            },
        };
        self.sign(body)
    }

    /// The reply with `extra` dependencies added, re-signed.
    fn with_deps(&self, r: &Signed<ReplyBody>, extra: Vec<DepRef>) -> Signed<ReplyBody> {
        self.resign_reply(r, |b| {
            b.deps.extend(extra);
            b.deps.sort();
            b.deps.dedup();
        })
    }

    fn resign_reply(
        &self,
        r: &Signed<ReplyBody>,
        f: impl FnOnce(&mut ReplyBody),
    ) -> Signed<ReplyBody> {
        let mut b = r.body.clone();
        f(&mut b);
        self.sign(b)
    }

    /// Rewrite what the honest core wants to send: a list of (recipient, message).
    pub fn rewrite(
        &mut self,
        sends: Vec<(ValidatorId, Message)>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<(ValidatorId, Message)> {
        if let Some(m) = self.mutator.as_mut() {
            return m.rewrite(sends, rng);
        }
        let mut out = Vec::with_capacity(sends.len());
        let half = |to: &ValidatorId, vs: &[ValidatorId]| {
            vs.iter().position(|v| v == to).unwrap_or(0) % 2 == 1
        };
        for (to, msg) in sends {
            if let Message::Announce(b) = &msg {
                if b.header.body.proposer != self.me && self.replay.len() < 256 {
                    self.replay.push(b.clone());
                }
            }
            match (self.behaviour, msg) {
                (Behaviour::Silent, _) => {}
                (Behaviour::Equivocate, Message::Announce(b))
                    if b.header.body.proposer == self.me && !b.header.body.is_checkpoint() =>
                {
                    if half(&to, &self.validators) {
                        let a = self.alt_batch(&b);
                        out.push((to, Message::Announce(a)));
                    } else {
                        out.push((to, Message::Announce(b)));
                    }
                }
                (Behaviour::CoverPending, Message::Announce(b))
                    if b.header.body.proposer == self.me && !b.header.body.is_checkpoint() =>
                {
                    match self.copied.remove(&to) {
                        Some(txs) if !txs.is_empty() => {
                            out.push((to, Message::Announce(self.with_txs(&b, txs))))
                        }
                        _ => out.push((to, Message::Announce(b))),
                    }
                }
                (Behaviour::LieSettled, Message::Settled { epoch, at, .. }) => {
                    // By the receiver's position: a floor far ahead for every proposer with
                    // made-up commands above it; nothing settled at all; or no answer.
                    let third = self.validators.iter().position(|v| *v == to).unwrap_or(0) % 3;
                    if third == 2 {
                        continue;
                    }
                    let proposers = self
                        .validators
                        .iter()
                        .filter(|_| third == 0)
                        .map(|p| SettledSeqs {
                            proposer: *p,
                            floor: 1_000,
                            decided: (1_001..1_100).map(|s| (s, [s as u8; 32])).collect(),
                        })
                        .collect();
                    out.push((
                        to,
                        Message::Settled {
                            epoch,
                            at,
                            proposers,
                        },
                    ));
                }
                (Behaviour::OmitDeps, Message::Reply(r)) => {
                    let r = self.resign_reply(&r, |b| b.deps.clear());
                    out.push((to, Message::Reply(r)));
                }
                (Behaviour::FakeDeps, Message::Reply(r)) => {
                    let fakes: Vec<DepRef> = (0..3).map(|_| self.fake_dep(rng)).collect();
                    out.push((to, Message::Reply(self.with_deps(&r, fakes))));
                }
                (Behaviour::FarDeps, Message::Reply(r)) => {
                    let fakes: Vec<DepRef> = (0..2).map(|_| self.far_dep(rng)).collect();
                    out.push((to, Message::Reply(self.with_deps(&r, fakes))));
                }
                (Behaviour::OutsiderDeps, Message::Reply(r)) => {
                    let fakes: Vec<DepRef> = (0..2).map(|_| self.outsider_dep(rng)).collect();
                    out.push((to, Message::Reply(self.with_deps(&r, fakes))));
                }
                (Behaviour::MisnamedDeps, Message::Reply(r)) => {
                    // Real commands (the one replied to, and the ones the reply names) under
                    // other members' names: in a checkpoint's reply quorum they reach K_b next
                    // to the real reference, and block b waits for the misnamed instance.
                    let real: Vec<DepRef> = std::iter::once(r.body.cmd)
                        .chain(r.body.deps.iter().copied())
                        .filter(|d| matches!(d.kind, DepKind::Txs { .. }))
                        .collect();
                    let misnamed: Vec<DepRef> = real
                        .iter()
                        .take(3)
                        .filter_map(|d| self.misnamed(d, rng))
                        .collect();
                    let r = if misnamed.is_empty() {
                        r
                    } else {
                        self.with_deps(&r, misnamed.clone())
                    };
                    out.push((to, Message::Reply(r)));
                    for m in misnamed {
                        let vc = self.sign(ViewChangeBody {
                            epoch: self.epoch,
                            inst: m.instance(),
                            new_view: 1,
                            prepared: None,
                            has_payload: true,
                        });
                        for v in self.validators.iter().filter(|v| **v != self.me) {
                            out.push((*v, Message::ViewChange(vc.clone())));
                        }
                    }
                }
                (Behaviour::InflateFence, Message::Reply(r)) => {
                    let r = self.resign_reply(&r, |b| b.fence += 3);
                    out.push((to, Message::Reply(r)));
                }
                (Behaviour::LowerFence, Message::Reply(r)) => {
                    let r = self.resign_reply(&r, |b| {
                        b.fence = 0;
                        b.deps.retain(|d| !matches!(d.kind, DepKind::Ckpt { .. }));
                    });
                    out.push((to, Message::Reply(r)));
                }
                (Behaviour::ReplyEquivocate, Message::Reply(r)) => {
                    let fake = self.fake_dep(rng);
                    let r2 = self.resign_reply(&r, |b| {
                        b.deps.push(fake);
                        b.deps.sort();
                    });
                    out.push((to, Message::Reply(r)));
                    out.push((to, Message::Reply(r2)));
                }
                (Behaviour::SubsetAnnounce, Message::Announce(b))
                    if b.header.body.proposer == self.me && !b.header.body.is_checkpoint() =>
                {
                    if self.subset.contains(&to) {
                        out.push((to, Message::Announce(b)));
                    }
                }
                (Behaviour::WithholdPayload, Message::Announce(b))
                    if b.header.body.proposer == self.me && !b.header.body.is_checkpoint() =>
                {
                    if self.subset.contains(&to) {
                        out.push((to, Message::Announce(b)));
                    }
                }
                (Behaviour::WithholdPayload, Message::Announce(_)) => {}
                (Behaviour::WithholdPayload, Message::PrePrepare(pp, _)) => {
                    out.push((to, Message::PrePrepare(pp, None)))
                }
                (Behaviour::InvalidProof, Message::PrePrepare(pp, p)) => {
                    let t = self.tamper(&pp);
                    out.push((to, Message::PrePrepare(t, p)));
                }
                (Behaviour::ConflictingPrePrepare, Message::PrePrepare(pp, p)) => {
                    if half(&to, &self.validators) {
                        let t = self.tamper(&pp);
                        out.push((to, Message::PrePrepare(t, p)));
                    } else {
                        out.push((to, Message::PrePrepare(pp, p)));
                    }
                }
                (Behaviour::DoubleVote, Message::Vote(v)) => {
                    if half(&to, &self.validators) {
                        let mut d = [0u8; 32];
                        rng.fill(&mut d[..]);
                        let v2 = self.sign(VoteBody {
                            value: d,
                            ..v.body.clone()
                        });
                        out.push((to, Message::Vote(v2)));
                    }
                    out.push((to, Message::Vote(v)));
                }
                (Behaviour::WithholdVotes, Message::Vote(_)) => {}
                (Behaviour::DupCheckpoint, Message::Announce(b))
                    if b.header.body.is_checkpoint() && b.header.body.proposer == self.me =>
                {
                    if half(&to, &self.validators) {
                        let a = self.alt_candidate(&b);
                        out.push((to, Message::Announce(a)));
                    } else {
                        out.push((to, Message::Announce(b)));
                    }
                }
                (Behaviour::SilentCheckpoint, Message::Announce(b))
                    if b.header.body.is_checkpoint() && b.header.body.proposer == self.me => {}
                (Behaviour::BadFloors, Message::Announce(b))
                    if b.header.body.is_checkpoint() && b.header.body.proposer == self.me =>
                {
                    let high = half(&to, &self.validators);
                    out.push((to, Message::Announce(self.bad_floors(&b, high))));
                }
                (Behaviour::SilentCheckpoint, Message::PrePrepare(pp, _))
                    if matches!(pp.body.inst, InstanceId::Ckpt(_)) => {}
                (_, msg) => out.push((to, msg)),
            }
        }
        out
    }

    /// A message delivered to this validator (the mutator remembers real values to swap in and
    /// messages to replay).
    pub fn observe(&mut self, msg: &Message, rng: &mut ChaCha8Rng) {
        if let Some(m) = self.mutator.as_mut() {
            m.observe(msg, rng);
        }
    }

    /// Messages the adversary sends on its own periodic tick: (recipient or None = all, message).
    pub fn tick(
        &mut self,
        last_ckpt_guess: BlockIndex,
        rng: &mut ChaCha8Rng,
    ) -> Vec<(Option<ValidatorId>, Message)> {
        match self.behaviour {
            Behaviour::VcSpam => {
                let mut out = vec![];
                for _ in 0..3 {
                    let dep = self.fake_dep(rng);
                    let body = ViewChangeBody {
                        epoch: self.epoch,
                        inst: dep.instance(),
                        new_view: rng.gen_range(1..4),
                        prepared: None,
                        has_payload: false,
                    };
                    out.push((None, Message::ViewChange(self.sign(body))));
                }
                let body = ViewChangeBody {
                    epoch: self.epoch,
                    inst: InstanceId::Ckpt(last_ckpt_guess + 1),
                    new_view: rng.gen_range(1..6),
                    prepared: None,
                    has_payload: false,
                };
                out.push((None, Message::ViewChange(self.sign(body))));
                out
            }
            Behaviour::ReplayAnnounce if !self.replay.is_empty() => {
                let mut out = vec![];
                for _ in 0..4 {
                    let b = self.replay[rng.gen_range(0..self.replay.len())].clone();
                    out.push((None, Message::Announce(b)));
                }
                out
            }
            _ => vec![],
        }
    }
}

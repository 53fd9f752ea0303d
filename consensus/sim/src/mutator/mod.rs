//! Small-scope mutation of a Byzantine validator's messages, after ByzzFuzz (Winter, Burgess,
//! Kadiyala, Gonzalez, Hanumanthappa, Mandal and Piskac, "Randomized Testing of Byzantine Fault
//! Tolerant Algorithms", OOPSLA 2023): the validator runs the honest core, and each message it
//! sends is, per recipient and at random, passed on, mutated in one field, sent twice (real and
//! mutated), replaced by a replay of a message seen earlier, or dropped. Different recipients
//! get different choices, so one round carries several conflicting, validly signed variants.
//!
//! Mutations stay small in scope, which is what finds bugs (ByzzFuzz, section 4): a seq, view,
//! fence, floor, index, position or timestamp moves by one; an id, proposer or dependency is
//! swapped for another *real* one the validator has seen; a dependency is added, dropped or
//! swapped; a value becomes another seen value or Noop. Bodies the validator signs are re-signed
//! with its real key, so every variant passes the signature check and tests the protocol's
//! logic, not its cryptography. The operators are listed in [`OPERATORS`].
//!
//! Byzantine validators collude: each mutator holds the keys of every Byzantine validator (its
//! allies), so it also re-signs what an ally signed (a header it relays, a reply or view change
//! inside a pre-prepare it leads) after mutating it, and announces its own batches under an
//! ally's name, which the ally's own replica never proposed.

mod fields;

use crate::crypto::SharedSigner;
use bsmr_consensus_core::crypto::Signable;
use bsmr_consensus_core::wire::{PrePrepareBody, VoteBody};
use bsmr_consensus_core::*;
use fields::{nudge, nudge32};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many real references, values and messages the mutator remembers (each a ring).
const MEMORY: usize = 256;

/// The mutation operators, by name (docs/consensus.md lists what each does).
pub const OPERATORS: [&str; 27] = [
    "instance-proposer",
    "instance-seq",
    "instance-id",
    "checkpoint-index",
    "reply-pos",
    "dep-add",
    "dep-drop",
    "dep-swap",
    "dep-field",
    "fence",
    "epoch",
    "view",
    "phase",
    "vote-value",
    "vc-prepared-drop",
    "vc-has-payload",
    "pp-value",
    "pp-proof",
    "pp-batch",
    "header-field",
    "candidate-field",
    "sync-block",
    "settled",
    "request",
    "ally-header",
    "ally-announce",
    "ally-proof",
];

/// What the mutator did to one (recipient, message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Sent unchanged.
    Pass,
    /// Sent mutated.
    Mutated,
    /// Sent unchanged and mutated.
    Both,
    /// A message seen earlier sent too.
    Replayed,
    /// Not sent.
    Dropped,
}

/// The mutating state of one Byzantine validator.
pub struct Mutator {
    signer: SharedSigner,
    /// The keys of the other Byzantine validators.
    allies: BTreeMap<ValidatorId, SharedSigner>,
    me: ValidatorId,
    genesis: Digest,
    validators: Vec<ValidatorId>,
    refs: Vec<DepRef>,
    values: Vec<Value>,
    history: Vec<Message>,
    /// How often each operator was applied (for reports and to show every operator runs).
    pub applied: BTreeMap<&'static str, u64>,
    /// How often each fate was chosen.
    pub fates: BTreeMap<Fate, u64>,
}

fn push_ring<T>(ring: &mut Vec<T>, item: T, rng: &mut ChaCha8Rng) {
    if ring.len() < MEMORY {
        ring.push(item);
    } else {
        let k = rng.gen_range(0..MEMORY);
        ring[k] = item;
    }
}

impl Mutator {
    /// A mutator for the validator of `signer` in `m`.
    pub fn new(signer: SharedSigner, m: &Membership) -> Self {
        Mutator {
            me: signer.public(),
            signer,
            allies: BTreeMap::new(),
            genesis: m.genesis,
            validators: m.validators().to_vec(),
            refs: Vec::new(),
            values: Vec::new(),
            history: Vec::new(),
            applied: BTreeMap::new(),
            fates: BTreeMap::new(),
        }
    }

    /// Collude with these Byzantine validators (their keys; our own is left out).
    pub fn set_allies(&mut self, allies: impl IntoIterator<Item = SharedSigner>) {
        self.allies = allies
            .into_iter()
            .map(|s| (s.public(), s))
            .filter(|(v, _)| *v != self.me)
            .collect();
    }

    fn sign<T: Signable>(&self, body: T) -> Signed<T> {
        self.sign_as(&self.signer, body)
    }

    /// The key of `who` if it is us or an ally.
    fn key_of(&self, who: &ValidatorId) -> Option<SharedSigner> {
        if *who == self.me {
            Some(Arc::clone(&self.signer))
        } else {
            self.allies.get(who).cloned()
        }
    }

    fn sign_as<T: Signable>(&self, key: &SharedSigner, body: T) -> Signed<T> {
        Signed::sign(body, &self.genesis, &**key)
    }

    /// A random ally, if any.
    fn ally(&self, rng: &mut ChaCha8Rng) -> Option<SharedSigner> {
        (!self.allies.is_empty())
            .then(|| {
                self.allies
                    .values()
                    .nth(rng.gen_range(0..self.allies.len()))
                    .cloned()
            })
            .flatten()
    }

    fn note(&mut self, op: &'static str) {
        *self.applied.entry(op).or_default() += 1;
    }

    /// Remember the real references, values and the message itself (for swaps and replays).
    pub fn observe(&mut self, msg: &Message, rng: &mut ChaCha8Rng) {
        let mut refs: Vec<DepRef> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        match msg {
            Message::Announce(b) => refs.push(b.header.body.dep_ref()),
            Message::Reply(r) => {
                refs.push(r.body.cmd);
                refs.extend(r.body.deps.iter().copied());
            }
            Message::PrePrepare(pp, _) => {
                values.push(pp.body.value.clone());
                if let Value::Deps { deps, .. } = &pp.body.value {
                    refs.extend(deps.iter().copied());
                }
            }
            Message::Decided(d, _) => values.push(d.value.clone()),
            _ => {}
        }
        for r in refs {
            push_ring(&mut self.refs, r, rng);
        }
        for v in values {
            push_ring(&mut self.values, v, rng);
        }
        if !matches!(msg, Message::SyncBlock(_)) {
            push_ring(&mut self.history, msg.clone(), rng);
        }
    }

    /// Rewrite what the honest core sends: per (recipient, message), pass, mutate, both, replay
    /// or drop.
    pub fn rewrite(
        &mut self,
        sends: Vec<(ValidatorId, Message)>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<(ValidatorId, Message)> {
        let mut out = Vec::with_capacity(sends.len());
        for (to, msg) in sends {
            self.observe(&msg, rng);
            let fate = match rng.gen_range(0..100) {
                0..=54 => Fate::Pass,
                55..=79 => Fate::Mutated,
                80..=87 => Fate::Both,
                88..=94 => Fate::Replayed,
                _ => Fate::Dropped,
            };
            *self.fates.entry(fate).or_default() += 1;
            match fate {
                Fate::Pass => out.push((to, msg)),
                Fate::Mutated => out.push((to, self.mutate(msg, rng))),
                Fate::Both => {
                    out.push((to, msg.clone()));
                    out.push((to, self.mutate(msg, rng)));
                }
                Fate::Replayed => {
                    if !self.history.is_empty() {
                        let old = self.history[rng.gen_range(0..self.history.len())].clone();
                        out.push((to, old));
                    }
                    out.push((to, msg));
                }
                Fate::Dropped => {}
            }
        }
        out
    }

    /// One mutation of `msg`, re-signed where the validator signs.
    pub fn mutate(&mut self, msg: Message, rng: &mut ChaCha8Rng) -> Message {
        match msg {
            Message::Reply(r) => {
                let b = self.mutate_reply(r.body, rng);
                Message::Reply(self.sign(b))
            }
            Message::Vote(v) => {
                let mut b: VoteBody = v.body;
                match rng.gen_range(0..4) {
                    0 => {
                        self.note("view");
                        b.view = nudge32(b.view, rng);
                    }
                    1 => {
                        self.note("phase");
                        b.phase = match b.phase {
                            wire::Phase::Prepare => wire::Phase::Commit,
                            wire::Phase::Commit => wire::Phase::Prepare,
                        };
                    }
                    2 => {
                        self.note("vote-value");
                        b.value = if self.values.is_empty() || rng.gen_bool(0.3) {
                            Value::Noop.digest()
                        } else {
                            self.values[rng.gen_range(0..self.values.len())].digest()
                        };
                    }
                    _ => b.inst = self.mutate_instance(b.inst, rng),
                }
                Message::Vote(self.sign(b))
            }
            Message::ViewChange(vc) => {
                let b = self.mutate_view_change(vc.body, rng);
                Message::ViewChange(self.sign(b))
            }
            Message::PrePrepare(pp, batch) => {
                let mut b: PrePrepareBody = pp.body;
                let mut batch = batch;
                match rng.gen_range(0..6) {
                    0 => {
                        self.note("view");
                        b.view = nudge32(b.view, rng);
                    }
                    1 => {
                        self.note("pp-value");
                        b.value = self.mutate_value(b.value, rng);
                    }
                    5 => self.forge_in_proof(&mut b, rng),
                    2 => {
                        self.note("pp-proof");
                        if !b.proof.is_empty() && rng.gen_bool(0.5) {
                            b.proof.remove(rng.gen_range(0..b.proof.len()));
                        } else if !b.new_view.is_empty() {
                            b.new_view.remove(rng.gen_range(0..b.new_view.len()));
                        } else if let Some(r) = b.proof.first().cloned() {
                            b.proof.push(r);
                        }
                    }
                    3 => {
                        self.note("pp-batch");
                        batch = match (batch, self.replayable_batch(rng)) {
                            (Some(_), _) if rng.gen_bool(0.5) => None,
                            (_, Some(other)) => Some(other),
                            (b, None) => b,
                        };
                    }
                    _ => b.inst = self.mutate_instance(b.inst, rng),
                }
                Message::PrePrepare(self.sign(b), batch)
            }
            Message::Announce(sb) if self.key_of(&sb.header.signer).is_some() => {
                let key = self.key_of(&sb.header.signer).expect("checked; qed");
                let ours = key.public() == self.me;
                if ours && rng.gen_bool(0.25) {
                    if let Some(ally) = self.ally(rng) {
                        // Our batch under an ally's name (its replica never proposed it).
                        self.note("ally-announce");
                        let mut h = sb.header.body;
                        h.proposer = ally.public();
                        if rng.gen_bool(0.5) {
                            h.seq = nudge(h.seq, rng);
                        }
                        return Message::Announce(wire::SignedBatch {
                            header: self.sign_as(&ally, h),
                            txs: sb.txs,
                        });
                    }
                }
                if !ours {
                    self.note("ally-header");
                }
                let h = self.mutate_header(sb.header.body, rng);
                Message::Announce(wire::SignedBatch {
                    header: self.sign_as(&key, h),
                    txs: sb.txs,
                })
            }
            Message::Announce(sb) => {
                self.note("pp-batch");
                Message::Announce(self.replayable_batch(rng).unwrap_or(sb))
            }
            Message::Decided(d, batch) => {
                self.note("pp-value");
                let mut d = d;
                if rng.gen_bool(0.5) {
                    d.value = self.mutate_value(d.value, rng);
                } else {
                    d.inst = self.mutate_instance(d.inst, rng);
                }
                Message::Decided(d, batch)
            }
            Message::SyncBlock(fb) => {
                self.note("sync-block");
                let mut fb = fb;
                match rng.gen_range(0..4) {
                    0 => fb.index = nudge(fb.index, rng),
                    1 => fb.timestamp_ms = nudge(fb.timestamp_ms, rng),
                    2 => {
                        if !fb.batches.is_empty() {
                            fb.batches.remove(rng.gen_range(0..fb.batches.len()));
                        }
                    }
                    _ => {
                        if let Some(f) = fb.floors.first_mut() {
                            f.1 = nudge(f.1, rng);
                        }
                    }
                }
                Message::SyncBlock(fb)
            }
            Message::Settled {
                epoch,
                at,
                mut proposers,
            } => {
                self.note("settled");
                match rng.gen_range(0..3) {
                    0 => {
                        if let Some(p) = proposers.first_mut() {
                            p.floor = nudge(p.floor, rng);
                        }
                    }
                    1 => {
                        if let Some(p) = proposers.first_mut() {
                            if let Some(r) = self.seen_ref(rng) {
                                let seq = match r.kind {
                                    DepKind::Txs { seq } => seq,
                                    DepKind::Ckpt { index, .. } => index,
                                };
                                p.decided.push((seq, r.id));
                                p.decided.sort();
                                p.decided.dedup_by_key(|(s, _)| *s);
                            }
                        }
                    }
                    _ => {
                        if let Some(p) = proposers.first_mut() {
                            p.decided.pop();
                        }
                    }
                }
                Message::Settled {
                    epoch,
                    at: if rng.gen_bool(0.2) {
                        nudge(at, rng)
                    } else {
                        at
                    },
                    proposers,
                }
            }
            Message::Fetch(inst) => {
                self.note("request");
                Message::Fetch(self.mutate_instance(inst, rng))
            }
            Message::SyncRequest(b) => {
                self.note("request");
                Message::SyncRequest(nudge(b, rng))
            }
            Message::SettledRequest { epoch, at } => {
                self.note("request");
                Message::SettledRequest {
                    epoch,
                    at: nudge(at, rng),
                }
            }
            Message::Header(h) => match self.key_of(&h.signer) {
                Some(key) if rng.gen_bool(0.5) => {
                    self.note("ally-header");
                    let body = self.mutate_header(h.body, rng);
                    Message::Header(self.sign_as(&key, body))
                }
                _ => {
                    self.note("pp-batch");
                    Message::Header(self.replayable_batch(rng).map_or(h, |b| b.header))
                }
            },
        }
    }

    /// Mutate one reply or view change in a pre-prepare that we or an ally signed, re-signed
    /// with its signer's key (the leader's own proof is checked against its value: a validly
    /// signed reply that says something else must be caught there).
    fn forge_in_proof(&mut self, b: &mut PrePrepareBody, rng: &mut ChaCha8Rng) {
        self.note("ally-proof");
        let replies: Vec<usize> = (0..b.proof.len())
            .filter(|k| self.key_of(&b.proof[*k].signer).is_some())
            .collect();
        let changes: Vec<usize> = (0..b.new_view.len())
            .filter(|k| self.key_of(&b.new_view[*k].signer).is_some())
            .collect();
        if !replies.is_empty() && (changes.is_empty() || rng.gen_bool(0.5)) {
            let k = replies[rng.gen_range(0..replies.len())];
            let key = self.key_of(&b.proof[k].signer).expect("filtered; qed");
            let body = self.mutate_reply(b.proof[k].body.clone(), rng);
            b.proof[k] = self.sign_as(&key, body);
        } else if !changes.is_empty() {
            let k = changes[rng.gen_range(0..changes.len())];
            let key = self.key_of(&b.new_view[k].signer).expect("filtered; qed");
            let body = self.mutate_view_change(b.new_view[k].body.clone(), rng);
            b.new_view[k] = self.sign_as(&key, body);
        }
    }

    fn replayable_batch(&self, rng: &mut ChaCha8Rng) -> Option<wire::SignedBatch> {
        let batches: Vec<&wire::SignedBatch> = self
            .history
            .iter()
            .filter_map(|m| match m {
                Message::Announce(b) => Some(b),
                _ => None,
            })
            .collect();
        (!batches.is_empty()).then(|| batches[rng.gen_range(0..batches.len())].clone())
    }
}

//! One field of a message body at a time: small-scope mutations (a number moved by one, a
//! real id, proposer or dependency swapped for another seen one), used by [`Mutator::mutate`].

use super::Mutator;
use bsmr_consensus_core::wire::{ReplyBody, ViewChangeBody};
use bsmr_consensus_core::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `x` moved by one either way, or (rarely) far, or to either end of its range (where an
/// unchecked `x + k` wraps: a sync request for `u64::MAX` crashed correct replicas that kept
/// finished blocks until requested ranges saturated).
pub(super) fn nudge(x: u64, rng: &mut ChaCha8Rng) -> u64 {
    match rng.gen_range(0..10) {
        0..=3 => x.saturating_add(1),
        4..=7 => x.saturating_sub(1),
        8 => x.saturating_add(rng.gen_range(2..64)),
        _ if rng.gen_bool(0.5) => 0,
        _ => u64::MAX - rng.gen_range(0..32),
    }
}

pub(super) fn nudge32(x: u32, rng: &mut ChaCha8Rng) -> u32 {
    nudge(x as u64, rng).min(u32::MAX as u64) as u32
}

impl Mutator {
    pub(super) fn other_member(&self, not: &ValidatorId, rng: &mut ChaCha8Rng) -> ValidatorId {
        let others: Vec<&ValidatorId> = self.validators.iter().filter(|v| *v != not).collect();
        if others.is_empty() {
            *not
        } else {
            *others[rng.gen_range(0..others.len())]
        }
    }

    pub(super) fn seen_ref(&self, rng: &mut ChaCha8Rng) -> Option<DepRef> {
        (!self.refs.is_empty()).then(|| self.refs[rng.gen_range(0..self.refs.len())])
    }

    pub(super) fn mutate_instance(&mut self, inst: InstanceId, rng: &mut ChaCha8Rng) -> InstanceId {
        match inst {
            InstanceId::Cmd { proposer, seq, id } => match rng.gen_range(0..3) {
                0 => {
                    self.note("instance-proposer");
                    InstanceId::Cmd {
                        proposer: self.other_member(&proposer, rng),
                        seq,
                        id,
                    }
                }
                1 => {
                    self.note("instance-seq");
                    InstanceId::Cmd {
                        proposer,
                        seq: nudge(seq, rng),
                        id,
                    }
                }
                _ => {
                    self.note("instance-id");
                    let id = self.seen_ref(rng).map(|r| r.id).unwrap_or(id);
                    InstanceId::Cmd { proposer, seq, id }
                }
            },
            InstanceId::Ckpt(b) => {
                self.note("checkpoint-index");
                InstanceId::Ckpt(nudge(b, rng))
            }
        }
    }

    pub(super) fn mutate_ref(&mut self, d: DepRef, rng: &mut ChaCha8Rng) -> DepRef {
        let mut d = d;
        match rng.gen_range(0..4) {
            0 => d.proposer = self.other_member(&d.proposer, rng),
            1 => {
                d.kind = match d.kind {
                    DepKind::Txs { seq } => DepKind::Txs {
                        seq: nudge(seq, rng),
                    },
                    DepKind::Ckpt { index, view } => DepKind::Ckpt {
                        index: nudge(index, rng),
                        view,
                    },
                }
            }
            2 => {
                if let DepKind::Ckpt { index, view } = d.kind {
                    d.kind = DepKind::Ckpt {
                        index,
                        view: nudge32(view, rng),
                    };
                } else if let Some(r) = self.seen_ref(rng) {
                    d.id = r.id;
                }
            }
            _ => {
                if let Some(r) = self.seen_ref(rng) {
                    d.id = r.id;
                }
            }
        }
        d
    }

    pub(super) fn mutate_deps(&mut self, deps: &mut Vec<DepRef>, rng: &mut ChaCha8Rng) {
        match rng.gen_range(0..4) {
            0 => {
                self.note("dep-add");
                if let Some(r) = self.seen_ref(rng) {
                    deps.push(r);
                }
            }
            1 => {
                self.note("dep-drop");
                if !deps.is_empty() {
                    deps.remove(rng.gen_range(0..deps.len()));
                }
            }
            2 => {
                self.note("dep-swap");
                if let (false, Some(r)) = (deps.is_empty(), self.seen_ref(rng)) {
                    let k = rng.gen_range(0..deps.len());
                    deps[k] = r;
                }
            }
            _ => {
                self.note("dep-field");
                if !deps.is_empty() {
                    let k = rng.gen_range(0..deps.len());
                    deps[k] = self.mutate_ref(deps[k], rng);
                }
            }
        }
        // Honest senders keep dependencies sorted and distinct; half the time so does the
        // mutant (so it is not refused for its shape alone).
        if rng.gen_bool(0.5) {
            deps.sort();
            deps.dedup();
        }
    }

    pub(super) fn mutate_value(&mut self, v: Value, rng: &mut ChaCha8Rng) -> Value {
        match (v, rng.gen_range(0..4)) {
            (
                Value::Deps {
                    cmd,
                    mut deps,
                    after,
                },
                0,
            ) => {
                self.mutate_deps(&mut deps, rng);
                Value::Deps { cmd, deps, after }
            }
            (Value::Deps { cmd, deps, after }, 1) => Value::Deps {
                cmd,
                deps,
                after: nudge(after, rng),
            },
            (Value::Deps { .. }, 2) => Value::Noop,
            (v, _) => {
                if self.values.is_empty() {
                    v
                } else {
                    self.values[rng.gen_range(0..self.values.len())].clone()
                }
            }
        }
    }

    pub(super) fn mutate_reply(&mut self, body: ReplyBody, rng: &mut ChaCha8Rng) -> ReplyBody {
        let mut b = body;
        match rng.gen_range(0..6) {
            0 => {
                let inst = self.mutate_instance(b.cmd.instance(), rng);
                if let InstanceId::Cmd { proposer, seq, id } = inst {
                    b.cmd = DepRef {
                        proposer,
                        kind: DepKind::Txs { seq },
                        id,
                    };
                } else {
                    b.cmd = self.mutate_ref(b.cmd, rng);
                }
            }
            1 => {
                self.note("reply-pos");
                b.pos = nudge(b.pos, rng);
            }
            2 | 3 => self.mutate_deps(&mut b.deps, rng),
            4 => {
                self.note("fence");
                b.fence = nudge(b.fence, rng);
            }
            _ => {
                self.note("epoch");
                b.epoch = nudge(b.epoch, rng);
            }
        }
        b
    }

    pub(super) fn mutate_header(&mut self, h: BatchHeader, rng: &mut ChaCha8Rng) -> BatchHeader {
        let mut h = h;
        if let BatchKind::Checkpoint {
            index,
            view,
            timestamp_ms,
            floors,
        } = &mut h.kind
        {
            self.note("candidate-field");
            match rng.gen_range(0..4) {
                0 => *index = nudge(*index, rng),
                1 => *view = nudge32(*view, rng),
                2 => {
                    *timestamp_ms = match rng.gen_range(0..3) {
                        0 => timestamp_ms.saturating_add(1),
                        1 => timestamp_ms.saturating_sub(1),
                        _ => timestamp_ms.saturating_add(600_000),
                    }
                }
                _ => {
                    if floors.is_empty() {
                        let p = self.validators[rng.gen_range(0..self.validators.len())];
                        floors.push((p, rng.gen_range(1..4)));
                    } else {
                        let k = rng.gen_range(0..floors.len());
                        floors[k].1 = nudge(floors[k].1, rng);
                    }
                }
            }
            return h;
        }
        self.note("header-field");
        match rng.gen_range(0..4) {
            0 => h.seq = nudge(h.seq, rng),
            1 => h.weight = nudge(h.weight, rng),
            2 => {
                if let Some(r) = self.seen_ref(rng) {
                    h.base = r.id;
                }
            }
            _ => {
                let mut a = [0u8; 32];
                rng.fill(&mut a[..]);
                h.access.push(a);
                h.access.sort();
            }
        }
        h
    }

    pub(super) fn mutate_view_change(
        &mut self,
        b: ViewChangeBody,
        rng: &mut ChaCha8Rng,
    ) -> ViewChangeBody {
        let mut b = b;
        match rng.gen_range(0..4) {
            0 => {
                self.note("view");
                b.new_view = nudge32(b.new_view, rng);
            }
            1 => {
                self.note("vc-prepared-drop");
                b.prepared = None;
            }
            2 => {
                self.note("vc-has-payload");
                b.has_payload = !b.has_payload;
            }
            _ => b.inst = self.mutate_instance(b.inst, rng),
        }
        b
    }
}

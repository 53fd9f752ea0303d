//! Restart: rebuild the replica's state from what it persisted (decisions replayed in order,
//! own batches and candidates, replies, prepared certificates, view changes).

use super::*;

impl Replica {
    pub(super) fn restore(&mut self, records: Vec<(Key, Record)>) {
        let mut decisions = Vec::new();
        for (k, v) in records {
            match (k, v) {
                (Key::Meta, Record::Meta(m)) => {
                    self.dds.restore_counters(m.fence, m.next_pos);
                    self.execution.restore(m.built);
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
                    self.proposer.skip_below(seq + 1);
                    self.payloads.insert(b);
                }
                (Key::OwnCandidate(b, v), Record::Batch(c)) => {
                    self.proposer.restore_candidate(b, v, c.id());
                    self.payloads.insert(c);
                }
                (Key::Reply(_), Record::Reply(r, h)) => {
                    self.headers.replied(&h);
                    self.dds.restore(r, &h.body);
                }
                (Key::Decided(p, s, id), Record::Marked(counts)) => {
                    if p == self.me && counts {
                        // Never reuse a seq, even when every own batch was collected.
                        self.proposer.skip_below(s + 1);
                    }
                    self.record.mark(p, s, id, counts);
                }
                (Key::Decision(_), Record::Decision(d, p)) => decisions.push((d, p)),
                (k, v) => {
                    self.single_shot.restore(k, v);
                }
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
            let replayed = self.single_shot.decided_live(&d.inst);
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
                self.proposer.restore_batch(b);
            }
        }
        // Keep only blocks rebuilt from persisted decisions (handed out by `start`). The timers
        // replaying armed are dropped with the rest: `start` arms them again.
        self.outbox.keep_only_blocks();
        self.single_shot.disarm_all();
    }
}

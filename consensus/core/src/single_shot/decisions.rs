//! Decisions: record one, answer whoever asks about a decided or proposed instance, and rebuild
//! the instances from what was persisted.

use super::*;
use crate::discovery::headers::Slot;
use crate::outbox::Outbox;
use crate::storage::{Key, Record, StorageOp};
use crate::wire::{Decision, Message};

impl SingleShot {
    /// Send our decision of `inst`, with its payload when we still hold it. A decided command
    /// whose payload (or whose old decision) is gone is answered with the header we replied
    /// to, while the floor has not passed it: a replica that decided the command without ever
    /// seeing it learns it was real ([`Message::Header`]).
    pub fn send_decided(&self, ctx: &Ctx, out: &mut Outbox, to: ValidatorId, inst: InstanceId) {
        if to == ctx.me {
            return;
        }
        let found = if let Some(d) = self.insts.get(&inst).and_then(|s| s.decided.clone()) {
            let payload = match (&d.value, inst) {
                (Value::Deps { cmd, .. }, _) => ctx.payloads.get(cmd).cloned(),
                (Value::Noop, InstanceId::Cmd { id, .. }) => ctx.payloads.get(&id).cloned(),
                (Value::Noop, InstanceId::Ckpt(_)) => None,
            };
            Some((d, payload))
        } else {
            self.insts.old_decision(&inst)
        };
        let with_payload = matches!(found, Some((_, Some(_))));
        if let Some((d, p)) = found {
            out.send(to, Message::Decided(d, p));
        }
        let header = match inst {
            InstanceId::Cmd { proposer, seq, id } if !with_payload => ctx
                .headers
                .first(&Slot::Seq(proposer, seq))
                .filter(|h| h.body.id() == id)
                .cloned(),
            _ => None,
        };
        if let Some(h) = header {
            out.send(to, Message::Header(h));
        }
    }

    /// A peer asks for checkpoint instance `inst` (undecided here): send our accepted proposal
    /// with its payload.
    pub fn resend_accepted(&self, ctx: &Ctx, out: &mut Outbox, to: ValidatorId, inst: InstanceId) {
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        if let Some((_, pp)) = st.accepted.iter().next_back() {
            let payload = ctx.payloads.of_value(&pp.body.value);
            out.send(to, Message::PrePrepare(pp.clone(), payload));
        }
    }

    /// Record the decision of `inst` (ours, a peer's certificate, or replayed): the instance
    /// keeps only the decision. Returns the write that persists it, with `payload`, the batch
    /// its value names.
    pub fn record_decision(
        &mut self,
        inst: InstanceId,
        value: Value,
        cert: Vec<Signed<VoteBody>>,
        payload: Option<SignedBatch>,
    ) -> StorageOp {
        let decision = Decision { inst, value, cert };
        let st = self.insts.entry(inst);
        st.decided = Some(decision.clone());
        st.parked.clear();
        st.votes.clear();
        st.vcs.clear();
        StorageOp::Put(Key::Decision(inst), Record::Decision(decision, payload))
    }

    /// Whether the decision of `inst` is recorded in its live state (a replay skips it).
    pub fn decided_live(&self, inst: &InstanceId) -> bool {
        self.insts.get(inst).is_some_and(|s| s.decided.is_some())
    }

    /// Rebuild instance state from one persisted record (our votes, view changes,
    /// pre-prepares, prepared certificates). Returns whether the record was the service's.
    pub fn restore(&mut self, key: Key, record: Record) -> bool {
        match (key, record) {
            (Key::Vote(inst, view, phase), Record::Vote(v)) => {
                // We vote in a view only once its pre-prepare ended our view change to it.
                let st = self.insts.entry(inst);
                if view >= st.view {
                    st.view = view;
                    st.in_view_change = false;
                }
                st.my_votes.insert((view, phase), v);
            }
            (Key::ViewChange(inst, view), Record::ViewChange(vc)) => {
                let st = self.insts.entry(inst);
                let voted_there = st.my_votes.keys().any(|(w, _)| *w == view);
                if view > st.view || (view == st.view && !voted_there) {
                    st.view = view;
                    st.in_view_change = true;
                }
                // Ours counts towards the q a view's timer waits for (received ones are not
                // persisted: peers resend theirs).
                st.vcs
                    .entry(view)
                    .or_default()
                    .insert(vc.signer, vc.clone());
                st.my_vcs.insert(view, vc);
            }
            (Key::PrePrepare(inst, view), Record::PrePrepare(pp)) => {
                self.insts.entry(inst).my_preprepares.insert(view, pp);
            }
            (Key::Prepared(inst), Record::Prepared(c)) => {
                self.insts.entry(inst).note_prepared(c);
            }
            _ => return false,
        }
        true
    }

    /// After a restore: the timers set while replaying are gone; the start arms the next
    /// checkpoint's and then every undecided instance's afresh ([`Self::arm_undecided`]).
    pub fn disarm_all(&mut self) {
        self.insts.disarm_all();
    }
}

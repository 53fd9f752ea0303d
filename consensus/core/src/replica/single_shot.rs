//! Routes single-shot consensus ([`crate::single_shot`]): a pre-prepare passes its door before
//! its payload is stored; decisions go to the decided record and execution (`decide`), new
//! views to lead by collecting to dependency discovery's proposer side.

use super::*;
use crate::discovery::collect::Proposal;
use crate::single_shot::{Door, Event};

impl Replica {
    pub(super) fn on_preprepare(
        &mut self,
        from: ValidatorId,
        pp: Signed<PrePrepareBody>,
        payload: Option<SignedBatch>,
    ) {
        match self.single_shot.preprepare_door(&ctx!(self), &pp) {
            Door::Decided => self.send_decided(from, pp.body.inst),
            Door::Drop => {}
            Door::Open => {
                // Signed by a possible leader: its payload is stored before the proposal is
                // judged (it may name it), and only then.
                if let Some(p) = &payload {
                    self.accept_payload(p);
                }
                let events =
                    self.single_shot
                        .on_preprepare(&ctx!(self), &mut self.outbox, from, pp);
                self.route_single_shot(events);
            }
        }
    }

    /// Judge again the pre-prepares held for `inst` (what they waited for arrived).
    pub(super) fn recheck_parked(&mut self, inst: InstanceId) {
        for (from, pp) in self.single_shot.take_parked(&inst) {
            self.on_preprepare(from, pp, None);
        }
    }

    pub(super) fn on_vote(&mut self, v: Signed<VoteBody>) {
        let events = self.single_shot.on_vote(&ctx!(self), &mut self.outbox, v);
        self.route_single_shot(events);
    }

    pub(super) fn on_view_change(&mut self, from: ValidatorId, vc: Signed<ViewChangeBody>) {
        let events = self
            .single_shot
            .on_view_change(&ctx!(self), &mut self.outbox, from, vc);
        self.route_single_shot(events);
    }

    pub(super) fn propose(&mut self, p: Proposal) {
        self.single_shot.propose(&ctx!(self), &mut self.outbox, p);
    }

    pub(super) fn arm_view_timer(&mut self, inst: InstanceId) {
        self.single_shot
            .arm_view_timer(&ctx!(self), &mut self.outbox, inst);
    }

    pub(super) fn send_decided(&mut self, to: ValidatorId, inst: InstanceId) {
        self.single_shot
            .send_decided(&ctx!(self), &mut self.outbox, to, inst);
    }

    /// A recovery leader that was waiting for the payload got it: re-announce and collect.
    pub(super) fn resume_lead(&mut self, inst: InstanceId) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        let Some((v, vcs)) = self.single_shot.lead_to_resume(&ctx!(self), &inst) else {
            return;
        };
        if self.proposer.collecting(&id, v) {
            return;
        }
        let Some(batch) = self.payloads.get(&id).cloned() else {
            return;
        };
        self.proposer.lead(&mut self.outbox, inst, batch, v, vcs);
        self.try_collect(id);
    }

    /// Hand each of the single-shot service's events to the service that takes it, in order.
    pub(super) fn route_single_shot(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Decided { inst, value, cert } => self.decide(inst, value, cert),
                Event::Collect(c) => {
                    let InstanceId::Cmd { id, .. } = c.inst else {
                        continue;
                    };
                    self.proposer
                        .lead(&mut self.outbox, c.inst, c.batch, c.view, c.new_view);
                    self.set_timer(TimerId::Deadline(c.inst, c.view), c.deadline_ms);
                    self.try_collect(id);
                }
                Event::Candidate {
                    index,
                    view,
                    new_view,
                } => self.announce_candidate(index, view, new_view),
                Event::Abandon { id, inst } => self.proposer.stop(&id, &inst),
            }
        }
    }
}

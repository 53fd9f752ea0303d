//! Routes the proposer side of dependency discovery ([`crate::discovery::proposer`]): what it
//! signs goes to the payload store, what it collects to the normal case, what it proves to the
//! misbehaviour reports.

use super::*;
use crate::discovery::proposer::Event;

impl Replica {
    pub(super) fn try_propose_own(&mut self) {
        let events =
            self.proposer
                .propose_own(&ctx!(self), &mut self.outbox, self.cfg.max_batch_txs);
        self.route_discovery(events);
    }

    pub(super) fn maybe_announce_candidate(&mut self) {
        let next_view = self.next_checkpoint_view();
        let events = self
            .proposer
            .announce_due_candidate(&ctx!(self), &mut self.outbox, next_view);
        self.route_discovery(events);
    }

    /// The view the next checkpoint's instance is in here.
    pub(super) fn next_checkpoint_view(&self) -> View {
        self.single_shot
            .view_of(&InstanceId::Ckpt(self.chain.next()))
    }

    pub(super) fn announce_candidate(
        &mut self,
        b: BlockIndex,
        view: View,
        new_view: Vec<Signed<ViewChangeBody>>,
    ) {
        let events =
            self.proposer
                .announce_candidate(&ctx!(self), &mut self.outbox, b, view, new_view);
        self.route_discovery(events);
    }

    pub(super) fn on_reply(&mut self, r: Signed<ReplyBody>) {
        let events = self.proposer.on_reply(&ctx!(self), r);
        self.route_collected(events);
    }

    /// Propose for `id` once a quorum replied.
    pub(super) fn try_collect(&mut self, id: CommandId) {
        let events = self.proposer.collect(&ctx!(self), id);
        self.route_collected(events);
    }

    /// Route what a reply made; a quorum may have widened our send window, so waiting batches
    /// of ours may go now.
    fn route_collected(&mut self, events: Vec<Event>) {
        let quorum = events.iter().any(|e| matches!(e, Event::Collected(_)));
        self.route_discovery(events);
        if quorum && self.proposer.pending() > 0 {
            self.try_propose_own();
        }
    }

    /// Hand each of the proposer side's events to the service that takes it, in order.
    pub(super) fn route_discovery(&mut self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Signed(batch) => {
                    self.payloads.insert(batch);
                }
                Event::Collected(p) => self.propose(p),
                Event::Misbehaved(p) => self.report(p),
            }
        }
    }
}

//! Timers: the resend period goes to recovery, view timers and recovery leaders' deadlines to
//! single-shot consensus.

use super::*;

impl Replica {
    pub(super) fn on_timer(&mut self, t: TimerId) {
        match t {
            TimerId::Resend => {
                self.resend();
                self.set_timer(TimerId::Resend, self.cfg.resend_ms);
            }
            TimerId::View(inst, v) => {
                self.single_shot
                    .on_view_timer(&ctx!(self), &mut self.outbox, inst, v);
            }
            TimerId::Deadline(inst, v) => {
                let events = self
                    .single_shot
                    .on_deadline(&ctx!(self), &mut self.outbox, inst, v);
                self.route_single_shot(events);
            }
        }
    }
}

//! Twins: the second honest replica run with a Byzantine validator's key, with its own storage
//! and, before GST, its own side of the network.

use super::*;

impl Sim {
    /// Start the second replica of Twins validator `i` (its first timers and announcements).
    pub(super) fn feed_twin_start(&mut self, i: usize) {
        let now = self.now_us / 1000;
        let Some(t) = self.nodes[i].twin.as_mut() else {
            return;
        };
        let outs = t.replica.start(now);
        self.apply_twin(i, outs);
    }

    /// Feed the second replica of Twins validator `i`.
    pub(super) fn feed_twin(&mut self, i: usize, input: Input) {
        let now = self.now_us / 1000;
        let Some(t) = self.nodes[i].twin.as_mut() else {
            return;
        };
        let outs = t.replica.handle(now, input);
        self.apply_twin(i, outs);
    }

    /// What the second replica of a Twins validator does: it persists to its own storage, and
    /// before GST talks only to its side.
    pub(super) fn apply_twin(&mut self, i: usize, outs: Vec<Output>) {
        let before_gst = self.now_us < self.cfg.gst_ms * 1000;
        let mut sends = vec![];
        for o in outs {
            match o {
                Output::Persist(ops) => {
                    if let Some(t) = self.nodes[i].twin.as_mut() {
                        t.storage.apply(&ops);
                    }
                }
                Output::Send { to, msg } => {
                    self.note_payloads(&msg);
                    sends.push((to, msg));
                }
                Output::SetTimer { id, after_ms } => self.schedule_timer(i, id, after_ms, true),
                _ => {}
            }
        }
        let side = self.nodes[i]
            .twin
            .as_ref()
            .map(|t| t.side.clone())
            .unwrap_or_default();
        let ids: Vec<ValidatorId> = self.membership.validators().to_vec();
        for (to, msg) in sends {
            for (k, v) in ids.iter().enumerate() {
                let addressed = to.map(|t| t == *v).unwrap_or(true);
                if k != i && addressed && (!before_gst || side.contains(&k)) {
                    self.transmit(i, k, msg.clone());
                }
            }
        }
    }
}

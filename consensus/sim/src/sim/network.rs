//! The simulated network: who reaches whom (partitions before GST), link latency, loss,
//! duplication and reordering.

use super::*;

impl Sim {
    /// Which replicas of node `to` a message from `from` reaches: (first, twin). Before GST a
    /// Twins validator's replicas each hear only their own side.
    pub(super) fn reaches(&self, from: usize, to: usize) -> (bool, bool) {
        match &self.nodes[to].twin {
            None => (true, false),
            Some(_) if self.now_us >= self.cfg.gst_ms * 1000 => (true, true),
            Some(t) => {
                let twin_side = t.side.contains(&from);
                (!twin_side, twin_side)
            }
        }
    }

    pub(super) fn latency_us(&mut self, from: usize, to: usize) -> u64 {
        let base = match self.cfg.net {
            NetKind::Lan => self.rng.gen_range(200..1_000),
            NetKind::Wan => {
                let b = WAN[self.region[from]][self.region[to]] * 1000;
                b + self.rng.gen_range(0..=b / 10 + 100)
            }
        };
        if self.now_us < self.cfg.gst_ms * 1000 && self.rng.gen_bool(0.2) {
            base + self.rng.gen_range(0..2_000_000)
        } else {
            base
        }
    }

    pub(super) fn is_correct(&self, i: usize) -> bool {
        self.nodes[i].adv.is_none()
    }

    pub(super) fn transmit(&mut self, from: usize, to: usize, msg: Message) {
        if from == to {
            return;
        }
        let before_gst = self.now_us < self.cfg.gst_ms * 1000;
        if before_gst {
            if self.partitioned.contains(&from) != self.partitioned.contains(&to) {
                return;
            }
            if self.rng.gen_bool(self.cfg.loss) {
                return;
            }
            if self.rng.gen_bool(self.cfg.dup) {
                let l = self.latency_us(from, to);
                if let Some(leaves) = self.departure_us(from, &msg) {
                    self.schedule(
                        leaves + l,
                        Ev::Deliver {
                            to,
                            from,
                            msg: Box::new(msg.clone()),
                        },
                    );
                }
            }
        }
        let l = self.latency_us(from, to);
        let Some(leaves) = self.departure_us(from, &msg) else {
            return;
        };
        self.report
            .msg_delay_ms
            .push((leaves - self.now_us + l) / 1000);
        self.schedule(
            leaves + l,
            Ev::Deliver {
                to,
                from,
                msg: Box::new(msg),
            },
        );
    }
}

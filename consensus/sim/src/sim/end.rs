//! The end of a run: who counts as live and correct, whether every transaction is in a block,
//! and what a failing run's replicas hold (`BSMR_SIM_DUMP=1`).

use super::*;

/// How far past its planned end a run may go for transactions that waited for their
/// proposer's window.
pub const HARD_END_FACTOR: u64 = 3;

impl Sim {
    pub(super) fn live_correct(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                self.is_correct(*i) && !self.nodes[*i].crashed_for_good && !self.nodes[*i].retired
            })
            .collect()
    }

    /// Correct validators whose clients' transactions must land: the live ones and those that
    /// left the set at an epoch change.
    pub(super) fn origins(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.is_correct(*i) && !self.nodes[*i].crashed_for_good)
            .collect()
    }

    /// Where a run that reached its planned end goes on to: the latest of the liveness bounds,
    /// counted from each proposal, of the transactions of correct proposers not in every live
    /// correct ledger yet (one never proposed: the hard end), at most the hard end of
    /// [`HARD_END_FACTOR`] times the planned one.
    pub(super) fn extended_end_us(&self) -> u64 {
        let planned = self.cfg.end_ms * 1000;
        let hard = planned * HARD_END_FACTOR;
        let bound = self.cfg.liveness_bound_ms() * 1000;
        let live = self.live_correct();
        let mut end = planned;
        for p in self.origins() {
            for t in &self.nodes[p].submitted {
                if live
                    .iter()
                    .all(|i| self.nodes[*i].ledger.included.contains(t))
                {
                    continue;
                }
                let due = self.proposed_at.get(t).map_or(hard, |at| at + bound);
                end = end.max(due);
            }
        }
        end.min(hard)
    }

    pub(super) fn all_included(&self) -> bool {
        let live = self.live_correct();
        let origins = self.origins();
        live.iter().all(|i| {
            let l = &self.nodes[*i].ledger;
            origins.iter().all(|p| {
                self.nodes[*p]
                    .submitted
                    .iter()
                    .all(|t| l.included.contains(t))
            })
        })
    }

    /// With a validator-set change: every live correct validator built a block of epoch 1.
    pub(super) fn in_last_epoch(&self) -> bool {
        let Some(s) = self.epoch_start() else {
            return true;
        };
        self.live_correct()
            .iter()
            .all(|i| self.nodes[*i].epoch == 1 && self.nodes[*i].ledger.height >= s)
    }

    /// Live correct validators are within two blocks of each other.
    pub(super) fn heights_close(&self) -> bool {
        let heights: Vec<u64> = self
            .live_correct()
            .iter()
            .map(|i| self.nodes[*i].ledger.height)
            .collect();
        let (lo, hi) = (heights.iter().min(), heights.iter().max());
        lo.zip(hi).is_none_or(|(lo, hi)| hi - lo <= 2)
    }

    /// What each live replica holds at the end of a failing run (`BSMR_SIM_DUMP=1`): the first
    /// place to look when shrinking a failing seed.
    pub(super) fn dump_state(&self) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let short = |v: &ValidatorId| hex(&v[..3]);
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(r) = &node.replica else {
                eprintln!("node {i}: down");
                continue;
            };
            let byz = node.adv.is_some();
            eprintln!(
                "node {i} ({}){}: {:?} pending batches {}",
                short(&node.id),
                if byz { " (byzantine)" } else { "" },
                r.stats(),
                r.pending_batches()
            );
            let marks: Vec<String> = r
                .watermarks()
                .iter()
                .map(|(p, wm, fl)| format!("{}: wm {wm} floor {fl}", short(p)))
                .collect();
            eprintln!("  watermarks: {}", marks.join(", "));
            for (p, wm, _) in r.watermarks() {
                let near: Vec<String> = r
                    .marks_of(&p)
                    .into_iter()
                    .filter(|(s, _, _)| *s + 2 >= wm && *s <= wm + 2)
                    .map(|(s, id, c)| {
                        format!(
                            "{s}:{}{}",
                            hex(&id[..2]),
                            if c { "" } else { "(not counted)" }
                        )
                    })
                    .collect();
                eprintln!(
                    "    marks of {} near wm {wm}: {}",
                    short(&p),
                    near.join(" ")
                );
            }
            for d in r.next_block_waits_for() {
                let name = match d.kind {
                    DepKind::Txs { seq } => {
                        format!("cmd {}#{seq} {}", short(&d.proposer), hex(&d.id[..3]))
                    }
                    DepKind::Ckpt { index, view } => format!("ckpt {index} view {view}"),
                };
                eprintln!("  block {} waits for {name}", r.stats().built + 1);
            }
            let mut undecided = r.undecided();
            // Checkpoints first: block building waits on them.
            undecided.sort_by_key(|(inst, ..)| !matches!(inst, InstanceId::Ckpt(_)));
            for (inst, view, in_vc, vcs) in undecided.iter().take(12) {
                let name = match inst {
                    InstanceId::Cmd { proposer, seq, id } => {
                        format!("cmd {}#{seq} {}", short(proposer), hex(&id[..3]))
                    }
                    InstanceId::Ckpt(b) => format!("ckpt {b}"),
                };
                eprintln!("  undecided {name} view {view} in view change {in_vc} vcs {vcs}");
            }
        }
    }
}

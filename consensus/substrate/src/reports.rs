//! Misbehaviour reports: the proofs the core emits, queued to be reported on chain once per
//! accused validator and epoch (an equivocator that keeps sending conflicting messages yields
//! one report, and one warning in the log).

use bsmr_consensus_core::{Epoch, Proof, ValidatorId};
use std::collections::{BTreeMap, BTreeSet};

/// Proofs waiting to be reported, and who was reported already.
#[derive(Debug, Default)]
pub struct Reports {
    queued: BTreeMap<(Epoch, ValidatorId), Proof>,
    reported: BTreeSet<(Epoch, ValidatorId)>,
}

impl Reports {
    /// A proof against its accused: whether it is the first against them in its epoch (the
    /// engine then warns). Queued if first and of the current epoch `epoch`.
    pub fn note(&mut self, proof: Proof, epoch: Epoch) -> bool {
        let key = (proof.epoch(), proof.accused());
        let first = !self.reported.contains(&key) && !self.queued.contains_key(&key);
        if first && proof.epoch() == epoch {
            self.queued.insert(key, proof);
        }
        first
    }

    /// Whether any proof waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The proofs to report now (each counts as reported from here on).
    pub fn take(&mut self) -> Vec<Proof> {
        let queued = std::mem::take(&mut self.queued);
        self.reported.extend(queued.keys().copied());
        queued.into_values().collect()
    }

    /// Forget reports of epochs other than `epoch`.
    pub fn keep_epoch(&mut self, epoch: Epoch) {
        self.reported.retain(|(e, _)| *e == epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::wire::{Phase, VoteBody};
    use bsmr_consensus_core::{InsecureTestCrypto, InstanceId, Signed};

    fn equivocation(who: u8, epoch: Epoch) -> Proof {
        let vote = |value| {
            let body = VoteBody {
                epoch,
                inst: InstanceId::Ckpt(1),
                view: 0,
                phase: Phase::Prepare,
                value,
            };
            Signed::sign(body, &[0; 32], &InsecureTestCrypto([who; 32]))
        };
        Proof::VoteEquivocation(vote([1; 32]), vote([2; 32]))
    }

    #[test]
    fn one_report_per_accused_and_epoch() {
        let mut r = Reports::default();
        assert!(r.note(equivocation(1, 3), 3));
        assert!(!r.note(equivocation(1, 3), 3), "queued already");
        assert!(r.note(equivocation(2, 3), 3));
        assert!(
            r.note(equivocation(1, 2), 3),
            "another epoch: warned, not queued"
        );
        assert_eq!(r.take().len(), 2);
        assert!(r.is_empty());
        assert!(!r.note(equivocation(1, 3), 3), "reported already");
        r.keep_epoch(4);
        assert!(r.note(equivocation(1, 4), 4));
    }
}

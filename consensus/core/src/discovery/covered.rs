//! Our waiting transactions that another validator's batch carries (its receiver's queue was
//! long, or a client sent one transaction to two validators). Once this replica has checked
//! that batch and replied to it, proposing our copy would only make a second one that the
//! block builder skips: the copy is taken out of our queue (it was not signed yet, so nothing is
//! taken back) and held here until that batch's fate is known.
//!
//! - It lands in a finished block: the copy is dropped (the block carries it).
//! - It is decided Noop, or decided with a fence behind the built blocks (it lands in no
//!   block): the copy goes back to the front of our queue at once.
//! - Neither within [`COVER_HOLD_MS`]: it goes back too. A Byzantine proposer may announce a
//!   batch to this replica only and never let it be decided; this bounds what that costs.
//!
//! Memory: only transactions taken out of our own queue are held, so the map is bounded by
//! what our clients submitted, never by what a peer sends.

use crate::types::*;
use std::collections::BTreeMap;

/// How long a copy waits at most for the batch carrying it (ms). Longer than the recovery of
/// a stalled batch (a few view timeouts) and shorter than the engine's 30 s safety net on a
/// transaction it handed over.
pub const COVER_HOLD_MS: u64 = 20_000;

/// One batch's copies of our transactions.
#[derive(Debug)]
struct Cover {
    /// When they go back to our queue if the batch has not landed by then.
    until: u64,
    txs: Vec<Tx>,
}

/// The copies held, by the id of the batch carrying them.
#[derive(Debug, Default)]
pub struct Covered {
    by: BTreeMap<CommandId, Cover>,
}

impl Covered {
    /// Batch `id` carries `txs`, taken out of our queue at `now` (distinct, and each equal to
    /// one of the batch's, so at most a batch's size).
    pub fn hold(&mut self, id: CommandId, txs: Vec<Tx>, now: u64) {
        let until = now.saturating_add(COVER_HOLD_MS);
        let cover = self.by.entry(id).or_insert(Cover { until, txs: vec![] });
        for t in txs {
            if !cover.txs.contains(&t) {
                cover.txs.push(t);
            }
        }
    }

    /// Batch `id` landed in a block: its copies are done.
    pub fn landed(&mut self, id: &CommandId) {
        self.by.remove(id);
    }

    /// Batch `id` will land in no block: its copies, to propose again.
    pub fn release(&mut self, id: &CommandId) -> Vec<Tx> {
        self.by.remove(id).map(|c| c.txs).unwrap_or_default()
    }

    /// The copies whose batch has not landed within [`COVER_HOLD_MS`], by batch, oldest cover
    /// first.
    pub fn expired(&mut self, now: u64) -> Vec<Vec<Tx>> {
        let mut due: Vec<(u64, CommandId)> = self
            .by
            .iter()
            .filter(|(_, c)| c.until <= now)
            .map(|(id, c)| (c.until, *id))
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, id)| self.release(&id)).collect()
    }

    /// The copies held, by batch.
    pub fn iter(&self) -> impl Iterator<Item = &Vec<Tx>> {
        self.by.values().map(|c| &c.txs)
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.by.values().map(|c| c.txs.len()).sum()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(n: u8) -> Tx {
        Tx {
            data: vec![n],
            access: vec![],
        }
    }

    #[test]
    fn copies_go_when_their_batch_lands_and_come_back_when_it_cannot_or_is_late() {
        let mut c = Covered::default();
        c.hold([1; 32], vec![tx(1)], 0);
        c.hold([1; 32], vec![tx(2), tx(1)], 5_000);
        c.hold([2; 32], vec![tx(3)], 1_000);
        c.hold([3; 32], vec![tx(4)], 2_000);
        assert_eq!(c.len(), 4);
        c.landed(&[2; 32]);
        assert_eq!(
            c.release(&[3; 32]),
            vec![tx(4)],
            "decided Noop: back at once"
        );
        assert_eq!(c.release(&[3; 32]), vec![], "released once");
        assert_eq!(c.expired(COVER_HOLD_MS - 1), Vec::<Vec<Tx>>::new());
        assert_eq!(
            c.expired(COVER_HOLD_MS),
            vec![vec![tx(1), tx(2)]],
            "the hold runs from the first copy a batch carried; a copy is held once"
        );
        assert!(c.is_empty(), "the landed batch's copy is gone for good");
    }
}

//! Our own batches before they are proposed: the client batches waiting for a seq inside our
//! window, and the next seq to use. A seq is never used twice (a restart resumes above every
//! seq persisted or decided), and transactions of our batches that end in no block (decided
//! Noop, void below an agreed floor, skipped by a rejoin) come back here, lowest seq first.
//! Nothing here is signed yet, so a transaction another validator's batch carries can still
//! be taken out (see [`crate::discovery::covered`]), once: what comes back from such a hold is
//! never taken out again, so no member can hold one transaction twice.

use crate::types::*;
use std::collections::{BTreeSet, VecDeque};

/// The bytes of `txs` (a batch header's weight).
pub fn weight(txs: &[Tx]) -> u64 {
    txs.iter()
        .map(|t| codec::Encode::encoded_size(t) as u64)
        .sum()
}

/// The own-batch queue.
#[derive(Debug, Default)]
pub struct OwnBatches {
    next_seq: Seq,
    pending: VecDeque<Waiting>,
}

/// A batch waiting for a seq.
#[derive(Debug)]
struct Waiting {
    txs: Vec<Tx>,
    /// Back from a hold for another validator's batch: never taken out again.
    returned: bool,
}

impl Waiting {
    fn new(txs: Vec<Tx>) -> Self {
        Waiting {
            txs,
            returned: false,
        }
    }
}

impl OwnBatches {
    /// Client transactions, cut into batches of at most `max_batch_txs`.
    pub fn add(&mut self, txs: &[Tx], max_batch_txs: usize) {
        for chunk in txs.chunks(max_batch_txs.max(1)) {
            self.pending.push_back(Waiting::new(chunk.to_vec()));
        }
    }

    /// Batches of ours that landed in no block, with their seqs: proposed again before
    /// anything else, lowest seq first.
    pub fn requeue(&mut self, mut batches: Vec<(Seq, Vec<Tx>)>) {
        batches.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        for (_, txs) in batches {
            self.pending.push_front(Waiting::new(txs));
        }
    }

    /// The next batch to propose and its seq, if one waits and the seq is below `window_end`:
    /// the first waiting batch, if its bytes fit in `room` or `first_goes` (nothing of ours is in
    /// flight), with the ones after it merged in while the whole stays within `max_batch_txs`
    /// and `room` (batches wait only while the window is full, so a slower network carries
    /// fewer, larger batches; a batch back from a hold is never merged, so that nothing is
    /// taken out of it again).
    pub fn next(
        &mut self,
        window_end: Seq,
        max_batch_txs: usize,
        room: u64,
        first_goes: bool,
    ) -> Option<(Seq, Vec<Tx>)> {
        if self.next_seq >= window_end {
            return None;
        }
        let first = self.pending.front()?;
        let mut bytes = weight(&first.txs);
        if bytes > room && !first_goes {
            return None;
        }
        let mut w = self.pending.pop_front().expect("a front; qed");
        if !w.returned {
            while let Some(more) = self.pending.front() {
                let more_bytes = weight(&more.txs);
                if more.returned
                    || w.txs.len() + more.txs.len() > max_batch_txs
                    || bytes + more_bytes > room
                {
                    break;
                }
                bytes += more_bytes;
                let more = self.pending.pop_front().expect("a front; qed");
                w.txs.extend(more.txs);
            }
        }
        self.next_seq += 1;
        Some((self.next_seq - 1, w.txs))
    }

    /// Transactions taken out for another validator's batch that come back: first, as one
    /// batch (at most that batch's size), never taken out again.
    pub fn push_back_returned(&mut self, txs: Vec<Tx>) {
        if !txs.is_empty() {
            self.pending.push_front(Waiting {
                txs,
                returned: true,
            });
        }
    }

    /// Takes out of the waiting batches every transaction equal to one of `txs` (data and
    /// access alike; one copy each, a duplicate goes too), keeping the order of the rest;
    /// batches left empty go, and returned ones are left alone. Returns those taken, in queue
    /// order.
    pub fn take_out(&mut self, txs: &[Tx]) -> Vec<Tx> {
        if self.pending.is_empty() {
            return vec![];
        }
        let wanted: BTreeSet<&Tx> = txs.iter().collect();
        let mut taken: Vec<Tx> = vec![];
        let mut seen: BTreeSet<Tx> = BTreeSet::new();
        for w in self.pending.iter_mut().filter(|w| !w.returned) {
            if !w.txs.iter().any(|t| wanted.contains(t)) {
                continue;
            }
            let (out, keep): (Vec<Tx>, Vec<Tx>) = std::mem::take(&mut w.txs)
                .into_iter()
                .partition(|t| wanted.contains(t));
            w.txs = keep;
            for t in out {
                if seen.insert(t.clone()) {
                    taken.push(t);
                }
            }
        }
        self.pending.retain(|w| !w.txs.is_empty());
        taken
    }

    /// Never use a seq below `seq` (it is taken, decided or below a floor).
    pub fn skip_below(&mut self, seq: Seq) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The batches waiting, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Vec<Tx>> {
        self.pending.iter().map(|w| &w.txs)
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
    fn seqs_are_used_once_and_only_inside_the_window() {
        let mut o = OwnBatches::default();
        o.add(&[tx(1), tx(2), tx(3)], 2);
        assert_eq!(o.len(), 2);
        assert_eq!(o.next(1, 2, u64::MAX, true), Some((0, vec![tx(1), tx(2)])));
        assert_eq!(
            o.next(1, 2, u64::MAX, true),
            None,
            "seq 1 is outside the window"
        );
        assert_eq!(o.next(2, 2, u64::MAX, true), Some((1, vec![tx(3)])));
        assert_eq!(o.next(10, 2, u64::MAX, true), None, "nothing waits");
        o.skip_below(7);
        o.add(&[tx(4)], 2);
        assert_eq!(o.next(10, 2, u64::MAX, true), Some((7, vec![tx(4)])));
        o.skip_below(3);
        o.add(&[tx(5)], 2);
        assert_eq!(
            o.next(10, 2, u64::MAX, true).map(|(s, _)| s),
            Some(8),
            "never back"
        );
    }

    #[test]
    fn taking_out_keeps_the_rest_in_order_and_drops_emptied_batches() {
        let mut o = OwnBatches::default();
        o.add(&[tx(1), tx(2), tx(3), tx(4), tx(5)], 2);
        o.add(&[tx(4)], 2);
        let other_access = Tx {
            data: vec![5],
            access: vec![[9; 32]],
        };
        let taken = o.take_out(&[tx(4), tx(3), tx(7), other_access]);
        assert_eq!(
            taken,
            vec![tx(3), tx(4)],
            "queue order, one copy each; equal data and access only"
        );
        let left: Vec<Vec<u8>> = o
            .iter()
            .map(|b| b.iter().map(|t| t.data[0]).collect())
            .collect();
        assert_eq!(left, vec![vec![1, 2], vec![5]], "emptied batches are gone");
        o.push_back_returned(taken);
        assert!(
            o.take_out(&[tx(3), tx(1)]) == vec![tx(1)],
            "what came back is never taken out again"
        );
        assert_eq!(
            o.next(10, 2, u64::MAX, true),
            Some((0, vec![tx(3), tx(4)])),
            "it goes first"
        );
        o.push_back_returned(vec![]);
        assert_eq!(o.len(), 2, "an empty batch is not queued");
    }

    #[test]
    fn waiting_batches_merge_up_to_the_batch_size_but_a_returned_one_stays_alone() {
        let mut o = OwnBatches::default();
        o.add(&[tx(1), tx(2)], 2);
        o.add(&[tx(3)], 2);
        o.add(&[tx(4), tx(5)], 2);
        assert_eq!(
            o.next(10, 3, u64::MAX, true),
            Some((0, vec![tx(1), tx(2), tx(3)])),
            "two batches fit in three"
        );
        assert_eq!(o.next(10, 3, u64::MAX, true), Some((1, vec![tx(4), tx(5)])));
        o.add(&[tx(6)], 2);
        o.push_back_returned(vec![tx(7)]);
        o.add(&[tx(8)], 2);
        assert_eq!(
            o.next(10, 8, u64::MAX, true),
            Some((2, vec![tx(7)])),
            "returned: alone"
        );
        assert_eq!(o.next(10, 8, u64::MAX, true), Some((3, vec![tx(6), tx(8)])));
    }

    #[test]
    fn requeued_batches_go_first_lowest_seq_first() {
        let mut o = OwnBatches::default();
        o.add(&[tx(9)], 4);
        o.requeue(vec![(5, vec![tx(5)]), (2, vec![tx(2)])]);
        o.requeue(vec![(1, vec![tx(1)])]);
        let order: Vec<u8> = o.iter().map(|b| b[0].data[0]).collect();
        assert_eq!(order, vec![1, 2, 5, 9]);
    }
}

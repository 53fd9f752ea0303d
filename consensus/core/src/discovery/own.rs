//! Our own batches before they are proposed: the client batches waiting for a seq inside our
//! window, and the next seq to use. A seq is never used twice (a restart resumes above every
//! seq persisted or decided), and transactions of our batches that end in no block (decided
//! Noop, void below an agreed floor, skipped by a rejoin) come back here, lowest seq first.

use crate::types::*;
use std::collections::VecDeque;

/// The own-batch queue.
#[derive(Debug, Default)]
pub struct OwnBatches {
    next_seq: Seq,
    pending: VecDeque<Vec<Tx>>,
}

impl OwnBatches {
    /// Client transactions, cut into batches of at most `max_batch_txs`.
    pub fn add(&mut self, txs: &[Tx], max_batch_txs: usize) {
        for chunk in txs.chunks(max_batch_txs.max(1)) {
            self.pending.push_back(chunk.to_vec());
        }
    }

    /// Batches of ours that landed in no block, with their seqs: proposed again before
    /// anything else, lowest seq first.
    pub fn requeue(&mut self, mut batches: Vec<(Seq, Vec<Tx>)>) {
        batches.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        for (_, txs) in batches {
            self.pending.push_front(txs);
        }
    }

    /// The next batch to propose and its seq, if one waits and the seq is below `window_end`.
    pub fn next(&mut self, window_end: Seq) -> Option<(Seq, Vec<Tx>)> {
        if self.next_seq >= window_end {
            return None;
        }
        let txs = self.pending.pop_front()?;
        self.next_seq += 1;
        Some((self.next_seq - 1, txs))
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
        self.pending.iter()
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
        assert_eq!(o.next(1), Some((0, vec![tx(1), tx(2)])));
        assert_eq!(o.next(1), None, "seq 1 is outside the window");
        assert_eq!(o.next(2), Some((1, vec![tx(3)])));
        assert_eq!(o.next(10), None, "nothing waits");
        o.skip_below(7);
        o.add(&[tx(4)], 2);
        assert_eq!(o.next(10), Some((7, vec![tx(4)])));
        o.skip_below(3);
        o.add(&[tx(5)], 2);
        assert_eq!(o.next(10).map(|(s, _)| s), Some(8), "never back");
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

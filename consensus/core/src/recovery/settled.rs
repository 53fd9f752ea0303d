//! The settled exchange: asking peers what is settled at a chain block, answering them, and
//! collecting the answers until f+1 (or more) can be combined into a rejoin (docs/consensus.md,
//! "Rejoining from the chain"; the claim and combination rules are in [`super::rejoin`]).
//!
//! Owns the question in flight, the claims received for it, who was answered about what, and
//! the batch references of the last [`SETTLED_ANSWER_BLOCKS`] finished blocks (what is not
//! settled at an older block).

use super::rejoin::{self, Combined, Unsettled};
use crate::decided::DecidedRecord;
use crate::io::ChainPosition;
use crate::membership::Membership;
use crate::types::*;
use crate::wire::SettledSeqs;
use std::collections::BTreeMap;

/// How many blocks back a settled question is answered. Answering about block `at` needs the
/// batches of every block after it, so their references are kept this long even when the full
/// finished blocks are kept for fewer (`Config::retain_sync_blocks`): a replica rejoining a chain
/// that moves several blocks per round trip asks about a head its peers have already passed.
pub const SETTLED_ANSWER_BLOCKS: u64 = 64;

/// How many blocks past the question the chain may move before a new question replaces it.
const KEEP_QUESTION_BLOCKS: u64 = 16;

/// One batch of a finished block: (proposer, seq, id).
pub type BatchRef = (ValidatorId, Seq, CommandId);

/// The settled exchange of one replica.
#[derive(Debug, Default)]
pub struct SettledExchange {
    /// The chain block we last asked about, and when.
    asked: Option<(ChainPosition, u64)>,
    /// The claims received about it, per sender.
    claims: BTreeMap<ValidatorId, Vec<SettledSeqs>>,
    /// Requests answered, per requester, for the block they asked about (once each).
    answered: BTreeMap<ValidatorId, BlockIndex>,
    /// The batches of each of the last [`SETTLED_ANSWER_BLOCKS`] finished blocks.
    block_batches: BTreeMap<BlockIndex, Vec<BatchRef>>,
    /// A candidate was refused only because a floor passed our watermark: ask about our own
    /// last block on the next resend (peers' marks fill the gap).
    floor_gap: bool,
}

impl SettledExchange {
    /// Ask about `pos` (returns the index to put in the request). The same question is kept
    /// until the rejoin happens or the chain is [`KEEP_QUESTION_BLOCKS`] past it: a new
    /// question drops the answers so far, and with a head that moves every period no question
    /// would ever collect them.
    pub fn ask(&mut self, pos: ChainPosition, built: BlockIndex, now: u64) -> BlockIndex {
        let keep = self
            .asked
            .as_ref()
            .is_some_and(|(a, _)| a.index >= built && pos.index <= a.index + KEEP_QUESTION_BLOCKS);
        if !keep {
            self.asked = Some((pos, now));
            self.claims.clear();
        }
        self.asked.as_ref().map_or(0, |(a, _)| a.index)
    }

    /// Our answer to `from` about block `at`: once per requester and block, only about a recent
    /// block we built whose successors' batches we all still know. `committed` lists the
    /// commands decided here that wait for a block.
    pub fn answer<'a>(
        &mut self,
        from: ValidatorId,
        at: BlockIndex,
        built: BlockIndex,
        m: &Membership,
        record: &DecidedRecord,
        committed: impl Iterator<Item = &'a BatchHeader>,
    ) -> Option<Vec<SettledSeqs>> {
        if at > built
            || at == 0
            || built - at > SETTLED_ANSWER_BLOCKS
            || self.answered.get(&from) == Some(&at)
        {
            return None;
        }
        self.answered.insert(from, at);
        let after = self.block_batches.range(at + 1..);
        if after.clone().count() as u64 != built - at {
            return None;
        }
        let mut unsettled = Unsettled::default();
        for h in committed {
            unsettled.add(h.proposer, h.seq, h.id());
        }
        for (p, seq, id) in after.flat_map(|(_, batches)| batches) {
            unsettled.add(*p, *seq, *id);
        }
        Some(rejoin::claim(m, record, &unsettled))
    }

    /// A claim from `from` about block `at`; kept if it answers our question and is well
    /// formed.
    pub fn on_claim(
        &mut self,
        from: ValidatorId,
        at: BlockIndex,
        proposers: Vec<SettledSeqs>,
        built: BlockIndex,
        m: &Membership,
    ) -> bool {
        if self.asked.as_ref().map(|(a, _)| a.index) != Some(at)
            || at < built
            || !rejoin::well_formed(&proposers, m)
        {
            return false;
        }
        self.claims.insert(from, proposers);
        true
    }

    /// The block to rejoin at and what is settled there, once f+1 validators answered and
    /// either 2f+1 (or every other member) did or `patience_ms` passed since the question:
    /// with more answers than f+1, the (f+1)-th highest floor is a correct validator's even if
    /// f answer low. Ends the question.
    pub fn ready(
        &mut self,
        m: &Membership,
        built: BlockIndex,
        now: u64,
        patience_ms: u64,
    ) -> Option<(ChainPosition, BTreeMap<ValidatorId, Combined>)> {
        let (pos, asked_ms) = self.asked.as_ref()?;
        let have = self.claims.len();
        let all = (m.n() - 1).min(2 * m.f() + 1);
        let waited = now.saturating_sub(*asked_ms) >= patience_ms;
        if pos.index < built || have < m.f() + 1 || (have < all && !waited) {
            return None;
        }
        let settled = rejoin::combine(m, &self.claims);
        let (pos, _) = self.asked.take()?;
        self.claims.clear();
        Some((pos, settled))
    }

    /// Block `b` was finished with these batches.
    pub fn block_finished(&mut self, b: BlockIndex, batches: Vec<BatchRef>) {
        self.block_batches.insert(b, batches);
    }

    /// Forget the batches of blocks too old to be asked about once block `b` is built.
    pub fn trim(&mut self, b: BlockIndex) {
        self.block_batches = self
            .block_batches
            .split_off(&b.saturating_sub(SETTLED_ANSWER_BLOCKS));
    }

    /// A candidate's floor passed our watermark: our record has a gap.
    pub fn note_floor_gap(&mut self) {
        self.floor_gap = true;
    }

    /// Whether a gap was noted and not yet asked about.
    pub fn floor_gap(&self) -> bool {
        self.floor_gap
    }

    /// The gap is being asked about.
    pub fn clear_floor_gap(&mut self) {
        self.floor_gap = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Rotation;

    fn members(n: u8) -> Membership {
        Membership::new([0; 32], 1, (1..=n).map(|i| [i; 32]).collect())
    }

    fn pos(index: BlockIndex) -> ChainPosition {
        ChainPosition {
            index,
            checkpoint: [index as u8; 32],
            timestamp_ms: index,
            next_rotation: Rotation::fresh(1),
            floors: vec![],
        }
    }

    fn claim(floor: Seq) -> Vec<SettledSeqs> {
        vec![SettledSeqs {
            proposer: [1; 32],
            floor,
            decided: vec![],
        }]
    }

    #[test]
    fn a_question_is_kept_while_the_chain_moves_less_than_16_blocks() {
        let mut s = SettledExchange::default();
        assert_eq!(s.ask(pos(10), 5, 0), 10);
        assert!(s.on_claim([2; 32], 10, claim(3), 5, &members(4)));
        assert_eq!(s.ask(pos(26), 5, 1), 10, "the claims so far are kept");
        assert_eq!(s.claims.len(), 1);
        assert_eq!(s.ask(pos(27), 5, 2), 27, "too far: a new question");
        assert!(s.claims.is_empty());
        assert!(!s.on_claim([2; 32], 10, claim(3), 5, &members(4)));
    }

    #[test]
    fn ready_waits_for_2f_plus_1_or_the_patience() {
        let m = members(4);
        let mut s = SettledExchange::default();
        s.ask(pos(10), 5, 0);
        s.on_claim([2; 32], 10, claim(3), 5, &m);
        assert!(s.ready(&m, 5, 0, 100).is_none(), "f + 1 = 2 needed");
        s.on_claim([3; 32], 10, claim(7), 5, &m);
        assert!(
            s.ready(&m, 5, 50, 100).is_none(),
            "3 of 3 others, not yet waited"
        );
        let (p, settled) = s.ready(&m, 5, 100, 100).expect("waited");
        assert_eq!(p.index, 10);
        assert_eq!(settled[&[1; 32]].floor, 3, "the (f+1)-th highest floor");
        assert!(s.ready(&m, 5, 200, 100).is_none(), "the question ended");
    }

    #[test]
    fn a_claim_that_names_an_outsider_is_refused() {
        let m = members(4);
        let mut s = SettledExchange::default();
        s.ask(pos(10), 5, 0);
        let mut bad = claim(1);
        bad[0].proposer = [9; 32];
        assert!(!s.on_claim([2; 32], 10, bad, 5, &m));
    }

    #[test]
    fn answers_need_every_later_block_and_go_once_per_requester() {
        let m = members(4);
        let record = DecidedRecord::new(8);
        let mut s = SettledExchange::default();
        s.block_finished(9, vec![([1; 32], 4, [4; 32])]);
        assert!(s
            .answer([2; 32], 7, 9, &m, &record, std::iter::empty())
            .is_none());
        s.block_finished(8, vec![([1; 32], 2, [2; 32])]);
        let a = s.answer([4; 32], 7, 9, &m, &record, std::iter::empty());
        assert!(a.is_some());
        assert!(s
            .answer([4; 32], 7, 9, &m, &record, std::iter::empty())
            .is_none());
        assert!(s
            .answer([3; 32], 10, 9, &m, &record, std::iter::empty())
            .is_none());
        s.trim(9 + SETTLED_ANSWER_BLOCKS);
        assert_eq!(s.block_batches.len(), 1, "block 9 is still 64 back");
        s.trim(10 + SETTLED_ANSWER_BLOCKS);
        assert!(s.block_batches.is_empty());
    }
}

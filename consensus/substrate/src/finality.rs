//! The finality vote tally: the signed [`FinalityVote`]s received per block height, who voted how
//! far ahead, and what a height's votes say about the block this node built: its certificate
//! once q agree, or a divergence (docs/consensus.md, "The engine", Finality). Pure: the engine
//! imports the block with the certificate as its justification (`worker/blocks.rs`).
//!
//! Votes are checked at the door (a member of this epoch, above the finalized height, a valid
//! signature) before anything is kept; only heights within [`VOTE_HORIZON`] above the
//! finalized one are stored, and each signer's first vote per height counts (a second,
//! different one is a finality equivocation).

use crate::justification::{FinalityCertificate, FinalityVote};
use bsmr_consensus_core::{Digest, Membership, Proof, Signed, ValidatorId, Verifier};
use std::collections::BTreeMap;

/// Heights above the finalized one whose votes are kept.
pub const VOTE_HORIZON: u64 = 64;

/// What a received vote did.
#[derive(Debug, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Not a member of this epoch, at or below the finalized height, beyond the horizon, or
    /// already counted: nothing kept.
    Ignored,
    /// The signature does not verify (the sender misbehaves).
    BadSignature,
    /// Its signer voted differently for that height before.
    Equivocation(Box<Proof>),
    /// Counted.
    Counted,
}

/// What the votes for a height say about the block this node built there.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// q matching votes: their certificate (the votes for anything else left out).
    Certified(FinalityCertificate),
    /// q validators certified another block or state root: building diverged.
    Diverged(FinalityVote),
    /// Not yet.
    Waiting,
}

/// The votes received.
#[derive(Debug, Default)]
pub struct FinalityTally {
    votes: BTreeMap<u64, BTreeMap<ValidatorId, Signed<FinalityVote>>>,
    /// The highest height each validator sent a valid vote for (also beyond the horizon).
    highest: BTreeMap<ValidatorId, u64>,
}

impl FinalityTally {
    /// A vote from the network, with `finalized` the local finalized height.
    pub fn on_vote(
        &mut self,
        v: Signed<FinalityVote>,
        m: &Membership,
        genesis: &Digest,
        finalized: u64,
        verifier: &dyn Verifier,
    ) -> VoteOutcome {
        if !m.contains(&v.signer) || v.body.epoch != m.epoch || v.body.number <= finalized {
            return VoteOutcome::Ignored;
        }
        if !v.verify(genesis, verifier) {
            return VoteOutcome::BadSignature;
        }
        let highest = self.highest.entry(v.signer).or_default();
        *highest = (*highest).max(v.body.number);
        if v.body.number > finalized + VOTE_HORIZON {
            return VoteOutcome::Ignored;
        }
        let at = self.votes.entry(v.body.number).or_default();
        match at.get(&v.signer) {
            Some(old) if old.body != v.body => {
                VoteOutcome::Equivocation(Box::new(Proof::FinalityEquivocation(old.clone(), v)))
            }
            Some(_) => VoteOutcome::Ignored,
            None => {
                at.insert(v.signer, v);
                VoteOutcome::Counted
            }
        }
    }

    /// Our own vote.
    pub fn own_vote(&mut self, v: Signed<FinalityVote>) {
        self.votes
            .entry(v.body.number)
            .or_default()
            .insert(v.signer, v);
    }

    /// Heights up to `finalized` are done.
    pub fn finalized(&mut self, finalized: u64) {
        self.votes.retain(|n, _| *n > finalized);
    }

    /// A new epoch: the old set's votes do not count.
    pub fn clear(&mut self) {
        self.votes.clear();
    }

    /// Have f + 1 validators of `m`, so at least one correct one, voted above `number`? A
    /// correct validator votes only after finalizing the parent, so `number` is final elsewhere.
    pub fn network_is_past(&self, number: u64, m: &Membership) -> bool {
        let voters = self
            .highest
            .iter()
            .filter(|(v, n)| **n > number && m.contains(v))
            .count();
        voters > m.f()
    }

    /// What the votes for `mine.number` say about `mine`, with quorum `q`.
    pub fn verdict(&self, mine: &FinalityVote, q: usize) -> Verdict {
        let Some(votes) = self.votes.get(&mine.number) else {
            return Verdict::Waiting;
        };
        let mut tally: BTreeMap<&FinalityVote, usize> = BTreeMap::new();
        for v in votes.values() {
            *tally.entry(&v.body).or_default() += 1;
        }
        if let Some((other, _)) = tally.iter().find(|(body, c)| **body != mine && **c >= q) {
            return Verdict::Diverged(**other);
        }
        if tally.get(mine).copied().unwrap_or(0) < q {
            return Verdict::Waiting;
        }
        Verdict::Certified(FinalityCertificate::from_votes(*mine, votes.values()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::InsecureTestCrypto;

    const G: Digest = [0; 32];

    fn members() -> Membership {
        Membership::new(G, 0, (1..=4u8).map(|i| [i; 32]).collect())
    }

    fn vote(who: u8, number: u64, hash: u8) -> Signed<FinalityVote> {
        let body = FinalityVote {
            epoch: 0,
            number,
            hash: [hash; 32],
            state_root: [0; 32],
        };
        Signed::sign(body, &G, &InsecureTestCrypto([who; 32]))
    }

    #[test]
    fn q_matching_votes_certify_and_a_quorum_for_another_block_is_divergence() {
        let (m, v) = (members(), InsecureTestCrypto([0; 32]));
        let mut t = FinalityTally::default();
        let mine = vote(1, 5, 7);
        t.own_vote(mine.clone());
        assert_eq!(t.verdict(&mine.body, 3), Verdict::Waiting);
        assert_eq!(
            t.on_vote(vote(2, 5, 7), &m, &G, 4, &v),
            VoteOutcome::Counted
        );
        assert_eq!(
            t.on_vote(vote(4, 5, 9), &m, &G, 4, &v),
            VoteOutcome::Counted
        );
        assert_eq!(
            t.verdict(&mine.body, 3),
            Verdict::Waiting,
            "2 of q = 3 agree"
        );
        assert_eq!(
            t.on_vote(vote(3, 5, 7), &m, &G, 4, &v),
            VoteOutcome::Counted
        );
        let Verdict::Certified(cert) = t.verdict(&mine.body, 3) else {
            panic!("certified");
        };
        let signers: Vec<ValidatorId> = cert.signatures.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            signers,
            [[1; 32], [2; 32], [3; 32]],
            "4's vote is for another block"
        );
        assert_eq!(cert.vote, mine.body);
        cert.verify(5, &[7; 32], &[0; 32], &m, &v)
            .expect("a certificate outside verifiers accept");
        let other = vote(4, 5, 8);
        assert_eq!(t.verdict(&other.body, 3), Verdict::Diverged(mine.body));
    }

    #[test]
    fn votes_are_checked_at_the_door() {
        let (m, v) = (members(), InsecureTestCrypto([0; 32]));
        let mut t = FinalityTally::default();
        assert_eq!(
            t.on_vote(vote(9, 5, 7), &m, &G, 4, &v),
            VoteOutcome::Ignored,
            "outsider"
        );
        assert_eq!(
            t.on_vote(vote(2, 4, 7), &m, &G, 4, &v),
            VoteOutcome::Ignored,
            "final"
        );
        let mut forged = vote(2, 5, 7);
        forged.signer = [3; 32];
        assert_eq!(t.on_vote(forged, &m, &G, 4, &v), VoteOutcome::BadSignature);
        let far = vote(2, 4 + VOTE_HORIZON + 1, 7);
        assert_eq!(
            t.on_vote(far, &m, &G, 4, &v),
            VoteOutcome::Ignored,
            "kept: height only"
        );
        assert!(t.votes.is_empty());
        assert!(!t.network_is_past(10, &m));
        let far = vote(3, 4 + VOTE_HORIZON + 1, 7);
        t.on_vote(far, &m, &G, 4, &v);
        assert!(t.network_is_past(10, &m), "f + 1 = 2 voted above");
    }

    #[test]
    fn a_second_vote_for_a_height_is_an_equivocation() {
        let (m, v) = (members(), InsecureTestCrypto([0; 32]));
        let mut t = FinalityTally::default();
        t.on_vote(vote(2, 5, 7), &m, &G, 4, &v);
        assert_eq!(
            t.on_vote(vote(2, 5, 7), &m, &G, 4, &v),
            VoteOutcome::Ignored
        );
        assert!(matches!(
            t.on_vote(vote(2, 5, 8), &m, &G, 4, &v),
            VoteOutcome::Equivocation(_)
        ));
        t.finalized(5);
        assert!(t.votes.is_empty());
    }
}

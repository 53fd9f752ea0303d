//! Who proposes a transaction and when: the partition owner and anyone after their delays
//! (stretched by the receivers' queueing: ours, or another member's as its announcements show),
//! the leader baseline's primary and its fallback (stretched by the primary's queue), both held
//! back by announcements, and the in-flight allowance that lets transactions gather.

use super::{
    PoolProposer, Turn, INFLIGHT_HORIZON_MS, MAX_PENDING_CORE_BATCHES, MAX_QUEUEING_ALLOWANCE_MS,
    UNFINISHED_HOLD_MS,
};
use crate::config::Mode;
use bsmr_consensus_core::{AccountId, Membership, ValidatorId};
use sp_core::H256;

impl PoolProposer {
    /// The sender partition owner of a transaction.
    pub fn partition_owner(m: &Membership, sender: &AccountId) -> ValidatorId {
        let h = sp_crypto_hashing::blake2_256(sender);
        let k = u64::from_le_bytes(h[..8].try_into().expect("8 bytes; qed")) % m.n() as u64;
        m.validators()[k as usize]
    }

    /// Whether a pass now could propose anything: the core's queue of client batches has room
    /// and our undecided batches leave some of the in-flight allowance.
    pub fn may_propose(&self, turn: &Turn) -> bool {
        if turn.core_pending > MAX_PENDING_CORE_BATCHES {
            return false;
        }
        // The baseline's primary proposes every validator's share, so it gets every
        // validator's allowance.
        let allowance = match self.cfg.mode {
            Mode::Leaderless => self.cfg.max_inflight_batches,
            Mode::Leader => self.cfg.max_inflight_batches * turn.membership.n(),
        };
        let undecided = self
            .undecided
            .values()
            .filter(|at| turn.now.saturating_sub(**at) < INFLIGHT_HORIZON_MS)
            .count();
        allowance == 0 || undecided < allowance
    }

    /// Whether another validator's announcement holds transaction `h`, first seen at `first`,
    /// back from a takeover (see `announced`): never for longer than the safety net from when
    /// we first saw it, so a member that floods announcements to evict this one and then
    /// announces it again gains nothing.
    pub(super) fn held_by_announcement(&self, h: &H256, first: u64, now: u64) -> bool {
        self.announced
            .get(h)
            .is_some_and(|until| now < (*until).min(first.saturating_add(UNFINISHED_HOLD_MS)))
    }

    /// Whether this validator proposes transaction `h` of `sender`, first seen at `first`.
    pub(super) fn proposes(&self, h: &H256, sender: &AccountId, first: u64, turn: &Turn) -> bool {
        let now = turn.now;
        // Takeovers and the baseline's fallback wait for the queue ahead of the proposer that
        // should have proposed it, on top of their delays (see `queueing_allowance`).
        let waited = now
            .saturating_sub(first)
            .saturating_sub(2 * self.allowance.min(MAX_QUEUEING_ALLOWANCE_MS / 2));
        let held = self.held_by_announcement(h, first, now);
        match self.cfg.mode {
            Mode::Leaderless => {
                (turn.submitted_here)(h)
                    || (!held
                        && ((waited >= self.cfg.owner_delay_ms
                            && Self::partition_owner(turn.membership, sender) == turn.me)
                            || waited >= self.cfg.anyone_delay_ms))
            }
            // The primary proposes everything. Gossip to it is best effort (Substrate's
            // transactions protocol drops what arrives while 8,192 are pending validation, and
            // sends a transaction to a peer once), so a client's transaction no batch has carried
            // `anyone_delay_ms` after it arrived is proposed by the validator it was submitted to.
            // The delay grows by twice how long our clients' transactions lately waited for the
            // primary's announcement, as a leaderless takeover grows by the receiver's queue.
            // An announcement holds the fallback back as it holds a takeover (see `announced`).
            Mode::Leader => {
                turn.primary == turn.me
                    || ((turn.submitted_here)(h) && waited >= self.cfg.anyone_delay_ms && !held)
            }
        }
    }
}

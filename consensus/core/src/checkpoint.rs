//! Checkpoint-candidate rules (protocol.md, "Checkpoints" and "Fences").
//!
//! - A correct replica replies only to a candidate from leader(b, v), at most one per (b, v),
//!   only when b = last committed index + 1 and base = its own K_(b-1); otherwise it buffers the
//!   candidate (bounded look-ahead) and never drops a valid-looking one. leader(b, v) depends on
//!   the [`Rotation`] in force for b, known once K_(b-1) commits, so a candidate for a later
//!   index is buffered on its signer's membership alone and judged when its turn comes.
//! - Vote for a candidate only if prev timestamp < ts <= now + drift.
//! - CONS_ckpt never decides Noop; when it decides, every other candidate for b is decided Noop.

use crate::membership::Membership;
use crate::rotation::Rotation;
use crate::types::*;

/// How far ahead (in block indices) candidates are buffered.
pub const MAX_INDEX_AHEAD: u64 = 4;
/// How far ahead (in views) candidates are accepted.
pub const MAX_VIEW_AHEAD: View = 8;

/// What to do with an announced candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateAction {
    /// Reply now.
    Reply,
    /// Keep it until K_(b-1) commits locally.
    Buffer,
    /// Stale, from a non-leader, or too far ahead.
    Ignore,
}

/// Classify a candidate header (`kind` must be `Checkpoint`). `current_view` is our view of
/// CONS_ckpt(b) (0 when unknown); `rotation` is the one in force for `last_committed + 1`.
pub fn classify(
    m: &Membership,
    h: &BatchHeader,
    last_committed: BlockIndex,
    k_prev: &CommandId,
    current_view: View,
    rotation: &Rotation,
) -> CandidateAction {
    let BatchKind::Checkpoint { index, view, .. } = h.kind else {
        return CandidateAction::Ignore;
    };
    if h.epoch != m.epoch || !m.contains(&h.proposer) || h.seq != 0 || !h.access.is_empty() {
        return CandidateAction::Ignore;
    }
    if index <= last_committed || index > last_committed + MAX_INDEX_AHEAD {
        return CandidateAction::Ignore;
    }
    if view > current_view.saturating_add(MAX_VIEW_AHEAD) {
        return CandidateAction::Ignore;
    }
    if index > last_committed + 1 {
        return CandidateAction::Buffer;
    }
    if h.proposer != rotation.leader(m, index, view) || h.base != *k_prev {
        return CandidateAction::Ignore;
    }
    CandidateAction::Reply
}

/// The timestamp rule for voting.
pub fn timestamp_ok(prev_ts: u64, ts: u64, now_ms: u64, drift_ms: u64) -> bool {
    prev_ts < ts && ts <= now_ms.saturating_add(drift_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(m: &Membership, index: u64, view: View, base: CommandId) -> BatchHeader {
        BatchHeader {
            epoch: 0,
            proposer: Rotation::fresh(0).leader(m, index, view),
            seq: 0,
            base,
            kind: BatchKind::Checkpoint {
                index,
                view,
                timestamp_ms: 5,
                floors: vec![],
            },
            access: vec![],
            txs_root: [0; 32],
            weight: 0,
        }
    }

    #[test]
    fn rules() {
        let m = Membership::for_tests(4);
        let r = Rotation::fresh(0);
        assert_eq!(
            classify(&m, &cand(&m, 3, 0, [7; 32]), 2, &[7; 32], 0, &r),
            CandidateAction::Reply
        );
        assert_eq!(
            classify(&m, &cand(&m, 3, 0, [8; 32]), 2, &[7; 32], 0, &r),
            CandidateAction::Ignore
        );
        assert_eq!(
            classify(&m, &cand(&m, 4, 0, [8; 32]), 2, &[7; 32], 0, &r),
            CandidateAction::Buffer
        );
        assert_eq!(
            classify(&m, &cand(&m, 2, 0, [7; 32]), 2, &[7; 32], 0, &r),
            CandidateAction::Ignore
        );
        let mut wrong = cand(&m, 3, 0, [7; 32]);
        wrong.proposer = r.leader(&m, 3, 1);
        assert_eq!(
            classify(&m, &wrong, 2, &[7; 32], 0, &r),
            CandidateAction::Ignore
        );
        // With the view-0 leader of index 3 suspended, the next validator leads view 0.
        let skipping = Rotation {
            epoch: 0,
            suspended: [(
                3,
                crate::rotation::Suspension {
                    misses: 1,
                    through: 9,
                },
            )]
            .into(),
        };
        assert_eq!(skipping.leader(&m, 3, 0), r.leader(&m, 3, 1));
        assert_eq!(
            classify(&m, &wrong, 2, &[7; 32], 0, &skipping),
            CandidateAction::Reply
        );
        // A later index is buffered whoever the member is; a non-member is ignored.
        let mut ahead = cand(&m, 4, 0, [8; 32]);
        ahead.proposer = [3; 32];
        assert_eq!(
            classify(&m, &ahead, 2, &[7; 32], 0, &r),
            CandidateAction::Buffer
        );
        ahead.proposer = [9; 32];
        assert_eq!(
            classify(&m, &ahead, 2, &[7; 32], 0, &r),
            CandidateAction::Ignore
        );
        assert!(timestamp_ok(10, 11, 5, 10));
        assert!(!timestamp_ok(10, 10, 50, 10));
        assert!(
            !timestamp_ok(10, 100, 50, 10),
            "a timestamp far ahead is refused"
        );
    }
}

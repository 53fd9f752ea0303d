//! One single-shot PBFT instance (Castro-Liskov, OSDI 1999), used once per Txs command (CONS_c)
//! and once per block index (CONS_ckpt(b)).
//!
//! Invariants:
//! - a replica sends at most one Prepare and one Commit per (instance, view), both persisted
//!   before being sent (enforced by the replica through [`Instance::my_votes`]);
//! - Commit is sent only after q matching Prepares for the pre-prepare accepted in that view;
//! - decided iff q matching Commits in one view (S1 agreement follows from quorum intersection);
//! - locking (S9): after a view change, the value is the highest prepared value reported in the
//!   q view changes; Noop (or a fresh value) is allowed only when none reported one.

use crate::crypto::Signed;
use crate::types::*;
use crate::wire::{Decision, Phase, PrePrepareBody, PreparedCert, ViewChangeBody, VoteBody};
use std::collections::{BTreeMap, BTreeSet};

/// Per-instance state.
#[derive(Clone, Debug, Default)]
pub struct Instance {
    /// Current view.
    pub view: View,
    /// Waiting for a NewView in `view`.
    pub in_view_change: bool,
    /// Pre-prepare accepted per view.
    pub accepted: BTreeMap<View, Signed<PrePrepareBody>>,
    /// Digest of the accepted value per view.
    pub accepted_digest: BTreeMap<View, Digest>,
    /// Known values by digest.
    pub values: BTreeMap<Digest, Value>,
    /// Votes received: (view, phase) -> signer -> vote.
    pub votes: BTreeMap<(View, Phase), BTreeMap<ValidatorId, Signed<VoteBody>>>,
    /// Our own votes.
    pub my_votes: BTreeMap<(View, Phase), Signed<VoteBody>>,
    /// Highest prepared certificate we hold.
    pub prepared: Option<PreparedCert>,
    /// View changes received: new_view -> signer -> vc.
    pub vcs: BTreeMap<View, BTreeMap<ValidatorId, Signed<ViewChangeBody>>>,
    /// Our view changes.
    pub my_vcs: BTreeMap<View, Signed<ViewChangeBody>>,
    /// Views for which we (as leader) already acted on q view changes.
    pub led: BTreeSet<View>,
    /// The q view changes we based our NewView on, per view (fixed once chosen).
    pub lead_vcs: BTreeMap<View, Vec<Signed<ViewChangeBody>>>,
    /// Our own pre-prepares as leader.
    pub my_preprepares: BTreeMap<View, Signed<PrePrepareBody>>,
    /// The decision, once known.
    pub decided: Option<Decision>,
    /// Pre-prepares waiting for a payload or a checkpoint decision.
    pub parked: Vec<(ValidatorId, Signed<PrePrepareBody>)>,
    /// Virtual time of the last progress (for retransmission).
    pub last_progress_ms: u64,
    /// When to resend our messages of the current view (progress restarts the wait).
    pub resend: crate::backoff::Backoff,
    /// Is the recovery timer for the current view armed?
    pub timer_armed: bool,
    /// When this replica entered its current view (view 0: when it first armed a timer for it).
    pub view_began_ms: Option<u64>,
    /// When it entered the view before (a later view's leader counts as silent only if it had
    /// been silent for a checkpoint timeout already then).
    pub prev_view_began_ms: Option<u64>,
}

impl Instance {
    /// Count votes for (view, phase, digest).
    pub fn count(&self, view: View, phase: Phase, digest: &Digest) -> usize {
        self.votes
            .get(&(view, phase))
            .map(|m| m.values().filter(|v| v.body.value == *digest).count())
            .unwrap_or(0)
    }
    /// The matching votes for (view, phase, digest), sorted by signer.
    pub fn matching(&self, view: View, phase: Phase, digest: &Digest) -> Vec<Signed<VoteBody>> {
        self.votes
            .get(&(view, phase))
            .map(|m| {
                m.values()
                    .filter(|v| v.body.value == *digest)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Record a vote. Returns a conflicting earlier vote of the same signer (equivocation).
    pub fn add_vote(&mut self, v: Signed<VoteBody>) -> Option<Signed<VoteBody>> {
        let slot = self.votes.entry((v.body.view, v.body.phase)).or_default();
        match slot.get(&v.signer) {
            Some(old) if old.body.value != v.body.value => Some(old.clone()),
            Some(_) => None,
            None => {
                slot.insert(v.signer, v);
                None
            }
        }
    }
    /// Record a prepared certificate if higher than the one held.
    pub fn note_prepared(&mut self, cert: PreparedCert) {
        if self
            .prepared
            .as_ref()
            .map(|c| cert.view > c.view)
            .unwrap_or(true)
        {
            self.prepared = Some(cert);
        }
    }
    /// Move to view `v` at `now` if it is above the current one, noting when each view began.
    pub fn enter_view(&mut self, v: View, now: u64) {
        if v > self.view {
            self.prev_view_began_ms = self.view_began_ms.or(Some(now));
            self.view_began_ms = Some(now);
            self.view = v;
        }
    }
    /// Distinct members asking for view `v` or a later one (ourselves included once we asked):
    /// when q do, at least f+1 correct replicas have reached `v`, and a view change for `v`
    /// is no longer ours alone (its timer may count, see `Replica::on_timer`).
    pub fn asking_from(&self, v: View) -> usize {
        let mut who: BTreeSet<&ValidatorId> = BTreeSet::new();
        for m in self.vcs.range(v..).map(|(_, m)| m) {
            who.extend(m.keys());
        }
        who.len()
    }
    /// Whether we are in a view change that fewer than `q` members asked for (ourselves
    /// included): its timer must not count yet, whatever arms it (see `Replica::on_timer`).
    pub fn waiting_for_quorum(&self, q: usize) -> bool {
        self.in_view_change && self.asking_from(self.view) < q
    }
    /// View changes received asking for view `v`.
    pub fn vcs_for(&self, v: View) -> usize {
        self.vcs.get(&v).map_or(0, |m| m.len())
    }
    /// Distinct signers asking for views above `view`, with the highest view each asked.
    pub fn higher_vcs(&self, view: View) -> BTreeMap<ValidatorId, View> {
        let mut out: BTreeMap<ValidatorId, View> = BTreeMap::new();
        for (v, m) in self.vcs.range(view + 1..) {
            for s in m.keys() {
                let e = out.entry(*s).or_insert(*v);
                *e = (*e).max(*v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;

    fn vote(who: u8, view: View, d: u8) -> Signed<VoteBody> {
        Signed::sign(
            VoteBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                view,
                phase: Phase::Prepare,
                value: [d; 32],
            },
            &[0; 32],
            &InsecureTestCrypto([who; 32]),
        )
    }

    #[test]
    fn counting_and_equivocation() {
        let mut i = Instance::default();
        assert!(i.add_vote(vote(1, 0, 7)).is_none());
        assert!(
            i.add_vote(vote(1, 0, 7)).is_none(),
            "duplicates are harmless"
        );
        assert!(i.add_vote(vote(2, 0, 7)).is_none());
        assert!(
            i.add_vote(vote(1, 0, 8)).is_some(),
            "a second value is an equivocation"
        );
        assert_eq!(i.count(0, Phase::Prepare, &[7; 32]), 2);
        assert_eq!(i.matching(0, Phase::Prepare, &[7; 32]).len(), 2);
        assert_eq!(
            i.count(1, Phase::Prepare, &[7; 32]),
            0,
            "views are counted apart"
        );
    }

    fn view_change(who: u8, new_view: View) -> Signed<ViewChangeBody> {
        Signed::sign(
            ViewChangeBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                new_view,
                prepared: None,
                has_payload: false,
            },
            &[0; 32],
            &InsecureTestCrypto([who; 32]),
        )
    }

    fn held(i: &mut Instance, who: u8, view: View) {
        i.vcs
            .entry(view)
            .or_default()
            .insert([who; 32], view_change(who, view));
    }

    #[test]
    fn views_only_go_up_and_remember_when_they_began() {
        let mut i = Instance::default();
        i.enter_view(0, 5);
        assert_eq!((i.view, i.view_began_ms), (0, None), "not above view 0");
        i.enter_view(2, 100);
        assert_eq!(
            (i.view, i.view_began_ms, i.prev_view_began_ms),
            (2, Some(100), Some(100))
        );
        i.enter_view(1, 200);
        assert_eq!(i.view, 2, "never back");
        i.enter_view(3, 300);
        assert_eq!(
            (i.view_began_ms, i.prev_view_began_ms),
            (Some(300), Some(100))
        );
    }

    #[test]
    fn who_asks_for_a_view_counts_each_member_once_from_that_view_on() {
        let mut i = Instance::default();
        held(&mut i, 1, 1);
        held(&mut i, 2, 1);
        held(&mut i, 2, 3);
        held(&mut i, 3, 2);
        assert_eq!(i.asking_from(1), 3);
        assert_eq!(i.asking_from(2), 2);
        assert_eq!(i.vcs_for(1), 2);
        assert_eq!(
            i.higher_vcs(1),
            BTreeMap::from([([2; 32], 3), ([3; 32], 2)]),
            "above view 1: each signer's highest"
        );
        i.view = 2;
        i.in_view_change = true;
        assert!(i.waiting_for_quorum(3), "two ask from view 2 on");
        assert!(!i.waiting_for_quorum(2));
    }

    #[test]
    fn only_a_higher_prepared_certificate_replaces_the_one_held() {
        let cert = |view| PreparedCert {
            view,
            value: Value::Noop,
            votes: vec![],
        };
        let mut i = Instance::default();
        i.note_prepared(cert(2));
        i.note_prepared(cert(1));
        assert_eq!(i.prepared.as_ref().map(|c| c.view), Some(2));
        i.note_prepared(cert(4));
        assert_eq!(i.prepared.as_ref().map(|c| c.view), Some(4));
    }
}

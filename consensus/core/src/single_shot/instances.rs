//! The instances of one replica: the live ones, and the decisions of collected ones kept a few
//! blocks for laggards.

use super::instance::Instance;

use crate::storage::{Key, StorageOp};
use crate::types::*;
use crate::wire::{Decision, Message, Phase, SignedBatch};
use std::collections::{BTreeMap, BTreeSet};

/// A decision of a collected instance: the block it was collected at, the decision, and the
/// payload its value names.
type OldDecision = (BlockIndex, Decision, Option<SignedBatch>);

/// The instances of one replica.
#[derive(Debug, Default)]
pub struct Instances {
    live: BTreeMap<InstanceId, Instance>,
    old: BTreeMap<InstanceId, OldDecision>,
}

impl Instances {
    /// Live instances.
    pub fn len(&self) -> usize {
        self.live.len()
    }
    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
    /// Decisions kept for collected instances.
    pub fn old_len(&self) -> usize {
        self.old.len()
    }
    /// The state of `inst`, if live.
    pub fn get(&self, inst: &InstanceId) -> Option<&Instance> {
        self.live.get(inst)
    }
    /// The state of `inst`, if live.
    pub fn get_mut(&mut self, inst: &InstanceId) -> Option<&mut Instance> {
        self.live.get_mut(inst)
    }
    /// The state of `inst`, created empty if not live (callers check first that a peer's
    /// message may create it).
    pub fn entry(&mut self, inst: InstanceId) -> &mut Instance {
        self.live.entry(inst).or_default()
    }
    /// Whether `inst` is live.
    pub fn contains(&self, inst: &InstanceId) -> bool {
        self.live.contains_key(inst)
    }
    /// Every live instance, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&InstanceId, &Instance)> {
        self.live.iter()
    }
    /// The ids of the live instances, in order.
    pub fn ids(&self) -> impl Iterator<Item = &InstanceId> {
        self.live.keys()
    }
    /// The ids of the live instances of (proposer, seq).
    pub fn ids_in_slot(&self, proposer: ValidatorId, seq: Seq) -> BTreeSet<CommandId> {
        let slot = |id| InstanceId::Cmd { proposer, seq, id };
        self.live
            .range(slot([0; 32])..=slot([0xff; 32]))
            .filter_map(|(i, _)| match i {
                InstanceId::Cmd { id, .. } => Some(*id),
                InstanceId::Ckpt(_) => None,
            })
            .collect()
    }
    /// Remove one instance of (proposer, seq) that nothing but peers' messages made: we never
    /// voted, asked for a view change, proposed, prepared or armed a timer in it. Returns
    /// whether one went. It makes room in a slot others filled with made-up ids when the slot's
    /// own proposer names its id.
    pub fn evict_idle(&mut self, proposer: ValidatorId, seq: Seq) -> bool {
        let slot = |id| InstanceId::Cmd { proposer, seq, id };
        let idle = self
            .live
            .range(slot([0; 32])..=slot([0xff; 32]))
            .find(|(_, st)| {
                !st.timer_armed
                    && st.my_votes.is_empty()
                    && st.my_vcs.is_empty()
                    && st.my_preprepares.is_empty()
                    && st.prepared.is_none()
                    && st.decided.is_none()
                    && st.parked.is_empty()
            })
            .map(|(i, _)| *i);
        idle.is_some_and(|i| self.live.remove(&i).is_some())
    }
    /// Forget which instances have a view timer armed: after a restart the timers set while
    /// replaying are gone, so [`crate::Replica::start`] arms them afresh.
    pub fn disarm_all(&mut self) {
        for st in self.live.values_mut() {
            st.timer_armed = false;
        }
    }
    /// Live checkpoint instances up to index `b`.
    pub fn checkpoints_upto(&self, b: BlockIndex) -> Vec<InstanceId> {
        self.live
            .range(InstanceId::Ckpt(0)..=InstanceId::Ckpt(b))
            .map(|(i, _)| *i)
            .collect()
    }
    /// Live instances with parked pre-prepares.
    pub fn with_parked(&self) -> Vec<InstanceId> {
        self.live
            .iter()
            .filter(|(_, s)| !s.parked.is_empty())
            .map(|(i, _)| *i)
            .collect()
    }
    /// The decision of a collected instance and its payload.
    pub fn old_decision(&self, inst: &InstanceId) -> Option<(Decision, Option<SignedBatch>)> {
        self.old.get(inst).map(|(_, d, p)| (d.clone(), p.clone()))
    }

    /// Collect `inst` at block `at_block`: its state goes, its decision (with the payload
    /// `payload_of` finds for its value) is kept for laggards. Returns the view it had reached,
    /// if live, and the deletes of everything persisted for it.
    pub fn retire(
        &mut self,
        inst: InstanceId,
        at_block: BlockIndex,
        payload_of: impl Fn(&Value) -> Option<SignedBatch>,
    ) -> (Option<View>, Vec<StorageOp>) {
        let Some(st) = self.live.remove(&inst) else {
            return (None, persisted(inst, None));
        };
        if let Some(d) = st.decided {
            let payload = payload_of(&d.value);
            self.old.insert(inst, (at_block, d, payload));
        }
        (Some(st.view), persisted(inst, Some(st.view)))
    }

    /// What to send again, and to whom (`None`: every other member), for the undecided
    /// instances whose resend is due at `now` on a retransmission tick of `period` (of
    /// checkpoints, only the current one, `next_checkpoint`): our view change while in one, else
    /// our pre-prepare (with the payload `payload_of` finds) to the members of `members` not
    /// known to hold it, and our votes of the current view. An instance is due `first` (the
    /// period, or the measured round trip when longer) after its last progress, then after
    /// twice as long as the wait before, up to [`crate::backoff::Backoff::longest_wait`]: on a
    /// saturated link, resending everything stalled on every tick multiplied the traffic that
    /// stalled it.
    pub fn stalled_messages(
        &mut self,
        now: u64,
        (period, first): (u64, u64),
        next_checkpoint: BlockIndex,
        members: &[ValidatorId],
        payload_of: impl Fn(&Value) -> Option<SignedBatch>,
    ) -> Vec<(Option<ValidatorId>, Message)> {
        let mut msgs = vec![];
        for (inst, st) in &mut self.live {
            if st.decided.is_some() || matches!(inst, InstanceId::Ckpt(b) if *b != next_checkpoint)
            {
                continue;
            }
            let progress = st.last_progress_ms;
            if !st.resend.due(now, progress, progress, period, first) {
                continue;
            }
            if st.in_view_change {
                if let Some(vc) = st.my_vcs.get(&st.view) {
                    msgs.push((None, Message::ViewChange(vc.clone())));
                }
                continue;
            }
            if let Some(pp) = st.my_preprepares.get(&st.view) {
                // A member that voted in this view accepted the pre-prepare: it holds both.
                let voted = |v: &ValidatorId| {
                    [Phase::Prepare, Phase::Commit].iter().any(|ph| {
                        st.votes
                            .get(&(st.view, *ph))
                            .is_some_and(|m| m.contains_key(v))
                    })
                };
                let lacking: Vec<ValidatorId> =
                    members.iter().filter(|v| !voted(v)).copied().collect();
                if !lacking.is_empty() {
                    let payload = payload_of(&pp.body.value);
                    for v in lacking {
                        msgs.push((Some(v), Message::PrePrepare(pp.clone(), payload.clone())));
                    }
                }
            }
            for ph in [Phase::Prepare, Phase::Commit] {
                if let Some(v) = st.my_votes.get(&(st.view, ph)) {
                    msgs.push((None, Message::Vote(v.clone())));
                }
            }
        }
        msgs
    }

    /// Forget the decisions of instances collected before block `keep_from`.
    pub fn trim_old(&mut self, keep_from: BlockIndex) {
        self.old.retain(|_, (at, _, _)| *at >= keep_from);
    }
}

/// The deletes of what is persisted for `inst`: its decision and prepared certificate, and its
/// votes, view changes and pre-prepares in every view up to `view` (if it was live).
pub fn persisted(inst: InstanceId, view: Option<View>) -> Vec<StorageOp> {
    let mut ops = vec![
        StorageOp::Delete(Key::Decision(inst)),
        StorageOp::Delete(Key::Prepared(inst)),
    ];
    if let Some(view) = view {
        for v in 0..=view {
            ops.push(StorageOp::Delete(Key::Vote(inst, v, Phase::Prepare)));
            ops.push(StorageOp::Delete(Key::Vote(inst, v, Phase::Commit)));
            ops.push(StorageOp::Delete(Key::ViewChange(inst, v)));
            ops.push(StorageOp::Delete(Key::PrePrepare(inst, v)));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(seq: Seq, id: u8) -> InstanceId {
        InstanceId::Cmd {
            proposer: [1; 32],
            seq,
            id: [id; 32],
        }
    }

    #[test]
    fn retiring_keeps_the_decision_and_deletes_every_view() {
        let mut s = Instances::default();
        let inst = cmd(0, 1);
        let st = s.entry(inst);
        st.view = 2;
        st.decided = Some(Decision {
            inst,
            value: Value::Noop,
            cert: vec![],
        });
        let (view, ops) = s.retire(inst, 5, |_| None);
        assert_eq!(view, Some(2));
        assert_eq!(ops.len(), 2 + 3 * 4);
        assert!(!s.contains(&inst));
        assert!(s.old_decision(&inst).is_some());
        s.trim_old(5);
        assert!(s.old_decision(&inst).is_some());
        s.trim_old(6);
        assert!(s.old_decision(&inst).is_none());
        let (view, ops) = s.retire(cmd(1, 1), 5, |_| None);
        assert_eq!(
            (view, ops.len()),
            (None, 2),
            "not live: decision and certificate only"
        );
    }

    #[test]
    fn stalled_instances_resend_their_view_change_or_votes() {
        use crate::crypto::{InsecureTestCrypto, Signed};
        use crate::wire::{ViewChangeBody, VoteBody};
        let key = InsecureTestCrypto([1; 32]);
        let mut s = Instances::default();
        let voting = cmd(0, 1);
        let vote = Signed::sign(
            VoteBody {
                epoch: 0,
                inst: voting,
                view: 0,
                phase: Phase::Prepare,
                value: [0; 32],
            },
            &[0; 32],
            &key,
        );
        s.entry(voting).my_votes.insert((0, Phase::Prepare), vote);
        let changing = cmd(1, 1);
        let vc = Signed::sign(
            ViewChangeBody {
                epoch: 0,
                inst: changing,
                new_view: 1,
                prepared: None,
                has_payload: false,
            },
            &[0; 32],
            &key,
        );
        let st = s.entry(changing);
        st.view = 1;
        st.in_view_change = true;
        st.my_vcs.insert(1, vc);
        s.entry(cmd(2, 1)).last_progress_ms = 500;
        s.entry(InstanceId::Ckpt(3)).my_vcs.clear();
        let members = [[1; 32], [2; 32], [3; 32], [4; 32]];
        let msgs = s.stalled_messages(1_000, (1_000, 1_000), 1, &members, |_| None);
        assert_eq!(msgs.len(), 2);
        assert!(matches!(msgs[0], (None, Message::Vote(_))));
        assert!(matches!(msgs[1], (None, Message::ViewChange(_))));
        let again =
            |s: &mut Instances, now| s.stalled_messages(now, (1_000, 1_000), 1, &members, |_| None);
        assert!(
            again(&mut s, 1_999).is_empty(),
            "cmd(2, 1) progressed at 500"
        );
        // Then every instance waits twice as long after each resend, up to eight periods.
        assert_eq!(again(&mut s, 2_999).len(), 0);
        assert_eq!(again(&mut s, 3_000).len(), 2);
        assert_eq!(again(&mut s, 6_999).len(), 0);
        assert_eq!(again(&mut s, 7_000).len(), 2);
        assert_eq!(again(&mut s, 14_999).len(), 0);
        assert_eq!(again(&mut s, 15_000).len(), 2);
        assert_eq!(again(&mut s, 22_999).len(), 0);
        assert_eq!(again(&mut s, 23_000).len(), 2);
        // Progress restarts the wait at one period.
        s.get_mut(&voting).expect("live").last_progress_ms = 23_500;
        let msgs = again(&mut s, 24_500);
        assert!(matches!(&msgs[..], [(None, Message::Vote(_))]), "{msgs:?}");
    }

    #[test]
    fn a_stalled_pre_prepare_goes_only_to_members_that_did_not_vote_in_its_view() {
        use crate::crypto::{InsecureTestCrypto, Signed};
        use crate::wire::{PrePrepareBody, VoteBody};
        let keys: Vec<InsecureTestCrypto> =
            (1..=4u8).map(|i| InsecureTestCrypto([i; 32])).collect();
        let members: Vec<ValidatorId> = (1..=4u8).map(|i| [i; 32]).collect();
        let inst = cmd(1, 1);
        let value = Value::Noop;
        let pp = Signed::sign(
            PrePrepareBody {
                epoch: 0,
                inst,
                view: 0,
                value: value.clone(),
                proof: vec![],
                new_view: vec![],
            },
            &[0; 32],
            &keys[0],
        );
        let mut s = Instances::default();
        let st = s.entry(inst);
        st.my_preprepares.insert(0, pp);
        for (k, ph) in [(1, Phase::Prepare), (2, Phase::Commit)] {
            let v = Signed::sign(
                VoteBody {
                    epoch: 0,
                    inst,
                    view: 0,
                    phase: ph,
                    value: value.digest(),
                },
                &[0; 32],
                &keys[k],
            );
            st.add_vote(v);
        }
        let to: Vec<Option<u8>> = s
            .stalled_messages(1_000, (1_000, 1_000), 1, &members, |_| None)
            .into_iter()
            .map(|(to, m)| {
                assert!(matches!(m, Message::PrePrepare(..)));
                to.map(|v| v[0])
            })
            .collect();
        // Validators 2 and 3 voted; 1 (ourselves: the caller skips it) and 4 did not.
        assert_eq!(to, vec![Some(1), Some(4)]);
    }

    #[test]
    fn slots_and_checkpoints_are_counted_apart() {
        let mut s = Instances::default();
        s.entry(cmd(3, 1));
        s.entry(cmd(3, 2));
        s.entry(cmd(4, 1));
        s.entry(InstanceId::Ckpt(1));
        s.entry(InstanceId::Ckpt(3));
        assert_eq!(s.ids_in_slot([1; 32], 3).len(), 2);
        assert!(s.ids_in_slot([2; 32], 3).is_empty());
        assert_eq!(s.checkpoints_upto(2), vec![InstanceId::Ckpt(1)]);
        assert_eq!(s.len(), 5);
    }
}

//! Dependency collection, the proposer side of dependency discovery: for each batch we announce
//! (our own, our checkpoint candidate, or another's batch we lead a recovery view for), gather
//! signed replies until a quorum's dependencies make the value to propose (protocol.md,
//! "Dependency discovery").
//!
//! A reply is checked at the door, in order: it names the collected batch under the header it
//! announces (never an id under another proposer or seq), its signer is a member that has not
//! replied yet (a second, different reply is an equivocation), its dependency list is within
//! the window bounds, and only then its signature. A reply whose fence is a checkpoint ahead of
//! ours is parked until we catch up, so no quorum mixes fences we cannot judge.

use crate::backoff::{Backoff, RoundTrip};
use crate::crypto::{Signed, Verifier};
use crate::membership::Membership;
use crate::types::*;
use crate::validity::{check_reply_shape, value_from_replies};
use crate::wire::*;
use std::collections::BTreeMap;

/// One batch being collected for.
#[derive(Clone, Debug)]
struct Collect {
    batch: SignedBatch,
    dep: DepRef,
    inst: InstanceId,
    replies: BTreeMap<ValidatorId, Signed<ReplyBody>>,
    parked: Vec<Signed<ReplyBody>>,
    /// View to propose in, None once proposed (or not leading).
    view: Option<View>,
    /// The view changes that justify proposing in a view above 0.
    new_view: Vec<Signed<ViewChangeBody>>,
    /// When to announce it again (a new reply is progress).
    resend: Backoff,
    /// When we first announced it, if it is our own batch timed for the round trip.
    timed_from: Option<u64>,
    /// When its last reply was counted or parked.
    heard_ms: Option<u64>,
    /// A timed batch: when each member's first reply arrived (members only, so bounded).
    heard_from: BTreeMap<ValidatorId, u64>,
}

/// What a quorum of replies to one of our own batches measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumTiming {
    /// The round trip to the quorum, unless the batch was announced again (Karn's rule).
    pub round_trip: Option<u64>,
    /// Each member other than us whose reply counted: how long after our first announcement it
    /// arrived (over a resend too: what matters is when we held it).
    pub replies: Vec<(ValidatorId, u64)>,
    /// The batch's bytes.
    pub bytes: u64,
}

/// What a reply did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Not for a batch we collect for, out of bounds, a duplicate or unsigned: dropped.
    Dropped,
    /// Its signer replied differently before: both replies, for a misbehaviour proof.
    Equivocation(Box<Signed<ReplyBody>>, Box<Signed<ReplyBody>>),
    /// Its fence is ahead of our checkpoints: kept until they catch up.
    Parked,
    /// Counted.
    Counted,
}

/// What to propose once a quorum replied.
#[derive(Debug)]
pub struct Proposal {
    /// The instance.
    pub inst: InstanceId,
    /// The view to propose in.
    pub view: View,
    /// The value the replies make.
    pub value: Value,
    /// The quorum of replies that justify it.
    pub proof: Vec<Signed<ReplyBody>>,
    /// The view changes that justify a view above 0.
    pub new_view: Vec<Signed<ViewChangeBody>>,
    /// The batch, sent along when voters may not hold it (recovery views, checkpoints).
    pub payload: Option<SignedBatch>,
}

/// The limits a reply is judged against.
pub struct ReplyLimits<'a> {
    /// The validator set.
    pub membership: &'a Membership,
    /// Checks reply signatures.
    pub verifier: &'a dyn Verifier,
    /// W.
    pub window: u64,
    /// The last checkpoint decided here (a fence above the next one parks the reply).
    pub last_checkpoint: BlockIndex,
    /// Whether a dependency a checkpoint candidate's reply names is within reach of our
    /// window (a correct leader takes no reply naming one beyond).
    pub within_reach: &'a dyn Fn(&DepRef) -> bool,
    /// The time now.
    pub now: u64,
}

/// The batches being collected for.
#[derive(Debug, Default)]
pub struct Collector {
    collects: BTreeMap<CommandId, Collect>,
    /// How long our own batches take to gather a quorum of replies.
    round_trip: RoundTrip,
}

impl Collector {
    /// Collect for `batch` as instance `inst` in `view`, justified by `new_view` (replies
    /// already counted for it are kept).
    pub fn open(
        &mut self,
        batch: SignedBatch,
        inst: InstanceId,
        view: View,
        new_view: Vec<Signed<ViewChangeBody>>,
    ) {
        let c = self.collects.entry(batch.id()).or_insert_with(|| Collect {
            dep: batch.header.body.dep_ref(),
            batch,
            inst,
            replies: BTreeMap::new(),
            parked: vec![],
            view: None,
            new_view: vec![],
            resend: Backoff::default(),
            timed_from: None,
            heard_ms: None,
            heard_from: BTreeMap::new(),
        });
        c.view = Some(view);
        c.new_view = new_view;
    }

    /// Time `id`, just announced for the first time, to a quorum of replies: a round-trip
    /// sample ([`RoundTrip`]).
    pub fn time(&mut self, id: &CommandId, now: u64) {
        if let Some(c) = self.collects.get_mut(id) {
            c.timed_from = Some(now);
        }
    }

    /// The round trip our own batches' quorums measured ([`RoundTrip`]).
    pub fn round_trip(&self) -> RoundTrip {
        self.round_trip
    }

    /// The batches still collecting replies (announced again at a restart).
    pub fn to_announce(&self) -> Vec<SignedBatch> {
        self.collects
            .values()
            .filter(|c| c.view.is_some())
            .map(|c| c.batch.clone())
            .collect()
    }

    /// The batches still collecting replies whose announcement is due again at `now` on a
    /// retransmission tick of `period` ([`Backoff`]: a new reply restarts the wait), each with
    /// the members of `members` that have not replied: one that replied holds the batch.
    pub fn to_announce_again(
        &mut self,
        now: u64,
        period: u64,
        members: &[ValidatorId],
    ) -> Vec<(SignedBatch, Vec<ValidatorId>)> {
        let mut due = vec![];
        let first = self.round_trip.first_wait(period);
        for c in self.collects.values_mut().filter(|c| c.view.is_some()) {
            let heard = (c.replies.len() + c.parked.len()) as u64;
            let since = c.heard_ms.or(c.timed_from).unwrap_or(0);
            if !c.resend.due(now, heard, since, period, first) {
                continue;
            }
            let silent: Vec<ValidatorId> = members
                .iter()
                .filter(|v| {
                    !c.replies.contains_key(*v) && !c.parked.iter().any(|r| r.signer == **v)
                })
                .copied()
                .collect();
            if !silent.is_empty() {
                due.push((c.batch.clone(), silent));
            }
        }
        due
    }

    /// Whether `id` collects for view `view` now.
    pub fn collecting(&self, id: &CommandId, view: View) -> bool {
        self.collects.get(id).is_some_and(|c| c.view == Some(view))
    }

    /// Stop collecting for `id` as `inst` (its view proposes something else).
    pub fn stop(&mut self, id: &CommandId, inst: &InstanceId) {
        if let Some(c) = self.collects.get_mut(id).filter(|c| c.inst == *inst) {
            c.view = None;
        }
    }

    /// Forget `id` (decided or collected).
    pub fn remove(&mut self, id: &CommandId) {
        self.collects.remove(id);
    }

    /// Forget the checkpoint candidates up to index `b` (decided).
    pub fn drop_checkpoints_upto(&mut self, b: BlockIndex) {
        self.collects
            .retain(|_, c| !matches!(c.inst, InstanceId::Ckpt(i) if i <= b));
    }

    /// Every parked reply, to be judged again (our checkpoints moved).
    pub fn take_parked(&mut self) -> Vec<Signed<ReplyBody>> {
        self.collects
            .values_mut()
            .flat_map(|c| std::mem::take(&mut c.parked))
            .collect()
    }

    /// Judge a reply (see the module docs for the order of the checks).
    pub fn on_reply(&mut self, r: Signed<ReplyBody>, limits: &ReplyLimits) -> ReplyOutcome {
        let m = limits.membership;
        let Some(c) = self.collects.get_mut(&r.body.cmd.id) else {
            return ReplyOutcome::Dropped;
        };
        if r.body.epoch != m.epoch || !m.contains(&r.signer) || r.body.cmd != c.dep {
            return ReplyOutcome::Dropped;
        }
        if let Some(old) = c.replies.get(&r.signer) {
            if old.body != r.body && r.verify(&m.genesis, limits.verifier) {
                return ReplyOutcome::Equivocation(Box::new(old.clone()), Box::new(r));
            }
            return ReplyOutcome::Dropped;
        }
        // One parked reply per signer: a member's signed replies with ever new fences ahead
        // would otherwise grow the list without bound.
        if c.parked.iter().any(|p| p.signer == r.signer) {
            return ReplyOutcome::Dropped;
        }
        if (c.replies.len() >= m.q() && c.view.is_none())
            || check_reply_shape(&r.body, limits.window, m).is_err()
            || (c.batch.header.body.is_checkpoint()
                && !r.body.deps.iter().all(|d| (limits.within_reach)(d)))
            || !r.verify(&m.genesis, limits.verifier)
        {
            return ReplyOutcome::Dropped;
        }
        c.heard_ms = Some(limits.now);
        if c.timed_from.is_some() {
            c.heard_from.entry(r.signer).or_insert(limits.now);
        }
        if r.body.fence > limits.last_checkpoint + 1 {
            c.parked.push(r);
            return ReplyOutcome::Parked;
        }
        c.replies.insert(r.signer, r);
        ReplyOutcome::Counted
    }

    /// The proposal for `id` once `q` replies are counted while collecting (collection for it
    /// then ends), with what the replies measured if it is our own batch, timed.
    pub fn ready(
        &mut self,
        id: &CommandId,
        q: usize,
        now: u64,
    ) -> Option<(Proposal, Option<QuorumTiming>)> {
        let c = self.collects.get_mut(id)?;
        let view = c.view?;
        if c.replies.len() < q {
            return None;
        }
        c.view = None;
        let timing = c.timed_from.take().map(|t| {
            let round_trip = (!c.resend.resent()).then(|| now.saturating_sub(t));
            let proposer = c.batch.header.body.proposer;
            let replies = c
                .replies
                .keys()
                .filter(|v| **v != proposer)
                .filter_map(|v| c.heard_from.get(v).map(|at| (*v, at.saturating_sub(t))))
                .collect();
            QuorumTiming {
                round_trip,
                replies,
                bytes: c.batch.header.body.weight,
            }
        });
        c.heard_from.clear();
        if let Some(rtt) = timing.as_ref().and_then(|t| t.round_trip) {
            self.round_trip.sample(rtt);
        }
        let proof: Vec<Signed<ReplyBody>> = c.replies.values().take(q).cloned().collect();
        let payload = (view > 0 || c.batch.header.body.is_checkpoint()).then(|| c.batch.clone());
        let proposal = Proposal {
            inst: c.inst,
            view,
            value: value_from_replies(&c.dep, &proof),
            proof,
            new_view: c.new_view.clone(),
            payload,
        };
        Some((proposal, timing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{InsecureTestCrypto, Signer};

    fn keys() -> Vec<InsecureTestCrypto> {
        (1..=4u8).map(|i| InsecureTestCrypto([i; 32])).collect()
    }

    fn members() -> Membership {
        Membership::new([0; 32], 1, keys().iter().map(|k| k.public()).collect())
    }

    fn batch(proposer: &InsecureTestCrypto, seq: Seq) -> SignedBatch {
        let txs: Vec<Tx> = vec![];
        let header = BatchHeader {
            epoch: 1,
            proposer: proposer.public(),
            seq,
            base: [0; 32],
            kind: BatchKind::Txs,
            access: vec![],
            txs_root: hash(&codec::Encode::encode(&txs)),
            weight: 0,
        };
        SignedBatch {
            header: Signed::sign(header, &[0; 32], proposer),
            txs: txs.into(),
        }
    }

    fn reply(by: &InsecureTestCrypto, cmd: DepRef, fence: BlockIndex) -> Signed<ReplyBody> {
        let body = ReplyBody {
            epoch: 1,
            cmd,
            pos: 0,
            deps: vec![],
            fence,
        };
        Signed::sign(body, &[0; 32], by)
    }

    fn limits<'a>(m: &'a Membership, v: &'a InsecureTestCrypto) -> ReplyLimits<'a> {
        ReplyLimits {
            membership: m,
            verifier: v,
            window: 16,
            last_checkpoint: 0,
            within_reach: &|_| true,
            now: 0,
        }
    }

    #[test]
    fn a_quorum_of_replies_makes_one_proposal() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let b = batch(&k[0], 0);
        let dep = b.header.body.dep_ref();
        c.open(b.clone(), dep.instance(), 0, vec![]);
        assert_eq!(c.to_announce(), vec![b.clone()]);
        for signer in &k[..2] {
            let r = reply(signer, dep, 1);
            assert_eq!(c.on_reply(r, &limits(&m, &k[0])), ReplyOutcome::Counted);
        }
        assert!(c.ready(&b.id(), m.q(), 0).is_none(), "q = 3");
        let r = reply(&k[2], dep, 1);
        assert_eq!(c.on_reply(r, &limits(&m, &k[0])), ReplyOutcome::Counted);
        let (p, _) = c.ready(&b.id(), m.q(), 0).expect("a quorum");
        assert_eq!((p.inst, p.view, p.proof.len()), (dep.instance(), 0, 3));
        assert!(p.payload.is_none(), "voters hold a view-0 batch");
        assert!(c.ready(&b.id(), m.q(), 0).is_none(), "proposed once");
        assert!(c.to_announce().is_empty());
    }

    #[test]
    fn a_reply_under_another_header_is_dropped() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let b = batch(&k[0], 0);
        c.open(b.clone(), b.header.body.dep_ref().instance(), 0, vec![]);
        let mut misnamed = b.header.body.dep_ref();
        misnamed.proposer = k[1].public();
        let r = reply(&k[1], misnamed, 1);
        assert_eq!(c.on_reply(r, &limits(&m, &k[0])), ReplyOutcome::Dropped);
    }

    #[test]
    fn a_second_different_reply_is_an_equivocation() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let b = batch(&k[0], 0);
        let dep = b.header.body.dep_ref();
        c.open(b, dep.instance(), 0, vec![]);
        let first = reply(&k[1], dep, 1);
        assert_eq!(
            c.on_reply(first.clone(), &limits(&m, &k[0])),
            ReplyOutcome::Counted
        );
        assert_eq!(
            c.on_reply(first.clone(), &limits(&m, &k[0])),
            ReplyOutcome::Dropped
        );
        let second = reply(&k[1], dep, 0);
        assert_eq!(
            c.on_reply(second.clone(), &limits(&m, &k[0])),
            ReplyOutcome::Equivocation(Box::new(first), Box::new(second))
        );
    }

    #[test]
    fn a_fence_ahead_is_parked_until_taken() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let b = batch(&k[0], 0);
        let dep = b.header.body.dep_ref();
        c.open(b, dep.instance(), 0, vec![]);
        let r = reply(&k[1], dep, 2);
        assert_eq!(
            c.on_reply(r.clone(), &limits(&m, &k[0])),
            ReplyOutcome::Parked
        );
        // A second one from the same member (a fence further ahead) is not kept too.
        let further = reply(&k[1], dep, 3);
        assert_eq!(
            c.on_reply(further, &limits(&m, &k[0])),
            ReplyOutcome::Dropped
        );
        assert_eq!(c.take_parked(), vec![r]);
        assert!(c.take_parked().is_empty());
    }

    #[test]
    fn a_slow_quorum_of_replies_delays_the_next_announcement_again() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let at = |now| ReplyLimits {
            now,
            ..limits(&m, &k[0])
        };
        // Our first batch, timed: a quorum of replies after 5 s.
        let first = batch(&k[0], 0);
        let dep = first.header.body.dep_ref();
        c.open(first.clone(), dep.instance(), 0, vec![]);
        c.time(&first.id(), 0);
        for signer in &k[..3] {
            assert_eq!(
                c.on_reply(reply(signer, dep, 1), &at(5_000)),
                ReplyOutcome::Counted
            );
        }
        assert!(c.ready(&first.id(), m.q(), 5_000).is_some());
        assert_eq!(
            c.round_trip().first_wait(1_000),
            8_000,
            "5 s + 4 x 2.5 s, capped at eight periods"
        );
        // The next one is not announced again before that wait.
        let next = batch(&k[0], 1);
        c.open(
            next.clone(),
            next.header.body.dep_ref().instance(),
            0,
            vec![],
        );
        c.time(&next.id(), 10_000);
        assert!(c
            .to_announce_again(17_999, 1_000, m.validators())
            .is_empty());
        assert_eq!(c.to_announce_again(18_000, 1_000, m.validators()).len(), 1);
    }

    #[test]
    fn an_announcement_is_sent_again_to_the_silent_members_with_backoff() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let b = batch(&k[0], 0);
        let dep = b.header.body.dep_ref();
        c.open(b.clone(), dep.instance(), 0, vec![]);
        let silent = |c: &mut Collector, now| -> Vec<Vec<u8>> {
            c.to_announce_again(now, 1_000, m.validators())
                .into_iter()
                .map(|(a, to)| {
                    assert_eq!(a, b);
                    to.iter().map(|v| v[0]).collect()
                })
                .collect()
        };
        assert_eq!(silent(&mut c, 1_000), vec![vec![1, 2, 3, 4]]);
        for signer in [&k[0], &k[2]] {
            let r = reply(signer, dep, 1);
            assert_eq!(c.on_reply(r, &limits(&m, &k[0])), ReplyOutcome::Counted);
        }
        let parked = reply(&k[3], dep, 2);
        assert_eq!(c.on_reply(parked, &limits(&m, &k[0])), ReplyOutcome::Parked);
        // New replies restart the wait: due at the next tick, to the one member still silent.
        assert_eq!(silent(&mut c, 2_000), vec![vec![2]]);
        assert!(silent(&mut c, 3_000).is_empty(), "then two periods");
        assert_eq!(silent(&mut c, 4_000), vec![vec![2]]);
        assert!(silent(&mut c, 7_999).is_empty(), "then four");
        assert_eq!(silent(&mut c, 8_000), vec![vec![2]]);
    }

    #[test]
    fn an_unsigned_reply_is_dropped() {
        let (k, m) = (keys(), members());
        let mut c = Collector::default();
        let b = batch(&k[0], 0);
        let dep = b.header.body.dep_ref();
        c.open(b, dep.instance(), 0, vec![]);
        let mut r = reply(&k[1], dep, 1);
        r.signer = k[2].public();
        assert_eq!(c.on_reply(r, &limits(&m, &k[0])), ReplyOutcome::Dropped);
    }
}

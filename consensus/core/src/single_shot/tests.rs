//! The single-shot service driven directly: each test feeds it messages or timers over a test
//! world (four validators, `[1; 32]` to `[4; 32]`, q = 3, f + 1 = 2) and asserts its exact
//! writes, sends, timers and events.

use super::*;
use crate::crypto::InsecureTestCrypto;
use crate::ctx::testing::World;
use crate::dds::Dds;
use crate::discovery::collect::Proposal;
use crate::discovery::proposer::{self, Proposer};
use crate::io::{Output, TimerId};
use crate::misbehaviour::Proof;
use crate::outbox::Outbox;
use crate::storage::{Key, Record};
use crate::wire::{Message, Phase, PrePrepareBody};

const TIMING: Timing = Timing {
    cmd_timeout_ms: 1_000,
    ckpt_timeout_ms: 500,
    drift_ms: 1_000,
};

const PROPOSER: ValidatorId = [2; 32];

fn key(k: u8) -> InsecureTestCrypto {
    InsecureTestCrypto([k; 32])
}

/// Proposer 2's first batch, and the view-0 proposal the replies of 1, 2 and 3 make for it
/// (made by the proposer side of dependency discovery, as in a replica).
fn collected() -> (SignedBatch, Proposal) {
    let w = World::as_validator(PROPOSER);
    let mut p = Proposer::default();
    let mut out = Outbox::new(w.me);
    let tx = Tx {
        access: vec![[9; 32]],
        data: vec![1],
    };
    p.add_client_batch(&[tx], 1);
    let batch = match &p.propose_own(&w.ctx(), &mut out, 512)[..] {
        [proposer::Event::Signed(b)] => b.clone(),
        other => panic!("{other:?}"),
    };
    let mut events = vec![];
    for k in 1..=3 {
        let r = Dds::default().reply(&batch.header.body, &[0; 32], &key(k));
        events = p.on_reply(&w.ctx(), r);
    }
    match events.pop() {
        Some(proposer::Event::Collected(proposal)) => (batch, proposal),
        other => panic!("{other:?}"),
    }
}

/// The pre-prepare a leader's service signs and broadcasts for `p`.
fn signed_by_leader(leader: ValidatorId, p: Proposal) -> Signed<PrePrepareBody> {
    let w = World::as_validator(leader);
    let mut s = SingleShot::new(leader, TIMING);
    let mut out = Outbox::new(leader);
    s.propose(&w.ctx(), &mut out, p);
    let sent: Vec<Signed<PrePrepareBody>> = out
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Send {
                to: None,
                msg: Message::PrePrepare(pp, _),
            } => Some(pp),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    sent[0].clone()
}

/// Validator `me`'s service, holding `batch`, with an empty outbox.
fn holding(me: ValidatorId, batch: &SignedBatch) -> (World, SingleShot, Outbox) {
    let mut w = World::as_validator(me);
    w.payloads.insert(batch.clone());
    (w, SingleShot::new(me, TIMING), Outbox::new(me))
}

fn vote(k: u8, inst: InstanceId, view: View, phase: Phase, value: Digest) -> Signed<VoteBody> {
    let body = VoteBody {
        epoch: 0,
        inst,
        view,
        phase,
        value,
    };
    Signed::sign(body, &[0; 32], &key(k))
}

fn view_change(k: u8, inst: InstanceId, new_view: View) -> Signed<ViewChangeBody> {
    let body = ViewChangeBody {
        epoch: 0,
        inst,
        new_view,
        prepared: None,
        has_payload: true,
    };
    Signed::sign(body, &[0; 32], &key(k))
}

/// Each output as a short line: what is written, sent and timed, in order.
fn shape(out: &mut Outbox) -> Vec<String> {
    out.take()
        .into_iter()
        .map(|o| match o {
            Output::Persist(ops) => {
                let keys: Vec<String> = ops.iter().map(|op| format!("{:?}", op.key())).collect();
                format!("persist {}", keys.join(" "))
            }
            Output::Send { to, msg } => {
                let what = match msg {
                    Message::PrePrepare(pp, payload) => format!(
                        "pre-prepare v{} {} payload {}",
                        pp.body.view,
                        if pp.body.value == Value::Noop {
                            "noop"
                        } else {
                            "deps"
                        },
                        payload.is_some()
                    ),
                    Message::Vote(v) => format!("vote v{} {:?}", v.body.view, v.body.phase),
                    Message::ViewChange(vc) => format!("view change v{}", vc.body.new_view),
                    Message::Fetch(_) => "fetch".into(),
                    other => format!("{other:?}"),
                };
                match to {
                    None => format!("to all: {what}"),
                    Some(to) => format!("to {}: {what}", to[0]),
                }
            }
            Output::SetTimer { id, after_ms } => match id {
                TimerId::View(_, v) => format!("view timer v{v} {after_ms}"),
                TimerId::Deadline(_, v) => format!("deadline v{v} {after_ms}"),
                TimerId::Resend => "resend".into(),
            },
            Output::Misbehaviour(p) => match p {
                Proof::InvalidProposal(..) => "report invalid proposal".into(),
                Proof::PrePrepareEquivocation(..) => "report equivocation".into(),
                Proof::VoteEquivocation(..) => "report vote equivocation".into(),
                other => format!("report {other:?}"),
            },
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_proposal_passes_the_door_only_signed_by_its_leader_and_not_twice() {
    let (batch, proposal) = collected();
    let inst = proposal.inst;
    let pp = signed_by_leader(PROPOSER, proposal);
    let mut w = World::new();
    let mut s = SingleShot::new(w.me, TIMING);
    assert_eq!(s.preprepare_door(&w.ctx(), &pp), Door::Open);
    let mut forged = pp.clone();
    forged.body.proof.pop();
    assert_eq!(
        s.preprepare_door(&w.ctx(), &forged),
        Door::Drop,
        "signature"
    );
    let by_other = Signed::sign(pp.body.clone(), &[0; 32], &key(3));
    assert_eq!(
        s.preprepare_door(&w.ctx(), &by_other),
        Door::Drop,
        "not the leader of view 0"
    );
    w.payloads.insert(batch.clone());
    let mut out = Outbox::new(w.me);
    assert!(s
        .on_preprepare(&w.ctx(), &mut out, PROPOSER, pp.clone())
        .is_empty());
    assert_eq!(
        s.preprepare_door(&w.ctx(), &pp),
        Door::Drop,
        "a retransmission"
    );
    w.record.mark(PROPOSER, 0, batch.id(), true);
    assert!(w.ctx().is_decided_inst(&inst));
    assert_eq!(s.preprepare_door(&w.ctx(), &pp), Door::Decided);
}

#[test]
fn a_valid_proposal_is_voted_for_then_a_quorum_prepares_commits_and_decides() {
    let (batch, proposal) = collected();
    let (inst, value) = (proposal.inst, proposal.value.clone());
    let digest = value.digest();
    let pp = signed_by_leader(PROPOSER, proposal);
    let (w, mut s, mut out) = holding([1; 32], &batch);
    assert!(s.on_preprepare(&w.ctx(), &mut out, PROPOSER, pp).is_empty());
    assert_eq!(
        shape(&mut out),
        [
            format!("persist Vote({inst:?}, 0, Prepare)"),
            "to all: vote v0 Prepare".into(),
            "view timer v0 1000".into(),
        ],
        "the vote is written before it is sent; the view-0 timer is the command timeout"
    );
    for k in [1, 2] {
        let events = s.on_vote(&w.ctx(), &mut out, vote(k, inst, 0, Phase::Prepare, digest));
        assert!(events.is_empty());
    }
    assert!(shape(&mut out).is_empty(), "two prepares are not a quorum");
    assert!(s
        .on_vote(&w.ctx(), &mut out, vote(3, inst, 0, Phase::Prepare, digest))
        .is_empty());
    assert_eq!(
        shape(&mut out),
        [
            format!("persist Prepared({inst:?}) Vote({inst:?}, 0, Commit)"),
            "to all: vote v0 Commit".into(),
        ]
    );
    let mut events = vec![];
    for k in 1..=3 {
        events.extend(s.on_vote(&w.ctx(), &mut out, vote(k, inst, 0, Phase::Commit, digest)));
    }
    match &events[..] {
        [Event::Decided {
            inst: i,
            value: v,
            cert,
        }] => {
            assert_eq!((*i, v), (inst, &value));
            assert_eq!(cert.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    let op = s.record_decision(inst, value, vec![], None);
    assert_eq!(op.key(), &Key::Decision(inst));
    assert!(s.decided_live(&inst));
}

#[test]
fn an_invalid_proposal_is_reported_and_its_view_left_at_once() {
    let (batch, proposal) = collected();
    let noop = Proposal {
        value: Value::Noop,
        proof: vec![],
        ..proposal
    };
    let inst = noop.inst;
    let pp = signed_by_leader(PROPOSER, noop);
    let (w, mut s, mut out) = holding([1; 32], &batch);
    assert_eq!(s.preprepare_door(&w.ctx(), &pp), Door::Open);
    assert!(s.on_preprepare(&w.ctx(), &mut out, PROPOSER, pp).is_empty());
    assert_eq!(
        shape(&mut out),
        [
            "report invalid proposal".to_string(),
            format!("persist ViewChange({inst:?}, 1)"),
            "to all: view change v1".into(),
        ],
        "a Noop needs view changes; the timer of view 1 waits for q to ask"
    );
    assert_eq!(s.view_of(&inst), 1);
}

#[test]
fn view_changes_join_at_f_plus_one_and_the_new_leader_collects_at_q() {
    let (batch, proposal) = collected();
    let inst = proposal.inst;
    // The leader of view 2 of proposer 2's commands is validator 4.
    let (mut w, mut s, mut out) = holding([4; 32], &batch);
    w.now = 7_000;
    let events = s.on_view_change(&w.ctx(), &mut out, [1; 32], view_change(1, inst, 2));
    assert!(events.is_empty());
    assert_eq!(
        shape(&mut out),
        ["view timer v0 1000"],
        "one ask is no reason to leave; a held batch is a reason to time the instance"
    );
    let events = s.on_view_change(&w.ctx(), &mut out, [2; 32], view_change(2, inst, 2));
    assert!(events.is_empty());
    let sent = out.take();
    let ours = sent
        .iter()
        .find_map(|o| match o {
            Output::Send {
                to: None,
                msg: Message::ViewChange(vc),
            } => Some(vc.clone()),
            _ => None,
        })
        .expect("f + 1 asked: join");
    assert_eq!(ours.signer, w.me);
    assert_eq!(
        (
            ours.body.new_view,
            ours.body.has_payload,
            ours.body.prepared.is_none()
        ),
        (2, true, true),
        "we hold the batch, nothing prepared"
    );
    assert!(matches!(&sent[0], Output::Persist(ops) if *ops[0].key() == Key::ViewChange(inst, 2)));
    assert_eq!(
        sent.len(),
        2,
        "written, sent; view 2's timer waits for q: {sent:?}"
    );
    let events = s.on_view_change(&w.ctx(), &mut out, w.me, ours);
    let [Event::Collect(c)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!((c.inst, c.view, c.batch.id()), (inst, 2, batch.id()));
    assert_eq!(
        (c.new_view.len(), c.deadline_ms),
        (3, 2_000),
        "half of view 2's timeout (1000 << 2)"
    );
    assert_eq!(
        shape(&mut out),
        ["view timer v2 4000"],
        "q asked: view 2's timer runs"
    );
    assert_eq!(s.instances().get(&inst).unwrap().view_began_ms, Some(7_000));

    // No quorum replied by the deadline: the leader proposes Noop with the q view changes.
    let events = s.on_deadline(&w.ctx(), &mut out, inst, 2);
    let InstanceId::Cmd { id, .. } = inst else {
        unreachable!()
    };
    assert!(matches!(&events[..], [Event::Abandon { id: i, inst: j }] if *i == id && *j == inst));
    assert_eq!(
        shape(&mut out),
        [
            format!("persist PrePrepare({inst:?}, 2)"),
            "to all: pre-prepare v2 noop payload true".into(),
        ]
    );
    assert!(s.on_deadline(&w.ctx(), &mut out, inst, 2).is_empty());
    assert!(out.take().is_empty(), "once per view");
}

#[test]
fn a_new_leader_re_proposes_the_highest_prepared_value() {
    let (batch, proposal) = collected();
    let (inst, value) = (proposal.inst, proposal.value.clone());
    let digest = value.digest();
    let pp = signed_by_leader(PROPOSER, proposal);
    // Validator 1 prepares the value in view 0.
    let mut w1 = World::new();
    w1.payloads.insert(batch.clone());
    let mut s1 = SingleShot::new(w1.me, TIMING);
    let mut out = Outbox::new(w1.me);
    s1.on_preprepare(&w1.ctx(), &mut out, PROPOSER, pp);
    for k in 1..=3 {
        s1.on_vote(
            &w1.ctx(),
            &mut out,
            vote(k, inst, 0, Phase::Prepare, digest),
        );
    }
    let cert = s1.instances().get(&inst).unwrap().prepared.clone();
    let cert = cert.expect("q prepares");
    assert_eq!((cert.view, cert.votes.len()), (0, 3));
    // Validator 3 leads view 1 with 1's view change (carrying the certificate) among q.
    let (w, mut s, mut out) = holding([3; 32], &batch);
    let mut prepared_vc = view_change(1, inst, 1).body;
    prepared_vc.prepared = Some(cert);
    let prepared_vc = Signed::sign(prepared_vc, &[0; 32], &key(1));
    let mut events = vec![];
    for (k, vc) in [
        (1, prepared_vc),
        (2, view_change(2, inst, 1)),
        (3, view_change(3, inst, 1)),
    ] {
        events.extend(s.on_view_change(&w.ctx(), &mut out, [k; 32], vc));
    }
    assert!(
        events.is_empty(),
        "a prepared value binds the leader: no collection"
    );
    let proposed: Vec<Signed<PrePrepareBody>> = out
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: Message::PrePrepare(pp, Some(_)),
                ..
            } => Some(pp),
            _ => None,
        })
        .collect();
    assert_eq!(proposed.len(), 1);
    let p = &proposed[0].body;
    assert_eq!((p.view, &p.value, p.new_view.len()), (1, &value, 3));
    assert!(p.proof.is_empty(), "a re-proposal carries no replies");
}

#[test]
fn a_pre_prepare_without_its_payload_is_parked_and_its_payload_asked_for() {
    let (_batch, proposal) = collected();
    let inst = proposal.inst;
    let pp = signed_by_leader(PROPOSER, proposal);
    let w = World::new();
    let mut s = SingleShot::new(w.me, TIMING);
    let mut out = Outbox::new(w.me);
    assert!(s
        .on_preprepare(&w.ctx(), &mut out, PROPOSER, pp.clone())
        .is_empty());
    assert_eq!(
        shape(&mut out),
        ["to all: fetch", "view timer v0 1000"],
        "no vote before the batch; the proposal is real, so its instance is timed"
    );
    assert_eq!(s.take_parked(&inst), vec![(PROPOSER, pp)]);
    assert!(s.take_parked(&inst).is_empty());
}

#[test]
fn a_leader_signing_two_values_in_a_view_is_reported_and_the_view_left() {
    let (batch, proposal) = collected();
    let inst = proposal.inst;
    let pp = signed_by_leader(PROPOSER, proposal);
    let other = PrePrepareBody {
        value: Value::Noop,
        proof: vec![],
        ..pp.body.clone()
    };
    let other = Signed::sign(other, &[0; 32], &key(2));
    let (w, mut s, mut out) = holding([1; 32], &batch);
    s.on_preprepare(&w.ctx(), &mut out, PROPOSER, pp);
    out.take();
    assert!(s
        .on_preprepare(&w.ctx(), &mut out, PROPOSER, other)
        .is_empty());
    assert_eq!(
        shape(&mut out),
        [
            "report equivocation".to_string(),
            format!("persist ViewChange({inst:?}, 1)"),
            "to all: view change v1".into(),
        ]
    );
}

#[test]
fn a_member_voting_twice_in_a_phase_is_reported_and_its_second_vote_not_counted() {
    let (batch, proposal) = collected();
    let inst = proposal.inst;
    let digest = proposal.value.digest();
    let pp = signed_by_leader(PROPOSER, proposal);
    let (w, mut s, mut out) = holding([1; 32], &batch);
    s.on_preprepare(&w.ctx(), &mut out, PROPOSER, pp);
    out.take();
    s.on_vote(&w.ctx(), &mut out, vote(3, inst, 0, Phase::Prepare, digest));
    let events = s.on_vote(
        &w.ctx(),
        &mut out,
        vote(3, inst, 0, Phase::Prepare, [5; 32]),
    );
    assert!(events.is_empty());
    assert_eq!(shape(&mut out), ["report vote equivocation"]);
    let st = s.instances().get(&inst).unwrap();
    assert_eq!(st.count(0, Phase::Prepare, &digest), 1);
    assert_eq!(st.count(0, Phase::Prepare, &[5; 32]), 0);
}

#[test]
fn a_view_timer_asks_for_the_next_view_and_only_for_the_view_it_was_set_in() {
    let (batch, proposal) = collected();
    let inst = proposal.inst;
    let pp = signed_by_leader(PROPOSER, proposal);
    let (w, mut s, mut out) = holding([1; 32], &batch);
    s.on_preprepare(&w.ctx(), &mut out, PROPOSER, pp);
    out.take();
    s.on_view_timer(&w.ctx(), &mut out, inst, 1);
    assert!(shape(&mut out).is_empty(), "not the view we are in");
    s.on_view_timer(&w.ctx(), &mut out, inst, 0);
    assert_eq!(
        shape(&mut out),
        [
            format!("persist ViewChange({inst:?}, 1)"),
            "to all: view change v1".into(),
        ]
    );
    s.on_view_timer(&w.ctx(), &mut out, inst, 0);
    assert!(shape(&mut out).is_empty(), "fired once");
}

#[test]
fn unknown_ids_create_state_only_a_few_per_slot_and_never_for_outsiders() {
    let w = World::new();
    let mut s = SingleShot::new(w.me, TIMING);
    let unknown = |id: u8| InstanceId::Cmd {
        proposer: PROPOSER,
        seq: 5,
        id: [id; 32],
    };
    for id in 0..MAX_UNKNOWN_IDS_PER_SLOT as u8 {
        assert!(s.may_create(&w.ctx(), &unknown(id)));
        s.insts.entry(unknown(id));
    }
    assert!(!s.may_create(&w.ctx(), &unknown(99)), "the slot is full");
    assert!(s.may_create(&w.ctx(), &unknown(0)), "live already");
    let outsider = InstanceId::Cmd {
        proposer: [9; 32],
        seq: 0,
        id: [1; 32],
    };
    assert!(!s.may_create(&w.ctx(), &outsider));
    assert!(s.may_create(&w.ctx(), &InstanceId::Ckpt(3)));
    assert!(
        s.admit(&w.ctx(), &unknown(99), &PROPOSER),
        "the slot's own proposer takes the place of an idle id"
    );
    s.insts.entry(unknown(99));
    assert!(!s.admit(&w.ctx(), &unknown(98), &[3; 32]));
}

#[test]
fn restored_votes_and_view_changes_put_the_instance_back_in_its_view() {
    let inst = InstanceId::Cmd {
        proposer: PROPOSER,
        seq: 0,
        id: [7; 32],
    };
    let mut s = SingleShot::new([1; 32], TIMING);
    let v = vote(1, inst, 2, Phase::Prepare, [0; 32]);
    assert!(s.restore(Key::Vote(inst, 2, Phase::Prepare), Record::Vote(v)));
    assert_eq!(s.view_of(&inst), 2);
    assert!(!s.instances().get(&inst).unwrap().in_view_change);
    let vc = view_change(1, inst, 3);
    assert!(s.restore(Key::ViewChange(inst, 3), Record::ViewChange(vc)));
    let st = s.instances().get(&inst).unwrap();
    assert_eq!((st.view, st.in_view_change, st.vcs_for(3)), (3, true, 1));
    assert!(!s.restore(Key::Reply([7; 32]), Record::Marked(true)));
}

//! A view's timer counts only once q replicas asked for that view (Castro-Liskov, OSDI 1999,
//! section 4.5.2): a replica that timed out alone waits in its view change, repeating it,
//! instead of racing through views the others never reach (soak seed 3531356).
mod common;

use bsmr_consensus_core::crypto::Signed;
use bsmr_consensus_core::wire::{Phase, VoteBody};
use bsmr_consensus_core::*;
use common::{batch, instance, view_change, GENESIS};

const ME: ValidatorId = [1; 32];

fn restored(storage: &MemStorage) -> Replica {
    let members = vec![ME, [2; 32], [3; 32], [4; 32]];
    let cfg = Config::new(Membership::new(GENESIS, 0, members));
    Replica::new(
        cfg,
        storage,
        Box::new(InsecureTestCrypto(ME)),
        Box::new(InsecureTestCrypto(ME)),
    )
}

/// A replica that heard of 3's batch at 0 and timed out on it alone at 10 s: in a view change
/// for view 1 with only its own view change. Its persisted state goes to `storage`; also
/// returns what the timeout emitted.
fn alone_in_view_1(storage: &mut MemStorage) -> (Replica, InstanceId, Vec<Output>) {
    let mut r = restored(storage);
    let _ = r.start(0);
    let b = batch(3);
    let inst = instance(&b);
    let mut last = vec![];
    let announce = Input::Message {
        from: [3; 32],
        msg: Message::Announce(b),
    };
    for (now, input) in [
        (0, announce),
        (10_000, Input::Timer(TimerId::View(inst, 0))),
    ] {
        last = r.handle(now, input);
        for o in &last {
            if let Output::Persist(ops) = o {
                storage.apply(ops);
            }
        }
    }
    (r, inst, last)
}

/// The views our own view changes in `out` ask for.
fn asked(out: &[Output], inst: InstanceId) -> Vec<View> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: None,
                msg: Message::ViewChange(vc),
            } if vc.signer == ME && vc.body.inst == inst => Some(vc.body.new_view),
            _ => None,
        })
        .collect()
}

/// The view timers of `inst` armed in `out`.
fn timers(out: &[Output], inst: InstanceId) -> Vec<View> {
    out.iter()
        .filter_map(|o| match o {
            Output::SetTimer {
                id: TimerId::View(i, v),
                ..
            } if *i == inst => Some(*v),
            _ => None,
        })
        .collect()
}

#[test]
fn a_replica_alone_in_a_view_change_waits_there_until_q_ask() {
    // 3 announces a batch and says nothing more; we alone time out on it.
    let (mut r, inst, out) = alone_in_view_1(&mut MemStorage::default());
    assert_eq!(asked(&out, inst), vec![1]);
    assert!(timers(&out, inst).is_empty(), "only we asked: {out:?}");

    // View 1's timer runs out with only our view change for it: no view 2.
    let out = r.handle(40_000, Input::Timer(TimerId::View(inst, 1)));
    assert!(asked(&out, inst).is_empty(), "raced on alone: {out:?}");
    assert!(timers(&out, inst).is_empty());

    // 2 joins: f + 1, not q. Then 4: q = 3 ask for view 1, and its timer starts.
    let out = r.handle(50_000, view_change(2, inst, 1));
    assert!(timers(&out, inst).is_empty(), "f + 1 is not q: {out:?}");
    let out = r.handle(50_010, view_change(4, inst, 1));
    assert_eq!(timers(&out, inst), vec![1], "q asked: the timer counts");

    // Now its expiry moves us on.
    let out = r.handle(80_000, Input::Timer(TimerId::View(inst, 1)));
    assert_eq!(asked(&out, inst), vec![2]);
}

#[test]
fn members_asking_for_later_views_count_towards_the_quorum() {
    let (mut r, inst, _) = alone_in_view_1(&mut MemStorage::default());
    let _ = r.handle(40_000, Input::Timer(TimerId::View(inst, 1)));
    // 2 asks for view 1, 4 has gone on to view 2 (its view change for 1 never reached us):
    // three members are at view 1 or later, so ours is not alone and its timer counts.
    let out = r.handle(50_000, view_change(2, inst, 1));
    assert!(timers(&out, inst).is_empty());
    let out = r.handle(50_010, view_change(4, inst, 2));
    assert_eq!(timers(&out, inst), vec![1]);
    let out = r.handle(80_000, Input::Timer(TimerId::View(inst, 1)));
    assert_eq!(asked(&out, inst), vec![2]);
}

#[test]
fn a_restarted_replica_counts_its_own_persisted_view_change() {
    let mut storage = MemStorage::default();
    let _ = alone_in_view_1(&mut storage);
    // Restarted: received view changes are gone, ours is restored from storage. With 2's and
    // 4's it makes q.
    let mut r = restored(&storage);
    let _ = r.start(60_000);
    let inst = instance(&batch(3));
    let out = r.handle(70_000, Input::Timer(TimerId::View(inst, 1)));
    assert!(asked(&out, inst).is_empty(), "alone after the restart too");
    let _ = r.handle(70_010, view_change(2, inst, 1));
    let out = r.handle(70_020, view_change(4, inst, 1));
    assert_eq!(timers(&out, inst), vec![1], "{out:?}");
    let out = r.handle(90_000, Input::Timer(TimerId::View(inst, 1)));
    assert_eq!(asked(&out, inst), vec![2]);
}

/// A vote for `inst` signed by `from`.
fn vote(from: u8, inst: InstanceId, view: View, value: u8) -> Input {
    let body = VoteBody {
        epoch: 0,
        inst,
        view,
        phase: Phase::Prepare,
        value: [value; 32],
    };
    Input::Message {
        from: [from; 32],
        msg: Message::Vote(Signed::sign(
            body,
            &GENESIS,
            &InsecureTestCrypto([from; 32]),
        )),
    }
}

/// Our view changes for `inst` in `out`, sent or resent.
fn view_changes_sent(out: &[Output], inst: InstanceId) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Send { msg: Message::ViewChange(vc), .. } if vc.body.inst == inst))
        .count()
}

#[test]
fn a_vote_does_not_start_the_timer_of_a_view_change_only_we_asked_for() {
    let (mut r, inst, _) = alone_in_view_1(&mut MemStorage::default());
    // 3 proposed the slot, so its vote makes us drive the instance; but only we asked for
    // view 1, so its timer must not start (it would count from now, before q arrive).
    let out = r.handle(20_000, vote(3, inst, 1, 7));
    assert!(timers(&out, inst).is_empty(), "armed by a vote: {out:?}");
    let _ = r.handle(50_000, view_change(2, inst, 1));
    let out = r.handle(50_010, view_change(4, inst, 1));
    assert_eq!(timers(&out, inst), vec![1], "q asked: the timer counts");
}

#[test]
fn fresh_votes_during_a_view_change_do_not_stop_its_resend() {
    let (mut r, inst, _) = alone_in_view_1(&mut MemStorage::default());
    // 4 sends a vote we never had (a new view each time) more often than the resend period.
    let mut resent = 0;
    for k in 1..=8u32 {
        let now = 10_000 + u64::from(k) * 1_000;
        let _ = r.handle(now, vote(4, inst, k, 1));
        let out = r.handle(now + 1, Input::Timer(TimerId::Resend));
        resent += view_changes_sent(&out, inst);
    }
    assert!(resent > 0, "never resent");
}

#[test]
fn a_replayed_conflicting_vote_does_not_stop_the_resend_of_our_view_change() {
    let (mut r, inst, _) = alone_in_view_1(&mut MemStorage::default());
    let _ = r.handle(10_100, vote(4, inst, 0, 1));
    // 4 replays a conflicting vote more often than the resend period: our view change is
    // still resent.
    let mut resent = 0;
    for k in 1..=8u64 {
        let now = 10_000 + k * 1_000;
        let _ = r.handle(now, vote(4, inst, 0, 2));
        let out = r.handle(now + 1, Input::Timer(TimerId::Resend));
        resent += view_changes_sent(&out, inst);
    }
    assert!(resent > 0, "never resent");
}

#[test]
fn joining_f_plus_1_starts_no_timer_until_q_ask() {
    // n = 7: f + 1 = 3 view changes make us join, q = 5 start the timer.
    let members: Vec<ValidatorId> = (1..=7u8).map(|i| [i; 32]).collect();
    let cfg = Config::new(Membership::new(GENESIS, 0, members));
    let mut r = Replica::new(
        cfg,
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(ME)),
        Box::new(InsecureTestCrypto(ME)),
    );
    let _ = r.start(0);
    let b = batch(3);
    let inst = instance(&b);
    let out = r.handle(
        0,
        Input::Message {
            from: [3; 32],
            msg: Message::Announce(b),
        },
    );
    assert_eq!(timers(&out, inst), vec![0]);
    let _ = r.handle(1_000, view_change(2, inst, 1));
    let _ = r.handle(1_010, view_change(4, inst, 1));
    let out = r.handle(1_020, view_change(5, inst, 1));
    assert_eq!(asked(&out, inst), vec![1], "f + 1 asked: we join");
    assert!(timers(&out, inst).is_empty(), "four of q = 5: {out:?}");
    let out = r.handle(1_030, view_change(6, inst, 1));
    assert_eq!(timers(&out, inst), vec![1], "q asked: the timer counts");
}

#[test]
fn a_replica_restarted_after_voting_in_the_view_it_changed_to_is_not_waiting() {
    // We asked for view 1, accepted its pre-prepare and voted there; then restarted.
    let b = batch(3);
    let inst = instance(&b);
    let crypto = InsecureTestCrypto(ME);
    let vc_body = bsmr_consensus_core::wire::ViewChangeBody {
        epoch: 0,
        inst,
        new_view: 1,
        prepared: None,
        has_payload: false,
    };
    let vote_body = VoteBody {
        epoch: 0,
        inst,
        view: 1,
        phase: Phase::Prepare,
        value: [5; 32],
    };
    let mut storage = MemStorage::default();
    storage.apply(&[
        StorageOp::Put(
            Key::ViewChange(inst, 1),
            Record::ViewChange(Signed::sign(vc_body, &GENESIS, &crypto)),
        ),
        StorageOp::Put(
            Key::Vote(inst, 1, Phase::Prepare),
            Record::Vote(Signed::sign(vote_body, &GENESIS, &crypto)),
        ),
    ]);
    let mut r = restored(&storage);
    let out = r.start(60_000);
    // In view 1's normal case: its timer counts from the restart.
    assert_eq!(timers(&out, inst), vec![1], "{out:?}");
}

//! A member that has been silent for a checkpoint timeout gets no full timeout on top: the
//! view-0 timer of a batch it proposed fires from the moment it fell silent, while a batch of a
//! member heard from recently gets the usual recovery timeout. A member never heard from keeps
//! the full view-0 timeout. A later view keeps its back-off unless its leader had been silent
//! for a checkpoint timeout when the instance began (a member never heard from counts as heard
//! at our start) and f+1 replicas asked for that view; like every later view's timer, it
//! starts only once q replicas asked for it.
mod common;

use bsmr_consensus_core::*;
use common::{batch, instance, view_change, GENESIS};

/// The view-0 timer the replica arms for `b`'s instance when `from` announces `b` at `now`.
fn view_timer(r: &mut Replica, now: u64, from: ValidatorId, b: SignedBatch) -> u64 {
    let id = b.id();
    r.handle(
        now,
        Input::Message {
            from,
            msg: Message::Announce(b),
        },
    )
    .into_iter()
    .find_map(|o| match o {
        Output::SetTimer {
            id: TimerId::View(InstanceId::Cmd { id: i, .. }, 0),
            after_ms,
        } if i == id => Some(after_ms),
        _ => None,
    })
    .expect("the announced batch gets a view timer")
}

/// Validator 1 of a 4-member set, started at time 0, and its configuration.
fn replica() -> (Replica, Config) {
    let me = [1u8; 32];
    let cfg = Config::new(Membership::new(
        GENESIS,
        0,
        vec![me, [2; 32], [3; 32], [4; 32]],
    ));
    let r = Replica::new(
        cfg.clone(),
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(me)),
        Box::new(InsecureTestCrypto(me)),
    );
    (r, cfg)
}

/// `from` sends something every 500 ms up to `until`; the others stay silent.
fn chatter(r: &mut Replica, from: ValidatorId, until: u64) {
    for now in (0..=until).step_by(500) {
        let _ = r.handle(
            now,
            Input::Message {
                from,
                msg: Message::SyncRequest(1_000),
            },
        );
    }
}

#[test]
fn a_silent_proposers_batch_is_recovered_from_when_it_fell_silent() {
    let (mut r, cfg) = replica();
    let (t_rec, silence) = (cfg.recovery_timeout_ms, cfg.ckpt_timeout_ms);
    let _ = r.start(0);
    // 4 speaks once at the start and falls silent; 2 keeps talking; 3 says nothing.
    chatter(&mut r, [4; 32], 0);
    chatter(&mut r, [2; 32], 10_000);
    assert_eq!(
        view_timer(&mut r, 10_000, [2; 32], batch(2)),
        t_rec,
        "a member heard from keeps the full recovery timeout"
    );
    // 3 was never heard from, and its own announce is news from it: the full timeout too.
    assert_eq!(view_timer(&mut r, 10_000, [3; 32], batch(3)), t_rec);
    // A batch of 4 relayed by 2 (4 silent for 10 s): recovered at once.
    let after = view_timer(&mut r, 10_000, [2; 32], batch(4));
    assert!(
        after < t_rec && after <= 10_000u64.saturating_sub(silence).max(100),
        "a batch of a member silent for {silence} ms waits {after} ms"
    );
}

/// The view timers of `inst` the replica arms when its view-0 timer expires at `now`.
fn timers_on_view_0_expiry(r: &mut Replica, now: u64, inst: InstanceId) -> Vec<View> {
    r.handle(now, Input::Timer(TimerId::View(inst, 0)))
        .into_iter()
        .filter_map(|o| match o {
            Output::SetTimer {
                id: TimerId::View(i, v),
                ..
            } if i == inst => Some(v),
            _ => None,
        })
        .collect()
}

/// `from`'s view change asking for view `v` of `inst`, fed at `now`; the view timer of `v` it
/// makes the replica arm, if any.
fn view_change_from(r: &mut Replica, now: u64, from: u8, inst: InstanceId, v: View) -> Option<u64> {
    r.handle(now, view_change(from, inst, v))
        .into_iter()
        .find_map(|o| match o {
            Output::SetTimer {
                id: TimerId::View(i, w),
                after_ms,
            } if i == inst && w == v => Some(after_ms),
            _ => None,
        })
}

/// 3 proposes at the start and falls silent; view 1's leader is 4. Returns the replica, the
/// instance and when view 0 expired (we alone asked for view 1 then, so its timer waits for q
/// to ask: docs/consensus.md, "A view's timer counts once q asked for the view").
fn in_view_1(four_speaks_until: Option<u64>) -> (Replica, InstanceId, u64) {
    let (mut r, cfg) = replica();
    let m = &cfg.membership;
    assert_eq!(m.leader_cmd(&[3; 32], 0), [3; 32]);
    assert_eq!(m.leader_cmd(&[3; 32], 1), [4; 32]);
    let _ = r.start(0);
    chatter(&mut r, [3; 32], 0);
    if let Some(until) = four_speaks_until {
        chatter(&mut r, [4; 32], until);
    }
    chatter(&mut r, [2; 32], 10_000);
    let b = batch(3);
    let inst = instance(&b);
    let _ = view_timer(&mut r, 10_000, [2; 32], b);
    // View 0 runs out a checkpoint timeout after the instance began (a checkpoint's view 0
    // lasts that long; a timer may also fire late).
    let at = 10_000 + cfg.ckpt_timeout_ms;
    let armed = timers_on_view_0_expiry(&mut r, at, inst);
    assert!(
        armed.is_empty(),
        "alone in view 1, no timer counts: {armed:?}"
    );
    (r, inst, at)
}

/// 2 then 3 ask for view 1 after us: the timer of view 1 that q = 3 asking starts.
fn view_1_timer_once_q_ask(r: &mut Replica, inst: InstanceId, at: u64) -> Option<u64> {
    assert_eq!(
        view_change_from(r, at + 50, 2, inst, 1),
        None,
        "f + 1 is not q"
    );
    view_change_from(r, at + 60, 3, inst, 1)
}

#[test]
fn a_later_view_whose_leader_is_silent_too_is_left_soon_once_q_are_in_it() {
    let t_rec = replica().1.recovery_timeout_ms;
    // 4 spoke at the start only: silent for 10 s when the instance began.
    let (mut r, inst, at) = in_view_1(Some(0));
    let t = view_1_timer_once_q_ask(&mut r, inst, at);
    assert!(
        t.is_some_and(|t| t < t_rec),
        "view 1 of a silent leader with q in it: {t:?}"
    );
}

#[test]
fn a_later_view_of_a_leader_never_heard_from_counts_from_our_start() {
    let t_rec = replica().1.recovery_timeout_ms;
    // 4 never said a word in the 10 s since our start (a silent Byzantine validator, or one
    // that crashed before we came up).
    let (mut r, inst, at) = in_view_1(None);
    let t = view_1_timer_once_q_ask(&mut r, inst, at);
    assert!(t.is_some_and(|t| t < t_rec), "{t:?}");
}

#[test]
fn a_later_view_whose_leader_was_quiet_only_during_view_0_keeps_its_back_off() {
    // 4 spoke until the instance began, then said nothing during view 0 (at low load a correct
    // member has nothing to send then): it is not silent, and view 1 keeps the doubled timer
    // even with q in it (a review found the first version cut such a correct leader's view).
    // A leader that keeps talking is the same case.
    let (mut r, inst, at) = in_view_1(Some(10_000));
    let t_rec = replica().1.recovery_timeout_ms;
    assert_eq!(view_1_timer_once_q_ask(&mut r, inst, at), Some(2 * t_rec));
}

#[test]
fn a_member_never_heard_from_keeps_the_full_view_0_timeout() {
    let (mut r, cfg) = replica();
    let _ = r.start(0);
    // 4 has said nothing in the 10 s since our start: at a network's start it may not be up,
    // connected or caught up yet, so nothing says it fell silent.
    chatter(&mut r, [2; 32], 10_000);
    assert_eq!(
        view_timer(&mut r, 10_000, [2; 32], batch(4)),
        cfg.recovery_timeout_ms
    );
}

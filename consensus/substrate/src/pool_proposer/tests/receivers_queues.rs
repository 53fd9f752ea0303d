//! The takeover clocks stretched by the queue a receiver shows in its announcements.

use super::*;

/// A sender below 16 whose partition owner is `owner`, other than those in `not`.
fn sender_owned_by(owner: ValidatorId, not: &[u8]) -> u8 {
    let m = members();
    (0..16u8)
        .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == owner && !not.contains(s))
        .expect("each member owns two senders below 16")
}

/// `from` sends us at `at` `proposer`'s batch with `txs`, live or answering a fetch; member
/// 2 is the baseline's primary, and `here` what was submitted to us.
fn deliver(
    p: &mut PoolProposer,
    (from, proposer, live): (ValidatorId, ValidatorId, bool),
    txs: &[H256],
    at: u64,
    here: &dyn Fn(&H256) -> bool,
) {
    let a = Announcement {
        from,
        proposer,
        live,
        txs,
    };
    p.member_announced(a, (&members(), [2; 32]), here, at);
}

/// `by` announces, over its own link at `at`, its own batch with `h`.
fn announce(p: &mut PoolProposer, by: ValidatorId, h: H256, at: u64) {
    deliver(p, (by, by, true), &[h], at, &|_| false);
}

fn wait_of(p: &PoolProposer, v: ValidatorId) -> Option<u64> {
    p.peer_queueing.get(&v).map(|q| q.wait)
}

/// One busy receiver (member 2 queues 3 s) and two idle ones: our takeovers wait for twice the
/// busiest's queue, although our own queue is empty. Neither the (f+1)-th longest (100 ms) nor
/// the mean would hold the takeover past 5.2 s.
#[test]
fn takeovers_wait_for_the_busiest_receivers_queue() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    // Each announced transaction's sender is owned by someone other than its announcer.
    let a = tx(sender_owned_by([4; 32], &[]), 0);
    let b = tx(sender_owned_by([2; 32], &[]), 0);
    let c = tx(sender_owned_by([2; 32], &[a.1[0], b.1[0]]), 0);
    let g = tx(a_sender_we_own(), 0);
    let mut ready = vec![a.clone(), b.clone(), c.clone()];
    assert!(run(&mut p, &ready, 0, &|_| false).is_empty());
    announce(&mut p, [3; 32], b.0, 100);
    announce(&mut p, [4; 32], c.0, 100);
    announce(&mut p, [2; 32], a.0, 3_000);
    assert_eq!(wait_of(&p, [2; 32]), Some(3_000));
    assert_eq!(wait_of(&p, [3; 32]), Some(100));
    ready.push(g.clone());
    assert!(run(&mut p, &ready, 3_000, &|_| false).is_empty());
    assert!(
        run(&mut p, &ready, 10_900, &|_| false).is_empty(),
        "our 2 s owner delay plus twice 3 s have not passed"
    );
    assert_eq!(
        run(&mut p, &ready, 11_000, &|_| false),
        vec![vec![g.1.clone()]],
        "taken over after 2 s + twice 3 s"
    );
}

/// One announcement to measure: each case changes one thing from the first, which measures.
struct Case {
    what: &'static str,
    mode: Mode,
    /// (from, proposer, live)
    via: (ValidatorId, ValidatorId, bool),
    sender_owner: ValidatorId,
    submitted_here: bool,
    announced_before: bool,
    at: u64,
}

const RECEIVER: Case = Case {
    what: "a receiver's own",
    mode: Mode::Leaderless,
    via: ([2; 32], [2; 32], true),
    sender_owner: [4; 32],
    submitted_here: false,
    announced_before: false,
    at: 3_000,
};

/// Only a receiver's own live proposal of its client's transaction measures its queue; each
/// case below is the measured one with one thing changed, so each can fail.
#[test]
fn what_is_not_a_receivers_queue_measures_nothing() {
    let cases = [
        Case {
            what: "a partition owner's takeover",
            sender_owner: [2; 32],
            ..RECEIVER
        },
        Case {
            what: "a wait of anyone_delay_ms - owner_delay_ms",
            at: 4_000,
            ..RECEIVER
        },
        Case {
            what: "a second announcement",
            announced_before: true,
            ..RECEIVER
        },
        Case {
            what: "a carried copy of our client's",
            submitted_here: true,
            ..RECEIVER
        },
        Case {
            what: "a relay",
            via: ([3; 32], [2; 32], true),
            ..RECEIVER
        },
        Case {
            what: "a fetch answer",
            via: ([2; 32], [2; 32], false),
            ..RECEIVER
        },
        Case {
            what: "a non-member",
            via: ([9; 32], [9; 32], true),
            ..RECEIVER
        },
        Case {
            what: "the leader baseline",
            mode: Mode::Leader,
            ..RECEIVER
        },
    ];
    for c in std::iter::once(RECEIVER).chain(cases) {
        let mut p = PoolProposer::new(cfg(c.mode));
        let t = tx(sender_owned_by(c.sender_owner, &[]), 0);
        let here = c.submitted_here;
        let is_here = move |h: &H256| here && *h == t.0;
        assert!(run(&mut p, std::slice::from_ref(&t), 0, &|_| false).is_empty());
        if c.announced_before {
            deliver(&mut p, ([3; 32], [3; 32], true), &[t.0], 50, &|_| false);
            p.peer_queueing.clear();
        }
        deliver(&mut p, c.via, &[t.0], c.at, &is_here);
        let expected = (c.what == RECEIVER.what).then_some(c.at);
        assert_eq!(wait_of(&p, c.via.1), expected, "{}", c.what);
        assert_eq!(
            p.peer_queueing.len(),
            expected.into_iter().count(),
            "{}",
            c.what
        );
    }
}

/// A pass that could propose nothing (the in-flight allowance is used) does not look at the
/// ready set, so it must not count as a look: what the next pass lists may have entered
/// before it.
#[test]
fn a_pass_that_proposes_nothing_is_not_a_look() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let t = tx(sender_owned_by([4; 32], &[]), 0);
    assert!(run(&mut p, &[], 100, &|_| false).is_empty());
    let m = members();
    let nothing_here = |_: &H256| false;
    let full = Turn {
        core_pending: MAX_PENDING_CORE_BATCHES + 1,
        ..turn_at(&m, 3_000, &nothing_here)
    };
    let ready = std::iter::once((t.0, || t.1.clone()));
    assert!(p.next_batches(ready, classify, &full).is_empty());
    assert!(run(&mut p, std::slice::from_ref(&t), 4_000, &|_| false).is_empty());
    announce(&mut p, [2; 32], t.0, 6_500);
    assert_eq!(wait_of(&p, [2; 32]), None, "it may have waited 6.4 s");
}

/// The baseline measures its primary's queue only from the primary's own live announcements.
#[test]
fn only_the_primarys_own_live_announcements_measure_its_queue() {
    for (via, measured) in [
        (([2; 32], [2; 32], true), 250),
        (([3; 32], [2; 32], true), 0),
        (([2; 32], [2; 32], false), 0),
        (([3; 32], [3; 32], true), 0),
    ] {
        let mut p = PoolProposer::new(cfg(Mode::Leader));
        let ours = tx(5, 0);
        let here = |h: &H256| *h == tx(5, 0).0;
        assert!(run(&mut p, std::slice::from_ref(&ours), 0, &here).is_empty());
        deliver(&mut p, via, &[ours.0], 1_000, &here);
        assert_eq!(p.queueing, measured, "{via:?}");
    }
}

/// A transaction first listed by a pass after a long pause (passes stop while the in-flight
/// allowance is used) may have arrived long before: it measures only if it certainly arrived
/// less than `anyone_delay_ms` before the announcement.
#[test]
fn a_late_first_sight_measures_only_if_the_wait_was_certainly_short() {
    for (previous_look, measured) in [(3_000, Some(2_500)), (100, None)] {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let t = tx(sender_owned_by([4; 32], &[]), 0);
        assert!(run(&mut p, &[], previous_look, &|_| false).is_empty());
        assert!(run(&mut p, std::slice::from_ref(&t), 4_000, &|_| false).is_empty());
        announce(&mut p, [2; 32], t.0, 6_500);
        assert_eq!(
            wait_of(&p, [2; 32]),
            measured,
            "previous look at {previous_look}"
        );
    }
}

/// A member's measure stretches the clocks only while renewed, and not past a new epoch:
/// a member that stops announcing (crashed, or every transaction announced first by another)
/// leaves the clock as our own queue sets it.
#[test]
fn a_receivers_queue_ages_out_and_ends_with_the_epoch() {
    let g = tx(a_sender_we_own(), 0);
    let setup = || {
        let mut p = PoolProposer::new(cfg(Mode::Leaderless));
        let a = tx(sender_owned_by([4; 32], &[]), 0);
        assert!(run(&mut p, std::slice::from_ref(&a), 0, &|_| false).is_empty());
        announce(&mut p, [2; 32], a.0, 3_000);
        assert_eq!(wait_of(&p, [2; 32]), Some(3_000));
        p
    };
    // Aged: 30 s after the measure, a gossiped transaction goes after our 2 s delay alone.
    let mut p = setup();
    assert!(run(&mut p, std::slice::from_ref(&g), 31_000, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, std::slice::from_ref(&g), 33_000, &|_| false),
        vec![vec![g.1.clone()]],
        "aged out"
    );
    // Not aged yet: still stretched.
    let mut p = setup();
    assert!(run(&mut p, std::slice::from_ref(&g), 20_000, &|_| false).is_empty());
    assert!(run(&mut p, std::slice::from_ref(&g), 22_000, &|_| false).is_empty());
    // A new epoch forgets it.
    let mut p = setup();
    p.new_epoch(3_000);
    assert!(run(&mut p, std::slice::from_ref(&g), 4_000, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, std::slice::from_ref(&g), 6_000, &|_| false),
        vec![vec![g.1.clone()]],
        "the epoch forgot it"
    );
}

/// The measure is smoothed over announcements, and restarts once aged.
#[test]
fn a_receivers_queue_is_smoothed_and_restarts_when_aged() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let senders: Vec<u8> = (0..16u8)
        .filter(|s| PoolProposer::partition_owner(&members(), &[*s; 32]) != [2; 32])
        .collect();
    let ts: Vec<_> = senders.iter().take(2).map(|s| tx(*s, 0)).collect();
    assert!(run(&mut p, &ts, 0, &|_| false).is_empty());
    announce(&mut p, [2; 32], ts[0].0, 3_000);
    announce(&mut p, [2; 32], ts[1].0, 3_800);
    assert_eq!(wait_of(&p, [2; 32]), Some((3 * 3_000 + 3_800) / 4));
    // More than 30 s after (a look just before, so the wait is certainly short).
    let fresh = tx(senders[2], 0);
    assert!(run(&mut p, &[], 34_000, &|_| false).is_empty());
    assert!(run(&mut p, std::slice::from_ref(&fresh), 34_500, &|_| false).is_empty());
    announce(&mut p, [2; 32], fresh.0, 35_000);
    assert_eq!(
        wait_of(&p, [2; 32]),
        Some(500),
        "restarted, not smoothed with the old"
    );
}

/// A pass at `now` by a validator whose own batches lately took `round_trip_ms` to gather a
/// quorum of replies.
fn run_slow(
    p: &mut PoolProposer,
    ready: &[(H256, Vec<u8>)],
    now: u64,
    round_trip_ms: u64,
) -> Vec<Vec<Vec<u8>>> {
    run_turn(p, ready, (now, 0, round_trip_ms), &|_| false)
}

/// On a network whose round trips take 10 s, a takeover waits them out on top of its delay:
/// the receiver's batch could not have reached us earlier, and a copy would only load the link.
#[test]
fn takeovers_wait_for_the_round_trip_our_own_batches_measured() {
    let mine = sender_owned_by(ME, &[]);
    let theirs = sender_owned_by([2; 32], &[]);
    let ready = [tx(mine, 0), tx(theirs, 0)];
    // A fast network (0.3 s round trips): the owner's takeover at 2.3 s, anyone's at 6.3.
    let mut fast = PoolProposer::new(cfg(Mode::Leaderless));
    assert!(run_slow(&mut fast, &ready, 0, 300).is_empty());
    assert!(run_slow(&mut fast, &ready, 2_299, 300).is_empty());
    assert_eq!(
        run_slow(&mut fast, &ready, 2_300, 300),
        vec![vec![vec![mine, 0]]]
    );
    assert_eq!(
        run_slow(&mut fast, &ready, 6_300, 300),
        vec![vec![vec![theirs, 0]]]
    );
    // Round trips of 10 s: 10 s later each.
    let mut slow = PoolProposer::new(cfg(Mode::Leaderless));
    assert!(run_slow(&mut slow, &ready, 0, 10_000).is_empty());
    assert!(run_slow(&mut slow, &ready, 11_999, 10_000).is_empty());
    assert_eq!(
        run_slow(&mut slow, &ready, 12_000, 10_000),
        vec![vec![vec![mine, 0]]]
    );
    assert!(run_slow(&mut slow, &ready, 15_999, 10_000).is_empty());
    assert_eq!(
        run_slow(&mut slow, &ready, 16_000, 10_000),
        vec![vec![vec![theirs, 0]]]
    );
    // However slow, at most 30 s more: a silent receiver's clients are still served.
    let mut stuck = PoolProposer::new(cfg(Mode::Leaderless));
    assert!(run_slow(&mut stuck, &ready, 0, 600_000).is_empty());
    assert!(run_slow(&mut stuck, &ready, 31_999, 600_000).is_empty());
    assert_eq!(
        run_slow(&mut stuck, &ready, 32_000, 600_000),
        vec![vec![vec![mine, 0]]]
    );
}

//! The proposal policy driven directly: ready transactions and time in, batches out.

use super::*;

const ME: ValidatorId = [1; 32];

fn members() -> Membership {
    Membership::new([0; 32], 0, (1..=4u8).map(|i| [i; 32]).collect())
}

fn cfg(mode: Mode) -> ProposerConfig {
    ProposerConfig {
        mode,
        owner_delay_ms: 2_000,
        anyone_delay_ms: 6_000,
        max_batch_txs: 2,
        max_inflight_batches: 3,
    }
}

/// Transaction `n` of sender `s`: its bytes are (s, n); hash from both.
fn tx(s: u8, n: u8) -> (H256, Vec<u8>) {
    (H256([s * 16 + n; 32]), vec![s, n])
}

/// A sender below 16 whose partition owner is this validator.
fn a_sender_we_own() -> u8 {
    let m = members();
    (0..16u8)
        .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == ME)
        .expect("some sender below 16 is ours")
}

fn classify(b: &[u8]) -> Option<TxInfo> {
    Some(TxInfo {
        sender: [b[0]; 32],
        access: vec![[b[0]; 32]],
    })
}

fn run(
    p: &mut PoolProposer,
    ready: &[(H256, Vec<u8>)],
    now: u64,
    here: &dyn Fn(&H256) -> bool,
) -> Vec<Vec<Vec<u8>>> {
    run_final(p, ready, now, 0, here)
}

/// A pass with block `finalized` final.
fn run_final(
    p: &mut PoolProposer,
    ready: &[(H256, Vec<u8>)],
    now: u64,
    finalized: u64,
    here: &dyn Fn(&H256) -> bool,
) -> Vec<Vec<Vec<u8>>> {
    run_turn(p, ready, (now, finalized, 0), here)
}

/// A turn of this validator ([`ME`]; member 2 is the baseline's primary) at `now`, nothing
/// final, the core's queue empty, no round trip measured, `here` what clients submitted here
/// (no arrival times known).
fn turn_at<'a>(m: &'a Membership, now: u64, here: &'a dyn Fn(&H256) -> bool) -> Turn<'a> {
    Turn {
        now,
        me: ME,
        membership: m,
        primary: [2; 32],
        finalized: 0,
        core_pending: 0,
        round_trip_ms: 0,
        submitted_here: here,
        waited_here: &no_arrival,
    }
}

fn no_arrival(_: &H256) -> Option<u64> {
    None
}

/// A pass at `now` with block `finalized` final, by a validator whose own batches lately took
/// `round_trip_ms` to gather a quorum of replies.
fn run_turn(
    p: &mut PoolProposer,
    ready: &[(H256, Vec<u8>)],
    (now, finalized, round_trip_ms): (u64, u64, u64),
    here: &dyn Fn(&H256) -> bool,
) -> Vec<Vec<Vec<u8>>> {
    let m = members();
    let turn = Turn {
        finalized,
        round_trip_ms,
        ..turn_at(&m, now, here)
    };
    let ready = ready.iter().map(|(h, b)| (*h, || b.clone()));
    p.next_batches(ready, classify, &turn)
        .into_iter()
        .map(|b| b.into_iter().map(|t| t.data).collect())
        .collect()
}

#[test]
fn own_submissions_go_at_once_one_batch_per_sender_and_never_twice() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = [tx(5, 0), tx(5, 1), tx(6, 0)];
    let batches = run(&mut p, &ready, 0, &|_| true);
    assert_eq!(
        batches,
        vec![vec![vec![5, 0], vec![5, 1]], vec![vec![6, 0]]]
    );
    assert!(
        run(&mut p, &ready, 10, &|_| true).is_empty(),
        "proposed already"
    );
    assert_eq!(
        p.counts(),
        ProposalCounts {
            own: 3,
            taken_over: 0,
            carried: 0,
            covered: 0,
        }
    );
}

#[test]
fn what_a_built_block_included_is_never_proposed_again() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let here = |h: &H256| *h == tx(5, 0).0 || *h == tx(7, 0).0;
    assert_eq!(run(&mut p, &[tx(5, 0), tx(6, 0)], 0, &here).len(), 1);
    let id = [9; 32];
    p.proposed(id, vec![tx(5, 0).0], 0);
    p.block_finished(1, [id]);
    // Block 1 included ours and another validator's transaction; the pool still lists
    // both as ready long after every delay (taken over, or ours proposed again, before).
    p.included(1, &[tx(5, 0).0, tx(6, 0).0]);
    let ready = [tx(5, 0), tx(6, 0), tx(7, 0)];
    assert_eq!(
        run(&mut p, &ready, 60_000, &here),
        vec![vec![vec![7, 0]]],
        "only the one no block included goes"
    );
    // Once the pool dropped them, nothing of them is kept.
    run(&mut p, &[tx(7, 0)], 60_001, &here);
    assert!(p.done.is_empty());
}

#[test]
fn takeovers_wait_longer_while_our_own_transactions_queue() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let m = members();
    let owned = (8..=255u8)
        .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == ME && *s < 16)
        .expect("some sender from 8 to 15 is ours to take over");
    let ours = |h: &H256| h.0[0] / 16 == 5 || h.0[0] / 16 == 7;
    // Our clients' transactions are handed to the core at once, which announces each of
    // their batches only 10 s after they arrived (its queue for a seq inside the window was
    // full).
    let queued: Vec<_> = (0..4).map(|n| tx(5, n)).collect();
    run(&mut p, &queued, 0, &ours);
    for (i, (h, _)) in queued.iter().enumerate() {
        p.proposed([i as u8; 32], vec![*h], 10_000);
        p.decided(&[i as u8; 32]);
    }
    let gossiped = tx(owned, 0);
    assert!(run(&mut p, std::slice::from_ref(&gossiped), 100, &|_| false).is_empty());
    // Without queueing, the owner takes over 2 s after it first saw it; now it waits on.
    assert!(
        run(&mut p, std::slice::from_ref(&gossiped), 10_100, &|_| false).is_empty(),
        "our own transactions queued 10 s before their announcement: not yet"
    );
    // Our next batches are announced the moment they are cut: the estimate shrinks, and the
    // takeover goes.
    let prompt: Vec<_> = (0..4).map(|n| tx(7, n)).collect();
    let ready: Vec<_> = prompt.iter().cloned().chain([gossiped.clone()]).collect();
    assert!(!run(&mut p, &ready, 10_200, &ours).is_empty());
    for (i, (h, _)) in prompt.iter().enumerate() {
        p.proposed([10 + i as u8; 32], vec![*h], 10_200);
        p.decided(&[10 + i as u8; 32]);
    }
    assert_eq!(
        run(&mut p, &[gossiped], 12_100, &|_| false),
        vec![vec![vec![owned, 0]]],
        "the allowance shrinks once ours stop queueing"
    );
}

#[test]
fn a_busy_sender_waits_for_its_block() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let batches = run(&mut p, &[tx(5, 0)], 0, &|_| true);
    assert_eq!(batches.len(), 1);
    let id = [9; 32];
    assert!(p.proposed(id, vec![tx(5, 0).0], 0));
    assert!(!p.proposed(id, vec![], 0), "known");
    let later = [tx(5, 0), tx(5, 1)];
    assert!(
        run(&mut p, &later, 10, &|_| true).is_empty(),
        "sender 5 is busy"
    );
    p.block_finished(1, [id]);
    assert_eq!(run(&mut p, &later, 20, &|_| true), vec![vec![vec![5, 1]]]);
}

#[test]
fn a_busy_sender_spread_over_validators_goes_on_behind_a_carried_transaction() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let here: BTreeSet<H256> = [tx(5, 0).0, tx(5, 2).0, tx(6, 0).0, tx(6, 1).0].into();
    let is_here = |h: &H256| here.contains(h);
    assert_eq!(run(&mut p, &[tx(5, 0), tx(6, 0)], 0, &is_here).len(), 1);
    p.proposed([9; 32], vec![tx(5, 0).0, tx(6, 0).0], 0);
    // Sender 5's nonce 1 came from elsewhere, nonce 2 here: they go at once. Sender 6's
    // nonce 1 came here too: it waits for the block, gathering with later ones.
    let later = [tx(5, 0), tx(5, 1), tx(5, 2), tx(6, 0), tx(6, 1)];
    assert_eq!(
        run(&mut p, &later, 10, &is_here),
        vec![vec![vec![5, 1], vec![5, 2]]]
    );
    // Nothing after a held transaction of a busy sender goes, carried or not.
    let mut q = PoolProposer::new(cfg(Mode::Leaderless));
    let here: BTreeSet<H256> = [tx(7, 0).0, tx(7, 1).0, tx(7, 3).0].into();
    let is_here = |h: &H256| here.contains(h);
    run(&mut q, &[tx(7, 0)], 0, &is_here);
    let chain = [tx(7, 0), tx(7, 1), tx(7, 2), tx(7, 3)];
    assert!(run(&mut q, &chain, 10, &is_here).is_empty(), "7 is held");
}

#[test]
fn a_busy_senders_carried_chain_is_contiguous_and_may_be_long() {
    let mut p = PoolProposer::new(ProposerConfig {
        max_batch_txs: 8,
        ..cfg(Mode::Leaderless)
    });
    // Ours: nonces 2, 5 and 6; 3 and 4 came from elsewhere, 0 and 1 too (not ours yet).
    let here: BTreeSet<H256> = [tx(5, 2).0, tx(5, 5).0, tx(5, 6).0].into();
    let is_here = |h: &H256| here.contains(h);
    assert_eq!(
        run(&mut p, &[tx(5, 0), tx(5, 1), tx(5, 2)], 0, &is_here),
        vec![vec![vec![5, 0], vec![5, 1], vec![5, 2]]]
    );
    // Busy now. Nonces 3 and 4 are carried in front of 5, and 6 follows in the same batch
    // (the sender is in it already).
    let chain: Vec<_> = (0..=6).map(|n| tx(5, n)).collect();
    assert_eq!(
        run(&mut p, &chain, 10, &is_here),
        vec![(3..=6).map(|n| vec![5, n]).collect::<Vec<_>>()]
    );
}

#[test]
fn nothing_passed_over_before_our_own_proposal_is_carried_past_it() {
    let mut p = PoolProposer::new(ProposerConfig {
        max_batch_txs: 8,
        ..cfg(Mode::Leaderless)
    });
    // We proposed nonce 1 (ours); nonce 0 came from elsewhere and is not ours yet.
    let here: BTreeSet<H256> = [tx(5, 1).0, tx(5, 2).0].into();
    let is_here = |h: &H256| here.contains(h);
    run(&mut p, &[tx(5, 1)], 0, &is_here);
    // Nonce 2 arrives: carrying 0 past our 1 would leave a gap; the sender is busy, so 2
    // waits for the block of 1, then goes.
    let chain = [tx(5, 0), tx(5, 1), tx(5, 2)];
    assert!(run(&mut p, &chain, 10, &is_here).is_empty());
    let id = [9; 32];
    p.proposed(id, vec![tx(5, 1).0], 0);
    p.block_finished(1, [id]);
    assert_eq!(run(&mut p, &chain, 20, &is_here), vec![vec![vec![5, 2]]]);
}

#[test]
fn others_submissions_wait_for_their_owner_or_anyone() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let m = members();
    let mine = (0..=255u8)
        .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == ME && *s < 16)
        .expect("some sender below 16 is ours");
    let theirs = (0..16u8)
        .find(|s| PoolProposer::partition_owner(&m, &[*s; 32]) != ME)
        .expect("some sender is not ours");
    let ready = [tx(mine, 0), tx(theirs, 0)];
    assert!(run(&mut p, &ready, 0, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, &ready, 2_000, &|_| false),
        vec![vec![vec![mine, 0]]]
    );
    assert_eq!(
        p.counts(),
        ProposalCounts {
            own: 0,
            taken_over: 1,
            carried: 0,
            covered: 0,
        }
    );
    p.announced_by_other([tx(theirs, 0).0], 3_000, false);
    assert!(
        run(&mut p, &ready, 9_000, &|_| false).is_empty(),
        "being ordered: their batch is not finished into a block, ours neither"
    );
    // Their batch is finished into a block at 10 s; still pending a delay later (the builder
    // skipped it), it goes.
    p.others_finished([tx(theirs, 0).0], 10_000);
    assert!(run(&mut p, &ready, 15_999, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, &ready, 16_000, &|_| false),
        vec![vec![vec![theirs, 0]]]
    );
    // Ours is in a batch not finished into a block: held (the core proposes again what lands
    // in no block), for 30 s at most as a safety net.
    assert!(run(&mut p, &ready, 31_999, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, &ready, 32_000, &|_| false),
        vec![vec![vec![mine, 0]]]
    );
}

#[test]
fn an_announcement_whose_batch_never_finishes_holds_a_takeover_30_s_at_most() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let mine = a_sender_we_own();
    // A member announces it (Byzantine, say: its batch is decided Noop and never finishes).
    p.announced_by_other([tx(mine, 0).0], 0, false);
    assert!(run(&mut p, &[tx(mine, 0)], 0, &|_| false).is_empty());
    assert!(run(&mut p, &[tx(mine, 0)], 29_999, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, &[tx(mine, 0)], 30_000, &|_| false),
        vec![vec![vec![mine, 0]]]
    );
}

#[test]
fn a_sender_spread_over_validators_carries_its_earlier_transactions() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    // Sender 5's nonce 0 was submitted elsewhere and nonce 1 here; sender 6's only
    // transaction elsewhere; sender 7's here.
    let ready = [tx(5, 0), tx(6, 0), tx(5, 1), tx(7, 0)];
    let here: BTreeSet<H256> = [tx(5, 1).0, tx(7, 0).0].into();
    let batches = run(&mut p, &ready, 0, &|h| here.contains(h));
    assert_eq!(
        batches,
        vec![vec![vec![5, 0], vec![5, 1]], vec![vec![7, 0]]],
        "nonce 1 carries nonce 0; sender 6 waits for its owner"
    );
    assert!(
        run(&mut p, &ready, 10, &|h| here.contains(h)).is_empty(),
        "both carried transactions count as proposed"
    );
    assert_eq!(
        p.counts(),
        ProposalCounts {
            own: 2,
            taken_over: 0,
            carried: 1,
            covered: 0,
        }
    );
}

#[test]
fn a_carried_chain_that_would_overflow_the_batch_starts_the_next() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    // Batches of at most 2: sender 7's transaction fills one slot, sender 5's chain of two
    // (nonce 0 elsewhere, nonce 1 here) goes whole into the next batch.
    let ready = [tx(7, 0), tx(5, 0), tx(5, 1)];
    let here: BTreeSet<H256> = [tx(7, 0).0, tx(5, 1).0].into();
    assert_eq!(
        run(&mut p, &ready, 0, &|h| here.contains(h)),
        vec![vec![vec![7, 0]], vec![vec![5, 0], vec![5, 1]]]
    );
}

#[test]
fn the_inflight_limit_lets_transactions_gather() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    for i in 0..3u8 {
        p.proposed([i; 32], vec![], 0);
    }
    assert!(run(&mut p, &[tx(5, 0)], 0, &|_| true).is_empty());
    p.decided(&[0; 32]);
    assert_eq!(run(&mut p, &[tx(5, 0)], 1, &|_| true).len(), 1);
}

#[test]
fn the_baseline_primary_proposes_everything_and_others_nothing() {
    let mut p = PoolProposer::new(cfg(Mode::Leader));
    assert!(
        run(&mut p, &[tx(5, 0), tx(6, 0)], 0, &|_| true).is_empty(),
        "not the primary"
    );
    assert!(
        run(&mut p, &[tx(5, 0), tx(6, 0)], 6_000, &|_| false).is_empty(),
        "not submitted here"
    );
    // Another member's batch holds one of them (and, not being the primary's, measures
    // nothing).
    p.announced_by_other([tx(6, 0).0], 5_000, false);
    assert_eq!(
        run(&mut p, &[tx(5, 0), tx(6, 0)], 6_000, &|_| true),
        vec![vec![vec![5, 0]]],
        "a client's transaction no batch holds goes after the delay"
    );
}

#[test]
fn only_our_clients_first_proposals_count_as_queueing() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let m = members();
    let owned: Vec<u8> = (0..16u8)
        .filter(|s| PoolProposer::partition_owner(&m, &[*s; 32]) == ME)
        .collect();
    assert!(
        owned.len() >= 2,
        "two senders below 16 are ours to take over"
    );
    // A crashed receiver's transactions, taken over 2 s after they arrived and announced at
    // once: they waited for the receiver, not for us, and leave the estimate at 0.
    let first = tx(owned[0], 0);
    run(&mut p, std::slice::from_ref(&first), 0, &|_| false);
    assert_eq!(
        run(&mut p, std::slice::from_ref(&first), 2_000, &|_| false),
        vec![vec![vec![owned[0], 0]]]
    );
    p.proposed([1; 32], vec![first.0], 2_000);
    p.decided(&[1; 32]);
    assert_eq!(p.queueing, 0);
    // So the next one is taken over 2 s after it arrived too, not later.
    let next = tx(owned[1], 0);
    run(&mut p, &[first.clone(), next.clone()], 2_100, &|_| false);
    assert_eq!(
        run(&mut p, &[first, next], 4_100, &|_| false),
        vec![vec![vec![owned[1], 0]]]
    );
}

#[test]
fn a_skipped_own_transaction_goes_again_a_grace_after_its_block_is_final() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = [tx(5, 0)];
    assert_eq!(run(&mut p, &ready, 10_000, &|_| true).len(), 1);
    let id = [9; 32];
    p.proposed(id, vec![tx(5, 0).0], 10_000);
    p.decided(&id);
    // Block 1 holds our batch, but its builder skipped the transaction (it is still ready).
    p.block_finished(1, [id]);
    p.included(1, &[]);
    assert!(
        run_final(&mut p, &ready, 20_000, 0, &|_| true).is_empty(),
        "its block is not final yet, however long after the proposal"
    );
    // Final at 20.5 s: it may go again a second later.
    assert!(run_final(&mut p, &ready, 20_500, 1, &|_| true).is_empty());
    assert!(run_final(&mut p, &ready, 21_499, 1, &|_| true).is_empty());
    assert_eq!(
        run_final(&mut p, &ready, 21_500, 1, &|_| true),
        vec![vec![vec![5, 0]]]
    );
}

#[test]
fn a_busy_sender_whose_block_never_comes_is_free_after_the_safety_net() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    assert_eq!(run(&mut p, &[tx(5, 0)], 0, &|_| true).len(), 1);
    p.proposed([9; 32], vec![tx(5, 0).0], 0);
    // Our batch is not finished into a block for long (consensus is slow under load).
    let later = [tx(5, 0), tx(5, 1)];
    assert!(
        run(&mut p, &later, 5_999, &|_| true).is_empty(),
        "busy, and nonce 0 proposed recently"
    );
    assert!(
        run(&mut p, &later, 29_999, &|_| true).is_empty(),
        "nonce 0's batch is unfinished: held, and its sender busy"
    );
    assert_eq!(
        run(&mut p, &later, 30_000, &|_| true),
        vec![vec![vec![5, 0], vec![5, 1]]],
        "after the safety net both go, in one batch"
    );
}

#[test]
fn ours_another_batch_carries_are_held_like_our_batchs_until_its_block_is_final() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = [tx(5, 0), tx(6, 0)];
    assert_eq!(run(&mut p, &ready, 0, &|_| true).len(), 1);
    // The core took both out of its queue at 1 s: member 2's batch carries them.
    let by = [7; 32];
    p.covered(by, vec![tx(5, 0).0, tx(6, 0).0], 1_000);
    assert_eq!((p.counts().own, p.counts().covered), (2, 2));
    assert!(
        run(&mut p, &ready, 50_999, &|_| true).is_empty(),
        "held while that batch is not finished, the safety net from the core's hold's end"
    );
    // Block 1 holds it; its builder included sender 6's transaction only.
    p.block_finished(1, [by]);
    p.included(1, &[tx(6, 0).0]);
    let later = [tx(5, 0), tx(6, 0), tx(6, 1)];
    assert_eq!(
        run_final(&mut p, &later, 51_000, 0, &|_| true),
        vec![vec![vec![6, 1]]],
        "sender 6 is free again; sender 5's is held until its block is final"
    );
    assert!(run_final(&mut p, &[tx(5, 0)], 51_500, 1, &|_| true).is_empty());
    assert!(run_final(&mut p, &[tx(5, 0)], 52_499, 1, &|_| true).is_empty());
    assert_eq!(
        run_final(&mut p, &[tx(5, 0)], 52_500, 1, &|_| true),
        vec![vec![vec![5, 0]]],
        "skipped by a final block: a grace later it goes again"
    );
}

#[test]
fn ours_a_batch_carries_that_never_finishes_go_again_after_the_safety_net() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    assert_eq!(run(&mut p, &[tx(5, 0)], 0, &|_| true).len(), 1);
    p.covered([7; 32], vec![tx(5, 0).0], 5_000);
    // The core puts it back in its queue at 25 s; the safety net runs 30 s from there.
    assert!(run(&mut p, &[tx(5, 0)], 54_999, &|_| true).is_empty());
    assert_eq!(
        run(&mut p, &[tx(5, 0)], 55_000, &|_| true),
        vec![vec![vec![5, 0]]]
    );
}

#[test]
fn ours_in_another_checked_batch_wait_with_their_sender_until_it_lands_nowhere() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    // Our client's nonces 0 and 1 of sender 5 and one of sender 6 arrive; our core checked
    // member 2's batch carrying sender 5's nonce 0 before we handed anything over.
    let x = [7; 32];
    p.checked_elsewhere(x, [tx(5, 0).0], 0);
    let ready = [tx(5, 0), tx(5, 1), tx(6, 0)];
    assert_eq!(
        run(&mut p, &ready, 0, &|_| true),
        vec![vec![vec![6, 0]]],
        "sender 5 waits for that batch, its later nonce too"
    );
    // Decided Noop: it lands nowhere, so both go at once, and no other batch holds them again.
    p.void_elsewhere(&x, 100);
    p.checked_elsewhere([8; 32], [tx(5, 0).0], 100);
    assert!(p.elsewhere.is_empty(), "held once at most");
    assert_eq!(
        run(&mut p, &ready, 100, &|_| true),
        vec![vec![vec![5, 0], vec![5, 1]]]
    );
}

#[test]
fn a_checked_report_holds_only_ours_and_only_for_the_announcement_being_fed() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let (x, y) = ([7; 32], [8; 32]);
    // Member 2's batch x carries our client's transaction of sender 5 and another node's of
    // sender 6.
    let ours = |h: &H256| *h == tx(5, 0).0;
    let ready = [tx(5, 0), tx(6, 0)];
    p.feeding(x, vec![tx(5, 0).0, tx(6, 0).0]);
    // A report for another batch while x is fed refers to nothing we know is in it.
    p.core_checked(y, vec![], &ours, 0);
    assert!(p.elsewhere.is_empty());
    p.core_checked(x, vec![], &ours, 0);
    p.fed();
    assert_eq!(
        p.elsewhere.keys().copied().collect::<Vec<_>>(),
        vec![tx(5, 0).0]
    );
    assert_eq!(
        run(&mut p, &ready, 0, &ours),
        vec![] as Vec<Vec<Vec<u8>>>,
        "ours waits for x; sender 6's is not ours to propose yet"
    );
    // Once fed, a late report of x again holds nothing more.
    p.feeding(y, vec![tx(9, 0).0]);
    p.fed();
    p.core_checked(y, vec![], &|_| true, 0);
    assert_eq!(p.elsewhere.len(), 1);
    // x lands nowhere: ours goes at once.
    p.void_elsewhere(&x, 50);
    assert_eq!(run(&mut p, &ready, 50, &ours), vec![vec![vec![5, 0]]]);
}

#[test]
fn a_chain_copied_one_nonce_at_a_time_is_held_once() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let chain = [tx(5, 0), tx(5, 1), tx(5, 2)];
    // A member copies nonce 0, and just before that hold ends, nonce 1.
    p.checked_elsewhere([7; 32], [tx(5, 0).0], 0);
    assert!(run(&mut p, &chain, 0, &|_| true).is_empty());
    p.checked_elsewhere([8; 32], [tx(5, 1).0], COVER_HOLD_MS - 1);
    assert!(run(&mut p, &chain, COVER_HOLD_MS - 1, &|_| true).is_empty());
    assert_eq!(
        run(&mut p, &chain, COVER_HOLD_MS, &|_| true),
        vec![vec![vec![5, 0], vec![5, 1]]],
        "nonce 0's hold ended, so nonce 1's ends with it: the chain goes on"
    );
    // The ended holds are remembered while the pool lists them, and a new hold finds the
    // sender released behind them.
    assert!(p.elsewhere.is_empty());
    let (a, b, c) = (tx(6, 0), tx(6, 1), tx(6, 2));
    p.checked_elsewhere([9; 32], [a.0], 30_000);
    p.void_elsewhere(&[9; 32], 30_000);
    p.checked_elsewhere([10; 32], [b.0], 30_000);
    assert_eq!(
        run(&mut p, &[a, b, c], 30_000, &|_| true),
        vec![vec![vec![6, 0], vec![6, 1]]],
        "behind a transaction whose hold ended, a later one is not held"
    );
}

#[test]
fn ours_in_another_checked_batch_are_done_once_it_lands_and_held_once_at_most() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let (x, y) = ([7; 32], [8; 32]);
    p.checked_elsewhere(x, [tx(5, 0).0, tx(6, 0).0], 0);
    let ready = [tx(5, 0), tx(6, 0)];
    assert!(run(&mut p, &ready, 5_000, &|_| true).is_empty());
    // Its block is finished at 10 s and included sender 6's only: held while it is built.
    p.others_finished([tx(5, 0).0, tx(6, 0).0], 10_000);
    p.included(1, &[tx(6, 0).0]);
    assert!(run(&mut p, &ready, 15_999, &|_| true).is_empty());
    assert_eq!(
        run(&mut p, &ready, 16_000, &|_| true),
        vec![vec![vec![5, 0]]],
        "what the block skipped goes; what it included never"
    );
    // A transaction whose hold ran out is never held again, by any batch.
    p.checked_elsewhere(y, [tx(5, 0).0, tx(9, 0).0], 16_001);
    p.checked_elsewhere(y, [tx(9, 1).0], 16_001);
    assert_eq!(
        run(
            &mut p,
            &[tx(5, 0), tx(9, 0), tx(9, 1), tx(10, 0)],
            16_002,
            &|_| true
        ),
        vec![vec![vec![10, 0]]],
        "sender 9 is held; nothing else"
    );
    // Nor is one we handed to the core already (tx(5, 0), proposed at 16 s).
    p.checked_elsewhere(y, [tx(5, 0).0], 16_003);
    assert!(!p.elsewhere.contains_key(&tx(5, 0).0));
    // The hold runs out 20 s after the check.
    let later = [tx(5, 0), tx(9, 0), tx(9, 1)];
    assert!(run(&mut p, &later, 16_001 + COVER_HOLD_MS - 1, &|_| true).is_empty());
    assert_eq!(
        run(&mut p, &later, 16_001 + COVER_HOLD_MS, &|_| true),
        vec![vec![vec![9, 0], vec![9, 1]]]
    );
    p.checked_elsewhere([11; 32], [tx(9, 0).0], 40_000);
    assert!(p.elsewhere.is_empty(), "held once at most");
}

#[test]
fn held_transactions_go_again_at_once_in_a_new_epoch() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = [tx(5, 0), tx(6, 0)];
    assert_eq!(run(&mut p, &ready, 0, &|_| true).len(), 1);
    // One in a batch not finished into a block, one in a block not final yet: well past the
    // re-proposal delay both are held (a copy would only be refused).
    p.proposed([9; 32], vec![tx(5, 0).0], 0);
    p.proposed([8; 32], vec![tx(6, 0).0], 0);
    p.block_finished(1, [[8; 32]]);
    assert!(run(&mut p, &ready, 20_000, &|_| true).is_empty());
    // A new epoch voids the old one's batches and its blocks past the handover.
    p.new_epoch(20_000);
    assert_eq!(
        run(&mut p, &ready, 20_001, &|_| true),
        vec![vec![vec![5, 0], vec![6, 0]]]
    );
}

#[test]
fn a_new_epoch_ends_the_holds_of_the_old_ones_batches_for_good() {
    // Another validator's announcement of a transaction whose sender we own holds our
    // takeover; its batch is void in the new epoch, so the takeover goes at once.
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let mine = a_sender_we_own();
    p.announced_by_other([tx(mine, 0).0], 0, false);
    let ready = [tx(mine, 0)];
    assert!(run(&mut p, &ready, 0, &|_| false).is_empty());
    assert!(
        run(&mut p, &ready, 7_000, &|_| false).is_empty(),
        "held by the announcement"
    );
    p.new_epoch(7_000);
    assert_eq!(
        run(&mut p, &ready, 7_001, &|_| false),
        vec![vec![vec![mine, 0]]]
    );

    // Our client's transaction held behind a checked batch goes at once, and a batch of the
    // new epoch cannot hold it again.
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = [tx(5, 0)];
    p.checked_elsewhere([7; 32], [tx(5, 0).0], 0);
    assert!(run(&mut p, &ready, 1, &|_| true).is_empty(), "held");
    p.new_epoch(2);
    p.checked_elsewhere([8; 32], [tx(5, 0).0], 2);
    assert_eq!(run(&mut p, &ready, 3, &|_| true), vec![vec![vec![5, 0]]]);
}

#[test]
fn a_rejoin_ends_the_holds_behind_checked_batches_for_good() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = [tx(5, 0), tx(6, 0)];
    p.checked_elsewhere([7; 32], [tx(5, 0).0], 0);
    assert_eq!(
        run(&mut p, &ready, 1, &|_| true),
        vec![vec![vec![6, 0]]],
        "tx(5, 0) held"
    );
    p.rejoined(2);
    p.checked_elsewhere([8; 32], [tx(5, 0).0], 2);
    assert_eq!(
        run(&mut p, &ready, 3, &|_| true),
        vec![vec![vec![5, 0]]],
        "goes at once, and is not held again"
    );
}

/// Passes do not look at the pool while the in-flight allowance is used, so a pass may first
/// see our client's transaction long after it arrived: its queueing counts from the arrival.
#[test]
fn our_clients_queueing_counts_from_their_arrival_not_a_pass_first_sight() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let m = members();
    let (ours, other) = (tx(5, 0), tx(6, 0));
    // A first look, long before (the first one counts what it finds from now).
    run(&mut p, &[], 1_000, &|_| false);
    let here = |h: &H256| *h == ours.0;
    let turn = Turn {
        // Ours arrived 3 s before this pass; `other` is no client's here.
        waited_here: &|h| (*h == ours.0).then_some(3_000),
        ..turn_at(&m, 5_000, &here)
    };
    let ready = [&ours, &other].map(|(h, b)| (*h, || b.clone()));
    let batches = p.next_batches(ready, classify, &turn);
    assert_eq!(batches.len(), 1, "ours goes at once, the other is not due");
    p.proposed([1; 32], vec![ours.0], 5_200);
    assert_eq!(
        p.queueing,
        (3_000 + 200) / 4,
        "3.2 s from arrival to announcement, a quarter weight on 0"
    );
    // A client's future transaction, submitted 60 s ago, not ready at a look 500 ms before this
    // pass: it counts from that look, not from its submission.
    let mut q = PoolProposer::new(cfg(Mode::Leaderless));
    run(&mut q, &[], 4_500, &|_| false);
    let turn = Turn {
        waited_here: &|h| (*h == ours.0).then_some(60_000),
        ..turn
    };
    let ready = std::iter::once((ours.0, || ours.1.clone()));
    assert_eq!(q.next_batches(ready, classify, &turn).len(), 1);
    q.proposed([1; 32], vec![ours.0], 5_200);
    assert_eq!(q.queueing, 700 / 4);
    // With no look before (a node that just started), from the first look.
    let mut r = PoolProposer::new(cfg(Mode::Leaderless));
    let ready = std::iter::once((ours.0, || ours.1.clone()));
    assert_eq!(r.next_batches(ready, classify, &turn).len(), 1);
    r.proposed([1; 32], vec![ours.0], 5_200);
    assert_eq!(r.queueing, 200 / 4);
}

#[test]
fn the_baseline_fallback_waits_for_the_primarys_queue() {
    let mut p = PoolProposer::new(cfg(Mode::Leader));
    let ours = |h: &H256| h.0[0] / 16 == 5 || h.0[0] / 16 == 7;
    // Our clients' transactions, seen at once; the primary announces each 10 s later.
    let queued: Vec<_> = (0..4).map(|n| tx(5, n)).collect();
    assert!(run(&mut p, &queued, 0, &ours).is_empty(), "not the primary");
    for (h, _) in &queued {
        p.announced_by_other([*h], 10_000, true);
    }
    let q = p.queueing;
    assert!(q > 6_000, "the primary's queue measured: {q} ms");
    // The fallback would go 6 s after arrival; with that queue it waits twice as long more.
    let next = tx(7, 0);
    run(&mut p, std::slice::from_ref(&next), 10_100, &ours);
    assert!(
        run(&mut p, std::slice::from_ref(&next), 16_100, &ours).is_empty(),
        "the primary's queue is long: not yet"
    );
    let due = 16_100 + 2 * q;
    assert!(run(&mut p, std::slice::from_ref(&next), due - 1, &ours).is_empty());
    assert_eq!(
        run(&mut p, std::slice::from_ref(&next), due, &ours),
        vec![vec![vec![7, 0]]]
    );
    // What the fallback proposed waited for the fallback, not for the primary: unmeasured,
    // whether our core or then the primary announces it.
    p.proposed([1; 32], vec![next.0], due);
    p.announced_by_other([next.0], due + 1_000, true);
    assert_eq!(p.queueing, q);
}

#[test]
fn only_the_primarys_own_announcements_of_unannounced_transactions_measure_its_queue() {
    let mut p = PoolProposer::new(cfg(Mode::Leader));
    let ours = |h: &H256| h.0[0] / 16 == 5;
    run(&mut p, &[tx(5, 0), tx(5, 1)], 0, &ours);
    // Another member announces them late, to stretch our fallback: not measured.
    p.announced_by_other([tx(5, 0).0], 5_900, false);
    assert_eq!(p.queueing, 0);
    // One the primary announced before we first saw it here is not measured at its
    // re-announcement either.
    p.announced_by_other([tx(5, 2).0], 100, true);
    run(&mut p, &[tx(5, 0), tx(5, 1), tx(5, 2)], 200, &ours);
    p.announced_by_other([tx(5, 2).0], 9_000, true);
    assert_eq!(p.queueing, 0);
    // The primary's own announcement is: 4 s after arrival.
    p.announced_by_other([tx(5, 1).0], 4_000, true);
    assert_eq!(p.queueing, 1_000);
}

#[test]
fn announcements_are_bounded_newest_kept() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let hash = |i: usize| H256(sp_crypto_hashing::blake2_256(&i.to_le_bytes()));
    for i in 0..=MAX_ANNOUNCED {
        p.announced_by_other([hash(i)], i as u64, false);
    }
    assert_eq!(p.announced.len(), MAX_ANNOUNCED / 2);
    assert!(p.announced.contains_key(&hash(MAX_ANNOUNCED)));
    assert!(!p.announced.contains_key(&hash(0)));
}

#[test]
fn an_announcement_holds_the_baseline_fallback_until_its_batch_is_finished() {
    let mut p = PoolProposer::new(cfg(Mode::Leader));
    run(&mut p, &[tx(5, 0)], 0, &|_| true);
    p.announced_by_other([tx(5, 0).0], 1_000, true);
    assert!(
        run(&mut p, &[tx(5, 0)], 20_000, &|_| true).is_empty(),
        "the primary's batch is being ordered"
    );
    // Finished into a block at 21 s; still pending a delay later (skipped), the fallback goes.
    p.others_finished([tx(5, 0).0], 21_000);
    assert!(run(&mut p, &[tx(5, 0)], 26_999, &|_| true).is_empty());
    assert_eq!(
        run(&mut p, &[tx(5, 0)], 27_000, &|_| true),
        vec![vec![vec![5, 0]]]
    );
    // A finish does not hold it past the hold it cut (announced before we saw it, at 0).
    let mut q = PoolProposer::new(cfg(Mode::Leader));
    q.announced_by_other([tx(5, 0).0], 0, true);
    run(&mut q, &[tx(5, 0)], 10_000, &|_| true);
    q.others_finished([tx(5, 0).0], 29_000);
    assert_eq!(
        run(&mut q, &[tx(5, 0)], 30_000, &|_| true),
        vec![vec![vec![5, 0]]]
    );
}

#[test]
fn evicting_an_announcement_and_sending_it_again_holds_no_longer() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let mine = a_sender_we_own();
    p.announced_by_other([tx(mine, 0).0], 0, false);
    run(&mut p, &[tx(mine, 0)], 0, &|_| false);
    // A member floods announcements until ours is evicted, then announces it again.
    let hash = |i: usize| H256(sp_crypto_hashing::blake2_256(&i.to_le_bytes()));
    for i in 0..=MAX_ANNOUNCED {
        p.announced_by_other([hash(i)], 1, false);
    }
    p.announced_by_other([tx(mine, 0).0], 20_000, false);
    assert!(run(&mut p, &[tx(mine, 0)], 29_999, &|_| false).is_empty());
    assert_eq!(
        run(&mut p, &[tx(mine, 0)], 30_000, &|_| false),
        vec![vec![vec![mine, 0]]],
        "30 s after we first saw it, whatever was announced since"
    );
}

#[test]
fn the_safety_net_runs_from_the_announcement_not_the_hand_over() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    run(&mut p, &[tx(5, 0)], 0, &|_| true);
    // The core's queue held the batch 20 s before announcing it.
    p.proposed([9; 32], vec![tx(5, 0).0], 20_000);
    assert!(run(&mut p, &[tx(5, 0)], 49_999, &|_| true).is_empty());
    assert_eq!(
        run(&mut p, &[tx(5, 0)], 50_000, &|_| true),
        vec![vec![vec![5, 0]]]
    );
}

#[test]
fn a_takeover_waits_behind_an_earlier_transaction_another_batch_is_ordering() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let mine = a_sender_we_own();
    let (n0, n1) = (tx(mine, 0), tx(mine, 1));
    // Its receiver announced nonce 0; nonce 1 still waits in that receiver's queue.
    p.announced_by_other([n0.0], 0, false);
    let ready = [n0.clone(), n1.clone()];
    assert!(run(&mut p, &ready, 0, &|_| false).is_empty());
    assert!(
        run(&mut p, &ready, 2_000, &|_| false).is_empty(),
        "taking nonce 1 over would carry nonce 0, which is being ordered, as a copy"
    );
    // Nonce 0's block was built here; nonce 1, still pending, is taken over alone.
    p.included(1, &[n0.0]);
    assert_eq!(
        run(&mut p, &ready, 2_100, &|_| false),
        vec![vec![vec![mine, 1]]]
    );
    // Our own client's transaction does not wait: it carries the earlier one, whose copy
    // the builder skips whichever is ordered first.
    let mut q = PoolProposer::new(cfg(Mode::Leaderless));
    q.announced_by_other([tx(5, 0).0], 0, false);
    assert_eq!(
        run(&mut q, &[tx(5, 0), tx(5, 1)], 0, &|h| *h == tx(5, 1).0),
        vec![vec![vec![5, 0], vec![5, 1]]]
    );
}

/// A transaction that leaves the ready set is forgotten by the next pass: whether we proposed it,
/// and when we first saw it. An announcement of it is not: it holds until it runs out.
#[test]
fn what_leaves_the_ready_set_is_forgotten_but_an_announcement_of_it_holds() {
    let mut p = PoolProposer::new(cfg(Mode::Leaderless));
    let m = members();
    let not_ours: Vec<u8> = (0..16u8)
        .filter(|s| PoolProposer::partition_owner(&m, &[*s; 32]) != ME)
        .take(2)
        .collect();
    let (gone, announced) = (tx(not_ours[0], 0), tx(not_ours[1], 0));
    let own = tx(a_sender_we_own(), 0);
    let mine = |h: &H256| *h == own.0;

    assert_eq!(run(&mut p, &[own.clone(), gone.clone()], 0, &mine).len(), 1);
    p.announced_by_other([announced.0], 0, false);
    assert!(run(&mut p, &[], 1_000, &mine).is_empty(), "nothing ready");
    assert_eq!(
        run(&mut p, &[own.clone(), gone.clone()], 1_500, &mine),
        vec![vec![own.1.clone()]],
        "our own transaction came back: proposed again"
    );
    assert!(
        run(&mut p, std::slice::from_ref(&gone), 7_000, &mine).is_empty(),
        "first seen again at 1.5 s, not 0: no takeover 6 s after 0"
    );
    assert_eq!(
        run(&mut p, &[gone.clone(), announced.clone()], 7_500, &mine),
        vec![vec![gone.1.clone()]],
        "taken over 6 s after it came back"
    );
    assert!(
        run(&mut p, std::slice::from_ref(&announced), 14_000, &mine).is_empty(),
        "the announcement made before it arrived still holds it"
    );
}

mod receivers_queues;

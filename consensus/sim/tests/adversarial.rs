//! Runs that show the checkers can fail, and replay determinism.
use bsmr_consensus_core::*;
use bsmr_sim::checker::Checker;
use bsmr_sim::crypto::Sr25519Verifier;
use bsmr_sim::ledger::Ledger;
use bsmr_sim::{run, Behaviour, SimConfig};
use std::collections::BTreeSet;

/// f+1 Byzantine validators (beyond the model): the correct validators must produce misbehaviour
/// proofs against them, and every proof must verify against a Byzantine culprit.
#[test]
fn f_plus_one_byzantine_produce_proofs() {
    for (n, b) in [
        (4, Behaviour::DoubleVote),
        (4, Behaviour::Equivocate),
        (7, Behaviour::ConflictingPrePrepare),
    ] {
        let mut c = SimConfig::ci(n, 7);
        c.byzantine = (n - 1) / 3 + 1;
        c.behaviour = b;
        c.end_ms = 20_000;
        let r = run(c);
        let total: usize = r.proofs.values().sum();
        assert!(total > 0, "n={n} {b:?}: no misbehaviour proof");
        assert!(
            r.proofs.keys().all(|k| *k >= n - ((n - 1) / 3 + 1)),
            "proof against a correct validator: {:?}",
            r.proofs
        );
        assert!(
            !r.violations.iter().any(|v| v.starts_with("S12")),
            "{:?}",
            r.violations
        );
    }
}

/// The checker reports a forged disagreement (S1) and a proof against a correct validator (S12).
#[test]
fn checker_can_fail() {
    let signers: Vec<bsmr_sim::crypto::Sr25519Signer> = (0..4)
        .map(bsmr_sim::crypto::Sr25519Signer::for_validator)
        .collect();
    let m = Membership::new([0; 32], 0, signers.iter().map(|s| s.public()).collect());
    let mut c = Checker::new(
        m.clone(),
        Box::new(Sr25519Verifier::default()),
        16,
        BTreeSet::new(),
        0,
    );
    let inst = InstanceId::Ckpt(1);
    let v1 = Value::Deps {
        cmd: [1; 32],
        deps: vec![],
        after: 0,
    };
    let v2 = Value::Deps {
        cmd: [2; 32],
        deps: vec![],
        after: 0,
    };
    c.on_commit(0, inst, &v1, 0, None);
    assert!(c.violations.is_empty());
    c.on_commit(1, inst, &v2, 0, None);
    assert!(
        c.violations.iter().any(|v| v.starts_with("S1")),
        "{:?}",
        c.violations
    );
    // A valid vote-equivocation proof against validator 0, who is not Byzantine here.
    let vote = |d: u8| {
        Signed::sign(
            wire::VoteBody {
                epoch: 0,
                inst,
                view: 0,
                phase: wire::Phase::Prepare,
                value: [d; 32],
            },
            &m.genesis,
            &signers[0],
        )
    };
    c.on_proof(2, &Proof::VoteEquivocation(vote(1), vote(2)));
    assert!(
        c.violations.iter().any(|v| v.starts_with("S12")),
        "{:?}",
        c.violations
    );
}

/// A seed replays exactly.
#[test]
fn replay_is_exact() {
    for (n, b, byz) in [(4, Behaviour::FakeDeps, 1), (7, Behaviour::VcSpam, 2)] {
        let mk = || {
            let mut c = SimConfig::ci(n, 42);
            c.byzantine = byz;
            c.behaviour = b;
            c
        };
        let (a, z) = (run(mk()), run(mk()));
        assert_eq!(
            (
                a.events,
                a.messages,
                a.decisions,
                a.min_height,
                a.max_height
            ),
            (
                z.events,
                z.messages,
                z.decisions,
                z.min_height,
                z.max_height
            )
        );
        assert_eq!(a.commit_latency_ms, z.commit_latency_ms);
    }
}

/// S6 and S8 fire on a forged ledger: one that applied a transaction twice, and one whose
/// supply changed. (Real runs cannot produce either while the toy ledger skips applied ids and
/// transfers conserve; the checks guard the ledger itself.)
#[test]
fn s6_and_s8_can_fail_on_a_forged_ledger() {
    let m = Membership::new([0; 32], 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]]);
    let block = wire::FinishedBlock {
        index: 1,
        timestamp_ms: 1,
        checkpoint: [9; 32],
        checkpoint_view: 0,
        next_rotation: bsmr_consensus_core::rotation::Rotation::fresh(0),
        floors: vec![],
        batches: vec![],
    };
    let check = |ledger: &Ledger| {
        let mut c = Checker::new(
            m.clone(),
            Box::new(Sr25519Verifier::default()),
            16,
            BTreeSet::new(),
            4 * 1_000,
        );
        c.on_block(0, &block, ledger);
        c.violations
    };
    let honest = Ledger::genesis(4, 1_000);
    let clean = check(&honest);
    assert!(
        !clean
            .iter()
            .any(|v| v.starts_with("S6") || v.starts_with("S8")),
        "{clean:?}"
    );
    let mut twice = honest.clone();
    twice.double_applied = 1;
    assert!(check(&twice).iter().any(|v| v.starts_with("S6")));
    let mut minted = honest.clone();
    *minted.balances.get_mut(&0).unwrap() += 1;
    assert!(check(&minted).iter().any(|v| v.starts_with("S8")));
}

/// A Byzantine validator copies each correct validator's fresh client transactions into its own
/// batches, a different batch per recipient, and never collects replies for them. The correct
/// validators, whose windows are kept short so that their transactions wait, take their
/// waiting copies out for those batches (`Output::Checked`); every transaction must still land,
/// brought back by the batch's Noop or by the end of the hold.
#[test]
fn waiting_transactions_a_byzantine_batch_copied_still_land() {
    let mut covered = 0;
    for seed in [3, 4, 5] {
        let mut c = SimConfig::small(4, seed);
        c.byzantine = 1;
        c.behaviour = Behaviour::CoverPending;
        c.window = 1;
        c.txs_per_batch = 8;
        let r = run(c);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        covered += r.covered_txs;
    }
    assert!(
        covered > 0,
        "no copy was taken out: the runs showed nothing"
    );
}

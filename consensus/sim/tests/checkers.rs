//! Every invariant checker fails on a forged history: each test first feeds the checker a
//! correct history (no violation) and then the same history with one forged step (the named
//! violation). S1, S6, S8 and S12 are in `adversarial.rs`.

use bsmr_consensus_core::wire::{Phase, PrePrepareBody, ReplyBody, VoteBody};
use bsmr_consensus_core::*;
use bsmr_sim::checker::Checker;
use bsmr_sim::crypto::{Sr25519Signer, Sr25519Verifier};
use bsmr_sim::ledger::{acct, Ledger};
use codec::Encode;
use std::collections::BTreeSet;

const N: usize = 4;
const SUPPLY_EACH: u64 = 1_000;

/// Four validators with real keys, and helpers that sign what they would send.
struct Forge {
    signers: Vec<Sr25519Signer>,
    m: Membership,
}

impl Forge {
    fn new() -> Self {
        let signers: Vec<Sr25519Signer> = (0..N).map(Sr25519Signer::for_validator).collect();
        let m = Membership::new([0; 32], 0, signers.iter().map(|s| s.public()).collect());
        Forge { signers, m }
    }

    fn id(&self, i: usize) -> ValidatorId {
        self.signers[i].public()
    }

    fn checker(&self) -> Checker {
        Checker::new(
            self.m.clone(),
            Box::new(Sr25519Verifier::default()),
            16,
            BTreeSet::new(),
            N as u64 * SUPPLY_EACH,
        )
    }

    /// A Txs batch of `proposer` touching the accounts `access`, signed by `signer`.
    fn batch_signed_by(
        &self,
        signer: usize,
        proposer: usize,
        seq: Seq,
        access: &[u32],
    ) -> SignedBatch {
        let mut access: Vec<AccountId> = access.iter().map(|a| acct(*a)).collect();
        access.sort();
        let header = BatchHeader {
            epoch: 0,
            proposer: self.id(proposer),
            seq,
            base: [0; 32],
            kind: BatchKind::Txs,
            access,
            txs_root: hash(&Vec::<Tx>::new().encode()),
            weight: 0,
        };
        SignedBatch {
            header: Signed::sign(header, &self.m.genesis, &self.signers[signer]),
            txs: Default::default(),
        }
    }

    fn batch(&self, proposer: usize, seq: Seq, access: &[u32]) -> SignedBatch {
        self.batch_signed_by(proposer, proposer, seq, access)
    }

    fn reply(
        &self,
        replier: usize,
        cmd: DepRef,
        deps: Vec<DepRef>,
        fence: u64,
    ) -> Signed<ReplyBody> {
        let body = ReplyBody {
            epoch: 0,
            cmd,
            pos: 1,
            deps,
            fence,
        };
        Signed::sign(body, &self.m.genesis, &self.signers[replier])
    }

    fn vote(&self, i: usize, inst: InstanceId, view: View, value: &Value) -> Message {
        let body = VoteBody {
            epoch: 0,
            inst,
            view,
            phase: Phase::Prepare,
            value: value.digest(),
        };
        Message::Vote(Signed::sign(body, &self.m.genesis, &self.signers[i]))
    }

    /// Commit `b` with dependencies `deps` and fence `after`, as node 0 would report it.
    fn commit(&self, c: &mut Checker, b: &SignedBatch, deps: &[&SignedBatch], after: BlockIndex) {
        let value = Value::Deps {
            cmd: b.id(),
            deps: deps.iter().map(|d| d.header.body.dep_ref()).collect(),
            after,
        };
        c.on_commit(0, inst_of(b), &value, 0, Some(b));
    }
}

fn inst_of(b: &SignedBatch) -> InstanceId {
    b.header.body.dep_ref().instance()
}

fn checkpoint(c: &mut Checker, index: BlockIndex) {
    let value = Value::Deps {
        cmd: [index as u8; 32],
        deps: vec![],
        after: index.saturating_sub(1),
    };
    c.on_commit(0, InstanceId::Ckpt(index), &value, 0, None);
}

fn block(
    index: BlockIndex,
    batches: &[&SignedBatch],
    floors: Vec<(ValidatorId, Seq)>,
) -> FinishedBlock {
    FinishedBlock {
        index,
        timestamp_ms: index,
        checkpoint: [index as u8; 32],
        checkpoint_view: 0,
        next_rotation: Rotation::fresh(0),
        floors,
        batches: batches
            .iter()
            .map(|b| (b.header.body.clone(), b.txs.clone()))
            .collect(),
    }
}

fn ledger() -> Ledger {
    Ledger::genesis(N as u32, SUPPLY_EACH)
}

fn fired(c: &Checker, invariant: &str) -> bool {
    let prefix = format!("{invariant}:");
    c.violations.iter().any(|v| v.starts_with(&prefix))
}

#[track_caller]
fn assert_clean(c: &Checker) {
    assert!(c.violations.is_empty(), "{:?}", c.violations);
}

#[track_caller]
fn assert_fired(c: &Checker, invariant: &str) {
    assert!(
        fired(c, invariant),
        "{invariant} did not fire: {:?}",
        c.violations
    );
}

#[test]
fn s2_fires_on_a_wrong_value_or_payload() {
    let f = Forge::new();
    let b = f.batch(0, 0, &[0, 1]);
    let mut c = f.checker();
    f.commit(&mut c, &b, &[], 0);
    checkpoint(&mut c, 1);
    assert_clean(&c);

    let mut noop_checkpoint = f.checker();
    noop_checkpoint.on_commit(0, InstanceId::Ckpt(1), &Value::Noop, 0, None);
    assert_fired(&noop_checkpoint, "S2");

    let mut other_command = f.checker();
    let value = Value::Deps {
        cmd: [5; 32],
        deps: vec![],
        after: 0,
    };
    other_command.on_commit(0, inst_of(&b), &value, 0, Some(&b));
    assert_fired(&other_command, "S2");

    let mut no_payload = f.checker();
    no_payload.on_commit(0, inst_of(&b), &value_of(&b), 0, None);
    assert_fired(&no_payload, "S2");

    // Validator 1 signed a header in validator 0's name.
    let forged = f.batch_signed_by(1, 0, 0, &[0, 1]);
    let mut forged_payload = f.checker();
    forged_payload.on_commit(0, inst_of(&forged), &value_of(&forged), 0, Some(&forged));
    assert_fired(&forged_payload, "S2");
}

fn value_of(b: &SignedBatch) -> Value {
    Value::Deps {
        cmd: b.id(),
        deps: vec![],
        after: 0,
    }
}

/// S2 against the proof: a correct leader's proposal and a correct validator's Prepare vote must
/// be for a value that q signed replies determine (dependencies = their union, fence = their
/// largest), re-checked by the checker whatever the replica decided to accept.
#[test]
fn s2_fires_on_a_proposal_or_prepare_its_replies_do_not_support() {
    let f = Forge::new();
    let b = f.batch(0, 0, &[0, 1]);
    let dep = f.batch(1, 0, &[1, 2]).header.body.dep_ref();
    let cmd = b.header.body.dep_ref();
    let replies: Vec<Signed<ReplyBody>> = (0..f.m.q())
        .map(|i| {
            f.reply(
                i,
                cmd,
                if i == 0 { vec![dep] } else { vec![] },
                i as u64 % 2,
            )
        })
        .collect();
    let supported = Value::Deps {
        cmd: b.id(),
        deps: vec![dep],
        after: 1,
    };
    let proposal = |value: &Value| {
        let body = PrePrepareBody {
            epoch: 0,
            inst: inst_of(&b),
            view: 0,
            value: value.clone(),
            proof: replies.clone(),
            new_view: vec![],
        };
        Message::PrePrepare(
            Signed::sign(body, &f.m.genesis, &f.signers[0]),
            Some(b.clone()),
        )
    };

    let mut c = f.checker();
    c.on_send(0, f.id(0), &proposal(&supported));
    c.on_deliver(&proposal(&supported));
    c.on_send(1, f.id(1), &f.vote(1, inst_of(&b), 0, &supported));
    assert_clean(&c);

    for unsupported in [
        // A dependency of one reply dropped.
        Value::Deps {
            cmd: b.id(),
            deps: vec![],
            after: 1,
        },
        // The fence below the replies' largest.
        Value::Deps {
            cmd: b.id(),
            deps: vec![dep],
            after: 0,
        },
    ] {
        let mut leader = f.checker();
        leader.on_send(0, f.id(0), &proposal(&unsupported));
        assert_fired(&leader, "S2");

        // Validator 1 prepares it after receiving it from a (Byzantine) leader.
        let mut voter = f.checker();
        voter.on_deliver(&proposal(&unsupported));
        voter.on_send(1, f.id(1), &f.vote(1, inst_of(&b), 0, &unsupported));
        assert_fired(&voter, "S2");
    }

    // A Prepare for a value no pre-prepare carried at all.
    let mut unseen = f.checker();
    unseen.on_send(1, f.id(1), &f.vote(1, inst_of(&b), 0, &supported));
    assert_fired(&unseen, "S2");
}

#[test]
fn s3_fires_on_unrelated_conflicting_commands_in_one_block() {
    let f = Forge::new();
    let a = f.batch(0, 0, &[0, 1]);
    let b = f.batch(1, 0, &[1, 2]);
    let run = |related: bool| {
        let mut c = f.checker();
        f.commit(&mut c, &a, &[], 0);
        let deps: &[&SignedBatch] = if related { &[&a] } else { &[] };
        f.commit(&mut c, &b, deps, 0);
        checkpoint(&mut c, 1);
        c.on_block(0, &block(1, &[&a, &b], vec![]), &ledger());
        c
    };
    assert_clean(&run(true));
    assert_fired(&run(false), "S3");
}

#[test]
fn s4_fires_when_two_replicas_apply_one_account_in_different_orders() {
    let f = Forge::new();
    let a = f.batch(0, 0, &[0, 1]);
    let body = block(1, &[&a], vec![]);
    let with_order = |order: Vec<u64>| {
        let mut l = ledger();
        l.order.insert(0, order);
        l
    };
    let run = |second: Vec<u64>| {
        let mut c = f.checker();
        f.commit(&mut c, &a, &[], 0);
        checkpoint(&mut c, 1);
        c.on_block(0, &body, &with_order(vec![1, 2]));
        c.on_block(1, &body, &with_order(second));
        c
    };
    // A replica behind (a prefix) is fine; a different order is not.
    assert_clean(&run(vec![1]));
    assert_fired(&run(vec![2, 1]), "S4");
}

#[test]
fn s5_fires_on_two_blocks_or_two_states_at_one_height() {
    let f = Forge::new();
    let a = f.batch(0, 0, &[0, 1]);
    let run = |second: &FinishedBlock, state: &Ledger| {
        let mut c = f.checker();
        f.commit(&mut c, &a, &[], 0);
        checkpoint(&mut c, 1);
        c.on_block(0, &block(1, &[&a], vec![]), &ledger());
        c.on_block(1, second, state);
        c
    };
    assert_clean(&run(&block(1, &[&a], vec![]), &ledger()));
    assert_fired(&run(&block(1, &[], vec![]), &ledger()), "S5");
    let mut moved = ledger();
    *moved.balances.get_mut(&0).unwrap() -= 1;
    *moved.balances.get_mut(&1).unwrap() += 1;
    assert_fired(&run(&block(1, &[&a], vec![]), &moved), "S5");
}

#[test]
fn s9_fires_when_a_correct_validator_prepares_against_a_decision() {
    let f = Forge::new();
    let inst = InstanceId::Ckpt(1);
    let x = Value::Deps {
        cmd: [1; 32],
        deps: vec![],
        after: 0,
    };
    let y = Value::Deps {
        cmd: [2; 32],
        deps: vec![],
        after: 0,
    };
    // Decided x in view 1; then prepares in view 2.
    let run = |prepared: &Value| {
        let mut c = f.checker();
        c.on_commit(0, inst, &x, 1, None);
        c.on_send(2, f.id(2), &f.vote(2, inst, 2, prepared));
        c
    };
    assert_clean(&run(&x));
    assert_fired(&run(&y), "S9");
    // The other order: a prepare of y in view 3 seen before x is decided in view 2.
    let mut c = f.checker();
    c.on_send(2, f.id(2), &f.vote(2, inst, 3, &y));
    c.on_commit(0, inst, &x, 2, None);
    assert_fired(&c, "S9");
}

#[test]
fn s10_fires_on_unstable_or_unpersisted_replies_and_positions_going_back() {
    let f = Forge::new();
    let a = f.batch(0, 0, &[0, 1]).header.body.dep_ref();
    let b = f.batch(1, 0, &[1, 2]).header.body.dep_ref();
    let reply = |cmd: DepRef, pos: u64, fence: u64, deps: Vec<DepRef>| {
        let mut r = f.reply(2, cmd, deps, fence);
        r.body.pos = pos;
        r
    };
    let mut c = f.checker();
    let first = reply(a, 1, 1, vec![]);
    c.on_reply_created(2, f.id(2), &first.body);
    c.on_send(2, f.id(2), &Message::Reply(first.clone()));
    c.on_reply_created(2, f.id(2), &reply(b, 2, 1, vec![a]).body);
    assert_clean(&c);

    let mut two_replies = f.checker();
    two_replies.on_reply_created(2, f.id(2), &first.body);
    two_replies.on_reply_created(2, f.id(2), &reply(a, 1, 1, vec![b]).body);
    assert_fired(&two_replies, "S10");

    let mut unpersisted = f.checker();
    unpersisted.on_send(2, f.id(2), &Message::Reply(first.clone()));
    assert_fired(&unpersisted, "S10");

    for (pos, fence) in [(1, 1), (2, 0)] {
        let mut back = f.checker();
        back.on_reply_created(2, f.id(2), &first.body);
        back.on_reply_created(2, f.id(2), &reply(b, pos, fence, vec![]).body);
        assert_fired(&back, "S10");
    }
}

#[test]
fn s11_fires_on_each_misplaced_lost_or_duplicated_command() {
    let f = Forge::new();
    let a = f.batch(0, 0, &[0, 1]);
    let b = f.batch(1, 0, &[2, 3]);
    let committed = || {
        let mut c = f.checker();
        f.commit(&mut c, &a, &[], 0);
        f.commit(&mut c, &b, &[], 1);
        checkpoint(&mut c, 1);
        checkpoint(&mut c, 2);
        c
    };
    let mut c = committed();
    c.on_block(0, &block(1, &[&a], vec![]), &ledger());
    c.on_block(0, &block(2, &[&b], vec![(f.id(0), 1)]), &ledger());
    c.final_check(2);
    assert_clean(&c);

    // Block 3 built before CONS_ckpt(3) decided.
    let mut early = committed();
    early.on_block(0, &block(3, &[], vec![]), &ledger());
    assert_fired(&early, "S11");

    // b's fence names block 2, it lands in block 1.
    let mut misplaced = committed();
    misplaced.on_block(0, &block(1, &[&a, &b], vec![]), &ledger());
    assert_fired(&misplaced, "S11");

    // a lands in block 1 on one replica and in block 2 on another.
    let mut twice = committed();
    twice.on_block(0, &block(1, &[&a], vec![]), &ledger());
    twice.on_block(1, &block(2, &[&a, &b], vec![]), &ledger());
    assert_fired(&twice, "S11");

    // A command that was never committed.
    let mut uncommitted = committed();
    let stranger = f.batch(2, 0, &[3]);
    uncommitted.on_block(0, &block(1, &[&a, &stranger], vec![]), &ledger());
    assert_fired(&uncommitted, "S11");

    // b never lands although every replica reached block 2.
    let mut lost = committed();
    lost.on_block(0, &block(1, &[&a], vec![]), &ledger());
    lost.on_block(0, &block(2, &[], vec![]), &ledger());
    lost.final_check(2);
    assert_fired(&lost, "S11");

    // Voided by an agreed floor: b (seq 0) lands nowhere and that is not a violation; but the
    // floor may not go back down afterwards, and nothing below a floor may land.
    let mut voided = committed();
    voided.on_block(0, &block(1, &[&a], vec![]), &ledger());
    voided.on_block(0, &block(2, &[], vec![(f.id(1), 1)]), &ledger());
    voided.final_check(2);
    assert_clean(&voided);
    assert_eq!(voided.voided().len(), 1);

    let mut floor_down = committed();
    floor_down.on_block(0, &block(1, &[&a], vec![(f.id(2), 3)]), &ledger());
    floor_down.on_block(0, &block(2, &[&b], vec![(f.id(2), 2)]), &ledger());
    assert_fired(&floor_down, "S11");

    let mut below_floor = committed();
    below_floor.on_block(0, &block(1, &[&a], vec![]), &ledger());
    below_floor.on_block(0, &block(2, &[&b], vec![(f.id(1), 1)]), &ledger());
    assert_fired(&below_floor, "S11");

    // A correct validator reports b as landing nowhere (Output::LandsNowhere), in the same
    // epoch: b may not land afterwards, nor have landed before.
    let mut reported = committed();
    reported.on_block(0, &block(1, &[&a], vec![]), &ledger());
    reported.on_lands_nowhere(1, 0, b.id());
    reported.on_block(0, &block(2, &[], vec![(f.id(1), 1)]), &ledger());
    reported.final_check(2);
    assert_clean(&reported);

    let mut landed_after = committed();
    landed_after.on_block(0, &block(1, &[&a], vec![]), &ledger());
    landed_after.on_lands_nowhere(1, 0, b.id());
    landed_after.on_block(0, &block(2, &[&b], vec![]), &ledger());
    assert_fired(&landed_after, "S11");

    let mut landed_before = committed();
    landed_before.on_block(0, &block(1, &[&a], vec![]), &ledger());
    landed_before.on_lands_nowhere(1, 0, a.id());
    assert_fired(&landed_before, "S11");

    // An id of an earlier epoch named again in a later one is another instance there.
    let mut later_epoch = committed();
    later_epoch.on_block(0, &block(1, &[&a], vec![]), &ledger());
    later_epoch.on_lands_nowhere(1, 1, a.id());
    assert_clean(&later_epoch);
}

/// The liveness check is the stated bound: with f + 1 of 4 validators silent no quorum is left,
/// so the run lasts until the liveness deadline and reports the transactions still missing.
#[test]
fn liveness_fires_at_the_deadline_when_no_quorum_is_left() {
    let mut c = bsmr_sim::SimConfig::ci(N, 5);
    c.byzantine = 2;
    c.behaviour = bsmr_sim::Behaviour::Silent;
    c.end_ms = c.liveness_deadline_ms();
    let deadline = c.end_ms;
    let r = bsmr_sim::run(c);
    assert!(
        r.violations
            .iter()
            .any(|v| v.starts_with("liveness:") && v.contains("not in blocks")),
        "{:?}",
        r.violations
    );
    assert!(
        r.virtual_ms + 1_000 >= deadline,
        "{} < {deadline}",
        r.virtual_ms
    );
}

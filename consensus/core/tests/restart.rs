//! A replica restarted from its persisted state never reuses one of its own seqs, even when
//! every batch it proposed before the crash was decided, built and garbage-collected.
mod common;

use bsmr_consensus_core::{
    BatchKind, Config, FinishedBlock, Input, InsecureTestCrypto, MemStorage, Membership, Message,
    Output, Replica, Tx,
};

fn replica(storage: &MemStorage) -> Replica {
    let me = [1u8; 32];
    let cfg = Config::new(Membership::new([9; 32], 0, vec![me]));
    Replica::new(
        cfg,
        storage,
        Box::new(InsecureTestCrypto(me)),
        Box::new(InsecureTestCrypto(me)),
    )
}

fn tx(i: u8) -> Tx {
    Tx {
        data: vec![i; 8],
        access: vec![],
    }
}

/// Apply persists, collect the seqs of own announced batches and finished blocks.
fn drive(
    r: &mut Replica,
    storage: &mut MemStorage,
    now: u64,
    input: Input,
    seqs: &mut Vec<u64>,
    blocks: &mut Vec<FinishedBlock>,
) {
    for o in r.handle(now, input) {
        match o {
            Output::Persist(ops) => storage.apply(&ops),
            Output::Send {
                msg: Message::Announce(b),
                ..
            } if b.header.body.kind == BatchKind::Txs => seqs.push(b.header.body.seq),
            Output::BlockReady(b) => {
                for (h, _) in &b.batches {
                    seqs.push(h.seq);
                }
                blocks.push(b)
            }
            _ => {}
        }
    }
}

#[test]
fn a_restarted_replica_never_reuses_a_seq_of_a_collected_batch() {
    let mut storage = MemStorage::default();
    let mut r = replica(&storage);
    let (mut seqs, mut blocks) = (vec![], vec![]);
    let _ = r.start(0);
    let mut now = 10;
    for i in 0..3u8 {
        drive(
            &mut r,
            &mut storage,
            now,
            Input::ClientBatch(vec![tx(i)]),
            &mut seqs,
            &mut blocks,
        );
        now += 10;
    }
    // Cut blocks until all three batches are in one and collected.
    for _ in 0..4 {
        drive(
            &mut r,
            &mut storage,
            now,
            Input::CheckpointDue,
            &mut seqs,
            &mut blocks,
        );
        now += 1_000;
        drive(
            &mut r,
            &mut storage,
            now,
            Input::Tick,
            &mut seqs,
            &mut blocks,
        );
    }
    let before: Vec<u64> = blocks
        .iter()
        .flat_map(|b| b.batches.iter().map(|(h, _)| h.seq))
        .collect();
    assert_eq!(before.len(), 3, "three batches built: {blocks:?}");
    // Restart from storage and propose again.
    let mut r = replica(&storage);
    let _ = r.start(now);
    let (mut after_seqs, mut after_blocks) = (vec![], vec![]);
    drive(
        &mut r,
        &mut storage,
        now + 10,
        Input::ClientBatch(vec![tx(9)]),
        &mut after_seqs,
        &mut after_blocks,
    );
    for _ in 0..3 {
        now += 1_000;
        drive(
            &mut r,
            &mut storage,
            now,
            Input::CheckpointDue,
            &mut after_seqs,
            &mut after_blocks,
        );
    }
    let built: Vec<u64> = after_blocks
        .iter()
        .flat_map(|b| b.batches.iter().map(|(h, _)| h.seq))
        .collect();
    assert_eq!(
        built.len(),
        1,
        "the new batch is built (announced seqs {after_seqs:?})"
    );
    assert!(
        built[0] > *before.iter().max().unwrap(),
        "seq {} reused (before the restart: {before:?})",
        built[0]
    );
}

/// A replica restarted after deciding a checkpoint whose block waits for an undecided command
/// times out on that command again. Replaying the decision arms the timer and `restore` drops
/// the outputs replay makes; before the fix the instance stayed marked armed, `start` armed
/// nothing, and the replica could only join view changes others started (with f+1 replicas
/// restarted together and a silent proposer, the block never came).
#[test]
fn a_restarted_replica_arms_the_timers_of_what_its_next_block_waits_for() {
    use bsmr_consensus_core::crypto::Signed;
    use bsmr_consensus_core::wire::{Decision, Phase, VoteBody};
    use bsmr_consensus_core::*;
    let members = common::members();
    let me = if Rotation::fresh(0).leader(&members, 1, 0) == [1; 32] {
        [2u8; 32]
    } else {
        [1u8; 32]
    };
    let boot = |storage: &MemStorage| {
        Replica::new(
            Config::new(members.clone()),
            storage,
            Box::new(InsecureTestCrypto(me)),
            Box::new(InsecureTestCrypto(me)),
        )
    };
    // Checkpoint 1, decided with one dependency: member 3's seq 0, which we never saw.
    let k1 = common::candidate(vec![]);
    let dep = DepRef {
        proposer: [3; 32],
        kind: DepKind::Txs { seq: 0 },
        id: [42; 32],
    };
    let value = Value::Deps {
        cmd: k1.id(),
        deps: vec![dep],
        after: 0,
    };
    let cert = [[2u8; 32], [3; 32], [4; 32]]
        .iter()
        .map(|k| {
            let body = VoteBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                view: 0,
                phase: Phase::Commit,
                value: value.digest(),
            };
            Signed::sign(body, &common::GENESIS, &InsecureTestCrypto(*k))
        })
        .collect();
    let decision = Decision {
        inst: InstanceId::Ckpt(1),
        value,
        cert,
    };
    let waits = dep.instance();
    let arms = |out: &[Output]| {
        out.iter()
            .any(|o| matches!(o, Output::SetTimer { id: TimerId::View(i, 0), .. } if *i == waits))
    };
    let mut storage = MemStorage::default();
    let mut r = boot(&storage);
    let _ = r.start(0);
    let out = r.handle(
        10,
        Input::Message {
            from: [2; 32],
            msg: Message::Decided(decision, Some(k1)),
        },
    );
    assert!(
        arms(&out),
        "deciding checkpoint 1 arms its dependency's timer"
    );
    for o in &out {
        if let Output::Persist(ops) = o {
            storage.apply(ops);
        }
    }
    assert_eq!(r.next_block_waits_for(), vec![dep]);
    let mut r = boot(&storage);
    assert_eq!(r.next_block_waits_for(), vec![dep], "restored");
    let out = r.start(20);
    assert!(
        arms(&out),
        "after the restart the dependency's timer is armed again"
    );
}

//! A replica restarted from its persisted state never reuses one of its own seqs, even when
//! every batch it proposed before the crash was decided, built and garbage-collected.
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

//! Our waiting transactions that another validator's batch carries: taken out of the queue only
//! for a batch this replica checked and replied to, and back in it when that batch will land in
//! no block (decided Noop) or has not landed within the hold.
mod common;

use bsmr_consensus_core::crypto::Signed;
use bsmr_consensus_core::discovery::covered::COVER_HOLD_MS;
use bsmr_consensus_core::*;
use codec::Encode;
use common::{decided_noop, instance, members, GENESIS};

/// Member 1 of the four, with a window of one seq: its second client batch waits.
fn replica() -> Replica {
    let me = [1u8; 32];
    let mut cfg = Config::new(members());
    cfg.window = 1;
    Replica::new(
        cfg,
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(me)),
        Box::new(InsecureTestCrypto(me)),
    )
}

fn tx(n: u8) -> Tx {
    Tx {
        data: vec![n; 4],
        access: vec![[n; 32]],
    }
}

/// Member `proposer`'s batch at `seq` carrying `txs`, signed by `key`.
fn batch(proposer: u8, seq: Seq, txs: Vec<Tx>, key: u8) -> SignedBatch {
    let header = BatchHeader {
        epoch: 0,
        proposer: [proposer; 32],
        seq,
        base: [0; 32],
        kind: BatchKind::Txs,
        access: union_access(txs.iter().map(|t| &t.access[..])),
        txs_root: hash(&txs.encode()),
        weight: txs.encoded_size() as u64,
    };
    SignedBatch {
        header: Signed::sign(header, &GENESIS, &InsecureTestCrypto([key; 32])),
        txs: txs.into(),
    }
}

fn announce(r: &mut Replica, now: u64, b: SignedBatch) -> Vec<Output> {
    let from = b.header.body.proposer;
    r.handle(
        now,
        Input::Message {
            from,
            msg: Message::Announce(b),
        },
    )
}

fn covered(out: &[Output]) -> Vec<(CommandId, Vec<Tx>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Checked { by, taken } if !taken.is_empty() => Some((*by, taken.clone())),
            _ => None,
        })
        .collect()
}

/// Every batch the step reports checked, with how many of ours it took out.
fn checked(out: &[Output]) -> Vec<(CommandId, usize)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Checked { by, taken } => Some((*by, taken.len())),
            _ => None,
        })
        .collect()
}

/// Every command the step reports as landing in no block.
fn nowhere(out: &[Output]) -> Vec<CommandId> {
    out.iter()
        .filter_map(|o| match o {
            Output::LandsNowhere { id } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The waiting transactions, in the order they would be proposed (the queue, then what is held).
fn waiting(r: &Replica) -> Vec<u8> {
    r.unproposed().flatten().map(|t| t.data[0]).collect()
}

#[test]
fn only_a_checked_batch_takes_copies_out_and_its_noop_brings_them_back_first() {
    let mut r = replica();
    let _ = r.start(0);
    let _ = r.handle(1, Input::ClientBatch(vec![tx(1)]));
    let _ = r.handle(2, Input::ClientBatch(vec![tx(2), tx(3)]));
    assert_eq!(
        waiting(&r),
        vec![2, 3],
        "seq 0 holds tx 1; the window is full"
    );

    // Not checked, so nothing taken: a signature by a key outside the set, a copy with another
    // access set, a seq outside the proposer's window.
    let forged = batch(2, 0, vec![tx(2)], 9);
    let other_access = Tx {
        access: vec![[7; 32]],
        ..tx(2)
    };
    let reaccessed = batch(3, 0, vec![other_access], 3);
    let far = batch(4, 100, vec![tx(2)], 4);
    let reaccessed_id = reaccessed.id();
    for b in [forged, far] {
        assert!(checked(&announce(&mut r, 3, b)).is_empty(), "not checked");
    }
    assert_eq!(
        checked(&announce(&mut r, 3, reaccessed)),
        vec![(reaccessed_id, 0)],
        "checked, and nothing of ours in it"
    );
    assert_eq!(waiting(&r), vec![2, 3]);

    // Member 2's real batch carries tx 2 (and one of its own).
    let x = batch(2, 0, vec![tx(9), tx(2)], 2);
    let out = announce(&mut r, 4, x.clone());
    assert_eq!(covered(&out), vec![(x.id(), vec![tx(2)])]);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: Message::Reply(_),
                ..
            }
        )),
        "taken out only with the reply sent"
    );
    assert_eq!(waiting(&r), vec![3, 2], "tx 2 is held behind the queue");
    assert!(
        checked(&announce(&mut r, 5, x.clone())).is_empty(),
        "announced again: checked once"
    );

    // The same id under member 3's name is not x: its Noop says nothing of x.
    let misnamed = InstanceId::Cmd {
        proposer: [3; 32],
        seq: 0,
        id: x.id(),
    };
    let out = r.handle(
        6,
        Input::Message {
            from: [3; 32],
            msg: decided_noop(misnamed),
        },
    );
    assert!(nowhere(&out).is_empty(), "{out:?}");
    assert_eq!(waiting(&r), vec![3, 2], "still held");

    // Decided Noop: it lands in no block, so tx 2 goes first again.
    let out = r.handle(
        6,
        Input::Message {
            from: [3; 32],
            msg: decided_noop(instance(&x)),
        },
    );
    assert!(covered(&out).is_empty());
    assert_eq!(nowhere(&out), vec![x.id()], "the engine hears of it");
    assert_eq!(waiting(&r), vec![2, 3], "back at the front of the queue");
}

#[test]
fn a_copy_whose_batch_never_lands_comes_back_after_the_hold() {
    let mut r = replica();
    let _ = r.start(0);
    let _ = r.handle(1, Input::ClientBatch(vec![tx(1)]));
    let _ = r.handle(2, Input::ClientBatch(vec![tx(2), tx(3)]));
    // Member 3 announces its batch to us only and never lets it be decided.
    let x = batch(3, 0, vec![tx(3)], 3);
    assert_eq!(covered(&announce(&mut r, 10, x)).len(), 1);
    let _ = r.handle(11, Input::ClientBatch(vec![tx(4)]));
    assert_eq!(
        waiting(&r),
        vec![2, 4, 3],
        "held while its batch may still land"
    );
    let _ = r.handle(10 + COVER_HOLD_MS - 1, Input::ClientBatch(vec![tx(5)]));
    assert_eq!(waiting(&r), vec![2, 4, 5, 3]);
    let _ = r.handle(10 + COVER_HOLD_MS, Input::ClientBatch(vec![tx(6)]));
    assert_eq!(
        waiting(&r),
        vec![3, 2, 4, 5, 6],
        "the hold ran out: first in the queue again"
    );
}

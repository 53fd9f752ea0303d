//! Fixtures the core's integration tests share: a four-member set, a signed batch and a signed
//! checkpoint candidate.
#![allow(dead_code)]

use bsmr_consensus_core::crypto::Signed;
use bsmr_consensus_core::wire::{Decision, Phase, VoteBody};
use bsmr_consensus_core::*;
use codec::Encode;

/// The genesis hash every fixture signs under.
pub const GENESIS: [u8; 32] = [9; 32];

/// Members 1, 2, 3 and 4 (their keys are `[i; 32]`), epoch 0.
pub fn members() -> Membership {
    Membership::new(GENESIS, 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]])
}

/// The view-0 candidate for block 1, signed by its leader, with these floors.
pub fn candidate(floors: Vec<(ValidatorId, Seq)>) -> SignedBatch {
    let leader = Rotation::fresh(0).leader(&members(), 1, 0);
    let txs: Vec<Tx> = vec![];
    let header = BatchHeader {
        epoch: 0,
        proposer: leader,
        seq: 0,
        base: [0; 32],
        kind: BatchKind::Checkpoint {
            index: 1,
            view: 0,
            timestamp_ms: 1,
            floors,
        },
        access: vec![],
        txs_root: hash(&txs.encode()),
        weight: 0,
    };
    SignedBatch {
        header: Signed::sign(header, &GENESIS, &InsecureTestCrypto(leader)),
        txs: txs.into(),
    }
}

/// Member `proposer`'s batch at seq 0: one transaction touching its own account.
pub fn batch(proposer: u8) -> SignedBatch {
    let txs = vec![Tx {
        data: vec![proposer; 8],
        access: vec![[proposer; 32]],
    }];
    let header = BatchHeader {
        epoch: 0,
        proposer: [proposer; 32],
        seq: 0,
        base: [0; 32],
        kind: BatchKind::Txs,
        access: vec![[proposer; 32]],
        txs_root: hash(&txs.encode()),
        weight: txs.encoded_size() as u64,
    };
    SignedBatch {
        header: Signed::sign(header, &GENESIS, &InsecureTestCrypto([proposer; 32])),
        txs: txs.into(),
    }
}

/// Member `[from; 32]`'s signed view change asking for view `v` of `inst`, as a received message.
pub fn view_change(from: u8, inst: InstanceId, v: View) -> Input {
    let body = bsmr_consensus_core::wire::ViewChangeBody {
        epoch: 0,
        inst,
        new_view: v,
        prepared: None,
        has_payload: true,
    };
    Input::Message {
        from: [from; 32],
        msg: Message::ViewChange(Signed::sign(
            body,
            &GENESIS,
            &InsecureTestCrypto([from; 32]),
        )),
    }
}

/// The consensus instance of batch `b`.
pub fn instance(b: &SignedBatch) -> InstanceId {
    InstanceId::Cmd {
        proposer: b.header.body.proposer,
        seq: b.header.body.seq,
        id: b.id(),
    }
}

/// Members 2, 3 and 4 decided `inst` Noop (q = 3): the certificate, without the payload.
pub fn decided_noop(inst: InstanceId) -> Message {
    let cert = [2u8, 3, 4]
        .iter()
        .map(|k| {
            Signed::sign(
                VoteBody {
                    epoch: 0,
                    inst,
                    view: 0,
                    phase: Phase::Commit,
                    value: Value::Noop.digest(),
                },
                &GENESIS,
                &InsecureTestCrypto([*k; 32]),
            )
        })
        .collect();
    Message::Decided(
        Decision {
            inst,
            value: Value::Noop,
            cert,
        },
        None,
    )
}

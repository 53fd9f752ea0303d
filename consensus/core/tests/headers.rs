//! A command decided here without its header does not count for its proposer's watermark until
//! some peer shows the header (soak seed 804520: a Byzantine proposer showed its batch to one
//! correct replica only, and the others' watermarks stayed behind for good).
mod common;

use bsmr_consensus_core::crypto::Signed;
use bsmr_consensus_core::*;
use common::{decided_noop, members, GENESIS};

/// Member 1 of the four.
fn replica() -> Replica {
    let me = [1u8; 32];
    Replica::new(
        Config::new(members()),
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(me)),
        Box::new(InsecureTestCrypto(me)),
    )
}

/// Member 2's header for its seq 0, signed by `key`.
fn header(key: u8, weight: u64) -> Signed<BatchHeader> {
    let body = BatchHeader {
        epoch: 0,
        proposer: [2; 32],
        seq: 0,
        base: [0; 32],
        kind: BatchKind::Txs,
        access: vec![[5; 32]],
        txs_root: [6; 32],
        weight,
    };
    Signed::sign(body, &GENESIS, &InsecureTestCrypto([key; 32]))
}

fn deliver(r: &mut Replica, now: u64, from: u8, msg: Message) -> Vec<Output> {
    r.handle(
        now,
        Input::Message {
            from: [from; 32],
            msg,
        },
    )
}

fn watermark_of_2(r: &Replica) -> Seq {
    r.watermarks()
        .iter()
        .find(|(p, _, _)| *p == [2; 32])
        .map_or(0, |(_, wm, _)| *wm)
}

#[test]
fn a_decision_taken_without_the_header_counts_once_a_peer_shows_it() {
    let mut r = replica();
    let _ = r.start(0);
    let real = header(2, 1);
    let inst = InstanceId::Cmd {
        proposer: [2; 32],
        seq: 0,
        id: real.body.id(),
    };
    let _ = deliver(&mut r, 10, 3, decided_noop(inst));
    assert_eq!(r.marks_of(&[2; 32]), vec![(0, inst_id(&inst), false)]);
    assert_eq!(watermark_of_2(&r), 0, "a decision without the header");

    // Every resend asks one other member, in turn, for that decision, and so for the header.
    let mut asked = vec![];
    for k in 0..3u64 {
        let out = r.handle(1_000 + k, Input::Timer(TimerId::Resend));
        asked.extend(out.into_iter().filter_map(|o| match o {
            Output::Send {
                to: Some(to),
                msg: Message::Fetch(i),
            } if i == inst => Some(to),
            _ => None,
        }));
    }
    asked.sort();
    assert_eq!(
        asked,
        vec![[2; 32], [3; 32], [4; 32]],
        "one peer per resend, each in turn"
    );

    // What does not prove the decided command real changes nothing: a header signed by another
    // member, a broken signature, another header of the same slot.
    let mut broken = real.clone();
    broken.sig = [0; 64];
    for h in [header(3, 1), broken, header(2, 2)] {
        let _ = deliver(&mut r, 1_100, 4, Message::Header(h));
        assert_eq!(watermark_of_2(&r), 0);
        assert_eq!(r.marks_of(&[2; 32]).len(), 1, "no mark created");
    }

    // The proposer's own signature on that id does.
    let out = deliver(&mut r, 1_200, 4, Message::Header(real.clone()));
    assert_eq!(watermark_of_2(&r), 1, "the decision counts");
    assert!(
        out.iter().any(|o| matches!(o, Output::Persist(_))),
        "the counted mark is persisted"
    );
    let out = r.handle(2_000, Input::Timer(TimerId::Resend));
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Send { msg: Message::Fetch(i), .. } if *i == inst)),
        "nothing left to ask for"
    );
}

fn inst_id(inst: &InstanceId) -> CommandId {
    match inst {
        InstanceId::Cmd { id, .. } => *id,
        InstanceId::Ckpt(_) => unreachable!(),
    }
}

/// The other side: a replica that replied to a batch and then decided it Noop keeps the batch
/// with its old decision and sends it along when asked. (When that decision is gone, the
/// header it replied to goes instead, until the floor passes the seq; the soak exercises that.)
#[test]
fn a_noop_decision_is_sent_with_the_batch_it_decided() {
    let mut r = replica();
    let _ = r.start(0);
    let b = common::batch(2);
    let inst = InstanceId::Cmd {
        proposer: [2; 32],
        seq: 0,
        id: b.id(),
    };
    let _ = deliver(&mut r, 10, 2, Message::Announce(b.clone()));
    let _ = deliver(&mut r, 20, 3, decided_noop(inst));
    assert_eq!(r.marks_of(&[2; 32]), vec![(0, b.id(), true)]);
    let out = deliver(&mut r, 30, 3, Message::Fetch(inst));
    let sent: Vec<&Message> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { to: Some(to), msg } if *to == [3; 32] => Some(msg),
            _ => None,
        })
        .collect();
    match sent.as_slice() {
        [Message::Decided(d, Some(p))] => {
            assert_eq!(d.inst, inst);
            assert_eq!(p, &b);
        }
        other => panic!("unexpected answer {other:?}"),
    }

    // A replica that decided it without the batch counts it on that answer.
    let mut late = replica();
    let _ = late.start(0);
    let _ = deliver(&mut late, 10, 3, decided_noop(inst));
    assert_eq!(watermark_of_2(&late), 0);
    let _ = deliver(&mut late, 40, 4, sent[0].clone());
    assert_eq!(
        watermark_of_2(&late),
        1,
        "the batch proves the command real"
    );

    // So does the batch announced again (a recovery leader's, or the proposer's resend).
    let mut announced = replica();
    let _ = announced.start(0);
    let _ = deliver(&mut announced, 10, 3, decided_noop(inst));
    assert_eq!(watermark_of_2(&announced), 0);
    let _ = deliver(&mut announced, 40, 2, Message::Announce(b.clone()));
    assert_eq!(
        watermark_of_2(&announced),
        1,
        "the announced batch counts it"
    );
}

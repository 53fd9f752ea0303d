//! A view's timer counts only once q replicas asked for that view (Castro-Liskov, OSDI 1999,
//! section 4.5.2): a replica that timed out alone waits in its view change, repeating it,
//! instead of racing through views the others never reach (soak seed 3531356).
mod common;

use bsmr_consensus_core::crypto::Signed;
use bsmr_consensus_core::wire::ViewChangeBody;
use bsmr_consensus_core::*;
use common::{batch, GENESIS};

const ME: ValidatorId = [1; 32];

fn replica() -> Replica {
    let members = vec![ME, [2; 32], [3; 32], [4; 32]];
    let cfg = Config::new(Membership::new(GENESIS, 0, members));
    Replica::new(
        cfg,
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(ME)),
        Box::new(InsecureTestCrypto(ME)),
    )
}

fn view_change(from: u8, inst: InstanceId, v: View) -> Input {
    let body = ViewChangeBody {
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

/// The views our own view changes in `out` ask for.
fn asked(out: &[Output], inst: InstanceId) -> Vec<View> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: None,
                msg: Message::ViewChange(vc),
            } if vc.signer == ME && vc.body.inst == inst => Some(vc.body.new_view),
            _ => None,
        })
        .collect()
}

/// The view timers of `inst` armed in `out`.
fn timers(out: &[Output], inst: InstanceId) -> Vec<View> {
    out.iter()
        .filter_map(|o| match o {
            Output::SetTimer {
                id: TimerId::View(i, v),
                ..
            } if *i == inst => Some(*v),
            _ => None,
        })
        .collect()
}

#[test]
fn a_replica_alone_in_a_view_change_waits_there_until_q_ask() {
    let mut r = replica();
    let _ = r.start(0);
    // 3 announces a batch and says nothing more; we alone time out on it.
    let b = batch(3);
    let inst = InstanceId::Cmd {
        proposer: [3; 32],
        seq: b.header.body.seq,
        id: b.id(),
    };
    let _ = r.handle(
        0,
        Input::Message {
            from: [3; 32],
            msg: Message::Announce(b),
        },
    );
    let out = r.handle(10_000, Input::Timer(TimerId::View(inst, 0)));
    assert_eq!(asked(&out, inst), vec![1]);
    assert_eq!(timers(&out, inst), vec![1]);

    // View 1's timer runs out with only our view change for it: no view 2.
    let out = r.handle(40_000, Input::Timer(TimerId::View(inst, 1)));
    assert!(asked(&out, inst).is_empty(), "raced on alone: {out:?}");
    assert!(timers(&out, inst).is_empty());

    // 2 joins: f + 1, not q. Then 4: q = 3 ask for view 1, and its timer starts.
    let out = r.handle(50_000, view_change(2, inst, 1));
    assert!(timers(&out, inst).is_empty(), "f + 1 is not q: {out:?}");
    let out = r.handle(50_010, view_change(4, inst, 1));
    assert_eq!(timers(&out, inst), vec![1], "q asked: the timer counts");

    // Now its expiry moves us on.
    let out = r.handle(80_000, Input::Timer(TimerId::View(inst, 1)));
    assert_eq!(asked(&out, inst), vec![2]);
}

//! A checkpoint candidate whose agreed floors pass what this replica knows decided gets no reply
//! (the replica cannot vouch that everything below is settled), and the next resend asks the
//! peers what is settled at the replica's own last block, whose marks fill its gap. A candidate
//! within its watermarks gets a reply and no such request.
use bsmr_consensus_core::*;

mod common;
use common::{candidate, members};

/// What a fresh replica (validator 1, or 2 when 1 leads) sends when the leader announces `c`, and
/// then on its next resend.
fn announce_then_resend(c: SignedBatch) -> (Vec<Message>, Vec<Message>) {
    let leader = c.header.body.proposer;
    let me = if leader == [1; 32] { [2; 32] } else { [1; 32] };
    let mut r = Replica::new(
        Config::new(members()),
        &MemStorage::default(),
        Box::new(InsecureTestCrypto(me)),
        Box::new(InsecureTestCrypto(me)),
    );
    let _ = r.start(0);
    let sent = |out: Vec<Output>| -> Vec<Message> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Send { msg, .. } => Some(msg),
                _ => None,
            })
            .collect()
    };
    let on_announce = sent(r.handle(
        10,
        Input::Message {
            from: leader,
            msg: Message::Announce(c),
        },
    ));
    let on_resend = sent(r.handle(20, Input::Timer(TimerId::Resend)));
    (on_announce, on_resend)
}

fn asks_settled(msgs: &[Message]) -> bool {
    msgs.iter()
        .any(|m| matches!(m, Message::SettledRequest { at: 0, .. }))
}

fn replies(msgs: &[Message]) -> bool {
    msgs.iter().any(|m| matches!(m, Message::Reply(_)))
}

#[test]
fn floors_past_the_watermark_get_no_reply_and_a_settled_request() {
    // Validator 3's seqs below 5 are void in this candidate; this replica has decided none.
    let (on_announce, on_resend) = announce_then_resend(candidate(vec![([3; 32], 5)]));
    assert!(!replies(&on_announce), "no reply: {on_announce:?}");
    assert!(
        asks_settled(&on_resend),
        "asks what is settled: {on_resend:?}"
    );
}

#[test]
fn floors_within_the_watermark_get_a_reply_and_no_settled_request() {
    let (on_announce, on_resend) = announce_then_resend(candidate(vec![]));
    assert!(replies(&on_announce), "a reply: {on_announce:?}");
    assert!(!asks_settled(&on_resend), "nothing to ask: {on_resend:?}");
}

#[test]
fn malformed_floors_get_no_reply_and_no_settled_request() {
    // Not a member: refused for its form, which no peer's marks can mend.
    let (on_announce, on_resend) = announce_then_resend(candidate(vec![([7; 32], 5)]));
    assert!(!replies(&on_announce), "no reply: {on_announce:?}");
    assert!(!asks_settled(&on_resend), "nothing to ask: {on_resend:?}");
}

//! The outbox: everything one input makes a replica emit, and the messages it sends itself
//! (handled before the input returns, as if received).
//!
//! In the spirit of raft-rs's `Ready`, what a step emits is kept in separate lists, and
//! [`Outbox::take`] hands them over in this order: the writes and events, in the order they
//! were emitted (storage operations; finished blocks, which the caller stores before building
//! them; decisions, proposals, proofs, rejoins, whose consumers follow the blocks), then the
//! messages, then the timers. Every message of a step therefore leaves after every write of
//! that step, whatever order the handlers emitted them in: persist before send is a property
//! of this type. A block's writes (marks, floors, the block meta) go out as one write after
//! the block they describe: [`Outbox::begin_write`] holds the step's storage operations back
//! until [`Outbox::end_write`].

use crate::ctx::Ctx;
use crate::io::{Output, TimerId};
use crate::misbehaviour::Proof;
use crate::storage::StorageOp;
use crate::types::*;
use crate::wire::Message;
use codec::Encode;
use std::collections::{BTreeSet, VecDeque};

/// A block write being gathered (see [`Outbox::begin_write`]).
#[derive(Debug)]
#[must_use = "a block write must be ended"]
pub struct WriteMark(());

/// The outbox of one replica.
#[derive(Debug)]
pub struct Outbox {
    me: ValidatorId,
    /// Writes (`Persist`) and events (a finished block, a decision, a proposal, a proof, a
    /// rejoin), in emission order.
    writes: Vec<Output>,
    /// Storage operations held back until the block write they belong to ends.
    gathered: Option<Vec<StorageOp>>,
    sends: Vec<Output>,
    timers: Vec<Output>,
    loopback: VecDeque<(ValidatorId, Message)>,
    /// Digests of the misbehaviour proofs emitted (each once).
    reported: BTreeSet<Digest>,
}

impl Outbox {
    /// The outbox of validator `me`.
    pub fn new(me: ValidatorId) -> Self {
        Outbox {
            me,
            writes: Vec::new(),
            gathered: None,
            sends: Vec::new(),
            timers: Vec::new(),
            loopback: VecDeque::new(),
            reported: BTreeSet::new(),
        }
    }

    /// Send `msg` to `to` (to ourselves: handled as received).
    pub fn send(&mut self, to: ValidatorId, msg: Message) {
        if to == self.me {
            self.loopback.push_back((to, msg));
        } else {
            self.sends.push(Output::Send { to: Some(to), msg });
        }
    }

    /// Send `msg` to every member, ourselves included. Emitted even when we are the only
    /// member (to nobody), so that observers see every broadcast.
    pub fn broadcast(&mut self, msg: Message) {
        self.sends.push(Output::Send {
            to: None,
            msg: msg.clone(),
        });
        self.loopback.push_back((self.me, msg));
    }

    /// Send `msg` to every other member (a request we cannot answer ourselves).
    pub fn ask_others(&mut self, msg: Message) {
        self.sends.push(Output::Send { to: None, msg });
    }

    /// Write `ops` (nothing if empty).
    pub fn persist(&mut self, mut ops: Vec<StorageOp>) {
        if ops.is_empty() {
            return;
        }
        match (&mut self.gathered, self.writes.last_mut()) {
            (Some(g), _) => g.append(&mut ops),
            (None, Some(Output::Persist(last))) => last.append(&mut ops),
            (None, _) => self.writes.push(Output::Persist(ops)),
        }
    }

    /// Arm timer `id` to fire after `after_ms`.
    pub fn set_timer(&mut self, id: TimerId, after_ms: u64) {
        self.timers.push(Output::SetTimer { id, after_ms });
    }

    /// Emit an event for the caller, in order with the writes: a finished block (the caller
    /// stores it before any of this step's messages leave), a decision, a proposal, a rejoin.
    pub fn emit(&mut self, o: Output) {
        match o {
            Output::Persist(ops) => self.persist(ops),
            Output::Send { .. } => self.sends.push(o),
            Output::SetTimer { .. } => self.timers.push(o),
            other => self.writes.push(other),
        }
    }

    /// Emit a misbehaviour proof, but only one anyone can check (`Proof::check` against the
    /// context's membership): a proof that does not convict would be refused on chain and
    /// accuse without evidence.
    pub fn report(&mut self, ctx: &Ctx, p: Proof) {
        if p.check(ctx.membership, ctx.verifier, ctx.window).is_some() {
            self.misbehaviour(p);
        }
    }

    /// Emit a misbehaviour proof, once per proof.
    pub fn misbehaviour(&mut self, p: Proof) {
        if self.reported.insert(hash(&p.encode())) {
            self.writes.push(Output::Misbehaviour(p));
        }
    }

    /// The next message we sent ourselves, or a received one queued with [`Outbox::receive`].
    pub fn next_received(&mut self) -> Option<(ValidatorId, Message)> {
        self.loopback.pop_front()
    }

    /// Queue a received message (handled in order with those we send ourselves).
    pub fn receive(&mut self, from: ValidatorId, msg: Message) {
        self.loopback.push_back((from, msg));
    }

    /// Start gathering a block write: storage operations from now until
    /// [`Outbox::end_write`] go out as one write, after the blocks emitted meanwhile (the
    /// caller stores a `BlockReady` before the meta that says it was handed out).
    ///
    /// Block writes do not nest, and each ends before the step returns: a write left open
    /// would gather the later writes of the step out of their order (a bug in the replica,
    /// never caused by a peer, so it panics in every build).
    pub fn begin_write(&mut self) -> WriteMark {
        assert!(
            self.gathered.is_none(),
            "a block write began inside another"
        );
        self.gathered = Some(Vec::new());
        WriteMark(())
    }

    /// End the block write begun with `mark`.
    pub fn end_write(&mut self, mark: WriteMark) {
        let WriteMark(()) = mark;
        if let Some(ops) = self.gathered.take() {
            self.persist(ops);
        }
    }

    /// Drop everything but the finished blocks (after a restore, which replays old
    /// decisions: only the blocks not handed out before are news to the caller).
    pub fn keep_only_blocks(&mut self) {
        self.writes.retain(|w| matches!(w, Output::BlockReady(_)));
        self.gathered = None;
        self.sends.clear();
        self.timers.clear();
    }

    /// Everything emitted since the last call: writes and events, then messages, then timers.
    pub fn take(&mut self) -> Vec<Output> {
        assert!(
            self.gathered.is_none(),
            "a block write was left open at the end of a step"
        );
        let mut out = std::mem::take(&mut self.writes);
        out.append(&mut self.sends);
        out.append(&mut self.timers);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Key;

    const ME: ValidatorId = [1; 32];

    #[test]
    fn messages_to_ourselves_come_back_in_order() {
        let mut o = Outbox::new(ME);
        o.send(ME, Message::SyncRequest(1));
        o.broadcast(Message::SyncRequest(2));
        o.send([2; 32], Message::SyncRequest(3));
        o.ask_others(Message::SyncRequest(4));
        let sent: Vec<Option<ValidatorId>> = o
            .take()
            .into_iter()
            .filter_map(|x| match x {
                Output::Send { to, .. } => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![None, Some([2; 32]), None]);
        assert_eq!(o.next_received(), Some((ME, Message::SyncRequest(1))));
        assert_eq!(o.next_received(), Some((ME, Message::SyncRequest(2))));
        assert_eq!(o.next_received(), None);
    }

    fn block(index: BlockIndex) -> Output {
        Output::BlockReady(crate::wire::FinishedBlock {
            index,
            ..Default::default()
        })
    }

    fn op(seq: Seq) -> StorageOp {
        StorageOp::Delete(Key::OwnBatch(seq))
    }

    #[test]
    fn a_block_write_goes_out_as_one_after_its_block() {
        let mut o = Outbox::new(ME);
        o.persist(vec![op(0)]);
        o.emit(block(1));
        let w = o.begin_write();
        o.persist(vec![op(1)]);
        o.emit(block(2));
        o.persist(vec![]);
        o.persist(vec![op(2)]);
        o.end_write(w);
        let out = o.take();
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(matches!(&out[0], Output::Persist(ops) if ops == &vec![op(0)]));
        assert!(matches!(&out[1], Output::BlockReady(b) if b.index == 1));
        assert!(matches!(&out[2], Output::BlockReady(b) if b.index == 2));
        assert!(matches!(&out[3], Output::Persist(ops) if ops == &vec![op(1), op(2)]));
    }

    #[test]
    #[should_panic(expected = "inside another")]
    fn block_writes_do_not_nest() {
        let mut o = Outbox::new(ME);
        let _outer = o.begin_write();
        let _inner = o.begin_write();
    }

    #[test]
    #[should_panic(expected = "left open")]
    fn a_step_ends_with_its_block_write() {
        let mut o = Outbox::new(ME);
        let w = o.begin_write();
        o.persist(vec![op(1)]);
        drop(w);
        o.take();
    }

    #[test]
    fn every_write_of_a_step_goes_out_before_its_messages() {
        let mut o = Outbox::new(ME);
        o.set_timer(TimerId::Resend, 5);
        o.emit(Output::Rejoined { from: 0, to: 1 });
        o.send([2; 32], Message::SyncRequest(1));
        o.persist(vec![op(1)]);
        o.broadcast(Message::SyncRequest(2));
        o.emit(block(3));
        o.persist(vec![op(2)]);
        let kinds: Vec<&str> = o
            .take()
            .iter()
            .map(|x| match x {
                Output::Persist(_) => "persist",
                Output::BlockReady(_) => "block",
                Output::Send { .. } => "send",
                Output::SetTimer { .. } => "timer",
                _ => "event",
            })
            .collect();
        assert_eq!(
            kinds,
            vec!["event", "persist", "block", "persist", "send", "send", "timer"]
        );
    }

    #[test]
    fn after_a_restore_only_blocks_are_kept() {
        let mut o = Outbox::new(ME);
        o.persist(vec![op(1)]);
        o.emit(block(1));
        o.send([2; 32], Message::SyncRequest(1));
        o.set_timer(TimerId::Resend, 5);
        o.keep_only_blocks();
        let out = o.take();
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Output::BlockReady(b) if b.index == 1));
    }

    #[test]
    fn a_proof_is_emitted_once() {
        let mut o = Outbox::new(ME);
        let v = crate::crypto::Signed::sign(
            crate::wire::VoteBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                view: 0,
                phase: crate::wire::Phase::Prepare,
                value: [0; 32],
            },
            &[0; 32],
            &crate::crypto::InsecureTestCrypto(ME),
        );
        let p = Proof::VoteEquivocation(v.clone(), v);
        o.misbehaviour(p.clone());
        o.misbehaviour(p);
        assert_eq!(o.take().len(), 1);
    }

    #[test]
    fn only_a_proof_that_convicts_is_reported() {
        use crate::crypto::{InsecureTestCrypto, Signed};
        use crate::wire::{Phase, VoteBody};
        let w = crate::ctx::testing::World::new();
        let vote = |value: u8| {
            let body = VoteBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                view: 0,
                phase: Phase::Prepare,
                value: [value; 32],
            };
            Signed::sign(body, &[0; 32], &InsecureTestCrypto([2; 32]))
        };
        let mut o = Outbox::new(ME);
        o.report(&w.ctx(), Proof::VoteEquivocation(vote(1), vote(1)));
        assert!(o.take().is_empty(), "the same vote twice convicts nobody");
        o.report(&w.ctx(), Proof::VoteEquivocation(vote(1), vote(2)));
        let out = o.take();
        assert!(matches!(&out[..], [Output::Misbehaviour(_)]), "{out:?}");
    }
}

//! The outbox: everything one input makes a replica emit, in order, and the messages it sends
//! itself (handled before the input returns, as if received).
//!
//! Order is the contract with the caller: a `Persist` is applied before any later `Send`, so a
//! write a message depends on is emitted first. A block's writes (marks, floors, the block
//! meta) go out as one `Persist` after the `BlockReady` they describe: [`Outbox::begin_write`]
//! and [`Outbox::end_write`] gather them, in the spirit of raft-rs's `Ready` (writes first,
//! then what may be sent once they are durable).

use crate::io::Output;
use crate::misbehaviour::Proof;
use crate::storage::StorageOp;
use crate::types::*;
use crate::wire::Message;
use codec::Encode;
use std::collections::{BTreeSet, VecDeque};

/// Where a write that must go out as one began.
#[derive(Clone, Copy, Debug)]
pub struct WriteMark(usize);

/// The outbox of one replica.
#[derive(Debug)]
pub struct Outbox {
    me: ValidatorId,
    out: Vec<Output>,
    loopback: VecDeque<(ValidatorId, Message)>,
    /// Digests of the misbehaviour proofs emitted (each once).
    reported: BTreeSet<Digest>,
}

impl Outbox {
    /// The outbox of validator `me`.
    pub fn new(me: ValidatorId) -> Self {
        Outbox {
            me,
            out: Vec::new(),
            loopback: VecDeque::new(),
            reported: BTreeSet::new(),
        }
    }

    /// Send `msg` to `to` (to ourselves: handled as received).
    pub fn send(&mut self, to: ValidatorId, msg: Message) {
        if to == self.me {
            self.loopback.push_back((to, msg));
        } else {
            self.out.push(Output::Send { to: Some(to), msg });
        }
    }

    /// Send `msg` to every member, ourselves included. Emitted even when we are the only
    /// member (to nobody), so that observers see every broadcast.
    pub fn broadcast(&mut self, msg: Message) {
        self.out.push(Output::Send {
            to: None,
            msg: msg.clone(),
        });
        self.loopback.push_back((self.me, msg));
    }

    /// Send `msg` to every other member (a request we cannot answer ourselves).
    pub fn ask_others(&mut self, msg: Message) {
        self.out.push(Output::Send { to: None, msg });
    }

    /// Write `ops` (nothing if empty).
    pub fn persist(&mut self, ops: Vec<StorageOp>) {
        if !ops.is_empty() {
            self.out.push(Output::Persist(ops));
        }
    }

    /// Arm timer `id` to fire after `after_ms`.
    pub fn set_timer(&mut self, id: crate::io::TimerId, after_ms: u64) {
        self.out.push(Output::SetTimer { id, after_ms });
    }

    /// Emit an event for the caller (a decision, a block, a rejoin).
    pub fn emit(&mut self, o: Output) {
        self.out.push(o);
    }

    /// Emit a misbehaviour proof, once per proof.
    pub fn misbehaviour(&mut self, p: Proof) {
        if self.reported.insert(hash(&p.encode())) {
            self.out.push(Output::Misbehaviour(p));
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

    /// Start gathering a write that must go out as one.
    pub fn begin_write(&self) -> WriteMark {
        WriteMark(self.out.len())
    }

    /// Merge every `Persist` since `mark` into one, placed after the other outputs since then
    /// (a `BlockReady` stays ahead of the meta that says it was handed out). Nothing is moved
    /// if a `Send` was emitted since `mark`: a write never moves after a message.
    pub fn end_write(&mut self, mark: WriteMark) {
        let first = mark.0.min(self.out.len());
        if self.out[first..]
            .iter()
            .any(|o| matches!(o, Output::Send { .. }))
        {
            return;
        }
        let mut ops = vec![];
        let mut rest = vec![];
        for o in self.out.drain(first..) {
            match o {
                Output::Persist(mut p) => ops.append(&mut p),
                other => rest.push(other),
            }
        }
        self.out.extend(rest);
        self.persist(ops);
    }

    /// Keep only the outputs `keep` accepts (after a restore, which replays old decisions).
    pub fn retain(&mut self, keep: impl Fn(&Output) -> bool) {
        self.out.retain(keep);
    }

    /// Everything emitted since the last call.
    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
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

    #[test]
    fn a_write_gathers_its_persists_after_the_block() {
        let mut o = Outbox::new(ME);
        o.persist(vec![StorageOp::Delete(Key::Meta)]);
        let w = o.begin_write();
        o.persist(vec![StorageOp::Delete(Key::OwnBatch(1))]);
        o.emit(Output::Rejoined { from: 0, to: 1 });
        o.persist(vec![]);
        o.persist(vec![StorageOp::Delete(Key::OwnBatch(2))]);
        o.end_write(w);
        let out = o.take();
        assert_eq!(out.len(), 3);
        assert!(matches!(out[1], Output::Rejoined { .. }));
        let Output::Persist(ops) = &out[2] else {
            panic!("one write last")
        };
        assert_eq!(ops.len(), 2);
    }

    #[test]
    fn a_write_is_never_moved_after_a_message() {
        let mut o = Outbox::new(ME);
        let w = o.begin_write();
        o.persist(vec![StorageOp::Delete(Key::OwnBatch(1))]);
        o.send([2; 32], Message::SyncRequest(1));
        o.persist(vec![StorageOp::Delete(Key::OwnBatch(2))]);
        o.end_write(w);
        let out = o.take();
        assert!(matches!(out[0], Output::Persist(_)));
        assert!(matches!(out[1], Output::Send { .. }));
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
}

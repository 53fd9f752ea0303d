//! The read-only context the services' rules read: what the replica knows, borrowed for one
//! question (is this decided, which header does this id name, is it within reach, have we our
//! own reason to drive it). No rule here changes anything.

use crate::chain::CheckpointChain;
use crate::checkpoint::MAX_INDEX_AHEAD;
use crate::crypto::{Signer, Verifier};
use crate::dds::Dds;
use crate::decided::DecidedRecord;
use crate::discovery::headers::{Headers, Slot};
use crate::discovery::payloads::Payloads;
use crate::execution::blocks::Committed;
use crate::membership::Membership;
use crate::types::*;

/// What the services know.
pub struct Ctx<'a> {
    /// This validator.
    pub me: ValidatorId,
    /// The time of the input being handled (virtual ms).
    pub now: u64,
    /// Signs what this validator sends.
    pub signer: &'a dyn Signer,
    /// Checks what peers signed.
    pub verifier: &'a dyn Verifier,
    /// The validator set.
    pub membership: &'a Membership,
    /// W.
    pub window: u64,
    /// The decided record.
    pub record: &'a DecidedRecord,
    /// The checkpoint chain.
    pub chain: &'a CheckpointChain,
    /// The last block built.
    pub built: BlockIndex,
    /// The conflict log.
    pub dds: &'a Dds,
    /// The batches held.
    pub payloads: &'a Payloads,
    /// Committed commands waiting for their blocks.
    pub committed: &'a Committed,
    /// First headers per slot.
    pub headers: &'a Headers,
}

impl Ctx<'_> {
    /// The chain's genesis hash: the domain every signature here is bound to.
    pub fn genesis(&self) -> Digest {
        self.membership.genesis
    }
    /// Is a command of this seq within reach of our window (as far above the watermark as
    /// proposals and votes are taken: 4 W)? A checkpoint's dependencies are what its block
    /// waits for: a correct checkpoint leader takes no reply naming one beyond.
    pub fn within_reach(&self, d: &DepRef) -> bool {
        match d.kind {
            DepKind::Txs { seq } => seq < self.record.watermark(&d.proposer) + 4 * self.window,
            DepKind::Ckpt { .. } => true,
        }
    }
    /// Whether `inst` is known decided (a command by its mark, a checkpoint by the chain).
    pub fn is_decided_inst(&self, inst: &InstanceId) -> bool {
        match inst {
            InstanceId::Cmd { proposer, seq, id } => self.record.is_decided(proposer, *seq, id),
            InstanceId::Ckpt(b) => *b <= self.chain.last(),
        }
    }
    /// Whether the command or checkpoint `d` names is known decided.
    pub fn dep_decided(&self, d: &DepRef) -> bool {
        match d.kind {
            DepKind::Txs { seq } => self.record.is_decided(&d.proposer, seq, &d.id),
            DepKind::Ckpt { index, .. } => index <= self.chain.last(),
        }
    }
    /// Replier window [design]: a replica replies to seq s of p only if s < low(p) + W, where
    /// low(p) is the lowest seq of p still in its log (else the decided watermark). A correct log
    /// therefore never holds more than W entries of one proposer, which is what makes the
    /// "|R_i| <= W entries per proposer" validity bound hold for correct replies even when
    /// decided commands wait several blocks to be collected (see docs/consensus.md).
    pub fn window_end(&self, p: &ValidatorId) -> Seq {
        self.window_start(p) + self.window
    }
    /// Where `p`'s replier window starts: the lowest seq of `p` still in our log, else its
    /// decided watermark.
    pub fn window_start(&self, p: &ValidatorId) -> Seq {
        let wm = self.record.watermark(p);
        self.dds.lowest_seq(p).map(|l| l.min(wm)).unwrap_or(wm)
    }
    /// The reference the header of command `id` names, if we hold that header (payload, commit
    /// or our own reply to it).
    pub fn held_ref(&self, id: &CommandId) -> Option<DepRef> {
        if let Some(b) = self.payloads.get(id) {
            return Some(b.header.body.dep_ref());
        }
        if let Some(c) = self.committed.get(id) {
            return Some(c.batch.header.body.dep_ref());
        }
        self.dds.cached(id).map(|r| r.body.cmd)
    }
    /// Does `inst` name a command id under another (proposer, seq) than the header we hold for
    /// it? An id is only ever used together with the header it names: a Byzantine validator
    /// may put a real id under another member's name (in a reply or a view change). Such an
    /// instance can only be decided Noop, and never touches the real command's payload,
    /// collect, log entry, commit or watermark.
    pub fn misnamed(&self, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { id, .. } = inst else {
            return false;
        };
        self.held_ref(id).is_some_and(|r| r.instance() != *inst)
    }
    /// Did the proposer of `inst` sign another command for the same seq (a header we hold, or
    /// another id for the slot in a decided, unbuilt checkpoint)?
    pub fn equivocated(&self, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { proposer, seq, id } = *inst else {
            return false;
        };
        let other =
            |d: &DepRef| d.proposer == proposer && d.kind == DepKind::Txs { seq } && d.id != id;
        self.headers
            .first(&Slot::Seq(proposer, seq))
            .is_some_and(|h| h.body.id() != id)
            || self
                .chain
                .decided_from(self.built + 1)
                .any(|k| k.deps.iter().any(other))
    }
    /// Is `inst` a dependency of a decided checkpoint whose block is not built yet? Its block
    /// waits for its decision, so it is taken part in whatever our window says.
    pub fn needed_by_checkpoint(&self, inst: &InstanceId) -> bool {
        let Some(d) = inst.txs_ref() else {
            return false;
        };
        self.chain
            .decided_from(self.built + 1)
            .any(|k| k.deps.binary_search(&d).is_ok())
    }
    /// Whether messages about `inst` are taken at all: a command's seq from its proposer's
    /// floor up to `windows` windows above its watermark (beyond only if a decided checkpoint
    /// waits for it), a checkpoint index at most [`MAX_INDEX_AHEAD`] above the last decided.
    pub fn in_reach(&self, inst: &InstanceId, windows: u64) -> bool {
        match *inst {
            InstanceId::Cmd { proposer, seq, .. } => {
                seq >= self.record.floor(&proposer)
                    && (seq < self.record.watermark(&proposer) + windows * self.window
                        || self.needed_by_checkpoint(inst))
            }
            InstanceId::Ckpt(b) => b <= self.chain.last() + MAX_INDEX_AHEAD,
        }
    }
    /// Has this replica its own reason to drive `inst` to a decision (arm its view timer)?
    /// Checkpoint instances always; a command when we hold its header under this name, or a
    /// decided checkpoint waits for it. Votes and view changes of a single member about other
    /// ids only record state: a correct replica spends a view change on them once f+1 members
    /// ask (the join rule) or the slot's own proposer does, so a Byzantine member naming
    /// made-up ids cannot make every replica run a consensus round for each.
    pub fn grounded(&self, inst: &InstanceId) -> bool {
        let InstanceId::Cmd { id, .. } = *inst else {
            return true;
        };
        self.held_ref(&id).is_some_and(|r| r.instance() == *inst) || self.needed_by_checkpoint(inst)
    }
}

/// A replica's services, empty, to build a [`Ctx`] from in unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::crypto::{InsecureTestCrypto, Signed};
    use crate::wire::SignedBatch;
    use codec::Encode;

    /// Four validators `[1; 32]` to `[4; 32]`, W = 16, nothing decided, held or built.
    pub(crate) struct World {
        pub(crate) me: ValidatorId,
        pub(crate) now: u64,
        pub(crate) built: BlockIndex,
        pub(crate) crypto: InsecureTestCrypto,
        pub(crate) membership: Membership,
        pub(crate) record: DecidedRecord,
        pub(crate) chain: CheckpointChain,
        pub(crate) dds: Dds,
        pub(crate) payloads: Payloads,
        pub(crate) committed: Committed,
        pub(crate) headers: Headers,
    }

    /// Proposer `p`'s signed command batch at `seq`: one transaction `data` touching `[9; 32]`.
    pub(crate) fn command(p: u8, seq: Seq, data: u8) -> SignedBatch {
        let txs = vec![Tx {
            access: vec![[9; 32]],
            data: vec![data],
        }];
        let header = BatchHeader {
            epoch: 0,
            proposer: [p; 32],
            seq,
            base: [0; 32],
            kind: BatchKind::Txs,
            access: vec![[9; 32]],
            txs_root: hash(&txs.encode()),
            weight: 0,
        };
        SignedBatch {
            header: Signed::sign(header, &[0; 32], &InsecureTestCrypto([p; 32])),
            txs: txs.into(),
        }
    }

    impl World {
        /// The world as validator `[1; 32]` sees it.
        pub(crate) fn new() -> Self {
            Self::as_validator([1; 32])
        }

        /// The world as validator `me` sees it (signing with its test key).
        pub(crate) fn as_validator(me: ValidatorId) -> Self {
            World {
                me,
                now: 0,
                built: 0,
                crypto: InsecureTestCrypto(me),
                membership: Membership::new([0; 32], 0, (1..=4u8).map(|i| [i; 32]).collect()),
                record: DecidedRecord::new(64),
                chain: CheckpointChain::new(0),
                dds: Dds::default(),
                payloads: Payloads::default(),
                committed: Committed::default(),
                headers: Headers::default(),
            }
        }

        pub(crate) fn ctx(&self) -> Ctx<'_> {
            Ctx {
                me: self.me,
                now: self.now,
                signer: &self.crypto,
                verifier: &self.crypto,
                membership: &self.membership,
                window: 16,
                record: &self.record,
                chain: &self.chain,
                built: self.built,
                dds: &self.dds,
                payloads: &self.payloads,
                committed: &self.committed,
                headers: &self.headers,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{command, World};
    use super::*;

    #[test]
    fn a_held_id_under_another_name_is_misnamed() {
        let mut w = World::new();
        let b = command(1, 0, 1);
        w.payloads.insert(b.clone());
        let real = b.header.body.dep_ref().instance();
        let misnamed = InstanceId::Cmd {
            proposer: [2; 32],
            seq: 0,
            id: b.id(),
        };
        assert!(!w.ctx().misnamed(&real));
        assert!(w.ctx().misnamed(&misnamed));
        assert!(w.ctx().grounded(&real) && !w.ctx().grounded(&misnamed));
        assert_eq!(w.ctx().held_ref(&b.id()), Some(b.header.body.dep_ref()));
    }

    #[test]
    fn reach_runs_from_the_floor_to_a_few_windows_above_the_watermark() {
        let w = World::new();
        let at = |seq| InstanceId::Cmd {
            proposer: [2; 32],
            seq,
            id: [1; 32],
        };
        assert!(w.ctx().in_reach(&at(0), 1));
        assert!(w.ctx().in_reach(&at(15), 1) && !w.ctx().in_reach(&at(16), 1));
        assert!(w.ctx().in_reach(&at(63), 4) && !w.ctx().in_reach(&at(64), 4));
        assert!(w.ctx().in_reach(&InstanceId::Ckpt(MAX_INDEX_AHEAD), 1));
        assert!(!w.ctx().in_reach(&InstanceId::Ckpt(MAX_INDEX_AHEAD + 1), 1));
    }
}

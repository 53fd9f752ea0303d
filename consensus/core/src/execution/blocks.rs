//! Committed commands and the blocks they make: a command decided with its dependencies waits
//! here for the block its fence names (or a later one); block b is cut once every dependency of
//! K_b above the agreed floors is decided, and its members are ordered by the dependency graph
//! ([`super::order`]); docs/consensus.md, "Agreed floors" and protocol.md, "Execution".

use super::order::{canonical_order, cut, Cut, Member};
use crate::chain::DecidedCheckpoint;
use crate::rotation::Rotation;
use crate::types::*;
use crate::wire::{FinishedBlock, SignedBatch};
use std::collections::BTreeMap;

/// A command decided with dependencies, waiting for its block.
#[derive(Clone, Debug)]
pub struct CommittedCmd {
    /// The batch.
    pub batch: SignedBatch,
    /// The dependencies its decision fixed.
    pub deps: Vec<DepRef>,
    /// Its fence: it lands in block `after + 1` or later.
    pub after: BlockIndex,
}

/// The committed commands not in a block yet.
#[derive(Debug, Default)]
pub struct Committed {
    cmds: BTreeMap<CommandId, CommittedCmd>,
}

impl Committed {
    /// How many wait.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }
    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }
    /// Whether `id` waits.
    pub fn contains(&self, id: &CommandId) -> bool {
        self.cmds.contains_key(id)
    }
    /// The command `id`.
    pub fn get(&self, id: &CommandId) -> Option<&CommittedCmd> {
        self.cmds.get(id)
    }
    /// The headers of every command waiting.
    pub fn headers(&self) -> impl Iterator<Item = &BatchHeader> {
        self.cmds.values().map(|c| &c.batch.header.body)
    }
    /// `batch` was decided with `deps` and fence `after`.
    pub fn insert(&mut self, batch: SignedBatch, deps: Vec<DepRef>, after: BlockIndex) {
        self.cmds
            .insert(batch.id(), CommittedCmd { batch, deps, after });
    }
    /// `id` is in a block, or collected.
    pub fn remove(&mut self, id: &CommandId) {
        self.cmds.remove(id);
    }

    /// The fence of the command `d` names, if committed under that name (a misnamed reference
    /// to the same id is not).
    pub fn fence_of(&self, d: &DepRef) -> Option<BlockIndex> {
        self.cmds
            .get(&d.id)
            .filter(|c| c.batch.header.body.dep_ref() == *d)
            .map(|c| c.after)
    }

    /// The instances of commands whose fence is below block `b` (in a block by now).
    pub fn landed_before(&self, b: BlockIndex) -> Vec<InstanceId> {
        self.cmds
            .iter()
            .filter(|(_, c)| c.after < b)
            .map(|(id, c)| {
                let h = &c.batch.header.body;
                InstanceId::Cmd {
                    proposer: h.proposer,
                    seq: h.seq,
                    id: *id,
                }
            })
            .collect()
    }

    /// `me`'s commands that block `b` voids (fence b - 1, seq below `own_floor`), with their
    /// seqs: their transactions are proposed again.
    pub fn voided_own(
        &self,
        me: &ValidatorId,
        own_floor: Seq,
        b: BlockIndex,
    ) -> Vec<(Seq, Vec<Tx>)> {
        self.cmds
            .values()
            .map(|c| (&c.batch.header.body, c))
            .filter(|(h, c)| h.proposer == *me && h.seq < own_floor && c.after + 1 == b)
            .map(|(h, c)| (h.seq, c.batch.txs.to_vec()))
            .collect()
    }

    /// Block `b` of decided checkpoint `k`, once every dependency above its floors is
    /// `decided`: the same cut and order on every correct replica, whatever each knows
    /// locally (below the floors nothing is waited for and nothing lands).
    pub fn block(
        &self,
        b: BlockIndex,
        k: &DecidedCheckpoint,
        decided: impl Fn(&DepRef) -> bool,
        next_rotation: Rotation,
    ) -> Option<FinishedBlock> {
        let BatchKind::Checkpoint {
            timestamp_ms,
            view,
            ref floors,
            ..
        } = k.header.kind
        else {
            return None;
        };
        let Cut::Ready { members: ids, .. } =
            cut(b, &k.deps, floors, decided, |d| self.fence_of(d))
        else {
            return None;
        };
        let mut members: BTreeMap<CommandId, Member> = ids
            .iter()
            .map(|id| {
                let c = &self.cmds[id];
                let member = Member {
                    key: c.batch.header.body.canonical_key(),
                    deps: c.deps.iter().map(|x| x.id).collect(),
                };
                (*id, member)
            })
            .collect();
        let kid = k.header.id();
        members.insert(
            kid,
            Member {
                key: k.header.canonical_key(),
                deps: k.deps.iter().map(|x| x.id).collect(),
            },
        );
        let batches = canonical_order(&members)
            .iter()
            .filter(|id| **id != kid)
            .map(|id| {
                let c = &self.cmds[id];
                (c.batch.header.body.clone(), c.batch.txs.clone())
            })
            .collect();
        Some(FinishedBlock {
            index: b,
            timestamp_ms,
            checkpoint_view: view,
            next_rotation,
            floors: floors.clone(),
            checkpoint: kid,
            batches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{InsecureTestCrypto, Signed};
    use codec::Encode;

    fn batch(p: u8, seq: Seq, account: u8) -> SignedBatch {
        let txs = vec![Tx {
            access: vec![[account; 32]],
            data: vec![p, seq as u8],
        }];
        let header = BatchHeader {
            epoch: 0,
            proposer: [p; 32],
            seq,
            base: [0; 32],
            kind: BatchKind::Txs,
            access: vec![[account; 32]],
            txs_root: hash(&txs.encode()),
            weight: 1,
        };
        SignedBatch {
            header: Signed::sign(header, &[0; 32], &InsecureTestCrypto([p; 32])),
            txs: txs.into(),
        }
    }

    fn checkpoint(b: BlockIndex, deps: Vec<DepRef>, floors: Floors) -> DecidedCheckpoint {
        DecidedCheckpoint {
            header: BatchHeader {
                epoch: 0,
                proposer: [1; 32],
                seq: 0,
                base: [0; 32],
                kind: BatchKind::Checkpoint {
                    index: b,
                    view: 0,
                    timestamp_ms: 7,
                    floors,
                },
                access: vec![],
                txs_root: [0; 32],
                weight: 0,
            },
            deps,
        }
    }

    #[test]
    fn a_block_waits_for_every_dependency_above_the_floors() {
        let (a, b) = (batch(1, 0, 5), batch(2, 0, 5));
        let (ra, rb) = (a.header.body.dep_ref(), b.header.body.dep_ref());
        let mut c = Committed::default();
        c.insert(a.clone(), vec![], 0);
        let k = checkpoint(1, vec![ra, rb], vec![]);
        let fresh = Rotation::fresh(0);
        assert!(c.block(1, &k, |d| *d == ra, fresh.clone()).is_none());
        c.insert(b.clone(), vec![ra], 0);
        let blk = c
            .block(1, &k, |_| true, fresh.clone())
            .expect("all decided");
        let ids: Vec<CommandId> = blk.batches.iter().map(|(h, _)| h.id()).collect();
        assert_eq!(ids, vec![a.id(), b.id()], "a before b, which depends on it");
        // Below a floor nothing is waited for, and nothing lands.
        let floored = checkpoint(1, vec![ra, rb], vec![([2; 32], 1)]);
        let blk = c
            .block(1, &floored, |d| *d == ra, fresh)
            .expect("b is void");
        assert_eq!(blk.batches.len(), 1);
    }

    #[test]
    fn a_misnamed_reference_is_not_a_member() {
        let a = batch(1, 0, 5);
        let mut c = Committed::default();
        c.insert(a.clone(), vec![], 0);
        let mut misnamed = a.header.body.dep_ref();
        misnamed.proposer = [3; 32];
        assert_eq!(c.fence_of(&misnamed), None);
        assert_eq!(c.fence_of(&a.header.body.dep_ref()), Some(0));
        let k = checkpoint(1, vec![misnamed], vec![]);
        let blk = c
            .block(1, &k, |_| true, Rotation::fresh(0))
            .expect("decided");
        assert!(blk.batches.is_empty());
    }

    #[test]
    fn voided_own_batches_and_landed_commands() {
        let mut c = Committed::default();
        c.insert(batch(1, 0, 5), vec![], 0);
        c.insert(batch(1, 1, 6), vec![], 3);
        c.insert(batch(2, 0, 7), vec![], 0);
        let voided = c.voided_own(&[1; 32], 1, 1);
        assert_eq!(voided.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0]);
        assert_eq!(c.landed_before(1).len(), 2);
        assert_eq!(c.landed_before(4).len(), 3);
    }
}

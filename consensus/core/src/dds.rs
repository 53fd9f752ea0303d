//! Dependency discovery (Rezende-Sutra Alg. 2, "a la EPaxos"), replier side.
//!
//! Invariants (protocol.md, normal case step 2, and S10):
//! - a replica replies to a command at most once; any later announce gets the cached reply,
//!   byte for byte (replies are persisted before being sent);
//! - positions strictly increase in reply order; the fence never decreases;
//! - the reply to a Txs command lists every conflicting command in the log; the reply to a
//!   checkpoint candidate lists every command in the log (a candidate conflicts with everything);
//! - entries leave the log only through [`Dds::remove`], called by GC for decided entries.

use crate::crypto::{Signed, Signer};
use crate::types::*;
use crate::wire::ReplyBody;
use std::collections::{BTreeMap, BTreeSet};

/// A log entry.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// How the entry is named in dependency sets.
    pub dep: DepRef,
    /// Access set (empty for candidates).
    pub access: Vec<AccountId>,
    /// Is it a checkpoint candidate?
    pub ckpt: bool,
}

/// The replier-side dependency discovery state.
#[derive(Clone, Debug, Default)]
pub struct Dds {
    log: BTreeMap<CommandId, LogEntry>,
    by_account: BTreeMap<AccountId, BTreeSet<CommandId>>,
    global: BTreeSet<CommandId>,
    ckpts: BTreeSet<CommandId>,
    replies: BTreeMap<CommandId, Signed<ReplyBody>>,
    by_proposer: BTreeMap<ValidatorId, BTreeSet<Seq>>,
    next_pos: u64,
    fence: BlockIndex,
}

impl Dds {
    /// Current fence.
    pub fn fence(&self) -> BlockIndex {
        self.fence
    }
    /// Next position.
    pub fn next_pos(&self) -> u64 {
        self.next_pos
    }
    /// Cached reply to `id`.
    pub fn cached(&self, id: &CommandId) -> Option<&Signed<ReplyBody>> {
        self.replies.get(id)
    }
    /// Is `id` in the log?
    pub fn contains(&self, id: &CommandId) -> bool {
        self.log.contains_key(id)
    }
    /// Log size (memory check).
    pub fn len(&self) -> usize {
        self.log.len()
    }
    /// Is the log empty?
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }
    /// Iterate log entries in id order.
    pub fn entries(&self) -> impl Iterator<Item = &LogEntry> {
        self.log.values()
    }

    fn conflicting(&self, header: &BatchHeader, self_id: &CommandId) -> Vec<DepRef> {
        let mut deps: Vec<DepRef> =
            if header.is_checkpoint() || header.access.last() == Some(&GLOBAL) {
                self.log.values().map(|e| e.dep).collect()
            } else {
                let mut ids: Vec<&CommandId> = Vec::new();
                ids.extend(self.global.iter());
                ids.extend(self.ckpts.iter());
                for a in &header.access {
                    if let Some(s) = self.by_account.get(a) {
                        ids.extend(s.iter());
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                ids.into_iter().map(|i| self.log[i].dep).collect()
            };
        deps.retain(|d| d.id != *self_id);
        deps.sort_unstable();
        deps
    }

    /// Lowest seq of `p` still in the log.
    pub fn lowest_seq(&self, p: &ValidatorId) -> Option<Seq> {
        self.by_proposer
            .get(p)
            .and_then(|s| s.iter().next().copied())
    }

    fn insert(&mut self, header: &BatchHeader, id: CommandId) {
        let ckpt = header.is_checkpoint();
        if !ckpt {
            self.by_proposer
                .entry(header.proposer)
                .or_default()
                .insert(header.seq);
        }
        let e = LogEntry {
            dep: header.dep_ref(),
            access: header.access.clone(),
            ckpt,
        };
        if ckpt {
            self.ckpts.insert(id);
        } else if header.access.last() == Some(&GLOBAL) {
            self.global.insert(id);
        } else {
            for a in &header.access {
                self.by_account.entry(*a).or_default().insert(id);
            }
        }
        self.log.insert(id, e);
    }

    /// Reply to the first announce of `header` (caller checked it is valid and not yet replied
    /// to). Inserts the command, advances the position and (for a candidate for b) the fence to b.
    pub fn reply(
        &mut self,
        header: &BatchHeader,
        genesis: &Digest,
        signer: &dyn Signer,
    ) -> Signed<ReplyBody> {
        let id = header.id();
        debug_assert!(
            !self.replies.contains_key(&id),
            "caller checks the cache first; qed"
        );
        if let BatchKind::Checkpoint { index, .. } = header.kind {
            self.fence = self.fence.max(index);
        }
        let deps = self.conflicting(header, &id);
        self.insert(header, id);
        let body = ReplyBody {
            epoch: header.epoch,
            cmd: header.dep_ref(),
            pos: self.next_pos,
            deps,
            fence: self.fence,
        };
        self.next_pos += 1;
        let r = Signed::sign(body, genesis, signer);
        self.replies.insert(id, r.clone());
        r
    }

    /// Rebuild from a persisted reply (restart).
    pub fn restore(&mut self, reply: Signed<ReplyBody>, header: &BatchHeader) {
        let id = header.id();
        self.fence = self.fence.max(reply.body.fence);
        self.next_pos = self.next_pos.max(reply.body.pos + 1);
        self.insert(header, id);
        self.replies.insert(id, reply);
    }

    /// Restore counters from meta (they may exceed what surviving replies show).
    pub fn restore_counters(&mut self, fence: BlockIndex, next_pos: u64) {
        self.fence = self.fence.max(fence);
        self.next_pos = self.next_pos.max(next_pos);
    }

    /// Remove a decided entry and its cached reply (GC). Returns whether it was present.
    pub fn remove(&mut self, id: &CommandId) -> bool {
        self.replies.remove(id);
        let Some(e) = self.log.remove(id) else {
            return false;
        };
        if let DepKind::Txs { seq } = e.dep.kind {
            if let Some(s) = self.by_proposer.get_mut(&e.dep.proposer) {
                s.remove(&seq);
                if s.is_empty() {
                    self.by_proposer.remove(&e.dep.proposer);
                }
            }
        }
        if e.ckpt {
            self.ckpts.remove(id);
        } else if e.access.last() == Some(&GLOBAL) {
            self.global.remove(id);
        } else {
            for a in &e.access {
                if let Some(s) = self.by_account.get_mut(a) {
                    s.remove(id);
                    if s.is_empty() {
                        self.by_account.remove(a);
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;

    fn header_at(seq: u64, access: Vec<AccountId>) -> BatchHeader {
        BatchHeader {
            epoch: 0,
            proposer: [1; 32],
            seq,
            base: [0; 32],
            kind: BatchKind::Txs,
            access,
            txs_root: [0; 32],
            weight: 0,
        }
    }
    fn cand(index: u64) -> BatchHeader {
        BatchHeader {
            epoch: 0,
            proposer: [2; 32],
            seq: 0,
            base: [0; 32],
            kind: BatchKind::Checkpoint {
                index,
                view: 0,
                timestamp_ms: 1,
                floors: vec![],
            },
            access: vec![],
            txs_root: [0; 32],
            weight: 0,
        }
    }

    #[test]
    fn replies_list_conflicts_positions_and_fences() {
        let k = InsecureTestCrypto([9; 32]);
        let mut d = Dds::default();
        let a = header_at(0, vec![[1; 32]]);
        let b = header_at(1, vec![[2; 32]]);
        let c = header_at(2, vec![[1; 32], [2; 32]]);
        let ra = d.reply(&a, &[0; 32], &k);
        let rb = d.reply(&b, &[0; 32], &k);
        let rc = d.reply(&c, &[0; 32], &k);
        assert!(ra.body.deps.is_empty() && rb.body.deps.is_empty());
        assert_eq!(rc.body.deps.len(), 2);
        assert!(ra.body.pos < rb.body.pos && rb.body.pos < rc.body.pos);
        let k1 = cand(1);
        let rk = d.reply(&k1, &[0; 32], &k);
        assert_eq!(rk.body.deps.len(), 3);
        assert_eq!(rk.body.fence, 1);
        let g = header_at(3, vec![GLOBAL]);
        let rg = d.reply(&g, &[0; 32], &k);
        assert_eq!(rg.body.deps.len(), 4);
        assert_eq!(rg.body.fence, 1);
        let e = header_at(4, vec![[7; 32]]);
        let re = d.reply(&e, &[0; 32], &k);
        assert_eq!(
            re.body.deps.len(),
            2,
            "the candidate and the global command"
        );
        assert!(d.remove(&a.id()));
        assert!(d.cached(&a.id()).is_none());
        let f = header_at(5, vec![[1; 32]]);
        assert_eq!(d.reply(&f, &[0; 32], &k).body.deps.len(), 3);
    }

    #[test]
    fn a_reply_names_exactly_the_conflicting_entries_in_order() {
        let k = InsecureTestCrypto([9; 32]);
        let mut d = Dds::default();
        let a = header_at(0, vec![[1; 32]]);
        let b = header_at(1, vec![[2; 32]]);
        d.reply(&a, &[0; 32], &k);
        d.reply(&b, &[0; 32], &k);
        let c = header_at(2, vec![[2; 32], [3; 32]]);
        let rc = d.reply(&c, &[0; 32], &k);
        assert_eq!(rc.body.deps, vec![b.dep_ref()]);
        assert_eq!(rc.body.cmd, c.dep_ref());
        assert_eq!((rc.body.pos, rc.body.fence, rc.body.epoch), (2, 0, 0));
        assert!(rc.verify(&[0; 32], &k), "signed by the replier");
        assert_eq!(d.cached(&c.id()), Some(&rc));
    }

    #[test]
    fn the_lowest_seq_per_proposer_follows_removals() {
        let k = InsecureTestCrypto([9; 32]);
        let mut d = Dds::default();
        assert_eq!(d.lowest_seq(&[1; 32]), None);
        for seq in [3, 1, 2] {
            d.reply(&header_at(seq, vec![[seq as u8; 32]]), &[0; 32], &k);
        }
        d.reply(&cand(4), &[0; 32], &k);
        assert_eq!(d.lowest_seq(&[1; 32]), Some(1));
        assert_eq!(d.lowest_seq(&[2; 32]), None, "candidates have no seq");
        assert!(d.remove(&header_at(1, vec![[1; 32]]).id()));
        assert_eq!(d.lowest_seq(&[1; 32]), Some(2));
        assert!(!d.remove(&header_at(1, vec![[1; 32]]).id()), "gone already");
        d.remove(&header_at(2, vec![[2; 32]]).id());
        d.remove(&header_at(3, vec![[3; 32]]).id());
        assert_eq!(d.lowest_seq(&[1; 32]), None);
        assert_eq!(d.len(), 1);
        let e = header_at(5, vec![[3; 32]]);
        assert_eq!(
            d.reply(&e, &[0; 32], &k).body.deps,
            vec![cand(4).dep_ref()],
            "removed entries conflict with nothing"
        );
    }

    #[test]
    fn a_restored_log_continues_positions_and_fence_and_answers_from_its_cache() {
        let k = InsecureTestCrypto([9; 32]);
        let mut before = Dds::default();
        let a = header_at(0, vec![[1; 32]]);
        let ra = before.reply(&a, &[0; 32], &k);
        let rk = before.reply(&cand(3), &[0; 32], &k);
        let mut after = Dds::default();
        after.restore(ra.clone(), &a);
        after.restore(rk, &cand(3));
        after.restore_counters(5, 0);
        assert_eq!(after.cached(&a.id()), Some(&ra));
        assert_eq!((after.fence(), after.next_pos()), (5, 2));
        let b = header_at(1, vec![[1; 32]]);
        let rb = after.reply(&b, &[0; 32], &k);
        assert_eq!((rb.body.pos, rb.body.fence), (2, 5));
        assert_eq!(rb.body.deps, {
            let mut deps = vec![a.dep_ref(), cand(3).dep_ref()];
            deps.sort();
            deps
        });
    }
}

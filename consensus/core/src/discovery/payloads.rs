//! The batches a replica holds (its own, announced to it, fetched, or sent with a proposal or a
//! decision), by id. A batch from a peer is stored only once [`valid`] says its header is signed
//! by its proposer, a member of this epoch, and its contents match the header; so every id in
//! the store names the header it travelled with.

use crate::crypto::Verifier;
use crate::membership::Membership;
use crate::types::*;
use crate::wire::SignedBatch;
use codec::Encode;
use std::collections::BTreeMap;

/// Whether `b` may be stored: signed by its proposer, a member of `m`'s epoch; a Txs batch holds
/// 1 to `max_batch_txs` transactions whose access sets make the header's; a checkpoint holds
/// none, at seq 0; the transactions hash to the header's root.
pub fn valid(b: &SignedBatch, m: &Membership, max_batch_txs: usize, v: &dyn Verifier) -> bool {
    let h = &b.header.body;
    if b.header.signer != h.proposer
        || !m.contains(&h.proposer)
        || h.epoch != m.epoch
        || h.txs_root != hash(&b.txs.encode())
    {
        return false;
    }
    let shape = match h.kind {
        BatchKind::Txs => {
            !b.txs.is_empty()
                && b.txs.len() <= max_batch_txs
                && union_access(b.txs.iter().map(|t| &t.access[..])) == h.access
        }
        BatchKind::Checkpoint { .. } => b.txs.is_empty() && h.access.is_empty() && h.seq == 0,
    };
    shape && b.header.verify(&m.genesis, v)
}

/// The held batches.
#[derive(Debug, Default)]
pub struct Payloads {
    batches: BTreeMap<CommandId, SignedBatch>,
}

impl Payloads {
    /// How many are held.
    pub fn len(&self) -> usize {
        self.batches.len()
    }
    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
    /// Whether `id` is held.
    pub fn contains(&self, id: &CommandId) -> bool {
        self.batches.contains_key(id)
    }
    /// The batch `id`.
    pub fn get(&self, id: &CommandId) -> Option<&SignedBatch> {
        self.batches.get(id)
    }
    /// The batch a decided or proposed value names (none for Noop).
    pub fn of_value(&self, v: &Value) -> Option<SignedBatch> {
        match v {
            Value::Deps { cmd, .. } => self.batches.get(cmd).cloned(),
            Value::Noop => None,
        }
    }
    /// Every held batch, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&CommandId, &SignedBatch)> {
        self.batches.iter()
    }
    /// Hold `b`, which the caller checked (or made), unless a batch with its id is held: the
    /// first copy stays. A copy whose id we hold is not checked again (the id covers the header
    /// body, not the transactions or the signature), so a later one must never replace it.
    pub fn insert(&mut self, b: SignedBatch) {
        self.batches.entry(b.id()).or_insert(b);
    }
    /// Hold `b` if it passes `valid`; whether it is (now) held.
    pub fn accept(&mut self, b: &SignedBatch, valid: impl FnOnce(&SignedBatch) -> bool) -> bool {
        let id = b.id();
        if self.batches.contains_key(&id) {
            return true;
        }
        if !valid(b) {
            return false;
        }
        self.batches.insert(id, b.clone());
        true
    }
    /// Drop `id`.
    pub fn remove(&mut self, id: &CommandId) {
        self.batches.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{InsecureTestCrypto, Signed};

    fn members() -> Membership {
        Membership::new([0; 32], 1, (1..=4u8).map(|i| [i; 32]).collect())
    }

    fn batch(signer: u8, proposer: u8, txs: Vec<Tx>) -> SignedBatch {
        let header = BatchHeader {
            epoch: 1,
            proposer: [proposer; 32],
            seq: 0,
            base: [0; 32],
            kind: BatchKind::Txs,
            access: union_access(txs.iter().map(|t| &t.access[..])),
            txs_root: hash(&txs.encode()),
            weight: 0,
        };
        SignedBatch {
            header: Signed::sign(header, &[0; 32], &InsecureTestCrypto([signer; 32])),
            txs: txs.into(),
        }
    }

    fn tx() -> Tx {
        Tx {
            access: vec![[7; 32]],
            data: vec![1],
        }
    }

    #[test]
    fn only_valid_batches_are_held() {
        let (m, v) = (members(), InsecureTestCrypto([0; 32]));
        let check = |b: &SignedBatch| valid(b, &m, 4, &v);
        let good = batch(1, 1, vec![tx()]);
        assert!(check(&good));
        assert!(!check(&batch(2, 1, vec![tx()])), "signed by another member");
        assert!(!check(&batch(9, 9, vec![tx()])), "an outsider");
        assert!(!check(&batch(1, 1, vec![])), "empty");
        assert!(!check(&batch(1, 1, vec![tx(); 5])), "over the batch size");
        let mut wrong_root = good.clone();
        Txs::make_mut(&mut wrong_root.txs).push(tx());
        assert!(!check(&wrong_root), "contents that do not match the header");
        let mut p = Payloads::default();
        assert!(!p.accept(&wrong_root, check));
        assert!(p.accept(&good, check));
        assert!(p.accept(&good, |_| false), "held already");
        let value = Value::Deps {
            cmd: good.id(),
            deps: vec![],
            after: 0,
        };
        assert_eq!(p.of_value(&value), Some(good));
        assert_eq!(p.of_value(&Value::Noop), None);
    }

    #[test]
    fn a_later_copy_never_replaces_a_held_batch() {
        let mut p = Payloads::default();
        let good = batch(1, 1, vec![tx()]);
        p.insert(good.clone());
        let mut tampered = good.clone();
        Txs::make_mut(&mut tampered.txs)[0].data = vec![66];
        tampered.header.sig = [0; 64];
        assert_eq!(
            tampered.id(),
            good.id(),
            "the id covers the header body only"
        );
        p.insert(tampered);
        assert_eq!(p.get(&good.id()), Some(&good));
    }
}

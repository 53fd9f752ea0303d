//! Deterministic block building from a finished block of the core (protocol.md, "Execution and
//! blocks").
//!
//! Every honest node builds block b from the same [`FinishedBlock`] on the same parent, so they
//! all get the same hash and state root:
//! - header digest: one pre-runtime item `BSMR` = SCALE(b, K_b id), binding the block to its checkpoint;
//! - inherents from the timestamp `max(parent timestamp + 1, K_b timestamp)` only;
//! - then every transaction of every batch in the core's canonical order, skipping by one rule
//!   everywhere: bytes that do not decode, bare (unsigned) extrinsics and anything the runtime's
//!   [`TxClassifier`] rejects, repeats of an extrinsic already in the block, and extrinsics the
//!   runtime refuses to apply (bad nonce, no funds, block full), after offering the refused ones
//!   again in order while that applies more ([`apply_in_order`]). A skipped transaction stays in
//!   the pools and is proposed again.
//!
//! Nothing here reads the wall clock, the local pool or any other node-local state.

use crate::TxClassifier;
use bsmr_consensus_core::{FinishedBlock, Floors, Rotation};
use bsmr_primitives::BSMR_ENGINE_ID;
use codec::{Decode, Encode};
use sc_block_builder::{BlockBuilderBuilder, BuiltBlock};
use sc_client_api::{backend::Backend, StorageProvider};
use sp_api::{CallApiAt, ProvideRuntimeApi};
use sp_block_builder::BlockBuilder as BlockBuilderApi;
use sp_runtime::{
    traits::{Block as BlockT, Hash as HashT, Header as HeaderT, NumberFor},
    Digest, DigestItem,
};
use std::collections::BTreeSet;

/// Storage key of pallet-timestamp's `Now`: twox128("Timestamp") ++ twox128("Now").
pub fn timestamp_now_key() -> Vec<u8> {
    let mut k = sp_crypto_hashing::twox_128(b"Timestamp").to_vec();
    k.extend_from_slice(&sp_crypto_hashing::twox_128(b"Now"));
    k
}

/// The timestamp stored in the state after `at` (0 at genesis).
pub fn chain_timestamp<B, BE, C>(client: &C, at: B::Hash) -> Result<u64, String>
where
    B: BlockT,
    BE: Backend<B>,
    C: StorageProvider<B, BE>,
{
    let data = client
        .storage(at, &sp_core::storage::StorageKey(timestamp_now_key()))
        .map_err(|e| format!("reading the timestamp at {at}: {e}"))?;
    Ok(data
        .map(|d| u64::decode(&mut &d.0[..]).unwrap_or(0))
        .unwrap_or(0))
}

/// A built block with what the engine reports about it.
pub struct Built<B: BlockT> {
    /// The block and its storage changes.
    pub built: BuiltBlock<B>,
    /// Extrinsic hashes of the transactions included.
    pub included: Vec<B::Hash>,
    /// Extrinsic hashes of the transactions skipped by the deterministic rules (a second copy,
    /// not classifiable, or refused by the runtime: bad nonce, no funds, block full).
    pub skipped: Vec<B::Hash>,
}

/// How many times the transactions the runtime refused are offered again, in block order.
pub const RETRY_PASSES: usize = 3;

/// Offer every transaction to `apply` in order; then offer the refused ones again, in the same
/// order, while a pass applies at least one and for at most [`RETRY_PASSES`] passes. Returns the
/// applied hashes in the order applied, and the refused ones.
///
/// Two batches of one sender proposed by different validators may be ordered against their
/// nonces (nonce n + 1 before n); the retry applies both in one block instead of skipping n + 1
/// until it is proposed again. Deterministic: the result depends only on the order and on what
/// `apply` answers. Bounded: a batch of refused transactions costs at most `RETRY_PASSES + 1`
/// attempts each.
pub fn apply_in_order<H: Copy, X>(
    txs: Vec<(H, X)>,
    mut apply: impl FnMut(&X) -> bool,
) -> (Vec<H>, Vec<H>) {
    let mut included = vec![];
    let mut refused = txs;
    for _ in 0..=RETRY_PASSES {
        let before = refused.len();
        refused.retain(|(hash, xt)| {
            let ok = apply(xt);
            if ok {
                included.push(*hash);
            }
            !ok
        });
        // A pass that applied nothing left the state as it was: another would refuse the same.
        if refused.is_empty() || refused.len() == before {
            break;
        }
    }
    (included, refused.into_iter().map(|(h, _)| h).collect())
}

/// Build `fb` on `parent` (number `parent_number`).
pub fn build_block<B, BE, C>(
    client: &C,
    classifier: &dyn TxClassifier,
    parent: B::Hash,
    parent_number: NumberFor<B>,
    fb: &FinishedBlock,
) -> Result<Built<B>, String>
where
    B: BlockT,
    BE: Backend<B>,
    C: ProvideRuntimeApi<B> + CallApiAt<B> + StorageProvider<B, BE>,
    C::Api: BlockBuilderApi<B>,
{
    let prev_ts = chain_timestamp::<B, BE, C>(client, parent)?;
    let timestamp = fb.timestamp_ms.max(prev_ts + 1);
    let digest = Digest {
        logs: vec![DigestItem::PreRuntime(
            BSMR_ENGINE_ID,
            (fb.index, fb.checkpoint, &fb.next_rotation, &fb.floors).encode(),
        )],
    };
    let mut bb = BlockBuilderBuilder::new(client)
        .on_parent_block(parent)
        .with_parent_block_number(parent_number)
        .with_inherent_digests(digest)
        .build()
        .map_err(|e| format!("starting block #{}: {e}", fb.index))?;
    let mut data = sp_inherents::InherentData::new();
    data.put_data(sp_timestamp::INHERENT_IDENTIFIER, &timestamp)
        .map_err(|e| format!("timestamp inherent: {e}"))?;
    let inherents = bb
        .create_inherents(data)
        .map_err(|e| format!("creating inherents for #{}: {e}", fb.index))?;
    for xt in inherents {
        bb.push(xt)
            .map_err(|e| format!("applying an inherent of #{}: {e}", fb.index))?;
    }
    let mut seen = BTreeSet::new();
    let mut skipped = vec![];
    let mut candidates = vec![];
    for (_, txs) in &fb.batches {
        for tx in &txs[..] {
            let hash = <<B::Header as HeaderT>::Hashing as HashT>::hash(&tx.data);
            if !seen.insert(hash) || classifier.classify(&tx.data).is_none() {
                skipped.push(hash);
                continue;
            }
            let Ok(xt) = B::Extrinsic::decode(&mut &tx.data[..]) else {
                skipped.push(hash);
                continue;
            };
            candidates.push((hash, xt));
        }
    }
    let (included, refused) = apply_in_order(candidates, |xt| bb.push(xt.clone()).is_ok());
    skipped.extend(refused);
    let built = bb
        .build()
        .map_err(|e| format!("finishing block #{}: {e}", fb.index))?;
    Ok(Built {
        built,
        included,
        skipped,
    })
}

/// What a bsmr block header's pre-runtime digest commits to.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChainCheckpoint {
    /// Block index b.
    pub index: u64,
    /// K_b's id.
    pub checkpoint: [u8; 32],
    /// The checkpoint-leader rotation for block b + 1.
    pub next_rotation: Rotation,
    /// K_b's agreed floors.
    pub floors: Floors,
}

/// The checkpoint a bsmr block header commits to, if any.
pub fn checkpoint_of<H: HeaderT>(header: &H) -> Option<ChainCheckpoint> {
    header.digest().logs().iter().find_map(|d| match d {
        DigestItem::PreRuntime(id, data) if *id == BSMR_ENGINE_ID => {
            ChainCheckpoint::decode(&mut &data[..]).ok()
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger of per-sender nonces: transaction (sender, nonce) applies iff it is the next one.
    fn ledger() -> impl FnMut(&(u8, u32)) -> bool {
        let mut next = std::collections::BTreeMap::<u8, u32>::new();
        move |(s, n)| {
            let want = next.entry(*s).or_insert(0);
            let ok = *n == *want;
            if ok {
                *want += 1;
            }
            ok
        }
    }

    fn txs(list: &[(u8, u32)]) -> Vec<((u8, u32), (u8, u32))> {
        list.iter().map(|t| (*t, *t)).collect()
    }

    #[test]
    fn nonces_ordered_against_their_order_in_one_block_all_apply() {
        let (included, refused) =
            apply_in_order(txs(&[(1, 1), (2, 0), (1, 0), (1, 3), (1, 2)]), ledger());
        assert_eq!(included, vec![(2, 0), (1, 0), (1, 1), (1, 2), (1, 3)]);
        assert!(refused.is_empty());
    }

    #[test]
    fn what_can_never_apply_is_refused_after_bounded_offers() {
        let mut offers = 0;
        let mut apply = ledger();
        let (included, refused) = apply_in_order(txs(&[(1, 5), (1, 0), (1, 7)]), |t| {
            offers += 1;
            apply(t)
        });
        assert_eq!(included, vec![(1, 0)]);
        assert_eq!(refused, vec![(1, 5), (1, 7)]);
        assert_eq!(offers, 3 + 2, "one retry pass, which applies nothing");
        // A chain in reverse order applies one per pass: the passes are bounded.
        let reversed: Vec<(u8, u32)> = (0..10).rev().map(|n| (3, n)).collect();
        let (included, refused) = apply_in_order(txs(&reversed), ledger());
        assert_eq!(included.len(), 1 + RETRY_PASSES);
        assert_eq!(refused.len(), 10 - 1 - RETRY_PASSES);
    }
}

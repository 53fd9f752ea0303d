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
//!   again in order while that applies more ([`apply_in_order`]; one whose nonce is used is not
//!   offered again). A skipped transaction stays in the pools and is proposed again.
//!
//! Nothing here reads the wall clock, the local pool or any other node-local state.
//!
//! The block is built on the runtime API directly ([`BlockInProgress`]), as
//! `sc_block_builder::BlockBuilder` builds one, except that a pass over the transactions applies
//! up to [`APPLY_CHUNK`] of them in one runtime call where the runtime offers
//! `BsmrBlockBuilderApi`: each runtime call gets a fresh wasm instance, whose setup and reset
//! cost more than applying a transfer. The state and the answers are those of one call each.

use crate::TxClassifier;
use bsmr_consensus_core::{AccountId, FinishedBlock, Floors, Rotation};
use bsmr_primitives::BsmrBlockBuilderApi;
use bsmr_primitives::BSMR_ENGINE_ID;
use codec::{Decode, Encode};
use sc_block_builder::BuiltBlock;
use sc_client_api::{backend::Backend, StorageProvider};
use sp_api::{ApiExt, ApiRef, CallApiAt, Core, ProvideRuntimeApi, TransactionOutcome};
use sp_block_builder::BlockBuilder as BlockBuilderApi;
use sp_core::traits::CallContext;
use sp_runtime::{
    traits::{Block as BlockT, Hash as HashT, Header as HeaderT, NumberFor},
    Digest, DigestItem,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Transactions this process offered to the runtime while building blocks, and how many of
/// those offers it refused (each offer executes the transaction and checks its signature), for
/// `bsmr_status`: the bench divides them by the finalized transactions (docs/performance.md).
static OFFERED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static REFUSED_STALE: AtomicU64 = AtomicU64::new(0);
static REFUSED_FUTURE: AtomicU64 = AtomicU64::new(0);

/// Offers to the runtime in block building so far, and what it answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockOffers {
    /// Transactions offered (each offer executes one).
    pub offered: u64,
    /// Offers refused, for any reason.
    pub refused: u64,
    /// Of those, refused for a nonce already used (a copy of a transaction on chain, or of
    /// one applied earlier in the block).
    pub stale: u64,
    /// Of those, refused for a nonce ahead of its sender's (ordered before its predecessor).
    pub future: u64,
}

/// Transactions offered to the runtime in block building so far, and what it answered.
pub fn block_offers() -> BlockOffers {
    BlockOffers {
        offered: OFFERED.load(Ordering::Relaxed),
        refused: REFUSED.load(Ordering::Relaxed),
        stale: REFUSED_STALE.load(Ordering::Relaxed),
        future: REFUSED_FUTURE.load(Ordering::Relaxed),
    }
}

/// How many times the transactions the runtime refused are offered again, in block order.
pub const RETRY_PASSES: usize = 3;

/// What the runtime said to one offer of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Applied.
    Applied,
    /// Refused for a nonce ahead of its sender's: it may apply once one of its sender's
    /// transactions did.
    AfterSender,
    /// Refused for another reason a later transaction may lift (no funds yet).
    Again,
    /// Refused for the rest of the block (a nonce already used: nonces only go up).
    Never,
}

/// The runtime's answer to [`sc_block_builder::BlockBuilder::push`] as an [`Offer`].
pub fn offer_of(pushed: Result<(), sp_blockchain::Error>) -> Offer {
    use sp_runtime::transaction_validity::{InvalidTransaction, TransactionValidityError};
    match pushed {
        Ok(()) => Offer::Applied,
        Err(sp_blockchain::Error::ApplyExtrinsicFailed(
            sp_blockchain::ApplyExtrinsicFailed::Validity(TransactionValidityError::Invalid(
                InvalidTransaction::Stale,
            )),
        )) => Offer::Never,
        Err(sp_blockchain::Error::ApplyExtrinsicFailed(
            sp_blockchain::ApplyExtrinsicFailed::Validity(TransactionValidityError::Invalid(
                InvalidTransaction::Future,
            )),
        )) => Offer::AfterSender,
        Err(_) => Offer::Again,
    }
}

/// [`apply_in_order_with`], offering one transaction at a time.
pub fn apply_in_order<H: Copy, S: Ord + Clone, X>(
    txs: Vec<(H, S, X)>,
    mut apply: impl FnMut(&X) -> Offer,
) -> (Vec<H>, Vec<H>) {
    apply_in_order_with(txs, |xs| xs.iter().map(|x| apply(x)).collect())
}

/// Offer every transaction to `apply` in order; then, while a pass applies at least one and
/// for at most [`RETRY_PASSES`] passes, offer again, in the same order, the ones refused for
/// now: [`Offer::Again`] ones after any pass, [`Offer::AfterSender`] ones only once one of their
/// sender's applied since their last offer, in the pass before or earlier in this one (nothing
/// else can make their nonce next). Returns the applied
/// hashes in the order applied, and the refused ones.
///
/// Two batches of one sender proposed by different validators may be ordered against their
/// nonces (nonce n + 1 before n); the retry applies both in one block instead of skipping n + 1
/// until it is proposed again. Each offer executes the transaction and checks its signature,
/// so a transaction whose nonce is used ([`Offer::Never`]) is not offered again, nor one ahead
/// of a sender that did not move. Deterministic: the result depends only on the order, the
/// senders and what `apply` answers. Bounded: a refused transaction costs at most
/// `RETRY_PASSES + 1` offers.
///
/// `apply` takes transactions to apply in turn and answers each. The first pass offers all of
/// them, so it is one call; a retry's offers depend on what applied earlier in the same pass,
/// so each is a call of its own.
pub fn apply_in_order_with<H: Copy, S: Ord + Clone, X>(
    txs: Vec<(H, S, X)>,
    mut apply: impl FnMut(&[&X]) -> Vec<Offer>,
) -> (Vec<H>, Vec<H>) {
    let mut included = vec![];
    let mut never = vec![];
    // Refused for now, with the answer; all are offered in the first pass.
    let mut waiting: Vec<(H, S, X, Offer)> = txs
        .into_iter()
        .map(|(h, s, x)| (h, s, x, Offer::Again))
        .collect();
    let mut advanced: BTreeSet<S> = BTreeSet::new();
    for pass in 0..=RETRY_PASSES {
        let mut applied = false;
        let mut moved = BTreeSet::new();
        // The first pass's answers, in order, from one call.
        let mut first: std::vec::IntoIter<Offer> = if pass == 0 {
            let all: Vec<&X> = waiting.iter().map(|(_, _, x, _)| x).collect();
            let answers = apply(&all);
            assert_eq!(
                answers.len(),
                all.len(),
                "one answer per transaction offered"
            );
            answers.into_iter()
        } else {
            Vec::new().into_iter()
        };
        waiting.retain_mut(|(hash, sender, xt, last)| {
            if pass > 0
                && *last == Offer::AfterSender
                && !advanced.contains(sender)
                && !moved.contains(sender)
            {
                return true;
            }
            *last = match first.next() {
                Some(answer) => answer,
                None => apply(&[&*xt])[0],
            };
            match *last {
                Offer::Applied => {
                    included.push(*hash);
                    moved.insert(sender.clone());
                    applied = true;
                    false
                }
                Offer::Never => {
                    never.push(*hash);
                    false
                }
                Offer::AfterSender | Offer::Again => true,
            }
        });
        // A pass that applied nothing left the state as it was: another would refuse the same.
        if waiting.is_empty() || !applied {
            break;
        }
        advanced = moved;
    }
    never.extend(waiting.into_iter().map(|(h, ..)| h));
    (included, never)
}

/// Transactions applied in one runtime call at most: a bound on one call's work and on the
/// wasm heap it uses, far above what makes the call's own cost small.
pub const APPLY_CHUNK: usize = 64;

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
    C::Api: BlockBuilderApi<B> + BsmrBlockBuilderApi<B>,
{
    let prev_ts = chain_timestamp::<B, BE, C>(client, parent)?;
    let timestamp = fb.timestamp_ms.max(prev_ts + 1);
    let digest = Digest {
        logs: vec![DigestItem::PreRuntime(
            BSMR_ENGINE_ID,
            (fb.index, fb.checkpoint, &fb.next_rotation, &fb.floors).encode(),
        )],
    };
    let mut bb = BlockInProgress::<B, C>::start(client, parent, parent_number, digest)
        .map_err(|e| format!("starting block #{}: {e}", fb.index))?;
    let mut data = sp_inherents::InherentData::new();
    data.put_data(sp_timestamp::INHERENT_IDENTIFIER, &timestamp)
        .map_err(|e| format!("timestamp inherent: {e}"))?;
    let inherents = bb
        .create_inherents(data)
        .map_err(|e| format!("creating inherents for #{}: {e}", fb.index))?;
    for xt in inherents {
        if bb.apply(&[&xt])[0] != Offer::Applied {
            return Err(format!("an inherent of #{} was refused", fb.index));
        }
    }
    let (candidates, mut skipped) = offered::<B>(classifier, fb);
    let (included, refused) = apply_in_order_with(candidates, |xts| {
        let offers = bb.apply(xts);
        for offer in &offers {
            OFFERED.fetch_add(1, Ordering::Relaxed);
            if *offer != Offer::Applied {
                REFUSED.fetch_add(1, Ordering::Relaxed);
            }
            match offer {
                Offer::Never => REFUSED_STALE.fetch_add(1, Ordering::Relaxed),
                Offer::AfterSender => REFUSED_FUTURE.fetch_add(1, Ordering::Relaxed),
                Offer::Applied | Offer::Again => 0,
            };
        }
        offers
    });
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

/// A block being built on the runtime API, as `sc_block_builder::BlockBuilder` (0.52,
/// `src/lib.rs`) builds one: the header's number, parent and digest, `initialize_block` in the
/// on-chain call context, every extrinsic applied in its own storage transaction (kept if it
/// applied), `finalize_block`, and the storage changes against the parent's state. It differs
/// only in [`Self::apply`], which hands the runtime many extrinsics per call.
struct BlockInProgress<'a, B: BlockT, C: ProvideRuntimeApi<B> + 'a> {
    api: ApiRef<'a, C::Api>,
    client: &'a C,
    parent: B::Hash,
    extrinsics: Vec<B::Extrinsic>,
    /// Whether the runtime applies many extrinsics per call (`BsmrBlockBuilderApi`).
    many_per_call: bool,
}

impl<'a, B, C> BlockInProgress<'a, B, C>
where
    B: BlockT,
    C: ProvideRuntimeApi<B> + CallApiAt<B> + 'a,
    C::Api: BlockBuilderApi<B> + BsmrBlockBuilderApi<B>,
{
    fn start(
        client: &'a C,
        parent: B::Hash,
        parent_number: NumberFor<B>,
        digest: Digest,
    ) -> Result<Self, sp_blockchain::Error> {
        let header = <B::Header as HeaderT>::new(
            parent_number + sp_runtime::traits::One::one(),
            Default::default(),
            Default::default(),
            parent,
            digest,
        );
        let mut api = client.runtime_api();
        api.set_call_context(CallContext::Onchain { import: false });
        let core = api.api_version::<dyn Core<B>>(parent)?.unwrap_or(0);
        let block_builder = api
            .api_version::<dyn BlockBuilderApi<B>>(parent)?
            .unwrap_or(0);
        if core < 5 || block_builder < 6 {
            return Err(sp_blockchain::Error::VersionInvalid(format!(
                "the runtime's Core (version {core}) or BlockBuilder (version {block_builder}) \
                 API is older than this builder (5 and 6)"
            )));
        }
        api.initialize_block(parent, &header)?;
        let many_per_call = api.has_api::<dyn BsmrBlockBuilderApi<B>>(parent)?;
        Ok(BlockInProgress {
            api,
            client,
            parent,
            extrinsics: vec![],
            many_per_call,
        })
    }

    /// The inherents for `data` (their creation changes no state).
    fn create_inherents(
        &mut self,
        data: sp_inherents::InherentData,
    ) -> Result<Vec<B::Extrinsic>, sp_blockchain::Error> {
        let parent = self.parent;
        Ok(self.api.execute_in_transaction(move |api| {
            TransactionOutcome::Rollback(api.inherent_extrinsics(parent, data))
        })?)
    }

    /// Apply `xts` in order, each kept if the runtime applied it: [`APPLY_CHUNK`] per runtime
    /// call where the runtime can, else one per call. A call of many that fails (it changed
    /// nothing then) is made again one extrinsic per call.
    fn apply(&mut self, xts: &[&B::Extrinsic]) -> Vec<Offer> {
        if !self.many_per_call {
            return xts.iter().map(|xt| self.apply_one(xt)).collect();
        }
        let mut offers = Vec::with_capacity(xts.len());
        for chunk in xts.chunks(APPLY_CHUNK) {
            if chunk.len() == 1 {
                offers.push(self.apply_one(chunk[0]));
                continue;
            }
            let parent = self.parent;
            let owned: Vec<B::Extrinsic> = chunk.iter().map(|xt| (*xt).clone()).collect();
            let answered =
                self.api
                    .execute_in_transaction(|api| match api.apply_extrinsics(parent, owned) {
                        Ok(results) if results.len() == chunk.len() => {
                            TransactionOutcome::Commit(Some(results))
                        }
                        _ => TransactionOutcome::Rollback(None),
                    });
            let Some(results) = answered else {
                log::warn!(
                    target: crate::LOG,
                    "applying {} extrinsics in one runtime call failed; applying them one by one",
                    chunk.len()
                );
                offers.extend(chunk.iter().map(|xt| self.apply_one(xt)));
                continue;
            };
            for (xt, result) in chunk.iter().zip(results) {
                offers.push(offer_of(match result {
                    Ok(_) => {
                        self.extrinsics.push((*xt).clone());
                        Ok(())
                    }
                    Err(validity) => {
                        Err(sp_blockchain::ApplyExtrinsicFailed::Validity(validity).into())
                    }
                }));
            }
        }
        offers
    }

    /// Apply `xt` in a runtime call of its own, as `BlockBuilder::push` does.
    fn apply_one(&mut self, xt: &B::Extrinsic) -> Offer {
        let parent = self.parent;
        let extrinsics = &mut self.extrinsics;
        offer_of(self.api.execute_in_transaction(
            |api| match api.apply_extrinsic(parent, xt.clone()) {
                Ok(Ok(_)) => {
                    extrinsics.push(xt.clone());
                    TransactionOutcome::Commit(Ok(()))
                }
                Ok(Err(validity)) => TransactionOutcome::Rollback(Err(
                    sp_blockchain::ApplyExtrinsicFailed::Validity(validity).into(),
                )),
                Err(e) => TransactionOutcome::Rollback(Err(sp_blockchain::Error::from(e))),
            },
        ))
    }

    /// `finalize_block`, and the block with its storage changes.
    fn build(self) -> Result<BuiltBlock<B>, sp_blockchain::Error> {
        let header = self.api.finalize_block(self.parent)?;
        let state = self.client.state_at(self.parent)?;
        let storage_changes = self
            .api
            .into_storage_changes(&state, self.parent)
            .map_err(sp_blockchain::Error::StorageChanges)?;
        Ok(BuiltBlock {
            block: B::new(header, self.extrinsics),
            storage_changes,
        })
    }
}

/// The transactions `fb` offers to the runtime, in block order, with their senders (each
/// extrinsic once; undecodable and unclassifiable ones go to the second list, skipped).
type Offered<B> = Vec<(<B as BlockT>::Hash, AccountId, <B as BlockT>::Extrinsic)>;

fn offered<B: BlockT>(
    classifier: &dyn TxClassifier,
    fb: &FinishedBlock,
) -> (Offered<B>, Vec<B::Hash>) {
    let mut seen = BTreeSet::new();
    let mut skipped = vec![];
    let mut candidates = vec![];
    for (_, txs) in &fb.batches {
        for tx in &txs[..] {
            let hash = <<B::Header as HeaderT>::Hashing as HashT>::hash(&tx.data);
            let info = classifier.classify(&tx.data);
            let (true, Some(info)) = (seen.insert(hash), info) else {
                skipped.push(hash);
                continue;
            };
            let Ok(xt) = B::Extrinsic::decode(&mut &tx.data[..]) else {
                skipped.push(hash);
                continue;
            };
            candidates.push((hash, info.sender, xt));
        }
    }
    (candidates, skipped)
}

/// The transactions of a block certified by the network (its `body`), checked against the
/// core's block `fb` without executing it: each extrinsic must be one of the transactions
/// `fb` offers to the runtime (once) or an inherent (a signed or unsigned transaction the core
/// never offered means the builders diverged). Importing the block executed it and matched its
/// state root, so what remains to check is that it is a block this node's core could have
/// built. Returns the hashes of the
/// transactions it included, in block order.
pub fn included_in_body<B: BlockT>(
    classifier: &dyn TxClassifier,
    fb: &FinishedBlock,
    body: &[B::Extrinsic],
) -> Result<Vec<B::Hash>, String> {
    let hash = |data: &[u8]| <<B::Header as HeaderT>::Hashing as HashT>::hash(data);
    // By canonical encoding (what a block body holds), to the hash the pool knows it by.
    let mut by_encoding: std::collections::BTreeMap<Vec<u8>, B::Hash> = Default::default();
    for (h, _, xt) in offered::<B>(classifier, fb).0 {
        by_encoding.entry(xt.encode()).or_insert(h);
    }
    let mut included = vec![];
    let mut seen = BTreeSet::new();
    for xt in body {
        let bytes = xt.encode();
        match by_encoding.get(&bytes) {
            Some(h) if seen.insert(*h) => included.push(*h),
            Some(h) => return Err(format!("transaction {h:?} is in the block twice")),
            None if classifier.is_inherent(&bytes) => {}
            None => {
                return Err(format!(
                    "extrinsic {:?} is neither an inherent nor in the core's block #{}",
                    hash(&bytes),
                    fb.index
                ))
            }
        }
    }
    Ok(included)
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
    use bsmr_consensus_core::BatchHeader;
    use sp_runtime::OpaqueExtrinsic;

    type TestBlock = sp_runtime::generic::Block<
        sp_runtime::generic::Header<u32, sp_runtime::traits::BlakeTwo256>,
        OpaqueExtrinsic,
    >;

    /// Signed transactions are the extrinsics whose bytes start with 1, inherents those that
    /// start with 0; the rest are neither (an unsigned transaction, say).
    struct FirstByte;
    impl TxClassifier for FirstByte {
        fn classify(&self, encoded: &[u8]) -> Option<crate::TxInfo> {
            let xt = OpaqueExtrinsic::decode(&mut &encoded[..]).ok()?;
            (xt.encode().get(1) == Some(&1)).then(|| crate::TxInfo {
                sender: [encoded[encoded.len() - 1]; 32],
                access: vec![],
            })
        }
        fn is_inherent(&self, encoded: &[u8]) -> bool {
            OpaqueExtrinsic::decode(&mut &encoded[..])
                .is_ok_and(|xt| xt.encode().get(1) == Some(&0))
        }
    }

    fn xt(bytes: &[u8]) -> OpaqueExtrinsic {
        OpaqueExtrinsic::decode(&mut &bytes.to_vec().encode()[..]).expect("a byte vector; qed")
    }

    fn core_block(txs: &[&[u8]]) -> FinishedBlock {
        let txs = txs
            .iter()
            .map(|b| bsmr_consensus_core::Tx {
                data: xt(b).encode(),
                access: vec![],
            })
            .collect::<Vec<_>>();
        let header = BatchHeader {
            epoch: 0,
            proposer: [1; 32],
            seq: 0,
            base: [0; 32],
            kind: bsmr_consensus_core::BatchKind::Txs,
            access: vec![],
            txs_root: [0; 32],
            weight: 0,
        };
        FinishedBlock {
            index: 7,
            timestamp_ms: 0,
            checkpoint: [0; 32],
            checkpoint_view: 0,
            next_rotation: Default::default(),
            floors: vec![],
            batches: vec![(header, txs.into())],
        }
    }

    #[test]
    fn a_synced_body_is_checked_against_the_core_block_without_executing_it() {
        let fb = core_block(&[&[1, 10], &[1, 11], &[1, 12]]);
        let hash = |b: &[u8]| <sp_runtime::traits::BlakeTwo256 as HashT>::hash(&xt(b).encode());
        // An inherent, then two of the three (the third refused by the runtime).
        let body = vec![xt(&[0, 9]), xt(&[1, 12]), xt(&[1, 10])];
        assert_eq!(
            included_in_body::<TestBlock>(&FirstByte, &fb, &body),
            Ok(vec![hash(&[1, 12]), hash(&[1, 10])])
        );
        // A signed extrinsic the core's block does not have: the cores diverged.
        let foreign = vec![xt(&[0, 9]), xt(&[1, 13])];
        assert!(included_in_body::<TestBlock>(&FirstByte, &fb, &foreign)
            .unwrap_err()
            .contains("nor in the core's block #7"));
        // Neither signed nor an inherent (one the classifier does not take): refused too.
        let unknown = vec![xt(&[0, 9]), xt(&[2, 10])];
        assert!(included_in_body::<TestBlock>(&FirstByte, &fb, &unknown)
            .unwrap_err()
            .contains("neither an inherent"));
        let twice = vec![xt(&[1, 10]), xt(&[1, 10])];
        assert!(included_in_body::<TestBlock>(&FirstByte, &fb, &twice)
            .unwrap_err()
            .contains("twice"));
    }

    /// A ledger of per-sender nonces: transaction (sender, nonce) applies iff it is the next one.
    fn ledger() -> impl FnMut(&(u8, u32)) -> Offer {
        let mut next = std::collections::BTreeMap::<u8, u32>::new();
        move |(s, n)| {
            let want = next.entry(*s).or_insert(0);
            match n.cmp(want) {
                std::cmp::Ordering::Equal => {
                    *want += 1;
                    Offer::Applied
                }
                std::cmp::Ordering::Greater => Offer::AfterSender,
                std::cmp::Ordering::Less => Offer::Never,
            }
        }
    }

    /// A test transaction: (sender, nonce).
    type T = (u8, u32);

    fn txs(list: &[T]) -> Vec<(T, u8, T)> {
        list.iter().map(|t| (*t, t.0, *t)).collect()
    }

    #[test]
    fn the_first_pass_is_one_call_and_answers_as_one_call_each() {
        let orders: [&[T]; 4] = [
            &[(1, 1), (2, 0), (1, 0), (1, 3), (1, 2)],
            &[(1, 5), (1, 0), (1, 7)],
            &[(1, 3), (1, 2), (1, 1), (1, 0), (2, 1), (2, 0)],
            &[(1, 0), (1, 2), (1, 0), (1, 1)],
        ];
        for order in orders {
            let mut calls = vec![];
            let mut apply = ledger();
            let many = apply_in_order_with(txs(order), |xs| {
                calls.push(xs.len());
                xs.iter().map(|x| apply(x)).collect()
            });
            assert_eq!(many, apply_in_order(txs(order), ledger()), "{order:?}");
            assert_eq!(
                calls[0],
                order.len(),
                "{order:?}: the first pass in one call"
            );
            assert!(
                calls[1..].iter().all(|n| *n == 1),
                "{order:?}: retries one at a time: {calls:?}"
            );
        }
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

    #[test]
    fn a_used_nonce_is_offered_once() {
        let mut offers = 0;
        let mut apply = ledger();
        // (1, 0) twice (a copy proposed by two validators) and a gap that closes in pass two.
        let (included, refused) = apply_in_order(txs(&[(1, 0), (1, 2), (1, 0), (1, 1)]), |t| {
            offers += 1;
            apply(t)
        });
        assert_eq!(included, vec![(1, 0), (1, 1), (1, 2)]);
        assert_eq!(refused, vec![(1, 0)]);
        assert_eq!(offers, 4 + 1, "only (1, 2) is offered again");
    }

    #[test]
    fn a_nonce_ahead_goes_in_the_pass_its_predecessor_applies() {
        // Sender 4 (B) funds 3 (C), which funds 2 (D), which funds 1 (A): A's nonce 0 can pay
        // only in the last pass; its nonce 1, refused as ahead in the first, must go in that
        // same pass, right after it, or the passes run out.
        let mut funded: BTreeSet<u8> = [4].into();
        let mut next = std::collections::BTreeMap::<u8, u32>::new();
        let (included, refused) =
            apply_in_order(txs(&[(1, 0), (1, 1), (2, 0), (3, 0), (4, 0)]), |(s, n)| {
                let want = next.entry(*s).or_insert(0);
                if *n != *want {
                    return Offer::AfterSender;
                }
                if !funded.contains(s) {
                    return Offer::Again;
                }
                *want += 1;
                funded.insert(s - 1);
                Offer::Applied
            });
        assert_eq!(included, vec![(4, 0), (3, 0), (2, 0), (1, 0), (1, 1)]);
        assert!(refused.is_empty(), "{refused:?}");
    }

    #[test]
    fn a_nonce_ahead_is_offered_again_only_after_its_sender_moved() {
        let mut offers = vec![];
        let mut apply = ledger();
        // Sender 1's nonce 3 waits for a 2 that is not in the block; sender 2's chain is
        // reversed and applies one per pass.
        let (included, refused) =
            apply_in_order(txs(&[(1, 3), (2, 1), (2, 0), (2, 3), (2, 2)]), |t| {
                offers.push(*t);
                apply(t)
            });
        assert_eq!(included, vec![(2, 0), (2, 1), (2, 2), (2, 3)]);
        assert_eq!(refused, vec![(1, 3)]);
        assert_eq!(
            offers.iter().filter(|t| t.0 == 1).count(),
            1,
            "sender 1 never moved: {offers:?}"
        );
    }

    #[test]
    fn only_a_stale_nonce_is_refused_for_the_rest_of_the_block() {
        use sp_runtime::transaction_validity::{InvalidTransaction, TransactionValidityError};
        let refused = |e: InvalidTransaction| {
            offer_of(Err(sp_blockchain::Error::ApplyExtrinsicFailed(
                sp_blockchain::ApplyExtrinsicFailed::Validity(TransactionValidityError::Invalid(e)),
            )))
        };
        assert_eq!(offer_of(Ok(())), Offer::Applied);
        assert_eq!(refused(InvalidTransaction::Stale), Offer::Never);
        assert_eq!(refused(InvalidTransaction::Future), Offer::AfterSender);
        assert_eq!(refused(InvalidTransaction::Payment), Offer::Again);
    }
}

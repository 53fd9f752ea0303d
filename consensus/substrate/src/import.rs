//! Import of blocks from the network (sync, announcements): every block must carry a valid
//! finality certificate, checked against the validator set the runtime had in force for it.
//!
//! The set for block b is read from the state after block b - 2 (protocol.md, "Epochs"): a
//! change enacted in block b* governs blocks from b* + 2 on. A block with a valid certificate is
//! imported as final; one without a certificate, or with an invalid one, is rejected (the sync
//! layer then lowers the sending peer's reputation), so a follower never holds an unfinalized
//! bsmr block and never forks.

use crate::config::Mode;
use crate::crypto::Sr25519Verifier;
use crate::justification::FinalityCertificate;
use bsmr_consensus_core::{Digest, Membership};
use bsmr_primitives::{BsmrApi, BSMR_ENGINE_ID};
use sc_consensus::{BlockImportParams, ForkChoiceStrategy, StateAction, StorageChanges, Verifier};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_runtime::traits::{Block as BlockT, Header as HeaderT, NumberFor, One, Zero};
use std::sync::{Arc, Mutex};

/// The membership that certifies block `number` whose parent is `parent`.
pub fn membership_for<B, C>(
    client: &C,
    genesis: Digest,
    parent: B::Hash,
    number: NumberFor<B>,
) -> Result<Membership, String>
where
    B: BlockT,
    C: ProvideRuntimeApi<B> + HeaderBackend<B>,
    C::Api: BsmrApi<B>,
{
    // State after block number - 2 (`bsmr_consensus_core::epoch::set_source_block`): the
    // parent's parent, found through the block's own ancestry rather than by number, or
    // genesis for blocks 1 and 2.
    let source = if number <= NumberFor::<B>::one() + NumberFor::<B>::one() {
        client
            .hash(Zero::zero())
            .map_err(|e| e.to_string())?
            .ok_or("no genesis block")?
    } else {
        let parent_header = client
            .header(parent)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("parent {parent} of block #{number} is unknown"))?;
        *parent_header.parent_hash()
    };
    let set = client
        .runtime_api()
        .validator_set(source)
        .map_err(|e| format!("reading the validator set for block #{number}: {e}"))?;
    if set.is_empty() {
        return Err(format!("the validator set for block #{number} is empty"));
    }
    // A certificate is a quorum of the set: who leads checkpoints plays no part.
    Ok(crate::epoch::membership_of(genesis, &set, Mode::Leaderless))
}

/// Verify a header's BSMR justification bytes.
pub fn verify_certificate<B, C>(
    client: &C,
    genesis: Digest,
    header: &B::Header,
    justification: &[u8],
) -> Result<(), String>
where
    B: BlockT,
    C: ProvideRuntimeApi<B> + HeaderBackend<B>,
    C::Api: BsmrApi<B>,
{
    let number = *header.number();
    let hash = header.hash();
    let cert = FinalityCertificate::decode_untrusted(justification).map_err(|e| e.to_string())?;
    let set = membership_for::<B, C>(client, genesis, *header.parent_hash(), number)?;
    let n: u64 = number
        .try_into()
        .map_err(|_| "block number overflows u64".to_string())?;
    let digest = |h: &B::Hash| -> Result<Digest, String> {
        h.as_ref()
            .try_into()
            .map_err(|_| "bsmr needs 32-byte hashes".to_string())
    };
    cert.verify(
        n,
        &digest(&hash)?,
        &digest(header.state_root())?,
        &set,
        &Sr25519Verifier,
    )
    .map_err(|e| format!("block #{number} ({hash}): {e}"))
}

/// The storage changes of the block this validator built and awaits votes for, shared by the
/// engine and the import queue. At saturation a certified copy of that block often arrives by
/// sync before this node has collected the votes itself; the import queue then imports it with
/// these changes (the same block, so the same changes) instead of executing it a second time.
/// Whoever imports first takes them; the engine imports with execution if they are gone. The
/// import queue takes them only for a copy with our body too: a block hash commits to the
/// extrinsics root, but sync does not check a body against it, and only execution would.
pub struct BuiltBlocks<B: BlockT>(Arc<Mutex<Option<BuiltChanges<B>>>>);

/// A built block's hash, its extrinsics and the storage changes executing them made.
type BuiltChanges<B> = (
    <B as BlockT>::Hash,
    Vec<<B as BlockT>::Extrinsic>,
    sp_api::StorageChanges<B>,
);

impl<B: BlockT> Default for BuiltBlocks<B> {
    fn default() -> Self {
        BuiltBlocks(Arc::new(Mutex::new(None)))
    }
}

impl<B: BlockT> Clone for BuiltBlocks<B> {
    fn clone(&self) -> Self {
        BuiltBlocks(self.0.clone())
    }
}

impl<B: BlockT> BuiltBlocks<B> {
    /// Hold the changes of block `hash` with `body` (replacing those of an earlier block).
    pub fn put(&self, hash: B::Hash, body: Vec<B::Extrinsic>, changes: sp_api::StorageChanges<B>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((hash, body, changes));
    }

    /// The changes of block `hash`, if held and not taken yet.
    pub fn take(&self, hash: &B::Hash) -> Option<sp_api::StorageChanges<B>> {
        self.take_if(|h, _| h == hash)
    }

    /// The changes of block `hash` for a copy that carries `body`, if it is ours.
    pub fn take_for(
        &self,
        hash: &B::Hash,
        body: Option<&Vec<B::Extrinsic>>,
    ) -> Option<sp_api::StorageChanges<B>> {
        self.take_if(|h, ours| h == hash && body == Some(ours))
    }

    fn take_if(
        &self,
        ours: impl Fn(&B::Hash, &Vec<B::Extrinsic>) -> bool,
    ) -> Option<sp_api::StorageChanges<B>> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((h, body, _)) if ours(h, body) => slot.take().map(|(_, _, c)| c),
            _ => None,
        }
    }
}

/// Import-queue verifier for blocks that arrive from the network.
pub struct CertificateVerifier<B: BlockT, C> {
    client: Arc<C>,
    genesis: Digest,
    built: BuiltBlocks<B>,
}

impl<B: BlockT, C> CertificateVerifier<B, C> {
    /// A verifier for the chain with `genesis`; a block the engine built is imported with the
    /// changes it left in `built`.
    pub fn new(client: Arc<C>, genesis: Digest, built: BuiltBlocks<B>) -> Self {
        CertificateVerifier {
            client,
            genesis,
            built,
        }
    }
}

#[async_trait::async_trait]
impl<B, C> Verifier<B> for CertificateVerifier<B, C>
where
    B: BlockT,
    C: ProvideRuntimeApi<B> + HeaderBackend<B> + Send + Sync,
    C::Api: BsmrApi<B>,
{
    async fn verify(
        &self,
        mut block: BlockImportParams<B>,
    ) -> Result<BlockImportParams<B>, String> {
        let number = *block.header.number();
        let Some(justification) = block
            .justifications
            .as_ref()
            .and_then(|j| j.get(BSMR_ENGINE_ID))
        else {
            return Err(format!(
                "block #{number} ({}) has no BSMR finality certificate: bsmr only imports certified blocks",
                block.header.hash()
            ));
        };
        verify_certificate::<B, C>(&*self.client, self.genesis, &block.header, justification)?;
        if let Some(changes) = self
            .built
            .take_for(&block.header.hash(), block.body.as_ref())
        {
            // This node built the same block: import it without executing it again.
            block.state_action = StateAction::ApplyChanges(StorageChanges::Changes(changes));
        }
        block.finalized = true;
        block.fork_choice = Some(ForkChoiceStrategy::Custom(true));
        Ok(block)
    }
}

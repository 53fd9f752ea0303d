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
///
/// A validator that lags (the quorum certified the block without it) is often still building
/// the block, or importing it with its changes, when the certified copy arrives; executing the
/// copy then would run the block twice. The slot says so ([`BuiltBlocks::building_on`],
/// [`BuiltBlocks::take_to_import`]), and the import queue waits for the engine, bounded by
/// [`MAX_WAIT_FOR_OWN_BUILD`], instead.
pub struct BuiltBlocks<B: BlockT>(Arc<Mutex<Slot<B>>>);

/// A built block's hash, its extrinsics and the storage changes executing them made.
type BuiltChanges<B> = (
    <B as BlockT>::Hash,
    Vec<<B as BlockT>::Extrinsic>,
    sp_api::StorageChanges<B>,
);

struct Slot<B: BlockT> {
    /// The changes of the last block built here, until someone imports with them.
    held: Option<BuiltChanges<B>>,
    /// The parent of the block the engine is building now.
    building_on: Option<B::Hash>,
    /// The block the engine is importing with its changes now.
    importing: Option<B::Hash>,
    /// The last block whose changes the import queue took for a copy from sync.
    taken_by_sync: Option<B::Hash>,
}

/// How long the import queue waits for the engine to finish building or importing the block
/// a certified copy of which sync brings, before it executes the copy itself.
pub const MAX_WAIT_FOR_OWN_BUILD: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the engine waits for the import queue's import with the engine's changes to land
/// before it executes its block itself (the import takes milliseconds; the engine does nothing
/// else meanwhile).
pub const MAX_WAIT_FOR_SYNC_IMPORT: std::time::Duration = std::time::Duration::from_secs(2);

impl<B: BlockT> Default for BuiltBlocks<B> {
    fn default() -> Self {
        BuiltBlocks(Arc::new(Mutex::new(Slot {
            held: None,
            building_on: None,
            importing: None,
            taken_by_sync: None,
        })))
    }
}

impl<B: BlockT> Clone for BuiltBlocks<B> {
    fn clone(&self) -> Self {
        BuiltBlocks(self.0.clone())
    }
}

impl<B: BlockT> BuiltBlocks<B> {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot<B>> {
        // Nothing panics while the lock is held; recover anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine starts building a block on `parent` (`None`: it stopped without one).
    pub fn building_on(&self, parent: Option<B::Hash>) {
        self.slot().building_on = parent;
    }

    /// Hold the changes of block `hash` with `body` (replacing those of an earlier block); the
    /// build is over.
    pub fn put(&self, hash: B::Hash, body: Vec<B::Extrinsic>, changes: sp_api::StorageChanges<B>) {
        let mut slot = self.slot();
        slot.held = Some((hash, body, changes));
        slot.building_on = None;
    }

    /// The changes of block `hash`, if held and not taken yet.
    pub fn take(&self, hash: &B::Hash) -> Option<sp_api::StorageChanges<B>> {
        Self::take_if(&mut self.slot(), |h, _| h == hash)
    }

    /// The changes of block `hash` for the engine's own import of it, which lasts until
    /// [`BuiltBlocks::imported`].
    pub fn take_to_import(&self, hash: &B::Hash) -> Option<sp_api::StorageChanges<B>> {
        let mut slot = self.slot();
        let changes = Self::take_if(&mut slot, |h, _| h == hash);
        if changes.is_some() {
            slot.importing = Some(*hash);
        }
        changes
    }

    /// The engine's import of `hash` is over (done or failed).
    pub fn imported(&self, hash: &B::Hash) {
        let mut slot = self.slot();
        if slot.importing.as_ref() == Some(hash) {
            slot.importing = None;
        }
    }

    /// The changes of block `hash` for a copy that carries `body`, if it is ours.
    pub fn take_for(
        &self,
        hash: &B::Hash,
        body: Option<&Vec<B::Extrinsic>>,
    ) -> Option<sp_api::StorageChanges<B>> {
        let mut slot = self.slot();
        let changes = Self::take_if(&mut slot, |h, ours| h == hash && body == Some(ours));
        if changes.is_some() {
            slot.taken_by_sync = Some(*hash);
        }
        changes
    }

    /// Whether the import queue took the changes of block `hash` (its import may still run).
    pub fn taken_by_sync(&self, hash: &B::Hash) -> bool {
        self.slot().taken_by_sync.as_ref() == Some(hash)
    }

    /// Whether the engine is building a block on `parent` or importing block `hash` now.
    pub fn busy_with(&self, parent: &B::Hash, hash: &B::Hash) -> bool {
        let slot = self.slot();
        slot.building_on.as_ref() == Some(parent) || slot.importing.as_ref() == Some(hash)
    }

    fn take_if(
        slot: &mut Slot<B>,
        ours: impl Fn(&B::Hash, &Vec<B::Extrinsic>) -> bool,
    ) -> Option<sp_api::StorageChanges<B>> {
        match slot.held.as_ref() {
            Some((h, body, _)) if ours(h, body) => slot.held.take().map(|(_, _, c)| c),
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
        let (hash, parent) = (block.header.hash(), *block.header.parent_hash());
        // The engine building this block or importing it: wait for it rather than execute the
        // block a second time (a wall-clock bound only decides which of two identical imports
        // runs, never what the chain holds).
        let started = std::time::Instant::now();
        while self.built.busy_with(&parent, &hash) && started.elapsed() < MAX_WAIT_FOR_OWN_BUILD {
            futures_timer::Delay::new(std::time::Duration::from_millis(5)).await;
        }
        if let Some(changes) = self.built.take_for(&hash, block.body.as_ref()) {
            // This node built the same block: import it without executing it again.
            block.state_action = StateAction::ApplyChanges(StorageChanges::Changes(changes));
        } else if !block.import_existing
            && matches!(
                block.state_action,
                StateAction::Execute | StateAction::ExecuteIfPossible
            )
            && self.client.hash(number).ok().flatten() == Some(hash)
        {
            // The engine imported it meanwhile: nothing to execute (the import finds it there
            // and answers `AlreadyInChain`). Not when sync re-imports a block on purpose (a
            // block without state, or a state download): that import must run as asked.
            block.state_action = StateAction::Skip;
        }
        block.finalized = true;
        block.fork_choice = Some(ForkChoiceStrategy::Custom(true));
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::BuiltBlocks;
    use sp_core::H256;
    use sp_runtime::OpaqueExtrinsic;

    type TestBlock = sp_runtime::generic::Block<
        sp_runtime::generic::Header<u32, sp_runtime::traits::BlakeTwo256>,
        OpaqueExtrinsic,
    >;

    fn h(b: u8) -> H256 {
        H256::repeat_byte(b)
    }

    #[test]
    fn the_import_queue_sees_the_engine_busy_with_a_block_until_its_build_or_import_ends() {
        let built = BuiltBlocks::<TestBlock>::default();
        let (parent, block) = (h(1), h(2));
        assert!(!built.busy_with(&parent, &block));
        // Building on the parent: a copy of its child waits.
        built.building_on(Some(parent));
        assert!(built.busy_with(&parent, &block));
        assert!(
            !built.busy_with(&h(9), &h(8)),
            "another parent does not wait"
        );
        // The build is over once its changes are held, and the copy takes them.
        built.put(block, vec![], Default::default());
        assert!(!built.busy_with(&parent, &block));
        assert!(built.take_for(&block, Some(&vec![])).is_some());
        assert!(built.taken_by_sync(&block));
        assert!(built.take_to_import(&block).is_none(), "taken once");
        // The engine importing with its changes: a copy waits until the import ends.
        built.put(h(3), vec![], Default::default());
        assert!(built.take_to_import(&h(3)).is_some());
        assert!(built.busy_with(&block, &h(3)));
        assert!(built.take_for(&h(3), Some(&vec![])).is_none());
        built.imported(&h(3));
        assert!(!built.busy_with(&block, &h(3)));
        // A failed build ends it too.
        built.building_on(Some(parent));
        built.building_on(None);
        assert!(!built.busy_with(&parent, &block));
    }

    #[test]
    fn a_copy_with_another_body_does_not_take_our_changes() {
        let built = BuiltBlocks::<TestBlock>::default();
        built.put(h(2), vec![], Default::default());
        let other =
            vec![OpaqueExtrinsic::try_from_encoded_extrinsic(&[0]).expect("one byte decodes")];
        assert!(built.take_for(&h(2), Some(&other)).is_none());
        assert!(built.take_for(&h(2), None).is_none());
        assert!(!built.taken_by_sync(&h(2)));
        assert!(built.take_for(&h(2), Some(&vec![])).is_some());
    }
}

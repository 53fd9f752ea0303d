//! Import of blocks from the network (sync, announcements): every block must carry a valid
//! finality certificate, checked against the validator set the runtime had in force for it.
//!
//! The set for block b is read from the state after block b - 2 (protocol.md, "Epochs"): a
//! change enacted in block b* governs blocks from b* + 2 on. A block with a valid certificate is
//! imported as final; one without a certificate, or with an invalid one, is rejected (the sync
//! layer then lowers the sending peer's reputation), so a follower never holds an unfinalized
//! bsmr block and never forks.

use crate::crypto::{validator_ids, Sr25519Verifier};
use crate::justification::FinalityCertificate;
use bsmr_consensus_core::{Digest, Membership};
use bsmr_primitives::{BsmrApi, BSMR_ENGINE_ID};
use sc_consensus::{BlockImportParams, ForkChoiceStrategy, Verifier};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_runtime::traits::{Block as BlockT, Header as HeaderT, NumberFor, One, Zero};
use std::sync::Arc;

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
    // State after block number - 2: the parent's parent, or genesis for blocks 1 and 2.
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
    Ok(Membership::new(
        genesis,
        set.epoch,
        validator_ids(&set.validators),
    ))
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

/// Import-queue verifier for blocks that arrive from the network.
pub struct CertificateVerifier<C> {
    client: Arc<C>,
    genesis: Digest,
}

impl<C> CertificateVerifier<C> {
    /// A verifier for the chain with `genesis`.
    pub fn new(client: Arc<C>, genesis: Digest) -> Self {
        CertificateVerifier { client, genesis }
    }
}

#[async_trait::async_trait]
impl<B, C> Verifier<B> for CertificateVerifier<C>
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
        block.finalized = true;
        block.fork_choice = Some(ForkChoiceStrategy::Custom(true));
        Ok(block)
    }
}

//! Finality for outside verifiers: the `bsmr_proveFinality` and `bsmr_subscribeJustifications`
//! RPC methods.
//!
//! A bsmr block is final when its header carries a [`FinalityCertificate`] (its BSMR
//! justification): q signatures, from members of the validator set in force at its parent, over
//! (epoch, number, hash, state root). A light verifier that does not run the chain needs three
//! things besides the certificate to check that claim:
//! - the header itself (to recompute its hash and read its state root and parent hash);
//! - the parent header (its hash must be the header's parent hash; its state root anchors the set);
//! - the validator set at the parent, with a storage proof of the storage items it is read from
//!   (the membership pallet's members and current epoch) against the parent's state root.
//!
//! [`FinalityProof`] carries exactly that, SCALE-encoded and hex-wrapped, so any client can
//! check it with a trie-proof verifier and sr25519 (bench/tests/finality_proof.rs does, without
//! this crate). Trust still starts somewhere: the verifier compares the proven set with the set it
//! already trusts (for example the genesis set, followed through the epochs it has verified), as
//! GRANDPA light clients do with authority-set changes.

use crate::justification::FinalityCertificate;
use bsmr_primitives::{BsmrApi, BSMR_ENGINE_ID};
use codec::Encode;
use futures::StreamExt;
use jsonrpsee::{
    core::{async_trait, RpcResult, SubscriptionResult},
    proc_macros::rpc,
    types::{ErrorObject, ErrorObjectOwned},
    PendingSubscriptionSink, SubscriptionMessage,
};
use sc_client_api::{BlockBackend, BlockchainEvents, ProofProvider};
use serde::{Deserialize, Serialize};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_core::Bytes;
use sp_runtime::traits::{Block as BlockT, Header as HeaderT, NumberFor, UniqueSaturatedInto};
use std::marker::PhantomData;
use std::sync::Arc;

/// JSON-RPC error code for "this node cannot prove what was asked" (no such block, not final,
/// pruned state).
pub const CANNOT_PROVE: i32 = 7001;

/// The validator set a certificate is checked against, as proven.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProvenValidatorSet {
    /// Its epoch (the certificate's vote names it too).
    pub epoch: u64,
    /// The members' sr25519 consensus keys, in the runtime's canonical order.
    pub validators: Vec<Bytes>,
    /// Signatures a certificate needs.
    pub quorum: u32,
}

/// Everything a light verifier needs to check that a block is final.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FinalityProof {
    /// The block's number.
    pub number: u64,
    /// The block's hash.
    pub hash: Bytes,
    /// The SCALE-encoded header.
    pub header: Bytes,
    /// The SCALE-encoded [`FinalityCertificate`] (the block's BSMR justification).
    pub certificate: Bytes,
    /// The SCALE-encoded parent header.
    pub parent_header: Bytes,
    /// The validator set in force at the parent, which the certificate is checked against.
    pub validator_set: ProvenValidatorSet,
    /// The storage keys the set is read from (members, current epoch), in that order.
    pub storage_keys: Vec<Bytes>,
    /// Trie nodes proving the values of `storage_keys` against the parent's state root.
    pub storage_proof: Vec<Bytes>,
}

/// One finalized block's certificate, as `bsmr_subscribeJustifications` sends it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JustificationNotification {
    /// The block's number.
    pub number: u64,
    /// The block's hash.
    pub hash: Bytes,
    /// The SCALE-encoded [`FinalityCertificate`].
    pub certificate: Bytes,
}

/// The finality RPC methods.
#[rpc(client, server)]
pub trait BsmrFinalityRpc {
    /// A proof that finalized block `number` is final: its header, certificate, parent header,
    /// and the validator set at the parent with a storage proof against the parent's state root.
    #[method(name = "bsmr_proveFinality", blocking)]
    fn prove_finality(&self, number: u64) -> RpcResult<FinalityProof>;

    /// Every block's certificate as the block is finalized, in block order.
    #[subscription(
        name = "bsmr_subscribeJustifications" => "bsmr_justifications",
        unsubscribe = "bsmr_unsubscribeJustifications",
        item = JustificationNotification
    )]
    async fn subscribe_justifications(&self) -> SubscriptionResult;
}

/// Handler of [`BsmrFinalityRpcServer`] over a full client.
pub struct BsmrFinality<B, C> {
    client: Arc<C>,
    set_keys: Vec<Vec<u8>>,
    _block: PhantomData<B>,
}

impl<B, C> BsmrFinality<B, C> {
    /// A handler proving sets with `set_keys`: the storage keys of the membership pallet's members
    /// and current epoch, which the runtime's `validator_set` reads.
    pub fn new(client: Arc<C>, set_keys: Vec<Vec<u8>>) -> Self {
        BsmrFinality {
            client,
            set_keys,
            _block: PhantomData,
        }
    }
}

fn cannot_prove(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(CANNOT_PROVE, msg.into(), None::<()>)
}

impl<B, C> BsmrFinality<B, C>
where
    B: BlockT,
    C: HeaderBackend<B> + BlockBackend<B> + ProofProvider<B> + ProvideRuntimeApi<B>,
    C::Api: BsmrApi<B>,
{
    fn certificate(&self, hash: B::Hash) -> Option<Vec<u8>> {
        let justifications = self.client.justifications(hash).ok()??;
        justifications.get(BSMR_ENGINE_ID).cloned()
    }

    fn prove(&self, number: u64) -> Result<FinalityProof, ErrorObjectOwned> {
        let info = self.client.info();
        let finalized: u64 = info.finalized_number.unique_saturated_into();
        if number == 0 {
            return Err(cannot_prove(
                "block #0 is the genesis block: it is final by definition and has no certificate",
            ));
        }
        if number > finalized {
            return Err(cannot_prove(format!(
                "block #{number} is not finalized yet (last finalized: #{finalized})"
            )));
        }
        let at: NumberFor<B> = number.unique_saturated_into();
        let internal = |e: sp_blockchain::Error| cannot_prove(format!("block #{number}: {e}"));
        let hash = self
            .client
            .hash(at)
            .map_err(internal)?
            .ok_or_else(|| cannot_prove(format!("this node does not have block #{number}")))?;
        let header =
            self.client.header(hash).map_err(internal)?.ok_or_else(|| {
                cannot_prove(format!("this node has no header for block #{number}"))
            })?;
        let certificate = self.certificate(hash).ok_or_else(|| {
            cannot_prove(format!(
                "this node has no BSMR certificate for block #{number} (it may have synced it \
                 before certificates were kept, or its database was pruned of justifications)"
            ))
        })?;
        let parent_hash = *header.parent_hash();
        let parent = self
            .client
            .header(parent_hash)
            .map_err(internal)?
            .ok_or_else(|| cannot_prove(format!("this node has no header for #{}", number - 1)))?;
        let set = self
            .client
            .runtime_api()
            .validator_set(parent_hash)
            .map_err(|e| {
                cannot_prove(format!("reading the validator set at #{}: {e}", number - 1))
            })?;
        let proof = self
            .client
            .read_proof(parent_hash, &mut self.set_keys.iter().map(|k| k.as_slice()))
            .map_err(|e| {
                cannot_prove(format!(
                    "no storage proof at #{} (its state may be pruned: run with \
                     --state-pruning archive to prove old blocks): {e}",
                    number - 1
                ))
            })?;
        let quorum = set.quorum();
        Ok(FinalityProof {
            number,
            hash: hash.as_ref().to_vec().into(),
            header: header.encode().into(),
            certificate: certificate.into(),
            parent_header: parent.encode().into(),
            validator_set: ProvenValidatorSet {
                epoch: set.epoch,
                validators: set.validators.iter().map(|v| v.encode().into()).collect(),
                quorum,
            },
            storage_keys: self.set_keys.iter().cloned().map(Bytes).collect(),
            storage_proof: proof.into_iter_nodes().map(Bytes).collect(),
        })
    }
}

#[async_trait]
impl<B, C> BsmrFinalityRpcServer for BsmrFinality<B, C>
where
    B: BlockT,
    C: HeaderBackend<B>
        + BlockBackend<B>
        + ProofProvider<B>
        + ProvideRuntimeApi<B>
        + BlockchainEvents<B>
        + Send
        + Sync
        + 'static,
    C::Api: BsmrApi<B>,
{
    fn prove_finality(&self, number: u64) -> RpcResult<FinalityProof> {
        self.prove(number)
    }

    async fn subscribe_justifications(
        &self,
        pending: PendingSubscriptionSink,
    ) -> SubscriptionResult {
        // Subscribe before accepting, so no finalization between the two is missed.
        let mut finality = self.client.finality_notification_stream();
        let sink = pending.accept().await?;
        while let Some(notification) = finality.next().await {
            // A notification may cover several blocks: those on `tree_route`, then its own.
            let hashes = notification
                .tree_route
                .iter()
                .copied()
                .chain(std::iter::once(notification.hash));
            for hash in hashes {
                let Some(header) = self.client.header(hash).ok().flatten() else {
                    continue;
                };
                let Some(certificate) = self.certificate(hash) else {
                    log::debug!(target: "bsmr", "finalized block {hash} has no BSMR certificate to send");
                    continue;
                };
                // Only certificates that decode are sent; the chain never holds others.
                if FinalityCertificate::decode_untrusted(&certificate).is_err() {
                    continue;
                }
                let item = JustificationNotification {
                    number: (*header.number()).unique_saturated_into(),
                    hash: hash.as_ref().to_vec().into(),
                    certificate: certificate.into(),
                };
                let message = SubscriptionMessage::from_json(&item)?;
                if sink.send(message).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

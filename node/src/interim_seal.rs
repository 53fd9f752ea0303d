//! Interim block production until the leaderless engine (`consensus/substrate`) lands.
//!
//! One node seals: the one whose keystore holds the `bsmr` key of the first validator in the
//! canonical order (Alice alone on `--dev`). It seals a block as soon as a transaction enters its
//! pool and finalizes it at once (instant seal). Every other node imports the sealer's blocks
//! through sync and finalizes them too: this trusts the sealer and exists only so that a
//! single-node dev chain and a local multi-node network work end to end before the engine
//! replaces this module (issue 4). Nothing here is Byzantine fault tolerant.

use std::sync::Arc;

use bsmr_primitives::{BsmrApi, KEY_TYPE};
use bsmr_runtime::opaque::Block;
use sc_consensus::{BlockImportParams, ForkChoiceStrategy, Verifier};
use sc_consensus_manual_seal::InstantSealParams;
use sc_service::{Configuration, TaskManager};
use sc_telemetry::Telemetry;
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_core::crypto::ByteArray;
use sp_runtime::traits::Block as BlockT;

use crate::service::{FullClient, FullSelectChain, TransactionPool};

/// Imports every block as final: followers mirror the single sealer's finality.
struct FollowSealer;

#[async_trait::async_trait]
impl<B: BlockT> Verifier<B> for FollowSealer {
    async fn verify(&self, mut block: BlockImportParams<B>) -> Result<BlockImportParams<B>, String> {
        block.finalized = true;
        block.fork_choice = Some(ForkChoiceStrategy::LongestChain);
        Ok(block)
    }
}

/// The import queue of the interim mode.
pub fn import_queue(
    client: Arc<FullClient>,
    task_manager: &TaskManager,
    config: &Configuration,
) -> sc_consensus::DefaultImportQueue<Block> {
    sc_consensus::BasicQueue::new(
        FollowSealer,
        Box::new(client),
        None,
        &task_manager.spawn_essential_handle(),
        config.prometheus_registry(),
    )
}

/// Whether this node's keystore holds the key of the sealer (the first validator).
pub fn is_sealer(client: &FullClient, keystore: &sp_keystore::KeystorePtr) -> Result<bool, String> {
    let best = client.info().best_hash;
    let set = client
        .runtime_api()
        .validator_set(best)
        .map_err(|e| format!("cannot read the validator set: {e}"))?;
    Ok(set
        .validators
        .first()
        .is_some_and(|first| keystore.has_keys(&[(first.to_raw_vec(), KEY_TYPE)])))
}

/// Start instant seal with finality on this node.
pub fn start(
    prometheus_registry: Option<&substrate_prometheus_endpoint::Registry>,
    task_manager: &TaskManager,
    client: Arc<FullClient>,
    pool: Arc<TransactionPool>,
    select_chain: FullSelectChain,
    telemetry: Option<&Telemetry>,
) {
    let proposer_factory = sc_basic_authorship::ProposerFactory::new(
        task_manager.spawn_handle(),
        client.clone(),
        pool.clone(),
        prometheus_registry,
        telemetry.map(|t| t.handle()),
    );
    let params = InstantSealParams {
        block_import: client.clone(),
        env: proposer_factory,
        client,
        pool,
        select_chain,
        consensus_data_provider: None,
        create_inherent_data_providers: move |_, ()| async move {
            Ok(sp_timestamp::InherentDataProvider::from_system_time())
        },
    };
    task_manager.spawn_essential_handle().spawn_blocking(
        "instant-seal",
        None,
        sc_consensus_manual_seal::run_instant_seal_and_finalize(params),
    );
}

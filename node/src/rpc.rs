//! The node's RPC extensions on top of Substrate's standard ones: account nonces
//! (`system_accountNextIndex`) and fee queries (`payment_*`), as polkadot.js expects, and the
//! engine's `bsmr_status` / `bsmr_commandStatus`, and finality for outside verifiers
//! (`bsmr_proveFinality`, `bsmr_subscribeJustifications`).

use std::sync::Arc;

use bsmr_runtime::{opaque::Block, AccountId, Balance, Nonce};
use jsonrpsee::RpcModule;
use sc_client_api::{BlockBackend, BlockchainEvents, ProofProvider};
use sc_transaction_pool_api::TransactionPool;
use sp_api::ProvideRuntimeApi;
use sp_block_builder::BlockBuilder;
use sp_blockchain::{Error as BlockChainError, HeaderBackend, HeaderMetadata};

/// The storage keys the runtime's `BsmrApi::validator_set` reads: the membership pallet's
/// `Members` and `CurrentEpoch` (`twox128(pallet) ++ twox128(item)` for a plain storage value).
/// A finality proof proves these against the parent's state root.
pub fn validator_set_storage_keys() -> Vec<Vec<u8>> {
    ["Members", "CurrentEpoch"]
        .iter()
        .map(|item| {
            let mut key = sp_io::hashing::twox_128(b"Membership").to_vec();
            key.extend_from_slice(&sp_io::hashing::twox_128(item.as_bytes()));
            key
        })
        .collect()
}

/// What the RPC extensions need.
pub struct FullDeps<C, P> {
    /// The client.
    pub client: Arc<C>,
    /// The transaction pool.
    pub pool: Arc<P>,
    /// The consensus engine's status.
    pub engine_status: sc_consensus_bsmr::SharedStatus,
}

/// Build the RPC extensions.
pub fn create_full<C, P>(
    deps: FullDeps<C, P>,
) -> Result<RpcModule<()>, Box<dyn std::error::Error + Send + Sync>>
where
    C: ProvideRuntimeApi<Block>,
    C: HeaderBackend<Block> + HeaderMetadata<Block, Error = BlockChainError> + 'static,
    C: BlockBackend<Block> + ProofProvider<Block> + BlockchainEvents<Block>,
    C::Api: bsmr_primitives::BsmrApi<Block>,
    C: Send + Sync + 'static,
    C::Api: substrate_frame_rpc_system::AccountNonceApi<Block, AccountId, Nonce>,
    C::Api: pallet_transaction_payment_rpc::TransactionPaymentRuntimeApi<Block, Balance>,
    C::Api: BlockBuilder<Block>,
    P: TransactionPool + 'static,
{
    use pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer};
    use substrate_frame_rpc_system::{System, SystemApiServer};

    let mut module = RpcModule::new(());
    use sc_consensus_bsmr::{BsmrFinality, BsmrFinalityRpcServer, BsmrRpcHandler, BsmrRpcServer};

    let FullDeps {
        client,
        pool,
        engine_status,
    } = deps;
    module.merge(System::new(client.clone(), pool).into_rpc())?;
    module.merge(TransactionPayment::new(client.clone()).into_rpc())?;
    module.merge(BsmrFinality::new(client, validator_set_storage_keys()).into_rpc())?;
    module.merge(BsmrRpcHandler::new(engine_status).into_rpc())?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::validator_set_storage_keys;
    use bsmr_runtime::Runtime;
    use pallet_bsmr_membership::{CurrentEpoch, Members};

    #[test]
    fn proven_keys_are_the_ones_the_runtime_reads() {
        assert_eq!(
            validator_set_storage_keys(),
            vec![
                Members::<Runtime>::hashed_key().to_vec(),
                CurrentEpoch::<Runtime>::hashed_key().to_vec()
            ]
        );
    }
}

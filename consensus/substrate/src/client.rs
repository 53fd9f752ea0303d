//! What the engine needs from the node's client, named once: the runtime API (block building,
//! many transactions per call, transaction validation and the bsmr API), state, aux storage, blocks and import. Every full client has it.

use bsmr_primitives::{BsmrApi, BsmrBlockBuilderApi};
use sc_client_api::{backend::Backend, AuxStore, BlockBackend, StorageProvider};
use sc_consensus::BlockImport;
use sp_api::{CallApiAt, ProvideRuntimeApi};
use sp_block_builder::BlockBuilder as BlockBuilderApi;
use sp_blockchain::HeaderBackend;
use sp_consensus::Error as ConsensusError;
use sp_runtime::traits::Block as BlockT;
use sp_transaction_pool::runtime_api::TaggedTransactionQueue;

/// Everything the engine needs from the client (runtime API with block building and the bsmr
/// API, state, aux storage, blocks, import), written once; every full client implements it.
pub trait EngineClient<B: BlockT, BE: Backend<B>>:
    ProvideRuntimeApi<
        B,
        Api: BlockBuilderApi<B> + BsmrBlockBuilderApi<B> + BsmrApi<B> + TaggedTransactionQueue<B>,
    > + CallApiAt<B>
    + HeaderBackend<B>
    + StorageProvider<B, BE>
    + AuxStore
    + BlockBackend<B>
    + BlockImport<B, Error = ConsensusError>
    + Send
    + Sync
    + 'static
{
}

impl<B, BE, C> EngineClient<B, BE> for C
where
    B: BlockT,
    BE: Backend<B>,
    C: ProvideRuntimeApi<
            B,
            Api: BlockBuilderApi<B>
                     + BsmrBlockBuilderApi<B>
                     + BsmrApi<B>
                     + TaggedTransactionQueue<B>,
        > + CallApiAt<B>
        + HeaderBackend<B>
        + StorageProvider<B, BE>
        + AuxStore
        + BlockBackend<B>
        + BlockImport<B, Error = ConsensusError>
        + Send
        + Sync
        + 'static,
{
}

//! The transaction pool's access to the chain, without a runtime call per transaction of a new
//! block that the pool does not hold.
//!
//! When a block is imported, Substrate's single-state pool prunes what the block included: it
//! takes each included transaction's `provides` tags from its own copy, and validates every
//! transaction it does not hold at the block's parent to learn them
//! (`sc-transaction-pool` 48, `graph/pool.rs`, `Pool::prune`, source `InBlock`). A leaderless
//! validator's pool holds mostly its own clients' transactions (a batch carries the others',
//! which are gossiped only when the gossip hold runs out), so that was one runtime call and one
//! signature check for nearly every transaction of other validators' clients, at every block,
//! on every validator: up to three per finalized transfer across four validators, about what
//! the leader baseline pays to import gossip into every pool. The block was executed, so each
//! of its signed transactions used its nonce, and the tag pruning needs, `(signer, nonce)`, is
//! in the transaction's bytes ([`bsmr_runtime::signing::provided_tags`], tested against the
//! runtime's validation).
//!
//! Every other call goes to the wrapped API unchanged, and so does an `InBlock` validation at
//! a runtime this node was not built with or of anything but a signed transaction.

use crate::service::FullClient;
use async_trait::async_trait;
use bsmr_runtime::opaque::Block;
use codec::Encode;
use sc_transaction_pool::{BasicPool, ChainApi, FullChainApi, ValidateTransactionPriority};
use sc_transaction_pool_api::{
    ChainEvent, ImportNotificationStream, LocalTransactionFor, LocalTransactionPool,
    MaintainedTransactionPool, PoolStatus, ReadyTransactions, TransactionFor, TransactionPool,
    TransactionStatusStreamFor, TxInvalidityReportMap,
};
use sp_blockchain::TreeRoute;
use sp_runtime::{
    generic::BlockId,
    traits::{Block as BlockT, NumberFor},
    transaction_validity::{TransactionSource, TransactionValidity, ValidTransaction},
};
use std::sync::{Arc, Mutex};
use std::{collections::HashMap, pin::Pin};

type Hash = <Block as BlockT>::Hash;

/// A [`ChainApi`] that answers the pool's own validation of a block's transaction (`InBlock`,
/// while pruning) from its bytes, while the runtime is the one this node was built with.
pub struct InBlockTags<A> {
    api: A,
    /// Whether the runtime at a block is this node's own (whose extensions
    /// [`bsmr_runtime::signing::provided_tags`] decodes): after a runtime upgrade the node does
    /// not know yet, every validation goes to the runtime again.
    runtime_is_ours: Box<dyn Fn(Hash) -> bool + Send + Sync>,
    /// The last block asked about and the answer: a prune validates at one block.
    last: Mutex<Option<(Hash, bool)>>,
}

impl<A> InBlockTags<A> {
    /// Wrap `api`; `runtime_is_ours` tells whether the runtime at a block is this node's.
    pub fn new(api: A, runtime_is_ours: impl Fn(Hash) -> bool + Send + Sync + 'static) -> Self {
        InBlockTags {
            api,
            runtime_is_ours: Box::new(runtime_is_ours),
            last: Mutex::new(None),
        }
    }

    /// Whether this validation is the pool pruning a block, at a block of this node's runtime.
    fn prunes_ours(
        &self,
        at: Hash,
        source: TransactionSource,
        priority: ValidateTransactionPriority,
    ) -> bool {
        if source != TransactionSource::InBlock
            || priority != ValidateTransactionPriority::Maintained
        {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some((hash, ours)) if hash == at => ours,
            _ => {
                let ours = (self.runtime_is_ours)(at);
                *last = Some((at, ours));
                ours
            }
        }
    }
}

/// Whether `version` is the runtime this node was built with.
pub fn is_this_runtime(version: &sp_version::RuntimeVersion) -> bool {
    let ours = &bsmr_runtime::VERSION;
    version.spec_name == ours.spec_name
        && version.spec_version == ours.spec_version
        && version.transaction_version == ours.transaction_version
}

/// What an `InBlock` validation of `xt` answers without the runtime, if its bytes tell.
fn in_block_validity(xt: &<Block as BlockT>::Extrinsic) -> Option<ValidTransaction> {
    let provides = bsmr_runtime::signing::provided_tags(&xt.encode())?;
    Some(ValidTransaction {
        provides,
        // Pruning reads only `provides`; the transaction is already in a block.
        propagate: false,
        ..Default::default()
    })
}

#[async_trait]
impl<A: ChainApi<Block = Block>> ChainApi for InBlockTags<A> {
    type Block = Block;
    type Error = A::Error;

    async fn validate_transaction(
        &self,
        at: Hash,
        source: TransactionSource,
        uxt: Arc<<Block as BlockT>::Extrinsic>,
        priority: ValidateTransactionPriority,
    ) -> Result<TransactionValidity, Self::Error> {
        if self.prunes_ours(at, source, priority) {
            if let Some(valid) = in_block_validity(&uxt) {
                return Ok(Ok(valid));
            }
        }
        self.api
            .validate_transaction(at, source, uxt, priority)
            .await
    }

    fn validate_transaction_blocking(
        &self,
        at: Hash,
        source: TransactionSource,
        uxt: Arc<<Block as BlockT>::Extrinsic>,
    ) -> Result<TransactionValidity, Self::Error> {
        self.api.validate_transaction_blocking(at, source, uxt)
    }

    fn block_id_to_number(
        &self,
        at: &BlockId<Block>,
    ) -> Result<Option<NumberFor<Block>>, Self::Error> {
        self.api.block_id_to_number(at)
    }

    fn block_id_to_hash(
        &self,
        at: &BlockId<Block>,
    ) -> Result<Option<<Block as BlockT>::Hash>, Self::Error> {
        self.api.block_id_to_hash(at)
    }

    fn hash_and_length(
        &self,
        uxt: &<Block as BlockT>::Extrinsic,
    ) -> (<Block as BlockT>::Hash, usize) {
        self.api.hash_and_length(uxt)
    }

    async fn block_body(
        &self,
        at: <Block as BlockT>::Hash,
    ) -> Result<Option<Vec<<Block as BlockT>::Extrinsic>>, Self::Error> {
        self.api.block_body(at).await
    }

    fn block_header(
        &self,
        at: <Block as BlockT>::Hash,
    ) -> Result<Option<<Block as BlockT>::Header>, Self::Error> {
        self.api.block_header(at)
    }

    fn tree_route(
        &self,
        from: <Block as BlockT>::Hash,
        to: <Block as BlockT>::Hash,
    ) -> Result<TreeRoute<Block>, Self::Error> {
        self.api.tree_route(from, to)
    }
}

/// The single-state pool over [`InBlockTags`]. Substrate implements `LocalTransactionPool` only
/// for a pool over its own `FullChainApi`, so this wraps the pool and forwards every call. No
/// submission may claim the `InBlock` source the shortcut answers (one that does is validated
/// as `External`): only the pool's own pruning validates as `InBlock`. A local submission (an
/// offchain worker's; this runtime has none) is validated on the pool's validation threads while
/// the caller waits, and is refused if banned.
pub struct LightPool(pub BasicPool<InBlockTags<FullApi>, Block>);

/// Substrate's chain access for the pool, over this node's client.
pub type FullApi = FullChainApi<FullClient, Block>;
type InPool = <BasicPool<InBlockTags<FullApi>, Block> as TransactionPool>::InPoolTransaction;
type PoolError = <FullApi as ChainApi>::Error;

#[async_trait]
impl TransactionPool for LightPool {
    type Block = Block;
    type Hash = Hash;
    type InPoolTransaction = InPool;
    type Error = PoolError;

    async fn submit_at(
        &self,
        at: Hash,
        source: TransactionSource,
        xts: Vec<TransactionFor<Self>>,
    ) -> Result<Vec<Result<Hash, PoolError>>, PoolError> {
        self.0.submit_at(at, submitted(source), xts).await
    }

    async fn submit_one(
        &self,
        at: Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<Hash, PoolError> {
        self.0.submit_one(at, submitted(source), xt).await
    }

    async fn submit_and_watch(
        &self,
        at: Hash,
        source: TransactionSource,
        xt: TransactionFor<Self>,
    ) -> Result<Pin<Box<TransactionStatusStreamFor<Self>>>, PoolError> {
        self.0.submit_and_watch(at, submitted(source), xt).await
    }

    async fn ready_at(&self, at: Hash) -> ReadyIter {
        self.0.ready_at(at).await
    }

    fn ready(&self) -> ReadyIter {
        self.0.ready()
    }

    async fn report_invalid(
        &self,
        at: Option<Hash>,
        invalid_tx_errors: TxInvalidityReportMap<Hash>,
    ) -> Vec<Arc<InPool>> {
        self.0.report_invalid(at, invalid_tx_errors).await
    }

    fn futures(&self) -> Vec<InPool> {
        self.0.futures()
    }

    fn status(&self) -> PoolStatus {
        self.0.status()
    }

    fn import_notification_stream(&self) -> ImportNotificationStream<Hash> {
        self.0.import_notification_stream()
    }

    fn on_broadcasted(&self, propagations: HashMap<Hash, Vec<String>>) {
        self.0.on_broadcasted(propagations)
    }

    fn hash_of(&self, xt: &TransactionFor<Self>) -> Hash {
        self.0.hash_of(xt)
    }

    fn ready_transaction(&self, hash: &Hash) -> Option<Arc<InPool>> {
        self.0.ready_transaction(hash)
    }

    async fn ready_at_with_timeout(&self, at: Hash, timeout: std::time::Duration) -> ReadyIter {
        self.0.ready_at_with_timeout(at, timeout).await
    }
}

/// The source a submission is validated with: never `InBlock`, which [`InBlockTags`] trusts.
fn submitted(source: TransactionSource) -> TransactionSource {
    match source {
        TransactionSource::InBlock => TransactionSource::External,
        other => other,
    }
}

/// What the pool's ready iterators are.
type ReadyIter = Box<dyn ReadyTransactions<Item = Arc<InPool>> + Send>;

#[async_trait]
impl MaintainedTransactionPool for LightPool {
    async fn maintain(&self, event: ChainEvent<Block>) {
        self.0.maintain(event).await
    }
}

impl LocalTransactionPool for LightPool {
    type Block = Block;
    type Hash = Hash;
    type Error = PoolError;

    fn submit_local(&self, at: Hash, xt: LocalTransactionFor<Self>) -> Result<Hash, PoolError> {
        futures::executor::block_on(self.0.submit_one(at, TransactionSource::Local, xt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_runtime::{signing::signed_transfer, MembershipCall, RuntimeCall};
    use codec::Decode;
    use sp_keyring::Sr25519Keyring;

    fn opaque(bytes: &[u8]) -> <Block as BlockT>::Extrinsic {
        Decode::decode(&mut &bytes[..]).expect("an encoded extrinsic")
    }

    #[test]
    fn a_signed_transfer_is_answered_from_its_bytes_and_a_bare_one_is_not() {
        let alice = Sr25519Keyring::Alice;
        let genesis = sp_core::H256::repeat_byte(69);
        let bytes = signed_transfer(
            &alice.pair(),
            Sr25519Keyring::Bob.to_account_id(),
            1,
            7,
            genesis,
        );
        let valid = in_block_validity(&opaque(&bytes)).expect("a signed transfer");
        assert_eq!(valid.provides, vec![(alice.to_account_id(), 7u32).encode()]);
        let report = bsmr_runtime::UncheckedExtrinsic::new_bare(RuntimeCall::Membership(
            MembershipCall::report_misbehaviour {
                proof: vec![1].try_into().unwrap(),
            },
        ))
        .encode();
        assert!(in_block_validity(&opaque(&report)).is_none());
    }

    #[test]
    fn only_the_pools_pruning_at_our_runtime_takes_the_shortcut() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let ours = Hash::repeat_byte(1);
        let tags = InBlockTags::new((), move |at| {
            counted.fetch_add(1, Ordering::Relaxed);
            at == ours
        });
        let (pruning, submitted_now) = (
            ValidateTransactionPriority::Maintained,
            ValidateTransactionPriority::Submitted,
        );
        assert!(tags.prunes_ours(ours, TransactionSource::InBlock, pruning));
        assert!(tags.prunes_ours(ours, TransactionSource::InBlock, pruning));
        assert_eq!(asked.load(Ordering::Relaxed), 1, "asked once per block");
        let upgraded = Hash::repeat_byte(2);
        assert!(!tags.prunes_ours(upgraded, TransactionSource::InBlock, pruning));
        for source in [TransactionSource::External, TransactionSource::Local] {
            assert!(!tags.prunes_ours(ours, source, pruning));
        }
        assert!(!tags.prunes_ours(ours, TransactionSource::InBlock, submitted_now));
        assert_eq!(
            submitted(TransactionSource::InBlock),
            TransactionSource::External
        );
        assert_eq!(
            submitted(TransactionSource::Local),
            TransactionSource::Local
        );
    }

    #[test]
    fn another_runtime_version_is_not_ours() {
        let mut version = bsmr_runtime::VERSION;
        assert!(is_this_runtime(&version));
        version.spec_version += 1;
        assert!(!is_this_runtime(&version));
        let mut version = bsmr_runtime::VERSION;
        version.transaction_version += 1;
        assert!(!is_this_runtime(&version));
    }
}

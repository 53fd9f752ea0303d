//! # sc-consensus-bsmr
//!
//! The bsmr consensus engine for Substrate: the sans-io core of `bsmr-consensus-core` driven by a
//! node. Blocks are ordered and finalized leaderlessly (protocol.md): every validator proposes
//! batches of the transactions in its pool, one single-shot Byzantine consensus per batch fixes
//! its dependencies, checkpoints cut the agreed order into blocks, every validator builds each
//! block itself (deterministically), signs a finality vote over (number, hash, state root), and
//! imports the block as final with q votes as its justification.
//!
//! How the pieces fit:
//! - [`network`]: the `/{genesis}/bsmr/2` notification protocol, peer authentication, rate limits;
//! - [`fetch`]: the `/{genesis}/bsmr/fetch/2` request-response protocol (payloads, finished
//!   blocks, certificates);
//! - [`worker`]: the engine task (core in, network/timers/pool/blocks out);
//! - [`builder`]: deterministic block building from a finished block;
//! - [`client_txs`]: which transactions clients submitted to this node (they propose them);
//! - [`pool_view`]: the pool as RPC and the network see it: client records, admission at the
//!   door, and bounded gossip;
//! - [`justification`]: finality votes and certificates;
//! - [`finality_proof`]: finality proofs and certificate subscriptions for outside verifiers;
//! - [`import`]: the import-queue verifier that checks certificates of synced blocks;
//! - [`aux_store`]: the core's persisted state in the node's database;
//! - [`crypto`]: the keystore as the core's signer, sp-core sr25519 as its verifier;
//! - [`status`], [`metrics`]: RPC and Prometheus.
//!
//! The node wires it with [`import_queue`], [`notification_config`], [`fetch_config`] and
//! [`start`].
#![warn(missing_docs)]

pub mod aux_store;
pub mod builder;
pub mod client;
pub mod client_txs;
pub mod config;
pub mod crypto;
pub mod epoch;
pub mod fetch;
pub mod finality;
pub mod finality_proof;
pub mod import;
pub mod justification;
pub mod metrics;
pub mod network;
pub mod pool_proposer;
pub mod pool_view;
pub mod reports;
pub mod status;
pub mod stuck_futures;
pub mod worker;

use bsmr_consensus_core::AccountId;
use sc_network::{config::SetConfig, NetworkBackend, NotificationMetrics, NotificationService};
use sp_runtime::traits::Block as BlockT;
use std::sync::Arc;

pub use client::EngineClient;
pub use client_txs::ClientSubmissions;
pub use finality_proof::{BsmrFinality, BsmrFinalityRpcServer};
pub use import::{BuiltBlocks, CertificateVerifier};
pub use pool_view::PoolView;
pub use status::{BsmrRpcHandler, BsmrRpcServer, CommandStatus, EngineStatus, SharedStatus};
pub use worker::{start, EngineConfig, EngineParams, Mode};

/// What the engine needs to know about a transaction, decided by the runtime-aware node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxInfo {
    /// The signer's account (partitions proposers).
    pub sender: AccountId,
    /// Sorted accounts the call touches ([`bsmr_consensus_core::GLOBAL`] when not understood).
    pub access: Vec<AccountId>,
}

/// Classifies encoded extrinsics. Must be a pure function of the bytes: the block builder uses
/// it to skip what it rejects, on every node alike.
pub trait TxClassifier: Send + Sync {
    /// `None` for anything that must never be proposed or included (undecodable, unsigned).
    fn classify(&self, encoded: &[u8]) -> Option<TxInfo>;
    /// Whether this is an inherent the block builder adds itself: the only extrinsic a block
    /// may hold besides the transactions its core block offers.
    fn is_inherent(&self, encoded: &[u8]) -> bool;
}

/// The import queue: blocks from the network are imported only with a valid certificate; one
/// this node's engine built (it leaves its changes in `built`, which the engine gets too) is
/// imported without executing it again.
pub fn import_queue<B, C>(
    client: Arc<C>,
    genesis: [u8; 32],
    built: BuiltBlocks<B>,
    spawner: &impl sp_core::traits::SpawnEssentialNamed,
    registry: Option<&substrate_prometheus_endpoint::Registry>,
) -> sc_consensus::DefaultImportQueue<B>
where
    B: BlockT,
    C: sp_api::ProvideRuntimeApi<B> + sp_blockchain::HeaderBackend<B> + Send + Sync + 'static,
    C::Api: bsmr_primitives::BsmrApi<B>,
    for<'r> &'r C: sc_consensus::BlockImport<B, Error = sp_consensus::Error>,
{
    sc_consensus::BasicQueue::new(
        CertificateVerifier::new(client.clone(), genesis, built),
        Box::new(client),
        None,
        spawner,
        registry,
    )
}

/// The notification protocol's configuration (add it to the network configuration before
/// building the network) and the service the engine reads it through.
pub fn notification_config<B: BlockT, N: NetworkBackend<B, <B as BlockT>::Hash>>(
    genesis: &[u8],
    metrics: NotificationMetrics,
    peer_store: Arc<dyn sc_network::peer_store::PeerStoreProvider>,
) -> (N::NotificationProtocolConfig, Box<dyn NotificationService>) {
    N::notification_config(
        network::protocol_name(genesis),
        Vec::new(),
        network::MAX_NOTIFICATION_SIZE,
        None,
        SetConfig {
            in_peers: 64,
            out_peers: 64,
            reserved_nodes: Vec::new(),
            non_reserved_mode: sc_network::config::NonReservedPeerMode::Accept,
        },
        metrics,
        peer_store,
    )
}

/// The fetch protocol's configuration (add it to the network configuration before building the
/// network) and the queue of inbound requests the engine serves.
pub fn fetch_config<B: BlockT, N: NetworkBackend<B, <B as BlockT>::Hash>>(
    genesis: &[u8],
) -> (
    N::RequestResponseProtocolConfig,
    async_channel::Receiver<sc_network::request_responses::IncomingRequest>,
) {
    let (tx, rx) = async_channel::bounded(fetch::INBOUND_QUEUE);
    let config = N::request_response_config(
        fetch::protocol_name(genesis),
        Vec::new(),
        fetch::MAX_REQUEST_SIZE,
        fetch::MAX_RESPONSE_SIZE,
        fetch::REQUEST_TIMEOUT,
        Some(tx),
    );
    (config, rx)
}

/// The log target of the engine.
pub(crate) const LOG: &str = "bsmr";

/// `0x`-prefixed lower-case hex, for logs and errors.
pub(crate) fn hex(d: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

//! What the engine reports: the `bsmr_status` and `bsmr_commandStatus` RPC methods.
//!
//! The engine task writes a [`SharedStatus`] after every step; the RPC reads it. Transaction
//! states are kept for the most recent [`MAX_TRACKED_TXS`] transactions.

use jsonrpsee::{core::RpcResult, proc_macros::rpc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sp_core::H256;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// How many transaction states are remembered.
pub const MAX_TRACKED_TXS: usize = 200_000;

/// The engine's state as `bsmr_status` returns it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EngineStatus {
    /// Epoch of the running validator set.
    pub epoch: u64,
    /// The validators' keys (hex), in rotation order.
    pub validators: Vec<String>,
    /// n.
    pub n: u32,
    /// f.
    pub f: u32,
    /// q.
    pub quorum: u32,
    /// This node's validator key (hex), if it is a member.
    pub local_validator: Option<String>,
    /// Validator peers authenticated on the bsmr protocol.
    pub connected_validators: u32,
    /// Commands (batches) decided by this node's replica.
    pub committed_commands: u64,
    /// Of which decided in view 0 (no recovery needed).
    pub fast_commits: u64,
    /// Batches waiting for a free slot in this proposer's window.
    pub pending_batches: u64,
    /// Bytes of own batches the congestion window lets be in flight; `None` while it is open
    /// (only the seq window limits): it narrows when our batches' round trips show queueing
    /// (docs/consensus.md, "Pacing own batches").
    pub send_window_bytes: Option<u64>,
    /// Our own batches' round trip to a quorum of replies, as a retransmission timeout (ms; 0
    /// before the first).
    pub round_trip_timeout_ms: u64,
    /// Undecided consensus instances this replica tracks.
    pub undecided_instances: u64,
    /// Last block index the core finished.
    pub last_block: u64,
    /// Last finalized block number.
    pub last_finalized: u64,
    /// View-change messages sent by this node.
    pub view_changes: u64,
    /// Misbehaviour proofs this node produced.
    pub misbehaviour_proofs: u64,
    /// Transactions proposed by this node.
    pub proposed_txs: u64,
    /// Fetch requests (payloads, finished blocks, certificates) this node answered.
    pub fetches_served: u64,
    /// Answers to this node's fetch requests that it used.
    pub fetches_answered: u64,
    /// Finality certificates fetched from peers (and checked) for a block this node built but
    /// did not collect a quorum of votes for: the fallback when neither gossip nor block sync
    /// brought the certificate.
    pub certificates_fetched: u64,
    /// Times this validator's consensus state rejoined from the certified chain, having fallen
    /// further behind than peers keep finished blocks (docs/consensus.md, "Rejoining from the
    /// chain").
    pub rejoins: u64,
    /// Consensus signatures (replies, votes, view changes, headers, certificates, hellos) this
    /// node has checked since it started; transaction signatures are the runtime's and not
    /// counted.
    pub signatures_verified: u64,
    /// Consensus signatures this node has made since it started.
    pub signatures_made: u64,
    /// Transactions offered to the runtime while building blocks since the node started
    /// (each offer executes it; an offer refused for a bad nonce is made again later in the
    /// block, and a block that arrived by sync is rebuilt only now and then).
    pub block_txs_offered: u64,
    /// Of those offers, the ones the runtime refused.
    pub block_txs_refused: u64,
    /// Of the refused offers, those refused for a nonce already used (copies of a transaction
    /// already applied).
    pub block_txs_refused_stale: u64,
    /// Of the refused offers, those refused for a nonce ahead of the sender's.
    pub block_txs_refused_future: u64,
    /// Transactions this node put into its batches that clients submitted to it.
    pub txs_proposed_own: u64,
    /// Transactions this node put into its batches that were submitted elsewhere (taken over
    /// after a delay, or carried with a later transaction of their sender).
    pub txs_proposed_others: u64,
    /// Of those, the ones carried in front of a later transaction of their sender that this
    /// node proposed (the rest were taken over after a delay, or proposed by the baseline's
    /// primary).
    pub txs_proposed_carried: u64,
    /// Of all the transactions this node put into its batches, those its core took back out of
    /// its queue before proposing them, because another validator's batch it checked carried
    /// them (they go again only if that batch lands in no block).
    pub txs_covered: u64,
    /// Transactions peers gossiped that this node's pool imported (each one validated).
    pub txs_from_peers: u64,
    /// Transactions of other validators' batches this node's pool imported, so that a later
    /// nonce of their sender waiting here becomes ready (each one validated).
    pub txs_adopted: u64,
    /// Client transactions this node gossiped at once (a leaderless validator: only those no
    /// batch carried by the end of the gossip hold).
    pub client_txs_gossiped: u64,
    /// Blocks that arrived by sync before this node built them (checked against its core's
    /// block without executing them again).
    pub blocks_from_sync: u64,
    /// Blocks this node built that were executed a second time (by sync while this node built
    /// them, or by the engine after sync's import with its changes failed; a lower bound).
    pub blocks_executed_twice: u64,
    /// "leaderless" or "leader".
    pub mode: String,
    /// The validator (hex) that leads, in view 0, the checkpoint of the block after the last
    /// finalized one (in the leader baseline: the primary).
    pub next_checkpoint_leader: Option<String>,
    /// Validators (hex) skipped for checkpoint turns after missing one, as of the last finalized
    /// block (see consensus/core/src/rotation.rs).
    pub skipped_checkpoint_leaders: Vec<String>,
}

/// Where a transaction is, as far as this node knows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum CommandStatus {
    /// This node has not seen it.
    Unknown,
    /// Proposed by this node in a batch (command id).
    Proposed {
        /// The batch's command id (hex).
        batch: String,
    },
    /// Its batch was decided by consensus.
    Committed {
        /// The batch's command id (hex).
        batch: String,
    },
    /// Included in a finalized block.
    Finalized {
        /// Block number.
        block: u64,
        /// Block hash.
        hash: H256,
    },
}

/// Status shared between the engine task and RPC.
#[derive(Clone, Default)]
pub struct SharedStatus {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    status: EngineStatus,
    txs: BTreeMap<H256, CommandStatus>,
    order: VecDeque<H256>,
}

impl SharedStatus {
    /// Replace the engine status.
    pub fn set(&self, s: EngineStatus) {
        self.inner.write().status = s;
    }
    /// Read the engine status.
    pub fn get(&self) -> EngineStatus {
        self.inner.read().status.clone()
    }
    /// Record a transaction's new state.
    pub fn set_tx(&self, tx: H256, st: CommandStatus) {
        let mut g = self.inner.write();
        if g.txs.insert(tx, st).is_none() {
            g.order.push_back(tx);
            while g.order.len() > MAX_TRACKED_TXS {
                if let Some(old) = g.order.pop_front() {
                    g.txs.remove(&old);
                }
            }
        }
    }
    /// A transaction's state.
    pub fn tx(&self, tx: &H256) -> CommandStatus {
        self.inner
            .read()
            .txs
            .get(tx)
            .cloned()
            .unwrap_or(CommandStatus::Unknown)
    }
}

/// The `bsmr_*` RPC methods.
#[rpc(client, server)]
pub trait BsmrRpc {
    /// The engine's state: epoch, validators, f, quorum, committed and pending commands, last
    /// block, view changes.
    #[method(name = "bsmr_status")]
    fn status(&self) -> RpcResult<EngineStatus>;

    /// Where the transaction with this hash is: unknown, proposed, committed or finalized.
    #[method(name = "bsmr_commandStatus")]
    fn command_status(&self, tx_hash: H256) -> RpcResult<CommandStatus>;
}

/// RPC handler over a [`SharedStatus`].
pub struct BsmrRpcHandler {
    status: SharedStatus,
}

impl BsmrRpcHandler {
    /// A handler reading `status`.
    pub fn new(status: SharedStatus) -> Self {
        BsmrRpcHandler { status }
    }
}

impl BsmrRpcServer for BsmrRpcHandler {
    fn status(&self) -> RpcResult<EngineStatus> {
        Ok(self.status.get())
    }

    fn command_status(&self, tx_hash: H256) -> RpcResult<CommandStatus> {
        Ok(self.status.tx(&tx_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_states_are_bounded_and_latest_wins() {
        let s = SharedStatus::default();
        let h = H256::repeat_byte(1);
        assert_eq!(s.tx(&h), CommandStatus::Unknown);
        s.set_tx(
            h,
            CommandStatus::Proposed {
                batch: "0x01".into(),
            },
        );
        s.set_tx(
            h,
            CommandStatus::Finalized {
                block: 3,
                hash: H256::zero(),
            },
        );
        assert_eq!(
            s.tx(&h),
            CommandStatus::Finalized {
                block: 3,
                hash: H256::zero()
            }
        );
        let json = serde_json_like(&s.tx(&h));
        assert!(json.contains("\"status\":\"finalized\""), "{json}");
    }

    fn serde_json_like(c: &CommandStatus) -> String {
        serde_json::to_string(c).unwrap()
    }
}

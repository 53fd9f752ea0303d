//! What a replica is configured with, what it is fed and what it emits: the sans-io surface
//! the engine and the simulator drive (docs/consensus.md, "Code map").

use crate::membership::Membership;
use crate::misbehaviour::Proof;
use crate::rotation::Rotation;
use crate::storage::StorageOp;
use crate::types::*;
use crate::wire::*;
use codec::Encode;

/// Finished blocks kept for laggards by default: 17 minutes of 1 s blocks, at most ~46 MB at
/// 300 tx/s. A replica further behind rejoins from the chain instead (docs/consensus.md,
/// "Rejoining from the chain").
pub const DEFAULT_RETAIN_SYNC_BLOCKS: u64 = 1024;

/// Tunables.
#[derive(Clone, Debug)]
pub struct Config {
    /// The validator set.
    pub membership: Membership,
    /// W: per-proposer window above the decided watermark.
    pub window: u64,
    /// T_rec: base recovery timeout of command instances.
    pub recovery_timeout_ms: u64,
    /// Base view timeout of CONS_ckpt(b), started when K_(b-1) commits. Also how long a member
    /// may stay unheard before it counts as silent: a view-0 timer of an instance it leads then
    /// fires no later than that point (a live member votes on every checkpoint, and the engine
    /// keeps this above the block time).
    pub ckpt_timeout_ms: u64,
    /// Retransmission period (messages lost before GST).
    pub resend_ms: u64,
    /// Allowed clock drift for candidate timestamps.
    pub drift_ms: u64,
    /// Finished blocks and decisions kept for laggards.
    pub retain_blocks: u64,
    /// Max transactions per batch.
    pub max_batch_txs: usize,
    /// Finished blocks kept to serve laggards' sync requests.
    pub retain_sync_blocks: u64,
    /// Queueing delay (ms) of our batches' replies above which our own batches are paced
    /// (`discovery/pacing.rs`); 0: never paced, the seq window alone limits.
    pub pacing_target_ms: u64,
}

impl Config {
    /// Defaults suited to WAN latencies.
    pub fn new(membership: Membership) -> Self {
        Config {
            membership,
            window: crate::validity::DEFAULT_WINDOW,
            recovery_timeout_ms: 3_000,
            ckpt_timeout_ms: 4_000,
            resend_ms: 1_500,
            drift_ms: 2_000,
            retain_blocks: 32,
            max_batch_txs: 4096,
            retain_sync_blocks: DEFAULT_RETAIN_SYNC_BLOCKS,
            pacing_target_ms: crate::discovery::pacing::DEFAULT_TARGET_MS,
        }
    }

    /// Make the checkpoint view timeout outlast one block time by at least `margin_ms`. A
    /// checkpoint leader announces its cut when its own block-time tick comes, up to a block time
    /// after the previous checkpoint was decided; a shorter timer changes views on correct
    /// leaders and charges them a missed turn.
    ///
    /// ```
    /// # use bsmr_consensus_core::*;
    /// let mut cfg = Config::new(Membership::new([0; 32], 0, vec![[1; 32]]));
    /// cfg.fit_block_time(6_000, 2_000);
    /// assert_eq!(cfg.ckpt_timeout_ms, 8_000);
    /// cfg.fit_block_time(500, 250); // never lowered
    /// assert_eq!(cfg.ckpt_timeout_ms, 8_000);
    /// ```
    pub fn fit_block_time(&mut self, block_ms: u64, margin_ms: u64) {
        self.ckpt_timeout_ms = self.ckpt_timeout_ms.max(block_ms.saturating_add(margin_ms));
    }
}

/// Timer identities.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, codec::Decode)]
pub enum TimerId {
    /// View timer of an instance.
    View(InstanceId, View),
    /// A recovery leader's deadline to gather q replies before proposing Noop.
    Deadline(InstanceId, View),
    /// Periodic retransmission.
    Resend,
}

/// Inputs.
// Inputs live for one `handle` call; boxing the large message variant would add an allocation
// per message for no memory saved.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Input {
    /// A decoded message from an authenticated peer.
    Message {
        /// Sender.
        from: ValidatorId,
        /// Message.
        msg: Message,
    },
    /// Raw bytes from an authenticated peer (decoded with bounds).
    Bytes {
        /// Sender.
        from: ValidatorId,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Transactions to propose as one batch.
    ClientBatch(Vec<Tx>),
    /// A timer set earlier fired.
    Timer(TimerId),
    /// Time to cut a block (the view-0 checkpoint leader announces a candidate).
    CheckpointDue,
    /// Just advance time.
    Tick,
    /// A finalized block of the certified chain (fed by the engine when the chain is ahead of
    /// this replica): lets a replica too far behind for `SyncBlock`s rejoin from the chain.
    ChainBlock(ChainPosition),
}

/// Where a finalized block of the certified chain leaves consensus: what its header commits to
/// and the timestamp in its state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChainPosition {
    /// Block index b.
    pub index: BlockIndex,
    /// K_b's id.
    pub checkpoint: CommandId,
    /// The block's timestamp.
    pub timestamp_ms: u64,
    /// The checkpoint-leader rotation in force for block b + 1.
    pub next_rotation: Rotation,
    /// K_b's agreed floors.
    pub floors: Floors,
}

/// Outputs.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send to one validator, or to all others when `to` is None.
    Send {
        /// Recipient.
        to: Option<ValidatorId>,
        /// Message.
        msg: Message,
    },
    /// Fire `Input::Timer(id)` after this many ms.
    SetTimer {
        /// Timer.
        id: TimerId,
        /// Delay.
        after_ms: u64,
    },
    /// Apply before any later Send.
    Persist(Vec<StorageOp>),
    /// An instance decided.
    Committed {
        /// Instance.
        inst: InstanceId,
        /// Value.
        value: Value,
        /// View of the commit certificate.
        view: View,
    },
    /// We proposed a batch of our own (or announce it again after a restart): its id and
    /// transactions, so that the caller tracks them without reading our messages.
    Proposed {
        /// The batch id.
        id: CommandId,
        /// Its transactions.
        txs: Txs,
    },
    /// Another validator's batch `by`, not decided yet, was checked here and replied to (once
    /// per batch): the engine may hold back its own copies of the batch's transactions. `taken`
    /// are those of our waiting transactions, not proposed yet, that it carries: taken out of
    /// our queue, they come back as a later `Proposed` batch of ours if `by` lands in no block
    /// (`LandsNowhere`, or not landed within
    /// [`crate::discovery::covered::COVER_HOLD_MS`]).
    Checked {
        /// The other validator's batch.
        by: CommandId,
        /// Our copies it carries, taken out of our queue (often none).
        taken: Vec<Tx>,
    },
    /// Another validator's batch this replica reported `Checked` will land in no block:
    /// decided Noop, decided with a fence behind the built blocks, or void below the agreed
    /// floors. Whatever the engine held back behind it (its own copies of the batch's
    /// transactions) may go at once. Never sent for an id named under another proposer or seq
    /// than its header's (that says nothing of the real batch), after the batch landed, for a
    /// fence behind the blocks built when it was checked, or for one checked more than
    /// `COVER_HOLD_MS` ago.
    LandsNowhere {
        /// The command.
        id: CommandId,
    },
    /// A block is ready to be built.
    BlockReady(FinishedBlock),
    /// A misbehaviour proof.
    Misbehaviour(Proof),
    /// The replica jumped from block `from` to block `to` of the certified chain (blocks in
    /// between are not handed out: the engine has them from the chain).
    Rejoined {
        /// Last block built before.
        from: BlockIndex,
        /// The chain block it continues after.
        to: BlockIndex,
    },
}

/// Replica statistics for memory-bound checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// DDS log entries.
    pub log: usize,
    /// Live instances.
    pub instances: usize,
    /// Held payloads.
    pub payloads: usize,
    /// Committed commands waiting for their block.
    pub committed: usize,
    /// Retained old decisions.
    pub old_decisions: usize,
    /// Exact decided marks.
    pub marks: usize,
    /// Last built block.
    pub built: BlockIndex,
    /// Last committed checkpoint.
    pub last_ckpt: BlockIndex,
}

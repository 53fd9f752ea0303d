//! The engine task: drives the core replica with network messages, timers, the transaction pool
//! and the clock, and turns its outputs into messages, persisted state and finalized blocks.
//!
//! One task owns everything (no locks around the core). Each wake-up:
//! 1. fire due core timers, propose pool transactions every batch interval, tell the core a
//!    checkpoint is due every block time;
//! 2. apply the core's outputs in order: `Persist` is written to aux storage before any later
//!    `Send` leaves (persist before send); finished blocks are saved as pending, then built;
//! 3. build the next block on the finalized head, sign a finality vote, and import the block as
//!    final once q matching votes form its certificate. A quorum for a different hash or state
//!    root than the one built here halts the node: that is a determinism bug, never a fork.
//!
//! Blocks that arrive by sync (a lagging or restarted node) are verified by the import queue;
//! when the core later hands out the same index, the engine rebuilds it and checks it matches.
//!
//! This file is the loop (wake up, feed the core, apply its outputs, arm its timers); the
//! engine's other jobs have files of their own: `communication` (peers, notifications, the
//! fetch client and server), `proposals` (pool to core), `blocks` (finished blocks to final
//! ones: build, vote, import), `epochs` (set changes, chain head), `misbehaviour` (reports),
//! `status` (what RPC and metrics show) and `setup`.

use crate::aux_store::AuxStorage;
use crate::builder::{build_block, Built};
use crate::crypto::{KeySource, KeystoreSigner, Sr25519Verifier};
use crate::epoch::{
    adversary_for, incompatible_state, make_replica, membership_of, validator_set_at,
};
use crate::fetch::{self, FetchRequest, FetchResponse};
use crate::finality::{FinalityTally, Verdict, VoteOutcome};
use crate::hex;
use crate::justification::{FinalityCertificate, FinalityVote};
use crate::metrics::Metrics;
use crate::network::{check_hello, cost, hello, Frame, RateLimit};
use crate::pool_proposer::{Announcement, PoolProposer, ProposerConfig, Turn};
use crate::reports::Reports;
use crate::status::{CommandStatus, EngineStatus, SharedStatus};
use crate::TxClassifier;
use bsmr_consensus_core::epoch as consensus_epoch;
use bsmr_consensus_core::{
    decode_message, encode_message, AccountId, BatchKind, CommandId, Digest, FinishedBlock,
    InstanceId, Membership, Message, Output, Proof, Replica, Rotation, Signed, Signer, TimerId,
    ValidatorId, Value,
};
use bsmr_primitives::{BsmrApi, BSMR_ENGINE_ID};
use bsmr_sim::adversary::Adversary;
use codec::Encode;
use futures::{
    channel::oneshot, future::BoxFuture, stream::FuturesUnordered, FutureExt, StreamExt,
};
use rand_chacha::ChaCha8Rng;
use sc_client_api::backend::Backend;
use sc_consensus::{
    BlockImportParams, ForkChoiceStrategy, ImportResult, StateAction, StorageChanges,
};
use sc_network::{
    request_responses::{IncomingRequest, OutgoingResponse},
    service::traits::NetworkService,
    service::traits::{NotificationEvent, ValidationResult},
    IfDisconnected, NotificationService, PeerId, ProtocolName, ReputationChange,
};
use sc_transaction_pool_api::{InPoolTransaction, TransactionPool, TransactionSource};

use crate::client_txs::ClientSubmissions;
use sp_consensus::BlockOrigin;
use sp_core::H256;
use sp_keystore::KeystorePtr;
use sp_runtime::{
    traits::{Block as BlockT, Header as HeaderT},
    Justifications,
};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

pub use crate::client::EngineClient;
pub use crate::config::{EngineConfig, Mode};
use crate::LOG;

mod blocks;
mod communication;
mod epochs;
mod misbehaviour;
mod proposals;
mod setup;
mod status;

use blocks::Finalizing;
use communication::{FetchAnswer, Links, CERTIFICATE_FETCH_AFTER_MS};

/// Everything the engine needs from the node.
pub struct EngineParams<B: BlockT, C, P> {
    /// The client.
    pub client: Arc<C>,
    /// The transaction pool.
    pub pool: Arc<P>,
    /// Transactions clients submitted to this node (RPC sees the pool through a
    /// [`crate::pool_view::PoolView`] that records them).
    pub client_submissions: ClientSubmissions<H256>,
    /// The keystore (the validator key is looked up in it).
    pub keystore: KeystorePtr,
    /// The same keystore as a local one, if it is: the validator key pair is then loaded once
    /// rather than on every signature (see [`KeystoreSigner`]).
    pub local_keystore: Option<Arc<sc_keystore::LocalKeystore>>,
    /// Whether the node runs as a validator (`--validator`); otherwise it only follows.
    pub validator: bool,
    /// The network service.
    pub network: Arc<dyn NetworkService>,
    /// The bsmr notification protocol's service.
    pub notifications: Box<dyn NotificationService>,
    /// Inbound requests of the fetch protocol (see [`crate::fetch_config`]).
    pub fetch_requests: async_channel::Receiver<IncomingRequest>,
    /// Runtime-aware transaction classification.
    pub classifier: Arc<dyn TxClassifier>,
    /// Where the engine leaves the changes of the block it awaits votes for, shared with the
    /// import queue ([`crate::import_queue`]).
    pub built: crate::BuiltBlocks<B>,
    /// Status shared with RPC.
    pub status: SharedStatus,
    /// Prometheus registry.
    pub registry: Option<substrate_prometheus_endpoint::Registry>,
    /// Tunables.
    pub config: EngineConfig,
    /// Block type.
    pub _block: PhantomData<B>,
}

/// The pool's hash of a transaction a batch carries (blake2-256 of its encoding).
fn pool_hash(t: &bsmr_consensus_core::Tx) -> H256 {
    H256(sp_crypto_hashing::blake2_256(&t.data))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What woke the engine.
enum Wake {
    Network(Option<NotificationEvent>),
    Request(Option<IncomingRequest>),
    Answer(FetchAnswer),
    Idle,
}

/// Start the engine; the returned future runs until the node stops (or the engine halts on a
/// safety error, which stops the node).
pub fn start<B, BE, C, P>(
    params: EngineParams<B, C, P>,
) -> Result<impl std::future::Future<Output = ()>, String>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    if params.config.equivocate_finality_votes {
        log::error!(
            target: LOG,
            "🎭 TESTING ONLY: --unsafe-equivocate-finality-votes is set. This validator signs \
             conflicting finality votes, and its peers will report it on chain"
        );
    }
    if let Some(b) = params.config.byzantine {
        log::error!(
            target: LOG,
            "🎭 TESTING ONLY: --unsafe-byzantine {} is set. This validator rewrites the consensus \
             messages it sends (re-signed with its key); its peers will treat it as Byzantine",
            b.name()
        );
    }
    let engine = Engine::<B, BE, C, P>::new(params)?;
    Ok(engine.run())
}

struct Engine<B: BlockT, BE, C, P> {
    client: Arc<C>,
    pool: Arc<P>,
    client_submissions: ClientSubmissions<H256>,
    /// The network: peers, notifications, fetch requests both ways.
    link: Links,
    classifier: Arc<dyn TxClassifier>,
    built: crate::BuiltBlocks<B>,
    status: SharedStatus,
    metrics: Option<Metrics>,
    cfg: EngineConfig,
    genesis: Digest,
    membership: Membership,
    keys: KeySource,
    validator: bool,
    signer: Option<Arc<KeystoreSigner>>,
    replica: Option<Replica>,
    /// TESTING ONLY (`--unsafe-byzantine`): rewrites what the replica sends.
    adversary: Option<(Adversary, ChaCha8Rng)>,
    /// A validator-set change seen on chain: (first index s of the new epoch, its set).
    handover: Option<(u64, bsmr_primitives::ValidatorSet)>,
    /// Blocks up to this number were checked for an epoch change.
    epoch_checked: u64,
    /// Leader baseline: who proposes transactions.
    primary: ValidatorId,
    storage: AuxStorage<C>,
    timers: BTreeMap<(u64, u64), TimerId>,
    timer_seq: u64,
    /// Finished blocks to build, the one built and waiting for its certificate, the votes.
    fin: Finalizing<B>,
    /// Which pool transactions go into our batches, and when.
    proposer: PoolProposer,
    /// Future transactions the pool will never promote.
    stuck_futures: crate::stuck_futures::StuckFutures,
    /// Submissions of other members' batches to our pool in flight.
    adoptions: Arc<std::sync::atomic::AtomicUsize>,
    /// The senders of the pool's future transactions, when they were read and the future
    /// queue's size then (adoption takes only their transactions).
    waiting_senders: (u64, usize, std::collections::BTreeSet<AccountId>),
    /// The rotation read from the last finalized header (status only).
    rotation_cache: Option<(H256, Option<(u64, Rotation)>)>,
    next_batch_ms: u64,
    next_ckpt_ms: u64,
    /// No warning about being beyond the peers' finished blocks before this.
    next_lag_warning_ms: u64,
    /// When to hand the core the finalized head next (if the chain is ahead of it).
    next_chain_feed_ms: u64,
    /// Misbehaviour proofs to report on chain, one per accused validator and epoch.
    reports: Reports,
    next_status_ms: u64,
    /// The loop's clock (ms since the Unix epoch), read once per wake-up: every handler of that
    /// wake-up sees the same time.
    now: u64,
    counters: EngineStatus,
    _backend: PhantomData<BE>,
}

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    async fn run(mut self) {
        if let Err(e) = self.run_inner().await {
            log::error!(target: LOG, "💥 bsmr engine halted: {e}");
        }
    }

    async fn run_inner(&mut self) -> Result<(), String> {
        for fb in self.storage.pending_blocks().map_err(|e| e.to_string())? {
            self.fin.build_queue.insert(fb.index, fb);
        }
        self.now = now_ms();
        if let Some(r) = self.replica.as_mut() {
            let outs = r.start(self.now);
            self.process(outs)?;
        }
        loop {
            self.now = now_ms();
            let now = self.now;
            self.fire_timers()?;
            if now >= self.next_batch_ms {
                self.next_batch_ms = now + self.cfg.batch_interval_ms;
                self.propose_from_pool()?;
            }
            if now >= self.next_ckpt_ms {
                self.next_ckpt_ms = now + self.cfg.block_time_ms;
                self.feed(bsmr_consensus_core::Input::CheckpointDue)?;
            }
            self.advance_blocks().await?;
            self.submit_reports().await;
            self.chase_certificate();
            if now >= self.next_status_ms {
                self.next_status_ms = now + 200;
                self.publish_status();
            }
            if now >= self.next_chain_feed_ms {
                self.feed_chain_head()?;
            }
            let wake = self.next_wake().saturating_sub(now).clamp(1, 100);
            let event = {
                let next = self.link.notifications.next_event().fuse();
                let request = self.link.fetch_in.recv().fuse();
                let mut answer = self.link.fetch_out.select_next_some();
                let delay = futures_timer::Delay::new(Duration::from_millis(wake)).fuse();
                futures::pin_mut!(next, request, delay);
                futures::select! {
                    ev = next => Wake::Network(ev),
                    r = request => Wake::Request(r.ok()),
                    a = answer => Wake::Answer(a),
                    _ = delay => Wake::Idle,
                }
            };
            self.now = now_ms();
            match event {
                Wake::Network(Some(ev)) => self.on_network_event(ev).await?,
                Wake::Network(None) => return Err("the bsmr notification protocol closed".into()),
                Wake::Request(Some(r)) => self.on_fetch_request(r)?,
                Wake::Request(None) => return Err("the bsmr fetch protocol closed".into()),
                Wake::Answer(a) => self.on_fetch_answer(a).await?,
                Wake::Idle => {}
            }
        }
    }

    fn next_wake(&self) -> u64 {
        let now = self.now;
        let timer = self
            .timers
            .keys()
            .next()
            .map(|(t, _)| *t)
            .unwrap_or(u64::MAX);
        timer
            .min(self.next_batch_ms)
            .min(self.next_ckpt_ms)
            .min(now + 100)
    }

    // ------------------------------------------------------------------ core I/O

    fn feed(&mut self, input: bsmr_consensus_core::Input) -> Result<(), String> {
        let Some(r) = self.replica.as_mut() else {
            return Ok(());
        };
        let outs = r.handle(self.now, input);
        self.process(outs)
    }

    /// Hand a member's message to the core, noting the transactions of announced batches;
    /// `live`: over the member's link as sent, not answering our fetch.
    fn feed_peer_message(
        &mut self,
        from: ValidatorId,
        msg: Message,
        live: bool,
    ) -> Result<(), String> {
        if let Message::Announce(b) = &msg {
            // A relay of our own batch is not another validator's announcement.
            let ours = [Some(from), Some(b.header.body.proposer)].contains(&self.me());
            if b.header.body.kind == BatchKind::Txs && !ours {
                let hashes: Vec<H256> = b.txs.iter().map(pool_hash).collect();
                let submissions = &self.client_submissions;
                let announcement = Announcement {
                    from,
                    proposer: b.header.body.proposer,
                    live,
                    txs: &hashes,
                };
                self.proposer.member_announced(
                    announcement,
                    (&self.membership, self.primary),
                    &|h| submissions.contains(h),
                    self.now,
                );
                self.adopt_announced(from, b, &hashes);
                self.proposer.feeding(b.id(), hashes);
            }
        }
        if let Some((adversary, rng)) = self.adversary.as_mut() {
            adversary.observe(&msg, rng);
        }
        let fed = self.feed(bsmr_consensus_core::Input::Message { from, msg });
        self.proposer.fed();
        fed
    }

    fn fire_timers(&mut self) -> Result<(), String> {
        let now = self.now;
        while let Some((&(at, seq), _)) = self.timers.first_key_value() {
            if at > now {
                break;
            }
            let id = self.timers.remove(&(at, seq)).expect("just seen; qed");
            self.feed(bsmr_consensus_core::Input::Timer(id))?;
        }
        Ok(())
    }

    fn process(&mut self, outs: Vec<Output>) -> Result<(), String> {
        // With an adversary, sends are collected and rewritten after the step's writes.
        let mut sends: Vec<(ValidatorId, Message)> = vec![];
        for o in outs {
            let o = match o {
                Output::Send { to, msg } if self.adversary.is_some() => {
                    let me = self.me();
                    match to {
                        Some(t) => sends.push((t, msg)),
                        None => sends.extend(
                            self.membership
                                .validators()
                                .iter()
                                .filter(|v| Some(**v) != me)
                                .map(|v| (*v, msg.clone())),
                        ),
                    }
                    continue;
                }
                o => o,
            };
            match o {
                Output::Persist(ops) => {
                    self.storage
                        .apply(&ops)
                        .map_err(|e| format!("persisting consensus state: {e}"))?;
                }
                Output::Send { to, msg } => self.send_core(to, &msg),
                Output::SetTimer { id, after_ms } => {
                    self.timer_seq += 1;
                    self.timers
                        .insert((self.now + after_ms, self.timer_seq), id);
                }
                Output::Committed { inst, value, view } => self.on_committed(inst, &value, view),
                Output::BlockReady(fb) => self.on_block_ready(fb)?,
                Output::Proposed { id, txs } => self.on_proposed(id, &txs),
                Output::Checked { by, taken } => self.on_checked(by, &taken),
                Output::LandsNowhere { id } => self.on_lands_nowhere(id),
                Output::Misbehaviour(proof) => self.on_misbehaviour(proof),
                Output::Rejoined { from, to } => self.on_rejoined(from, to),
            }
        }
        if let Some((adversary, rng)) = self.adversary.as_mut() {
            for (to, msg) in adversary.rewrite(sends, rng) {
                self.send_core(Some(to), &msg);
            }
        }
        Ok(())
    }

    fn me(&self) -> Option<ValidatorId> {
        self.signer.as_ref().map(|s| s.public())
    }
}

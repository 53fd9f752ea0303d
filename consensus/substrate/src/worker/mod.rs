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

use crate::aux_store::AuxStorage;
use crate::builder::{build_block, Built};
use crate::crypto::{KeySource, KeystoreSigner, Sr25519Verifier};
use crate::epoch::{adversary_for, incompatible_state, make_replica, membership_of};
use crate::fetch::{self, FetchRequest, FetchResponse};
use crate::finality::{FinalityTally, Verdict, VoteOutcome};
use crate::hex;
use crate::justification::{FinalityCertificate, FinalityVote};
use crate::metrics::Metrics;
use crate::network::{check_hello, cost, hello, Frame, RateLimit};
use crate::pool_proposer::{PoolProposer, ProposerConfig, Turn};
use crate::reports::Reports;
use crate::status::{CommandStatus, EngineStatus, SharedStatus};
use crate::TxClassifier;
use bsmr_consensus_core::epoch as consensus_epoch;
use bsmr_consensus_core::{
    decode_message, encode_message, BatchKind, CommandId, Digest, FinishedBlock, InstanceId,
    Membership, Message, Output, Proof, Replica, Rotation, Signed, Signer, TimerId, ValidatorId,
    Value,
};
use bsmr_primitives::{BsmrApi, BSMR_ENGINE_ID};
use bsmr_sim::adversary::Adversary;
use codec::Encode;
use futures::{
    channel::oneshot, future::BoxFuture, stream::FuturesUnordered, FutureExt, StreamExt,
};
use rand_chacha::ChaCha8Rng;
use sc_client_api::{backend::Backend, AuxStore, BlockBackend, StorageProvider};
use sc_consensus::{
    BlockImport, BlockImportParams, ForkChoiceStrategy, ImportResult, StateAction, StorageChanges,
};
use sc_network::{
    request_responses::{IncomingRequest, OutgoingResponse},
    service::traits::NetworkService,
    service::traits::{NotificationEvent, ValidationResult},
    IfDisconnected, NotificationService, PeerId, ProtocolName, ReputationChange,
};
use sc_transaction_pool_api::{InPoolTransaction, TransactionPool, TransactionSource};

use crate::client_txs::ClientSubmissions;
use sp_api::{CallApiAt, ProvideRuntimeApi};
use sp_block_builder::BlockBuilder as BlockBuilderApi;
use sp_blockchain::HeaderBackend;
use sp_consensus::{BlockOrigin, Error as ConsensusError};
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

pub use crate::config::{EngineConfig, Mode};
use crate::LOG;

/// Everything the engine needs from the node.
pub struct EngineParams<B: BlockT, C, P> {
    /// The client.
    pub client: Arc<C>,
    /// The transaction pool.
    pub pool: Arc<P>,
    /// Transactions clients submitted to this node (RPC sees the pool through a
    /// [`crate::client_txs::ClientTrackingPool`] that records them).
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
    /// Status shared with RPC.
    pub status: SharedStatus,
    /// Prometheus registry.
    pub registry: Option<substrate_prometheus_endpoint::Registry>,
    /// Tunables.
    pub config: EngineConfig,
    /// Block type.
    pub _block: PhantomData<B>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A block built here, waiting for q finality votes.
struct Awaiting<B: BlockT> {
    number: u64,
    block: B,
    changes: Option<sp_api::StorageChanges<B>>,
    vote: Signed<FinalityVote>,
    included: Vec<H256>,
    skipped: Vec<H256>,
    /// When this node had built and voted for the block (for the finality-latency metric).
    voted_at: std::time::Instant,
}

/// What one of this node's fetch requests asked for.
enum Asked {
    /// Core messages from this validator.
    Core(ValidatorId),
    /// The certificate of this block number.
    Certificate(u64),
}

/// The outcome of one of this node's fetch requests.
struct FetchAnswer {
    peer: PeerId,
    asked: Asked,
    result: Result<Vec<u8>, String>,
}

/// Fetch requests in flight at most; the core asks again on its resend timers.
const MAX_FETCHES_IN_FLIGHT: usize = 256;
/// A built block still waiting for votes this long asks peers for its certificate. It asks at
/// once when the network is visibly past it (see `network_is_past`).
const CERTIFICATE_FETCH_AFTER_MS: u64 = 4_000;

/// What woke the engine.
enum Wake {
    Network(Option<NotificationEvent>),
    Request(Option<IncomingRequest>),
    Answer(FetchAnswer),
    Idle,
}

/// Everything the engine needs from the client (runtime API with block building and the bsmr
/// API, state, aux storage, blocks, import), written once; every full client implements it.
pub trait EngineClient<B: BlockT, BE: Backend<B>>:
    ProvideRuntimeApi<B, Api: BlockBuilderApi<B> + BsmrApi<B>>
    + CallApiAt<B>
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
    C: ProvideRuntimeApi<B, Api: BlockBuilderApi<B> + BsmrApi<B>>
        + CallApiAt<B>
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
    network: Arc<dyn NetworkService>,
    notifications: Box<dyn NotificationService>,
    fetch_protocol: ProtocolName,
    fetch_in: async_channel::Receiver<IncomingRequest>,
    fetch_out: FuturesUnordered<BoxFuture<'static, FetchAnswer>>,
    classifier: Arc<dyn TxClassifier>,
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
    peers: BTreeMap<PeerId, Option<ValidatorId>>,
    rate: RateLimit,
    timers: BTreeMap<(u64, u64), TimerId>,
    timer_seq: u64,
    build_queue: BTreeMap<u64, FinishedBlock>,
    awaiting: Option<Awaiting<B>>,
    /// Finality votes received, and how far ahead each validator voted.
    tally: FinalityTally,
    /// Which pool transactions go into our batches, and when.
    proposer: PoolProposer,
    /// The rotation read from the last finalized header (status only).
    rotation_cache: Option<(H256, Option<(u64, Rotation)>)>,
    next_batch_ms: u64,
    next_ckpt_ms: u64,
    next_vote_resend_ms: u64,
    /// When the block in `awaiting` was built.
    awaiting_since_ms: u64,
    /// The height whose certificate was last requested because the network is past it.
    early_certificate_request: u64,
    /// No warning about being beyond the peers' finished blocks before this.
    next_lag_warning_ms: u64,
    /// When to hand the core the finalized head next (if the chain is ahead of it).
    next_chain_feed_ms: u64,
    /// Misbehaviour proofs to report on chain, one per accused validator and epoch.
    reports: Reports,
    next_status_ms: u64,
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
    fn new(p: EngineParams<B, C, P>) -> Result<Self, String> {
        let info = p.client.info();
        let genesis: Digest = info.genesis_hash.0;
        // The set that certifies the next block: read from the state after (finalized + 1) - 2.
        let next = info.finalized_number.try_into().unwrap_or(0u64) + 1;
        let source_number: u64 = consensus_epoch::set_source_block(next);
        let source = p
            .client
            .hash(
                source_number
                    .try_into()
                    .map_err(|_| "block number overflow".to_string())?,
            )
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("block #{source_number} is missing"))?;
        let set = p
            .client
            .runtime_api()
            .validator_set(source)
            .map_err(|e| format!("reading the validator set: {e}"))?;
        if set.is_empty() {
            return Err("the runtime's validator set is empty".into());
        }
        let membership = membership_of(genesis, &set, p.config.mode);
        let mut storage =
            AuxStorage::open(p.client.clone(), set.epoch).map_err(incompatible_state)?;
        let metrics = match &p.registry {
            Some(r) => Some(Metrics::register(r).map_err(|e| format!("registering metrics: {e}"))?),
            None => None,
        };
        let keys = KeySource {
            keystore: p.keystore.clone(),
            local: p.local_keystore.clone(),
        };
        let (signer, replica) = make_replica(
            &*p.client,
            &keys,
            p.validator,
            &membership,
            &set,
            &mut storage,
            &p.config,
        )?;
        let primary = membership.validators()[0];
        let now = now_ms();
        let adversary = adversary_for(&p.config, signer.as_ref(), &membership);
        Ok(Engine {
            client: p.client,
            pool: p.pool,
            client_submissions: p.client_submissions,
            network: p.network,
            notifications: p.notifications,
            fetch_protocol: fetch::protocol_name(&genesis),
            fetch_in: p.fetch_requests,
            fetch_out: FuturesUnordered::new(),
            classifier: p.classifier,
            status: p.status,
            metrics,
            genesis,
            membership,
            keys,
            validator: p.validator,
            signer,
            adversary,
            replica,
            handover: None,
            epoch_checked: source_number,
            primary,
            storage,
            peers: BTreeMap::new(),
            rate: RateLimit::new(5_000.0, 20_000.0),
            timers: BTreeMap::new(),
            timer_seq: 0,
            build_queue: BTreeMap::new(),
            awaiting: None,
            tally: FinalityTally::default(),
            proposer: PoolProposer::new(ProposerConfig {
                mode: p.config.mode,
                owner_delay_ms: p.config.owner_delay_ms,
                anyone_delay_ms: p.config.anyone_delay_ms,
                max_batch_txs: p.config.max_batch_txs,
                max_inflight_batches: p.config.max_inflight_batches,
            }),
            rotation_cache: None,
            next_batch_ms: now + p.config.batch_interval_ms,
            next_ckpt_ms: now + p.config.block_time_ms,
            next_vote_resend_ms: now,
            awaiting_since_ms: now,
            early_certificate_request: 0,
            next_lag_warning_ms: 0,
            next_chain_feed_ms: 0,
            reports: Reports::default(),
            next_status_ms: now,
            counters: EngineStatus {
                mode: p.config.mode.name().into(),
                ..Default::default()
            },
            cfg: p.config,
            _backend: PhantomData,
        })
    }

    async fn run(mut self) {
        if let Err(e) = self.run_inner().await {
            log::error!(target: LOG, "💥 bsmr engine halted: {e}");
        }
    }

    async fn run_inner(&mut self) -> Result<(), String> {
        for fb in self.storage.pending_blocks().map_err(|e| e.to_string())? {
            self.build_queue.insert(fb.index, fb);
        }
        if let Some(r) = self.replica.as_mut() {
            let outs = r.start(now_ms());
            self.process(outs)?;
        }
        loop {
            let now = now_ms();
            self.fire_timers(now)?;
            if now >= self.next_batch_ms {
                self.next_batch_ms = now + self.cfg.batch_interval_ms;
                self.propose_from_pool(now)?;
            }
            if now >= self.next_ckpt_ms {
                self.next_ckpt_ms = now + self.cfg.block_time_ms;
                self.feed(bsmr_consensus_core::Input::CheckpointDue)?;
            }
            self.advance_blocks().await?;
            self.submit_reports().await;
            if let Some(number) = self.awaiting.as_ref().map(|a| a.number) {
                if self.early_certificate_request < number && self.network_is_past(number) {
                    // A validator catching up builds blocks whose votes went out long ago:
                    // waiting for them would cost the fetch delay per block.
                    self.early_certificate_request = number;
                    self.request_certificate(number);
                }
            }
            if self.awaiting.is_some() && now >= self.next_vote_resend_ms {
                self.next_vote_resend_ms = now + 2_000;
                if let Some(a) = &self.awaiting {
                    let frame = Frame::Finality(a.vote.clone());
                    let number = a.number;
                    self.broadcast(&frame);
                    if now >= self.awaiting_since_ms + CERTIFICATE_FETCH_AFTER_MS {
                        self.request_certificate(number);
                    }
                }
            }
            if now >= self.next_status_ms {
                self.next_status_ms = now + 200;
                self.publish_status();
            }
            if now >= self.next_chain_feed_ms {
                self.feed_chain_head(now)?;
            }
            let wake = self.next_wake(now).saturating_sub(now).clamp(1, 100);
            let event = {
                let next = self.notifications.next_event().fuse();
                let request = self.fetch_in.recv().fuse();
                let mut answer = self.fetch_out.select_next_some();
                let delay = futures_timer::Delay::new(Duration::from_millis(wake)).fuse();
                futures::pin_mut!(next, request, delay);
                futures::select! {
                    ev = next => Wake::Network(ev),
                    r = request => Wake::Request(r.ok()),
                    a = answer => Wake::Answer(a),
                    _ = delay => Wake::Idle,
                }
            };
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

    fn next_wake(&self, now: u64) -> u64 {
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
        let outs = r.handle(now_ms(), input);
        self.process(outs)
    }

    /// Hand a member's message to the core, noting the transactions of announced batches.
    fn feed_peer_message(&mut self, from: ValidatorId, msg: Message) -> Result<(), String> {
        if let Message::Announce(b) = &msg {
            if b.header.body.kind == BatchKind::Txs && Some(from) != self.me() {
                let txs = b
                    .txs
                    .iter()
                    .map(|t| H256(sp_crypto_hashing::blake2_256(&t.data)));
                self.proposer.announced_by_other(txs, now_ms());
            }
        }
        if let Some((adversary, rng)) = self.adversary.as_mut() {
            adversary.observe(&msg, rng);
        }
        self.feed(bsmr_consensus_core::Input::Message { from, msg })
    }

    fn fire_timers(&mut self, now: u64) -> Result<(), String> {
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
                        .insert((now_ms() + after_ms, self.timer_seq), id);
                }
                Output::Committed { inst, value, view } => self.on_committed(inst, &value, view),
                Output::BlockReady(fb) => {
                    if self
                        .handover
                        .as_ref()
                        .is_some_and(|(start, _)| fb.index >= *start)
                    {
                        log::debug!(target: LOG, "block #{} of the old epoch is void (a new epoch starts)", fb.index);
                        continue;
                    }
                    self.storage
                        .add_pending(&fb)
                        .map_err(|e| format!("persisting block #{}: {e}", fb.index))?;
                    // Leader baseline: the view-0 checkpoint leader of the next block is the
                    // primary that proposes transactions (a primary that missed its turn is
                    // skipped by the rotation, so its successor stays primary).
                    self.primary = fb.next_rotation.leader(&self.membership, fb.index + 1, 0);
                    if fb.checkpoint_view > 0 {
                        log::info!(
                            target: LOG,
                            "block #{}: checkpoint decided in view {}; validators skipped for checkpoint turns: {:?}",
                            fb.index,
                            fb.checkpoint_view,
                            fb.next_rotation
                                .skipped(&self.membership, fb.index + 1)
                                .map(|v| hex(&v[..4]))
                                .collect::<Vec<_>>()
                        );
                    }
                    log::debug!(target: LOG, "core finished block #{} ({} batches)", fb.index, fb.batches.len());
                    if let Some(me) = self.me() {
                        let ours = fb.batches.iter().filter(|(h, _)| h.proposer == me);
                        self.proposer
                            .block_finished(fb.index, ours.map(|(h, _)| h.id()));
                    }
                    self.build_queue.insert(fb.index, fb);
                }
                Output::Proposed { id, txs } => self.on_proposed(id, &txs),
                Output::Misbehaviour(proof) => self.on_misbehaviour(proof),
                Output::Rejoined { from, to } => {
                    self.counters.rejoins += 1;
                    self.build_queue.retain(|b, _| *b > to);
                    log::info!(
                        target: LOG,
                        "🔁 consensus state rejoined from the certified chain: block #{from} -> #{to} \
                         (position from finalized block #{to}, settled commands vouched for by f+1 validators)"
                    );
                }
            }
        }
        if let Some((adversary, rng)) = self.adversary.as_mut() {
            for (to, msg) in adversary.rewrite(sends, rng) {
                self.send_core(Some(to), &msg);
            }
        }
        Ok(())
    }

    /// The core proposed a batch of ours: track its transactions until its block.
    fn on_proposed(&mut self, id: CommandId, txs: &[bsmr_consensus_core::Tx]) {
        let hashes: Vec<H256> = txs
            .iter()
            .map(|t| H256(sp_crypto_hashing::blake2_256(&t.data)))
            .collect();
        if self.proposer.proposed(id, hashes.clone(), now_ms()) {
            for h in hashes {
                self.status
                    .set_tx(h, CommandStatus::Proposed { batch: hex(&id) });
            }
        }
    }

    fn send_core(&mut self, to: Option<ValidatorId>, msg: &Message) {
        if let Message::ViewChange(_) = msg {
            self.counters.view_changes += 1;
            if let Some(m) = &self.metrics {
                m.view_changes.inc();
            }
        }
        if fetch::is_fetch(msg) {
            let payload = FetchRequest::Core(encode_message(msg)).encode();
            let targets: Vec<(PeerId, ValidatorId)> = match to {
                Some(v) => self.peer_of(&v).map(|p| (p, v)).into_iter().collect(),
                None => self.member_peers(),
            };
            for (peer, v) in targets {
                self.start_fetch(peer, Asked::Core(v), payload.clone());
            }
            return;
        }
        let frame = Frame::Core(encode_message(msg));
        match to {
            Some(v) => {
                if let Some(peer) = self.peer_of(&v) {
                    self.notifications
                        .send_sync_notification(&peer, frame.encode_frame());
                }
            }
            None => self.broadcast(&frame),
        }
    }

    fn broadcast(&mut self, frame: &Frame) {
        let bytes = frame.encode_frame();
        for (p, _) in self.member_peers() {
            self.notifications.send_sync_notification(&p, bytes.clone());
        }
    }

    /// Peers that said a valid Hello for a key of the current set.
    fn member_peers(&self) -> Vec<(PeerId, ValidatorId)> {
        self.peers
            .iter()
            .filter_map(|(p, v)| v.filter(|k| self.membership.contains(k)).map(|k| (*p, k)))
            .collect()
    }

    // ------------------------------------------------------------------ fetch protocol

    fn start_fetch(&mut self, peer: PeerId, asked: Asked, payload: Vec<u8>) {
        if self.fetch_out.len() >= MAX_FETCHES_IN_FLIGHT {
            return;
        }
        let (tx, rx) = oneshot::channel();
        self.network.start_request(
            peer,
            self.fetch_protocol.clone(),
            payload,
            None,
            tx,
            IfDisconnected::ImmediateError,
        );
        self.fetch_out.push(
            async move {
                let result = match rx.await {
                    Ok(Ok((bytes, _))) => Ok(bytes),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the request was dropped".to_string()),
                };
                FetchAnswer {
                    peer,
                    asked,
                    result,
                }
            }
            .boxed(),
        );
    }

    // ------------------------------------------------------------------ misbehaviour

    /// Count and log a proof, and queue it for the chain (once per accused validator and epoch:
    /// the runtime records one offence per epoch).
    fn on_misbehaviour(&mut self, proof: Proof) {
        self.counters.misbehaviour_proofs += 1;
        if let Some(m) = &self.metrics {
            m.misbehaviour.inc();
        }
        let accused = proof.accused();
        let (kind, epoch) = (proof.kind(), proof.epoch());
        // Once per accused validator and epoch at warning level: an equivocator that keeps
        // sending conflicting messages must not flood the log.
        let first = self.reports.note(proof, self.membership.epoch);
        let level = if first {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            target: LOG,
            level,
            "🚨 {} by {} in epoch {}",
            kind,
            hex(&accused),
            epoch
        );
    }

    /// Hand queued proofs to the transaction pool as unsigned `report_misbehaviour`
    /// extrinsics, recorded as this node's own submissions so that it proposes them at once.
    async fn submit_reports(&mut self) {
        if self.reports.is_empty() {
            return;
        }
        let (_, at) = self.finalized();
        for proof in self.reports.take() {
            let (epoch, accused) = (proof.epoch(), proof.accused());
            let xt = match self
                .client
                .runtime_api()
                .misbehaviour_report(at, proof.encode())
            {
                Ok(Some(xt)) => xt,
                Ok(None) => {
                    log::warn!(target: LOG, "misbehaviour proof against {} is too large to report", hex(&accused));
                    continue;
                }
                Err(e) => {
                    log::warn!(target: LOG, "building the misbehaviour report: {e}");
                    continue;
                }
            };
            match self.pool.submit_one(at, TransactionSource::Local, xt).await {
                Ok(hash) => {
                    self.client_submissions.record(hash);
                    log::info!(
                        target: LOG,
                        "📣 reported {} by {} (epoch {epoch}) on chain: transaction {hash:?}",
                        proof.kind(),
                        hex(&accused)
                    );
                }
                // Typically another validator's report of the same offence landed first (the
                // pool then calls it stale); not retried.
                Err(e) => log::warn!(
                    target: LOG,
                    "misbehaviour report against {} not submitted: {e}",
                    hex(&accused)
                ),
            }
        }
        self.reports.keep_epoch(self.membership.epoch);
    }

    /// Have f + 1 validators, so at least one correct one, voted above block `number`? A correct
    /// validator votes for a block only after finalizing its parent, so block `number` is then
    /// final elsewhere and its certificate can be fetched.
    fn network_is_past(&self, number: u64) -> bool {
        self.tally.network_is_past(number, &self.membership)
    }

    /// Ask every validator peer for the certificate of block `number`.
    fn request_certificate(&mut self, number: u64) {
        let payload = FetchRequest::Certificate { number }.encode();
        for (peer, _) in self.member_peers() {
            self.start_fetch(peer, Asked::Certificate(number), payload.clone());
        }
    }

    /// Serve a peer's fetch. A core fetch goes to the core as a message from the requester; the
    /// messages the core addresses to the requester form the response (sent after every other
    /// output, persists included, is applied: persist before send).
    fn on_fetch_request(&mut self, req: IncomingRequest) -> Result<(), String> {
        let IncomingRequest {
            peer,
            payload,
            pending_response,
        } = req;
        let respond = |result: Result<Vec<u8>, ()>, reputation: Option<ReputationChange>| {
            let _ = pending_response.send(OutgoingResponse {
                result,
                reputation_changes: reputation.into_iter().collect(),
                sent_feedback: None,
            });
        };
        if !self.rate.allow(&peer, now_ms()) {
            respond(Err(()), Some(cost::FLOOD));
            return Ok(());
        }
        let Some(request) = FetchRequest::decode_untrusted(&payload) else {
            respond(Err(()), Some(fetch::cost::BAD_FETCH));
            return Ok(());
        };
        let bytes = match request {
            FetchRequest::Certificate { number } => {
                respond(
                    Ok(FetchResponse::Certificate(self.certificate_of(number)).encode()),
                    None,
                );
                self.counters.fetches_served += 1;
                return Ok(());
            }
            FetchRequest::Core(bytes) => bytes,
        };
        let from = match self.peers.get(&peer) {
            Some(Some(v)) if self.membership.contains(v) => *v,
            _ => {
                respond(Err(()), None); // not (yet) known as a member: nothing to say
                return Ok(());
            }
        };
        let msg = match decode_message(&bytes) {
            Ok(m) if fetch::is_fetch(&m) => m,
            _ => {
                respond(Err(()), Some(fetch::cost::BAD_FETCH));
                return Ok(());
            }
        };
        let Some(r) = self.replica.as_mut() else {
            respond(Ok(FetchResponse::Core(vec![]).encode()), None);
            return Ok(());
        };
        let outs = r.handle(now_ms(), bsmr_consensus_core::Input::Message { from, msg });
        let (mut answer, mut size, mut rest) = (vec![], 0u64, vec![]);
        for o in outs {
            match o {
                Output::Send { to: Some(v), msg } if v == from => {
                    let m = encode_message(&msg);
                    if answer.len() < fetch::MAX_RESPONSE_MESSAGES
                        && size + m.len() as u64 + 16 <= fetch::MAX_RESPONSE_SIZE
                    {
                        size += m.len() as u64 + 16;
                        answer.push(m);
                    } else {
                        // What does not fit goes out as notifications.
                        rest.push(Output::Send { to: Some(v), msg });
                    }
                }
                o => rest.push(o),
            }
        }
        self.process(rest)?;
        respond(Ok(FetchResponse::Core(answer).encode()), None);
        self.counters.fetches_served += 1;
        Ok(())
    }

    /// The hash and BSMR justification of finalized block `number`, if this node has them.
    fn certificate_of(&self, number: u64) -> Option<([u8; 32], Vec<u8>)> {
        let (fin, _) = self.finalized();
        if number == 0 || number > fin {
            return None;
        }
        let hash = self.client.hash(number.try_into().ok()?).ok()??;
        let justifications = self.client.justifications(hash).ok()??;
        let bytes = justifications.get(BSMR_ENGINE_ID)?.clone();
        Some((hash.0, bytes))
    }

    /// Use the answer to one of this node's fetches.
    async fn on_fetch_answer(&mut self, a: FetchAnswer) -> Result<(), String> {
        let FetchAnswer {
            peer,
            asked,
            result,
        } = a;
        let bytes = match result {
            Ok(b) => b,
            Err(e) => {
                log::debug!(target: LOG, "fetch from {peer} failed: {e}");
                return Ok(());
            }
        };
        let Some(response) = FetchResponse::decode_untrusted(&bytes) else {
            self.network.report_peer(peer, fetch::cost::BAD_FETCH);
            return Ok(());
        };
        match (asked, response) {
            (Asked::Core(from), FetchResponse::Core(messages)) => {
                if !self.membership.contains(&from) {
                    return Ok(());
                }
                self.counters.fetches_answered += 1;
                for m in messages {
                    match decode_message(&m) {
                        Ok(msg) => self.feed_peer_message(from, msg)?,
                        Err(_) => {
                            self.network.report_peer(peer, fetch::cost::BAD_FETCH);
                            break;
                        }
                    }
                }
            }
            (Asked::Certificate(number), FetchResponse::Certificate(Some((hash, just)))) => {
                if self.awaiting.as_ref().map(|a| a.number) != Some(number) {
                    return Ok(());
                }
                let cert = match FinalityCertificate::decode_untrusted(&just) {
                    Ok(c) if c.vote.number == number && c.vote.hash == hash => c,
                    _ => {
                        self.network.report_peer(peer, fetch::cost::BAD_CERTIFICATE);
                        return Ok(());
                    }
                };
                self.counters.fetches_answered += 1;
                self.counters.certificates_fetched += 1;
                log::info!(target: LOG, "📜 certificate of #{number} fetched from {peer}");
                // Each signature is checked like a vote; a valid quorum for another block than
                // the one built here halts the node (deterministic building diverged).
                for (signer, sig) in cert.signatures {
                    let vote = Signed {
                        body: cert.vote,
                        signer,
                        sig,
                    };
                    self.on_vote(peer, vote).await?;
                }
            }
            (Asked::Certificate(_), FetchResponse::Certificate(None)) => {}
            _ => self.network.report_peer(peer, fetch::cost::BAD_FETCH),
        }
        Ok(())
    }

    fn say_hello_to_all(&mut self) {
        let Some(s) = self.signer.clone() else { return };
        let bytes = hello(&self.network.local_peer_id(), &self.genesis, &*s).encode_frame();
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in peers {
            self.notifications.send_sync_notification(&p, bytes.clone());
        }
    }

    fn peer_of(&self, v: &ValidatorId) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(_, x)| x.as_ref() == Some(v))
            .map(|(p, _)| *p)
    }

    fn me(&self) -> Option<ValidatorId> {
        self.signer.as_ref().map(|s| s.public())
    }

    fn on_committed(&mut self, inst: InstanceId, value: &Value, view: u32) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        let own = self.proposer.decided(&id).cloned();
        let Value::Deps { deps, .. } = value else {
            return;
        };
        self.counters.committed_commands += 1;
        if view == 0 {
            self.counters.fast_commits += 1;
        }
        if let Some(m) = &self.metrics {
            m.commands_committed.inc();
            if view == 0 {
                m.fast_commits.inc()
            } else {
                m.slow_commits.inc()
            }
            m.dependency_set_size.observe(deps.len() as f64);
        }
        if let Some(own) = own {
            if let Some(m) = &self.metrics {
                m.commit_latency
                    .observe(now_ms().saturating_sub(own.at) as f64 / 1000.0);
            }
            for h in own.txs {
                self.status
                    .set_tx(h, CommandStatus::Committed { batch: hex(&id) });
            }
        }
    }

    // ------------------------------------------------------------------ transactions

    fn propose_from_pool(&mut self, now: u64) -> Result<(), String> {
        let Some(me) = self.me() else { return Ok(()) };
        let core_pending = self.replica.as_ref().map_or(0, |r| r.pending_batches());
        let submissions = &self.client_submissions;
        let turn = Turn {
            now,
            me,
            membership: &self.membership,
            primary: self.primary,
            finalized: self.finalized().0,
            core_pending,
            submitted_here: &|h| submissions.contains(h),
        };
        let ready = self
            .pool
            .ready()
            .map(|tx| (*tx.hash(), move || (**tx.data()).encode()));
        let classifier = &self.classifier;
        let batches = self
            .proposer
            .next_batches(ready, |b| classifier.classify(b), &turn);
        for b in batches {
            self.counters.proposed_txs += b.len() as u64;
            self.feed(bsmr_consensus_core::Input::ClientBatch(b))?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ network

    async fn on_network_event(&mut self, ev: NotificationEvent) -> Result<(), String> {
        match ev {
            NotificationEvent::ValidateInboundSubstream { result_tx, .. } => {
                let _ = result_tx.send(ValidationResult::Accept);
            }
            NotificationEvent::NotificationStreamOpened { peer, .. } => {
                self.peers.insert(peer, None);
                if let Some(s) = &self.signer {
                    let frame = hello(&self.network.local_peer_id(), &self.genesis, &**s);
                    self.notifications
                        .send_sync_notification(&peer, frame.encode_frame());
                }
            }
            NotificationEvent::NotificationStreamClosed { peer } => {
                self.peers.remove(&peer);
                self.rate.remove(&peer);
            }
            NotificationEvent::NotificationReceived { peer, notification } => {
                self.on_notification(peer, &notification).await?;
            }
        }
        Ok(())
    }

    async fn on_notification(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), String> {
        if !self.rate.allow(&peer, now_ms()) {
            self.network.report_peer(peer, cost::FLOOD);
            return Ok(());
        }
        let Some(frame) = Frame::decode_frame(bytes) else {
            self.network.report_peer(peer, cost::MALFORMED);
            return Ok(());
        };
        match frame {
            Frame::Hello(h) => match check_hello(&h, &peer, &self.genesis, &Sr25519Verifier) {
                Some(v) => {
                    // One peer per key: a newer connection replaces an older one. Membership is
                    // checked when messages are used, so a key that joins in a later epoch
                    // needs no new Hello.
                    self.peers
                        .values_mut()
                        .filter(|x| x.as_ref() == Some(&v))
                        .for_each(|x| *x = None);
                    self.peers.insert(peer, Some(v));
                    log::debug!(target: LOG, "validator key {} speaks from {peer}", hex(&v));
                }
                None => self.network.report_peer(peer, cost::BAD_HELLO),
            },
            Frame::Core(bytes) => {
                let Some(Some(from)) = self.peers.get(&peer).copied() else {
                    return Ok(());
                };
                if !self.membership.contains(&from) {
                    return Ok(());
                }
                match decode_message(&bytes) {
                    Ok(msg) => self.feed_peer_message(from, msg)?,
                    Err(_) => self.network.report_peer(peer, cost::MALFORMED),
                }
            }
            Frame::Finality(v) => {
                if matches!(self.peers.get(&peer), Some(Some(k)) if self.membership.contains(k)) {
                    self.on_vote(peer, v).await?;
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ blocks and finality

    /// The checkpoint-leader rotation the last finalized block's header carries, with the index
    /// it is in force for, if it belongs to the running epoch (read once per finalized block).
    fn finalized_rotation(&mut self, hash: H256) -> Option<(u64, Rotation)> {
        if self.rotation_cache.as_ref().map(|(h, _)| *h) != Some(hash) {
            let found = self
                .client
                .header(hash)
                .ok()
                .flatten()
                .and_then(|h| crate::builder::checkpoint_of(&h))
                .map(|c| (c.index + 1, c.next_rotation));
            self.rotation_cache = Some((hash, found));
        }
        let (_, found) = self.rotation_cache.as_ref()?;
        found
            .clone()
            .filter(|(_, r)| r.epoch == self.membership.epoch)
    }

    fn finalized(&self) -> (u64, H256) {
        let info = self.client.info();
        (
            info.finalized_number.try_into().unwrap_or(0),
            info.finalized_hash,
        )
    }

    async fn on_vote(&mut self, peer: PeerId, v: Signed<FinalityVote>) -> Result<(), String> {
        let (fin, _) = self.finalized();
        let verifier = Sr25519Verifier;
        match self
            .tally
            .on_vote(v, &self.membership, &self.genesis, fin, &verifier)
        {
            VoteOutcome::BadSignature => self.network.report_peer(peer, cost::BAD_VOTE),
            VoteOutcome::Equivocation(proof) => self.on_misbehaviour(*proof),
            VoteOutcome::Counted | VoteOutcome::Ignored => {}
        }
        self.try_finalize().await
    }

    /// Build, vote on and import finished blocks, in order.
    async fn advance_blocks(&mut self) -> Result<(), String> {
        loop {
            let (fin, fin_hash) = self.finalized();
            self.tally.finalized(fin);
            self.detect_epoch_change(fin)?;
            if let Some((start, _)) = &self.handover {
                if fin + 1 >= *start {
                    let (start, set) = self.handover.take().expect("checked above; qed");
                    self.switch_epoch(start, set)?;
                    continue;
                }
            }
            if let Some(a) = &self.awaiting {
                if a.number > fin {
                    return self.try_finalize().await;
                }
                // Sync imported the block first: it must be ours.
                let chain = self
                    .client
                    .hash(a.number.try_into().map_err(|_| "overflow")?)
                    .map_err(|e| e.to_string())?;
                let ours = a.block.hash();
                if chain != Some(ours) {
                    return Err(format!(
                        "SAFETY: block #{} certified by the network is {:?} but this node built {ours}: \
                         deterministic block building diverged; refusing to continue",
                        a.number, chain
                    ));
                }
                let a = self.awaiting.take().expect("checked above; qed");
                self.after_final(a.number, ours, &a.included);
                continue;
            }
            let Some((&b, _)) = self.build_queue.first_key_value() else {
                return Ok(());
            };
            if b > fin + 1 {
                return Ok(()); // the blocks in between come by sync (or the core's block sync)
            }
            let fb = self.build_queue.remove(&b).expect("seen above; qed");
            if b <= fin {
                self.check_synced_block(&fb)?;
                continue;
            }
            let built = build_block::<B, BE, C>(
                &*self.client,
                &*self.classifier,
                fin_hash,
                fin.try_into().map_err(|_| "overflow")?,
                &fb,
            )
            .map_err(|e| format!("building block #{b}: {e}"))?;
            self.vote_on(b, built).await?;
        }
    }

    fn check_synced_block(&mut self, fb: &FinishedBlock) -> Result<(), String> {
        let b = fb.index;
        let num = |x: u64| -> Result<<B::Header as HeaderT>::Number, String> {
            x.try_into().map_err(|_| "overflow".to_string())
        };
        let chain = self.client.hash(num(b)?).map_err(|e| e.to_string())?;
        let parent = self.client.hash(num(b - 1)?).map_err(|e| e.to_string())?;
        if let (Some(chain), Some(parent)) = (chain, parent) {
            match build_block::<B, BE, C>(&*self.client, &*self.classifier, parent, num(b - 1)?, fb)
            {
                Ok(built) if built.built.block.hash() != chain => {
                    return Err(format!(
                        "SAFETY: block #{b} on chain is {chain} but the core's block #{b} builds to {}: \
                         deterministic block building diverged; refusing to continue",
                        built.built.block.hash()
                    ));
                }
                Ok(built) => {
                    log::debug!(target: LOG, "block #{b} from sync matches the local build");
                    self.forget_included(b, &built.included);
                }
                Err(e) => {
                    log::warn!(target: LOG, "cannot re-execute synced block #{b} to check it ({e})")
                }
            }
        }
        self.storage.forget_pending(b).map_err(|e| e.to_string())
    }

    /// Own transactions that block `b` included are done: only the ones it skipped may be
    /// proposed again (the pool may take longer than the grace period to drop included ones).
    fn forget_included(&mut self, b: u64, included: &[H256]) {
        self.proposer.included(b, included);
    }

    async fn vote_on(&mut self, b: u64, built: Built<B>) -> Result<(), String> {
        let signer = self
            .signer
            .clone()
            .ok_or("a full node never builds blocks")?;
        let (block, changes) = built.built.into_inner();
        let vote = FinalityVote {
            epoch: self.membership.epoch,
            number: b,
            hash: block.hash().0,
            state_root: block
                .header()
                .state_root()
                .as_ref()
                .try_into()
                .map_err(|_| "state roots are 32 bytes")?,
        };
        let signed = Signed::sign(vote, &self.genesis, &*signer);
        log::debug!(target: LOG, "built #{b} {} ({} txs, {} skipped)", block.hash(), built.included.len(), built.skipped.len());
        self.forget_included(b, &built.included);
        self.tally.own_vote(signed.clone());
        self.broadcast(&Frame::Finality(signed.clone()));
        if self.cfg.equivocate_finality_votes {
            let mut other = vote;
            other.hash[0] ^= 0xff;
            log::warn!(target: LOG, "🎭 (testing) equivocating: a second finality vote for #{b}");
            self.broadcast(&Frame::Finality(Signed::sign(
                other,
                &self.genesis,
                &*signer,
            )));
        }
        self.next_vote_resend_ms = now_ms() + 2_000;
        self.awaiting_since_ms = now_ms();
        self.awaiting = Some(Awaiting {
            number: b,
            block,
            changes: Some(changes),
            vote: signed,
            included: built.included,
            skipped: built.skipped,
            voted_at: std::time::Instant::now(),
        });
        self.try_finalize().await
    }

    async fn try_finalize(&mut self) -> Result<(), String> {
        let Some(a) = self.awaiting.as_ref() else {
            return Ok(());
        };
        let votes = match self.tally.verdict(&a.vote.body, self.membership.q()) {
            Verdict::Waiting => return Ok(()),
            Verdict::Diverged(other) => {
                return Err(format!(
                    "SAFETY: a quorum certified block #{} as {} (state root {}), this node built {} (state root {}): \
                     deterministic block building diverged; refusing to continue",
                    a.number,
                    hex(&other.hash),
                    hex(&other.state_root),
                    hex(&a.vote.body.hash),
                    hex(&a.vote.body.state_root)
                ))
            }
            Verdict::Certified(votes) => votes,
        };
        let mut a = self.awaiting.take().expect("checked above; qed");
        let cert = FinalityCertificate::from_votes(a.vote.body, votes.iter());
        let (header, body) = a.block.clone().deconstruct();
        let hash = header.hash();
        let mut params = BlockImportParams::new(BlockOrigin::Own, header);
        params.body = Some(body);
        params.state_action = StateAction::ApplyChanges(StorageChanges::Changes(
            a.changes.take().expect("changes are taken once, here; qed"),
        ));
        params.finalized = true;
        params.fork_choice = Some(ForkChoiceStrategy::Custom(true));
        params.justifications = Some(Justifications::from((BSMR_ENGINE_ID, cert.encode())));
        match self.client.import_block(params).await {
            Ok(ImportResult::Imported(_)) | Ok(ImportResult::AlreadyInChain) => {}
            Ok(other) => {
                return Err(format!(
                    "importing own block #{} failed: {other:?}",
                    a.number
                ))
            }
            Err(e) => return Err(format!("importing own block #{}: {e}", a.number)),
        }
        if let Some(m) = &self.metrics {
            m.block_finality.observe(a.voted_at.elapsed().as_secs_f64());
        }
        log::info!(
            target: LOG,
            "✅ finalized #{} ({hash}) with {} signatures: {} txs, {} skipped",
            a.number,
            cert.signatures.len(),
            a.included.len(),
            a.skipped.len()
        );
        self.after_final(a.number, hash, &a.included);
        Ok(())
    }

    fn after_final(&mut self, number: u64, hash: H256, included: &[H256]) {
        if let Err(e) = self.storage.forget_pending(number) {
            log::warn!(target: LOG, "forgetting pending block #{number}: {e}");
        }
        if let Some(m) = &self.metrics {
            m.blocks_finalized.inc();
            m.txs_finalized.inc_by(included.len() as u64);
        }
        for h in included {
            self.status.set_tx(
                *h,
                CommandStatus::Finalized {
                    block: number,
                    hash,
                },
            );
        }
        self.proposer.finalized(now_ms());
    }

    /// Look for a validator-set change enacted in finalized blocks not checked yet. A change
    /// enacted in block b* starts the new epoch at index s = b* + 2 (protocol.md, "Epochs").
    fn detect_epoch_change(&mut self, fin: u64) -> Result<(), String> {
        while self.handover.is_none() && self.epoch_checked < fin {
            let b = self.epoch_checked + 1;
            let hash = self
                .client
                .hash(b.try_into().map_err(|_| "overflow")?)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("finalized block #{b} is missing"))?;
            let set = self
                .client
                .runtime_api()
                .validator_set(hash)
                .map_err(|e| format!("reading the validator set: {e}"))?;
            self.epoch_checked = b;
            if set.epoch > self.membership.epoch {
                let start = consensus_epoch::next_epoch_start(b);
                log::info!(
                    target: LOG,
                    "🔁 validator set of epoch {} ({} members) enacted in block #{b}: it takes over at block #{start}",
                    set.epoch,
                    set.validators.len()
                );
                self.build_queue.retain(|i, _| *i < start);
                self.storage
                    .drop_pending_from(start)
                    .map_err(|e| e.to_string())?;
                self.handover = Some((start, set));
            }
        }
        Ok(())
    }

    /// Replace the replica by one for the new epoch (the old one's later indices are void).
    fn switch_epoch(
        &mut self,
        start: u64,
        set: bsmr_primitives::ValidatorSet,
    ) -> Result<(), String> {
        let membership = membership_of(self.genesis, &set, self.cfg.mode);
        let mut storage =
            AuxStorage::open(self.client.clone(), set.epoch).map_err(incompatible_state)?;
        let (signer, replica) = make_replica::<B, BE, C>(
            &*self.client,
            &self.keys,
            self.validator,
            &membership,
            &set,
            &mut storage,
            &self.cfg,
        )?;
        log::info!(
            target: LOG,
            "🔁 epoch {} begins at block #{start}: n = {}, f = {}, q = {}",
            membership.epoch,
            membership.n(),
            membership.f(),
            membership.q()
        );
        self.primary = membership.validators()[0];
        self.membership = membership;
        self.storage = storage;
        let newly_signing = signer.is_some()
            && self.signer.as_ref().map(|s| s.public()) != signer.as_ref().map(|s| s.public());
        self.adversary = adversary_for(&self.cfg, signer.as_ref(), &self.membership);
        self.signer = signer;
        if newly_signing {
            // A key that joins in this epoch introduces itself on the streams already open.
            self.say_hello_to_all();
        }
        self.replica = replica;
        self.timers.clear();
        self.build_queue.clear();
        self.tally.clear();
        // Transactions of void old-epoch batches are proposed again at once.
        self.proposer.new_epoch();
        if let Some(r) = self.replica.as_mut() {
            let outs = r.start(now_ms());
            self.process(outs)?;
        }
        Ok(())
    }

    /// Checked once a second: when the finalized chain is ahead of this validator's consensus
    /// state, hands the core the finalized head (what lets a replica too far behind for its
    /// peers' finished blocks rejoin from the chain), and says so at most once a minute.
    fn feed_chain_head(&mut self, now: u64) -> Result<(), String> {
        self.next_chain_feed_ms = now + 1_000;
        let Some(r) = &self.replica else {
            return Ok(());
        };
        let (fin, fin_hash) = self.finalized();
        let (built, reach) = (r.stats().built, r.retained_sync_blocks());
        if fin <= built {
            return Ok(());
        }
        if fin > built + reach && now >= self.next_lag_warning_ms {
            self.next_lag_warning_ms = now + 60_000;
            log::warn!(
                target: LOG,
                "⚠️ consensus state is at block #{built}, the chain at #{fin}: more than the {reach} blocks peers keep for catch-up; \
                 rejoining from the certified chain"
            );
        }
        let header = self
            .client
            .header(fin_hash)
            .map_err(|e| format!("reading finalized header #{fin}: {e}"))?
            .ok_or_else(|| format!("finalized header #{fin} is missing"))?;
        let Some(crate::builder::ChainCheckpoint {
            index,
            checkpoint,
            next_rotation,
            floors,
        }) = crate::builder::checkpoint_of(&header)
        else {
            return Ok(()); // genesis or a block of no bsmr replica
        };
        if index != fin || next_rotation.epoch != self.membership.epoch {
            return Ok(()); // another epoch's block: the epoch handover takes it from here
        }
        let timestamp_ms = crate::builder::chain_timestamp::<B, BE, C>(&*self.client, fin_hash)?;
        self.feed(bsmr_consensus_core::Input::ChainBlock(
            bsmr_consensus_core::ChainPosition {
                index,
                checkpoint,
                timestamp_ms,
                next_rotation,
                floors,
            },
        ))
    }

    fn publish_status(&mut self) {
        let (fin, fin_hash) = self.finalized();
        let rotation = self.finalized_rotation(fin_hash);
        let m = &self.membership;
        let mut s = self.counters.clone();
        s.epoch = m.epoch;
        s.validators = m.validators().iter().map(|v| hex(v)).collect();
        s.n = m.n() as u32;
        s.f = m.f() as u32;
        s.quorum = m.q() as u32;
        s.local_validator = self.me().map(|v| hex(&v));
        s.connected_validators = self
            .peers
            .values()
            .filter(|v| v.as_ref().is_some_and(|k| m.contains(k)))
            .count() as u32;
        s.last_finalized = fin;
        if let Some((next, rotation)) = rotation {
            s.next_checkpoint_leader = Some(hex(&rotation.leader(m, next, 0)));
            s.skipped_checkpoint_leaders = rotation.skipped(m, next).map(|v| hex(v)).collect();
        }
        if let Some(r) = &self.replica {
            let st = r.stats();
            s.last_block = st.built;
            s.pending_batches = r.pending_batches() as u64;
            s.undecided_instances = r.undecided().len() as u64;
        }
        if let Some(mm) = &self.metrics {
            mm.validator_peers.set(s.connected_validators as u64);
        }
        self.status.set(s);
    }
}

//! Building the engine from the node's parts and its persisted state.

use super::*;

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    pub(super) fn new(p: EngineParams<B, C, P>) -> Result<Self, String> {
        let info = p.client.info();
        let genesis: Digest = info.genesis_hash.0;
        // The set that certifies the next block: read from the state after (finalized + 1) - 2.
        let next = info.finalized_number.try_into().unwrap_or(0u64) + 1;
        let source_number: u64 = consensus_epoch::set_source_block(next);
        let set = validator_set_at(&*p.client, source_number)?;
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
            fin: Finalizing {
                build_queue: BTreeMap::new(),
                awaiting: None,
                tally: FinalityTally::default(),
                next_vote_resend_ms: now,
                awaiting_since_ms: now,
                early_certificate_request: 0,
                synced_checked: 0,
                executed_twice: 0,
            },
            link: Links {
                network: p.network,
                notifications: p.notifications,
                fetch_protocol: fetch::protocol_name(&genesis),
                fetch_in: p.fetch_requests,
                fetch_out: FuturesUnordered::new(),
                peers: BTreeMap::new(),
                rate: RateLimit::new(5_000.0, 20_000.0),
            },
            classifier: p.classifier,
            built: p.built,
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
            timers: BTreeMap::new(),
            timer_seq: 0,
            proposer: PoolProposer::new(ProposerConfig {
                mode: p.config.mode,
                owner_delay_ms: p.config.owner_delay_ms,
                anyone_delay_ms: p.config.anyone_delay_ms,
                max_batch_txs: p.config.max_batch_txs,
                max_inflight_batches: p.config.max_inflight_batches,
            }),
            stuck_futures: Default::default(),
            adoptions: Default::default(),
            waiting_senders: Default::default(),
            rotation_cache: None,
            next_batch_ms: now + p.config.batch_interval_ms,
            next_ckpt_ms: now + p.config.block_time_ms,
            next_lag_warning_ms: 0,
            next_chain_feed_ms: 0,
            reports: Reports::default(),
            next_status_ms: now,
            now,
            counters: EngineStatus {
                mode: p.config.mode.name().into(),
                ..Default::default()
            },
            cfg: p.config,
            _backend: PhantomData,
        })
    }
}

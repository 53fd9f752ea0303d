//! Validator-set changes as the chain records them: switch the replica at an epoch's first
//! block, and feed the finalized chain head to a replica that is behind.

use super::*;

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    /// Look for a validator-set change enacted in finalized blocks not checked yet. A change
    /// enacted in block b* starts the new epoch at index s = b* + 2 (protocol.md, "Epochs").
    pub(super) fn detect_epoch_change(&mut self, fin: u64) -> Result<(), String> {
        while self.handover.is_none() && self.epoch_checked < fin {
            let b = self.epoch_checked + 1;
            let set = validator_set_at(&*self.client, b)?;
            self.epoch_checked = b;
            if set.epoch > self.membership.epoch {
                let start = consensus_epoch::next_epoch_start(b);
                log::info!(
                    target: LOG,
                    "🔁 validator set of epoch {} ({} members) enacted in block #{b}: it takes over at block #{start}",
                    set.epoch,
                    set.validators.len()
                );
                self.fin.build_queue.retain(|i, _| *i < start);
                self.storage
                    .drop_pending_from(start)
                    .map_err(|e| e.to_string())?;
                self.handover = Some((start, set));
            }
        }
        Ok(())
    }

    /// Replace the replica by one for the new epoch (the old one's later indices are void).
    pub(super) fn switch_epoch(
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
        self.fin.build_queue.clear();
        self.fin.tally.clear();
        // Transactions of void old-epoch batches are proposed again at once.
        self.proposer.new_epoch(self.now);
        if let Some(r) = self.replica.as_mut() {
            let outs = r.start(self.now);
            self.process(outs)?;
        }
        Ok(())
    }

    /// Checked once a second: when the finalized chain is ahead of this validator's consensus
    /// state, hands the core the finalized head (what lets a replica too far behind for its
    /// peers' finished blocks rejoin from the chain), and says so at most once a minute.
    pub(super) fn feed_chain_head(&mut self) -> Result<(), String> {
        let now = self.now;
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
}

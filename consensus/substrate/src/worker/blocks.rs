//! From finished blocks to final ones: queue each block the core hands out, build it on the
//! finalized head, vote on it, import it as final once the tally certifies it
//! ([`crate::finality`]), and check the blocks that arrived by sync against the core's.

use super::*;

/// Where this node is on the way from finished blocks to final ones.
pub(super) struct Finalizing<B: BlockT> {
    /// Finished blocks the core handed out (or that were pending at start), to build in order.
    pub(super) build_queue: BTreeMap<u64, FinishedBlock>,
    /// The block built here and waiting for q votes.
    pub(super) awaiting: Option<Awaiting<B>>,
    /// Finality votes received, and how far ahead each validator voted.
    pub(super) tally: FinalityTally,
    /// When our vote for the awaited block is broadcast again.
    pub(super) next_vote_resend_ms: u64,
    /// When the block in `awaiting` was built.
    pub(super) awaiting_since_ms: u64,
    /// The height whose certificate was last requested because the network is past it.
    pub(super) early_certificate_request: u64,
    /// Blocks that arrived by sync before this node built them, checked against the core's.
    pub(super) synced_checked: u64,
    /// Blocks this node built that were executed a second time: by sync (its copy arrived
    /// while this node was still building, so our changes were not there yet) or by the engine
    /// (sync's import with our changes did not land in time). A copy sync began executing just
    /// before this node began building, and imported after it, is not counted.
    pub(super) executed_twice: u64,
}

/// One in this many blocks that arrived by sync is also rebuilt here and compared by hash; the
/// others are checked without executing them again ([`crate::builder::included_in_body`]).
pub(super) const REBUILD_SYNCED_EVERY: u64 = 16;

/// A block built here, waiting for q finality votes.
pub(super) struct Awaiting<B: BlockT> {
    pub(super) number: u64,
    pub(super) block: B,
    pub(super) vote: Signed<FinalityVote>,
    pub(super) included: Vec<H256>,
    pub(super) skipped: Vec<H256>,
    /// When this node had built and voted for the block (for the finality-latency metric).
    pub(super) voted_at: std::time::Instant,
}

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    /// The core finished block `fb`: keep it as pending (a restart builds it), note who leads
    /// next (the leader baseline's primary) and which of our batches it holds, and queue it
    /// for building. A block of the old epoch at or past a handover is void.
    pub(super) fn on_block_ready(&mut self, fb: FinishedBlock) -> Result<(), String> {
        if self
            .handover
            .as_ref()
            .is_some_and(|(start, _)| fb.index >= *start)
        {
            log::debug!(target: LOG, "block #{} of the old epoch is void (a new epoch starts)", fb.index);
            self.client_submissions.mark_unordered(&pool_hashes(&fb));
            return Ok(());
        }
        self.storage
            .add_pending(&fb)
            .map_err(|e| format!("persisting block #{}: {e}", fb.index))?;
        // Leader baseline: the view-0 checkpoint leader of the next block is the primary that
        // proposes transactions (a primary that missed its turn is skipped by the rotation, so
        // its successor stays primary).
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
        // Ordered into a block (another validator's batch may carry our clients' transactions):
        // they need no gossip, unless the block skips them (`vote_on`, the synced path).
        self.client_submissions.mark_ordered(&pool_hashes(&fb));
        if let Some(me) = self.me() {
            self.proposer
                .block_finished(fb.index, fb.batches.iter().map(|(h, _)| h.id()));
            let others = fb.batches.iter().filter(|(h, _)| h.proposer != me);
            let txs = others.flat_map(|(_, txs)| txs.iter());
            self.proposer.others_finished(txs.map(pool_hash), self.now);
        }
        self.fin.build_queue.insert(fb.index, fb);
        Ok(())
    }

    /// The core rejoined from the certified chain at block `to`: the finished blocks up to it
    /// are the chain's now.
    pub(super) fn on_rejoined(&mut self, from: u64, to: u64) {
        self.counters.rejoins += 1;
        self.fin.build_queue.retain(|b, _| *b > to);
        self.proposer.rejoined(self.now);
        log::info!(
            target: LOG,
            "🔁 consensus state rejoined from the certified chain: block #{from} -> #{to} \
             (position from finalized block #{to}, settled commands vouched for by f+1 validators)"
        );
    }

    /// While a built block waits for its votes: ask for its certificate at once when the
    /// network is visibly past it (a validator catching up builds blocks whose votes went out
    /// long ago), and every 2 s send our vote again, asking for the certificate once the block
    /// has waited `CERTIFICATE_FETCH_AFTER_MS`.
    pub(super) fn chase_certificate(&mut self) {
        let Some(number) = self.fin.awaiting.as_ref().map(|a| a.number) else {
            return;
        };
        if self.fin.early_certificate_request < number && self.network_is_past(number) {
            self.fin.early_certificate_request = number;
            self.request_certificate(number);
        }
        if self.now < self.fin.next_vote_resend_ms {
            return;
        }
        self.fin.next_vote_resend_ms = self.now + 2_000;
        if let Some(a) = &self.fin.awaiting {
            let frame = Frame::Finality(a.vote.clone());
            self.broadcast(&frame);
            if self.now >= self.fin.awaiting_since_ms + CERTIFICATE_FETCH_AFTER_MS {
                self.request_certificate(number);
            }
        }
    }

    /// The checkpoint-leader rotation the last finalized block's header carries, with the index
    /// it is in force for, if it belongs to the running epoch (read once per finalized block).
    pub(super) fn finalized_rotation(&mut self, hash: H256) -> Option<(u64, Rotation)> {
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

    pub(super) fn finalized(&self) -> (u64, H256) {
        let info = self.client.info();
        (
            info.finalized_number.try_into().unwrap_or(0),
            info.finalized_hash,
        )
    }

    pub(super) async fn on_vote(
        &mut self,
        peer: PeerId,
        v: Signed<FinalityVote>,
    ) -> Result<(), String> {
        let (fin, _) = self.finalized();
        let verifier = Sr25519Verifier;
        match self
            .fin
            .tally
            .on_vote(v, &self.membership, &self.genesis, fin, &verifier)
        {
            VoteOutcome::BadSignature => self.link.network.report_peer(peer, cost::BAD_VOTE),
            VoteOutcome::Equivocation(proof) => self.on_misbehaviour(*proof),
            VoteOutcome::Counted | VoteOutcome::Ignored => {}
        }
        self.try_finalize().await
    }

    /// Build, vote on and import finished blocks, in order.
    pub(super) async fn advance_blocks(&mut self) -> Result<(), String> {
        loop {
            let (fin, fin_hash) = self.finalized();
            self.fin.tally.finalized(fin);
            self.detect_epoch_change(fin)?;
            if let Some((start, _)) = &self.handover {
                if fin + 1 >= *start {
                    let (start, set) = self.handover.take().expect("checked above; qed");
                    self.switch_epoch(start, set)?;
                    continue;
                }
            }
            if let Some(a) = &self.fin.awaiting {
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
                let a = self.fin.awaiting.take().expect("checked above; qed");
                // Sync imported it. If our changes are still here, it executed the block a
                // second time; otherwise it imported it with them.
                if self.built.take(&ours).is_some() {
                    self.fin.executed_twice += 1;
                }
                self.after_final(a.number, ours, &a.included);
                continue;
            }
            let Some((&b, _)) = self.fin.build_queue.first_key_value() else {
                return Ok(());
            };
            if b > fin + 1 {
                return Ok(()); // the blocks in between come by sync (or the core's block sync)
            }
            let fb = self.fin.build_queue.remove(&b).expect("seen above; qed");
            if b <= fin {
                self.check_synced_block(&fb)?;
                continue;
            }
            let fin_number = fin.try_into().map_err(|_| "overflow")?;
            // A certified copy arriving by sync meanwhile waits for this build (`put`, in
            // `vote_on`, ends it; so does any failure before it).
            self.built.building_on(Some(fin_hash));
            let voted = match build_block::<B, BE, C>(
                &*self.client,
                &*self.classifier,
                fin_hash,
                fin_number,
                &fb,
            ) {
                Ok(built) => self.vote_on(b, built).await,
                Err(e) => Err(format!("building block #{b}: {e}")),
            };
            if voted.is_err() {
                self.built.building_on(None);
            }
            voted?;
        }
    }

    /// Check a block that sync imported before this node built it against the core's block
    /// `fb`. Importing it executed it and matched its state root; what is left to check is
    /// that this node's core would have built it: the header commits to the same checkpoint,
    /// floors and rotation, and every extrinsic in it is an inherent or a transaction the
    /// core's block offers. The first such block after a start and every
    /// [`REBUILD_SYNCED_EVERY`]-th after it is also rebuilt here and compared by hash (which
    /// also checks which transactions the runtime refused); executing each of them a second
    /// time cost a validator that lags at saturation a third of its block executions.
    pub(super) fn check_synced_block(&mut self, fb: &FinishedBlock) -> Result<(), String> {
        let b = fb.index;
        let num = |x: u64| -> Result<<B::Header as HeaderT>::Number, String> {
            x.try_into().map_err(|_| "overflow".to_string())
        };
        let chain = self.client.hash(num(b)?).map_err(|e| e.to_string())?;
        let parent = self.client.hash(num(b - 1)?).map_err(|e| e.to_string())?;
        if let (Some(chain), Some(parent)) = (chain, parent) {
            let diverged = |what: String| {
                format!(
                    "SAFETY: block #{b} on chain ({chain}) is not the core's block #{b}: {what}; \
                     deterministic block building diverged; refusing to continue"
                )
            };
            let (Some(header), Some(body)) = (
                self.client.header(chain).map_err(|e| e.to_string())?,
                self.client.block_body(chain).map_err(|e| e.to_string())?,
            ) else {
                // Pruned (a node far behind with a small --blocks-pruning): nothing to check.
                log::warn!(target: LOG, "synced block #{b} has no header or body here to check it against the core's");
                return self.storage.forget_pending(b).map_err(|e| e.to_string());
            };
            match crate::builder::checkpoint_of(&header) {
                Some(c)
                    if c.index == b
                        && c.checkpoint == fb.checkpoint
                        && c.next_rotation == fb.next_rotation
                        && c.floors == fb.floors => {}
                other => return Err(diverged(format!("its header commits to {other:?}"))),
            }
            let included = crate::builder::included_in_body::<B>(&*self.classifier, fb, &body)
                .map_err(diverged)?;
            let kept: std::collections::BTreeSet<&H256> = included.iter().collect();
            let mut skipped = pool_hashes(fb);
            skipped.retain(|h| !kept.contains(h));
            self.client_submissions.mark_unordered(&skipped);
            // The first synced block after a start is rebuilt, then every REBUILD_SYNCED_EVERY-th.
            let rebuild = self.fin.synced_checked.is_multiple_of(REBUILD_SYNCED_EVERY);
            self.fin.synced_checked += 1;
            if rebuild {
                match build_block::<B, BE, C>(
                    &*self.client,
                    &*self.classifier,
                    parent,
                    num(b - 1)?,
                    fb,
                ) {
                    Ok(built) if built.built.block.hash() != chain => {
                        return Err(diverged(format!(
                            "rebuilt here it is {}",
                            built.built.block.hash()
                        )));
                    }
                    Ok(_) => {
                        log::debug!(target: LOG, "block #{b} from sync matches the local build")
                    }
                    Err(e) => {
                        log::warn!(target: LOG, "cannot re-execute synced block #{b} to check it ({e})")
                    }
                }
            }
            self.forget_included(b, &included);
        }
        self.storage.forget_pending(b).map_err(|e| e.to_string())
    }

    /// Own transactions that block `b` included are done: only the ones it skipped may be
    /// proposed again (the pool may take longer than the grace period to drop included ones).
    pub(super) fn forget_included(&mut self, b: u64, included: &[H256]) {
        self.proposer.included(b, included);
    }

    pub(super) async fn vote_on(&mut self, b: u64, built: Built<B>) -> Result<(), String> {
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
        self.client_submissions.mark_unordered(&built.skipped);
        self.fin.tally.own_vote(signed.clone());
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
        self.fin.next_vote_resend_ms = self.now + 2_000;
        self.fin.awaiting_since_ms = self.now;
        self.built
            .put(block.hash(), block.extrinsics().to_vec(), changes);
        self.fin.awaiting = Some(Awaiting {
            number: b,
            block,
            vote: signed,
            included: built.included,
            skipped: built.skipped,
            voted_at: std::time::Instant::now(),
        });
        self.try_finalize().await
    }

    pub(super) async fn try_finalize(&mut self) -> Result<(), String> {
        let Some(a) = self.fin.awaiting.as_ref() else {
            return Ok(());
        };
        let cert = match self.fin.tally.verdict(&a.vote.body, self.membership.q()) {
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
            Verdict::Certified(cert) => cert,
        };
        let a = self.fin.awaiting.take().expect("checked above; qed");
        let (header, body) = a.block.clone().deconstruct();
        let hash = header.hash();
        let changes = self.built.take_to_import(&hash);
        let number: <B::Header as HeaderT>::Number = a.number.try_into().map_err(|_| "overflow")?;
        // The import queue took the changes for a certified copy that arrived by sync: once
        // that copy is in the chain there is nothing to import (an import would execute the
        // block before finding it there); if its import failed, execute it here.
        let on_chain = || self.client.hash(number).ok().flatten() == Some(hash);
        let mut on_chain_now = on_chain();
        if changes.is_none() && !on_chain_now && self.built.taken_by_sync(&hash) {
            // The import queue is importing the copy with our changes: let it land rather than
            // execute the block a second time (bounded: if its import failed, execute here).
            let started = std::time::Instant::now();
            while !on_chain_now && started.elapsed() < crate::import::MAX_WAIT_FOR_SYNC_IMPORT {
                futures_timer::Delay::new(std::time::Duration::from_millis(5)).await;
                on_chain_now = on_chain();
            }
        }
        let on_chain = on_chain_now;
        if changes.is_some() && on_chain {
            // Sync imported it by executing it while this node was building it.
            self.fin.executed_twice += 1;
        }
        let in_chain = changes.is_none() && on_chain;
        if changes.is_none() && !in_chain && self.built.taken_by_sync(&hash) {
            // The import queue's import with our changes did not land in time: executed again.
            self.fin.executed_twice += 1;
        }
        if !in_chain {
            let mut params = BlockImportParams::new(BlockOrigin::Own, header);
            params.body = Some(body);
            params.state_action = match changes {
                Some(changes) => StateAction::ApplyChanges(StorageChanges::Changes(changes)),
                None => StateAction::Execute,
            };
            params.finalized = true;
            params.fork_choice = Some(ForkChoiceStrategy::Custom(true));
            params.justifications = Some(Justifications::from((BSMR_ENGINE_ID, cert.encode())));
            let result = self.client.import_block(params).await;
            self.built.imported(&hash);
            match result {
                Ok(ImportResult::Imported(_)) | Ok(ImportResult::AlreadyInChain) => {}
                Ok(other) => {
                    return Err(format!(
                        "importing own block #{} failed: {other:?}",
                        a.number
                    ))
                }
                Err(e) => return Err(format!("importing own block #{}: {e}", a.number)),
            }
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

    pub(super) fn after_final(&mut self, number: u64, hash: H256, included: &[H256]) {
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
        self.proposer.finalized(self.now);
    }
}

/// The pool hashes of every transaction `fb`'s batches carry, in block order.
fn pool_hashes(fb: &FinishedBlock) -> Vec<H256> {
    fb.batches
        .iter()
        .flat_map(|(_, txs)| txs.iter().map(pool_hash))
        .collect()
}

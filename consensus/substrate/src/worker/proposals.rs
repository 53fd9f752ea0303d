//! Between the transaction pool and the core: what to propose when ([`crate::pool_proposer`]),
//! and what a commit means for the pool.

use super::*;
use crate::stuck_futures::{Future, Verdict};
use sp_runtime::transaction_validity::{InvalidTransaction, TransactionValidityError};
use sp_transaction_pool::runtime_api::TaggedTransactionQueue;
use std::sync::atomic::Ordering;

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    /// The core proposed a batch of ours: track its transactions until its block.
    pub(super) fn on_proposed(&mut self, id: CommandId, txs: &[bsmr_consensus_core::Tx]) {
        let hashes: Vec<H256> = txs.iter().map(pool_hash).collect();
        if self.proposer.proposed(id, hashes.clone(), self.now) {
            for h in hashes {
                self.status
                    .set_tx(h, CommandStatus::Proposed { batch: hex(&id) });
            }
        }
    }

    /// The core checked and replied to another validator's batch `by`: the proposal policy
    /// holds what of ours it carries ([`PoolProposer::core_checked`]).
    pub(super) fn on_checked(&mut self, by: CommandId, taken: &[bsmr_consensus_core::Tx]) {
        let taken: Vec<H256> = taken.iter().map(pool_hash).collect();
        let submissions = &self.client_submissions;
        self.proposer
            .core_checked(by, taken, &|h| submissions.contains(h), self.now);
    }

    /// Command `id` lands in no block (decided Noop, a fence behind the built blocks, void
    /// below the floors): what it held of our clients' transactions goes at once.
    pub(super) fn on_lands_nowhere(&mut self, id: CommandId) {
        if let Some(txs) = self.proposer.own_txs(&id) {
            self.client_submissions.mark_unordered(txs);
        }
        self.proposer.void_elsewhere(&id, self.now);
    }

    pub(super) fn on_committed(&mut self, inst: InstanceId, value: &Value, view: u32) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        let own = self.proposer.decided(&id).cloned();
        // A Noop lands in no block: the core says so (`Output::LandsNowhere`).
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
                    .observe(self.now.saturating_sub(own.at) as f64 / 1000.0);
            }
            // Decided with its value: its transactions are ordered, whatever becomes of us; the
            // time they took measures the gossip hold's stretch.
            self.client_submissions.mark_decided(&own.txs);
            for h in own.txs {
                self.status
                    .set_tx(h, CommandStatus::Committed { batch: hex(&id) });
            }
        }
    }

    // ------------------------------------------------------------------ transactions

    /// Another member announced its batch. The senders of its transactions not submitted here
    /// count as spread over validators: their client transactions here are gossiped at once
    /// (`client_txs.rs`). And its transactions whose senders have a future transaction in our
    /// pool, and that our pool lacks, go into it (validated by the pool like gossip, on its own
    /// task): a sender's later nonce submitted here then becomes ready as soon as the earlier
    /// one, submitted elsewhere, is proposed there. Other senders' transactions are not
    /// adopted: the batch carries them to every validator, and validating each one in every
    /// pool was a runtime call and a signature check per validator for nothing
    /// (docs/performance.md, "Gossip a batch carries"). Only a member's own batch, of at most a
    /// batch's size, and at most [`MAX_ADOPTIONS`] submissions in flight: the message is not
    /// checked yet, so a Byzantine member must not be able to queue unbounded validation work.
    /// A client can keep a sender waiting (a nonce gap) to have its senders' transactions
    /// adopted, which is what every batch cost before.
    pub(super) fn adopt_announced(
        &mut self,
        from: ValidatorId,
        batch: &bsmr_consensus_core::SignedBatch,
        hashes: &[H256],
    ) {
        let txs = &batch.txs;
        if batch.header.body.proposer != from
            || Some(from) == self.me()
            || txs.len() > self.cfg.max_batch_txs
        {
            return;
        }
        // A copy of one of our own clients' transactions (a takeover, or one carried in front
        // of a later nonce) says nothing: the sender's transactions reach other validators only
        // if the batch also carries one that was not submitted here.
        let (classifier, submissions) = (&self.classifier, &self.client_submissions);
        let senders: Vec<(usize, AccountId)> = txs
            .iter()
            .zip(hashes)
            .enumerate()
            .filter(|(_, (_, h))| !submissions.contains(h))
            .filter_map(|(i, (tx, _))| classifier.classify(&tx.data).map(|info| (i, info.sender)))
            .collect();
        log::trace!(target: "bsmr::gossip", "senders in {}'s batch: {:?}", hex(&from[..4]), senders.iter().map(|(_, s)| hex(&s[..4])).collect::<Vec<_>>());
        submissions.note_elsewhere(senders.iter().map(|(_, s)| *s), std::time::Instant::now());
        if self.adoptions.load(Ordering::Relaxed) >= MAX_ADOPTIONS {
            return;
        }
        let waiting = self.waiting_senders();
        if waiting.is_empty() {
            return;
        }
        let xts: Vec<B::Extrinsic> = senders
            .iter()
            .filter(|(i, sender)| {
                waiting.contains(sender) && self.pool.ready_transaction(&hashes[*i]).is_none()
            })
            .filter_map(|(i, _)| codec::Decode::decode(&mut &txs[*i].data[..]).ok())
            .collect();
        if xts.is_empty() {
            return;
        }
        let pool = self.pool.clone();
        let at = self.client.info().best_hash;
        let adoptions = self.adoptions.clone();
        adoptions.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Ok(out) = pool.submit_at(at, TransactionSource::External, xts).await {
                let imported = out.iter().filter(|r| r.is_ok()).count() as u64;
                ADOPTED.fetch_add(imported, Ordering::Relaxed);
            }
            adoptions.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// The senders of the pool's future transactions. They are read again after
    /// [`WAITING_SENDERS_FOR_MS`] if the future queue's size changed, else after
    /// [`WAITING_SENDERS_STEADY_MS`] (an empty future queue costs nothing to read).
    fn waiting_senders(&mut self) -> std::collections::BTreeSet<AccountId> {
        let future = self.pool.status().future;
        let (at, count, senders) = &self.waiting_senders;
        let fresh_for = if *count == future {
            WAITING_SENDERS_STEADY_MS
        } else {
            WAITING_SENDERS_FOR_MS
        };
        if self.now < at.saturating_add(fresh_for) {
            return senders.clone();
        }
        let senders: std::collections::BTreeSet<AccountId> = if future == 0 {
            Default::default()
        } else {
            self.pool
                .futures()
                .iter()
                .filter_map(|tx| crate::pool_view::sender_of(&*self.classifier, tx.data()))
                .collect()
        };
        self.waiting_senders = (self.now, future, senders.clone());
        senders
    }

    /// Remove from the pool future transactions whose nonce is used: a copy of an included
    /// transaction that was imported into the future queue after its block's prune (it was
    /// still being validated); the pool revalidates only ready transactions, so it would stay.
    /// The single-state pool removes just that transaction from its future queue (and bans
    /// it); what waited on it becomes a chain's first transaction.
    fn drop_used(&self, used: Vec<H256>) {
        if used.is_empty() {
            return;
        }
        let pool = self.pool.clone();
        let at = self.client.info().best_hash;
        tokio::spawn(async move {
            let stale = TransactionValidityError::Invalid(InvalidTransaction::Stale);
            let report = used.into_iter().map(|h| (h, Some(stale))).collect();
            pool.report_invalid(Some(at), report).await;
        });
    }

    pub(super) fn propose_from_pool(&mut self) -> Result<(), String> {
        let now = self.now;
        // A leaderless member's batches carry its clients' transactions: gossip only what is not
        // ordered after the hold (`client_txs.rs`). Others gossip at once: an RPC node is no
        // proposer, and the baseline's transactions must reach its primary.
        let proposes_own = self.cfg.mode == Mode::Leaderless
            && self.me().is_some_and(|me| self.membership.contains(&me));
        self.client_submissions
            .set_gossip_hold(Duration::from_millis(if proposes_own {
                self.cfg.gossip_hold_ms
            } else {
                0
            }));
        let Some(me) = self.me() else { return Ok(()) };
        let core_pending = self.replica.as_ref().map_or(0, |r| r.pending_batches());
        let round_trip_ms = self
            .replica
            .as_ref()
            .map_or(0, |r| r.round_trip_timeout_ms());
        let submissions = &self.client_submissions;
        let arrivals_now = std::time::Instant::now();
        let waited_here = |h: &H256| {
            let waited = submissions.waited(h, arrivals_now)?;
            Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX))
        };
        let turn = Turn {
            now,
            me,
            membership: &self.membership,
            primary: self.primary,
            finalized: self.finalized().0,
            core_pending,
            round_trip_ms,
            submitted_here: &|h| submissions.contains(h),
            waited_here: &waited_here,
        };
        // A pass that could propose nothing reads neither the pool (its ready iterator copies
        // the whole ready set) nor the future queue: the stuck-future clocks run on, as they
        // must (an empty look would forget them and restart every wait).
        if !self.proposer.may_propose(&turn) {
            return Ok(());
        }
        // Ready transactions, then the future chains the pool will never promote.
        let futures = self.pool.futures();
        let views: Vec<Future> = futures
            .iter()
            .map(|tx| Future {
                hash: *tx.hash(),
                requires: tx.requires(),
                provides: tx.provides(),
            })
            .collect();
        let by_hash: BTreeMap<H256, &P::InPoolTransaction> =
            futures.iter().map(|tx| (*tx.hash(), tx)).collect();
        let client = &self.client;
        let best = client.info().best_hash;
        // The pool missed the predecessor iff the latest state takes the transaction as it is.
        // At most MAX_STUCK_CHECKS runtime calls per pass (an account can fill the future queue
        // with nonce gaps); the others wait for a later pass.
        let check = |h: &H256| {
            let Some(tx) = by_hash.get(h) else {
                return Verdict::Waits;
            };
            let xt = (**tx.data()).clone();
            let validity = client.runtime_api().validate_transaction(
                best,
                sp_runtime::transaction_validity::TransactionSource::External,
                xt,
                best,
            );
            let verdict = match &validity {
                Ok(Ok(valid)) if valid.requires.is_empty() => Verdict::Applies,
                Ok(Err(TransactionValidityError::Invalid(InvalidTransaction::Stale))) => {
                    Verdict::Used
                }
                _ => Verdict::Waits,
            };
            log::debug!(target: "bsmr::pool", "waiting future transaction {h:?}: {verdict:?} ({validity:?})");
            verdict
        };
        let found = self.stuck_futures.stuck(
            &views,
            now,
            self.cfg.owner_delay_ms,
            MAX_STUCK_CHECKS,
            check,
        );
        if !views.is_empty() {
            log::debug!(
                target: "bsmr::pool",
                "{} future transactions, {} offered for proposal, {} used ones dropped",
                views.len(),
                found.offer.len(),
                found.used.len(),
            );
        }
        self.drop_used(found.used);
        let stuck = found
            .offer
            .into_iter()
            .filter_map(|h| by_hash.get(&h))
            .map(|tx| (*tx.hash(), encoder(tx.data().clone())));
        let ready = self
            .pool
            .ready()
            .map(|tx| (*tx.hash(), encoder(tx.data().clone())))
            .chain(stuck);
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
}

/// Submissions of other members' batches to our pool at most in flight at once.
pub(super) const MAX_ADOPTIONS: usize = 4;
/// How long the senders of the pool's future transactions are taken as read while the future
/// queue's size changes ...
const WAITING_SENDERS_FOR_MS: u64 = 50;
/// ... and while it stays the same.
const WAITING_SENDERS_STEADY_MS: u64 = 500;
/// Transactions of other validators' batches this process's pool imported, for `bsmr_status`.
static ADOPTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Transactions of other validators' batches this process's pool imported (adoption).
pub(crate) fn adopted() -> u64 {
    ADOPTED.load(Ordering::Relaxed)
}
/// Waiting future chains checked against the latest state at most per proposal pass.
const MAX_STUCK_CHECKS: usize = 16;

/// The encoded bytes of a pool transaction, made only if the policy takes it.
fn encoder<X: Encode>(tx: Arc<X>) -> impl Fn() -> Vec<u8> {
    move || tx.encode()
}

//! Misbehaviour proofs the core found: kept per accused validator and epoch
//! ([`crate::reports`]) and submitted on chain.

use super::*;

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    /// Count and log a proof, and queue it for the chain (once per accused validator and epoch:
    /// the runtime records one offence per epoch).
    pub(super) fn on_misbehaviour(&mut self, proof: Proof) {
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
    pub(super) async fn submit_reports(&mut self) {
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
            // Recorded before the pool sees it, so the pool's import notification already finds
            // it a client's (the RPC view gossips only those at once).
            self.client_submissions.record(self.pool.hash_of(&xt));
            match self.pool.submit_one(at, TransactionSource::Local, xt).await {
                Ok(hash) => {
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
}

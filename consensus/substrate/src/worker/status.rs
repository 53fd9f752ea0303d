//! What the engine shows RPC (`bsmr_status`) and Prometheus: the set, peers, heights, the
//! proposal and block counters, the next checkpoint leader; published every 200 ms.

use super::*;

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    pub(super) fn publish_status(&mut self) {
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
            .link
            .peers
            .values()
            .filter(|v| v.as_ref().is_some_and(|k| m.contains(k)))
            .count() as u32;
        s.last_finalized = fin;
        s.signatures_verified = crate::crypto::signatures_verified();
        s.signatures_made = crate::crypto::signatures_made();
        let offers = crate::builder::block_offers();
        s.block_txs_offered = offers.offered;
        s.block_txs_refused = offers.refused;
        s.block_txs_refused_stale = offers.stale;
        s.block_txs_refused_future = offers.future;
        let proposed = self.proposer.counts();
        (s.txs_proposed_own, s.txs_proposed_others) = (proposed.own, proposed.others());
        s.txs_proposed_carried = proposed.carried;
        s.txs_covered = proposed.covered;
        s.txs_from_peers = crate::pool_view::imported_from_peers();
        s.txs_adopted = super::proposals::adopted();
        s.client_txs_gossiped = crate::pool_view::gossiped_at_once();
        s.blocks_from_sync = self.fin.synced_checked;
        s.blocks_executed_twice = self.fin.executed_twice;
        if let Some((next, rotation)) = rotation {
            s.next_checkpoint_leader = Some(hex(&rotation.leader(m, next, 0)));
            s.skipped_checkpoint_leaders = rotation.skipped(m, next).map(|v| hex(v)).collect();
        }
        if let Some(r) = &self.replica {
            let st = r.stats();
            s.last_block = st.built;
            s.pending_batches = r.pending_batches() as u64;
            s.send_window_bytes = r.send_window();
            s.round_trip_timeout_ms = r.round_trip_timeout_ms();
            s.undecided_instances = r.undecided().len() as u64;
        }
        if let Some(mm) = &self.metrics {
            mm.validator_peers.set(s.connected_validators as u64);
            mm.send_window.set(s.send_window_bytes.unwrap_or(0));
            mm.round_trip.set(s.round_trip_timeout_ms);
        }
        self.status.set(s);
    }
}

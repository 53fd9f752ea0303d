//! Recovery: catching up by finished blocks, the settled exchange and rejoining from the chain,
//! and the periodic resend of what is stalled.

use super::*;

impl Replica {
    pub(super) fn on_sync_request(&mut self, from: ValidatorId, b: BlockIndex) {
        for blk in self.catch_up.serve(b) {
            self.send(from, Message::SyncBlock(blk));
        }
    }

    pub(super) fn on_sync_block(&mut self, from: ValidatorId, blk: FinishedBlock) {
        if !self.catch_up.offer(from, blk, self.built) {
            return;
        }
        // Adopt every consecutive block that f+1 validators vouch for.
        let before = self.built;
        while let Some(blk) = self
            .catch_up
            .vouched(self.built + 1, self.membership().one_correct())
        {
            self.adopt(blk);
        }
        if self.built >= before + SYNC_BATCH {
            // A full batch was adopted: keep pulling.
            let next = self.built + 1;
            self.outbox.ask_others(Message::SyncRequest(next));
        }
    }

    pub(super) fn adopt(&mut self, blk: FinishedBlock) {
        // f+1 identical blocks: at least one correct validator built it. Its marks go out in one
        // write with the block meta (a crash between them must not restart with the marks and the
        // old position): everything up to the block meta is merged below.
        let write = self.outbox.begin_write();
        let mut ops = vec![];
        for (h, _) in &blk.batches {
            let id = h.id();
            ops.extend(self.record_decided(h.proposer, h.seq, id, true));
        }
        self.persist(ops);
        let b = blk.index;
        self.chain.take(&ChainPosition {
            index: b,
            checkpoint: blk.checkpoint,
            timestamp_ms: blk.timestamp_ms,
            next_rotation: blk.next_rotation.clone(),
            floors: blk.floors.clone(),
        });
        for (h, _) in &blk.batches {
            let id = h.id();
            self.committed.remove(&id);
            let inst = InstanceId::Cmd {
                proposer: h.proposer,
                seq: h.seq,
                id,
            };
            self.collect_garbage_cmd(inst, b);
        }
        self.finish_block_with(blk, write);
        self.advance_ckpts();
        self.try_build_blocks();
    }

    /// Ask what is settled at `pos` (the same question is kept a while, see
    /// [`SettledExchange::ask`]).
    pub(super) fn ask_settled(&mut self, pos: ChainPosition) {
        let at = self.settled.ask(pos, self.built, self.now);
        let epoch = self.membership().epoch;
        self.outbox
            .ask_others(Message::SettledRequest { epoch, at });
    }

    /// Answer what is settled at block `at` (see [`SettledExchange::answer`]).
    pub(super) fn on_settled_request(&mut self, from: ValidatorId, epoch: Epoch, at: BlockIndex) {
        if epoch != self.membership().epoch {
            return;
        }
        let committed = self.committed.headers();
        let answer = self.settled.answer(
            from,
            at,
            self.built,
            &self.cfg.membership,
            &self.record,
            committed,
        );
        if let Some(proposers) = answer {
            let msg = Message::Settled {
                epoch,
                at,
                proposers,
            };
            self.send(from, msg);
        }
    }

    pub(super) fn on_settled(
        &mut self,
        from: ValidatorId,
        epoch: Epoch,
        at: BlockIndex,
        proposers: Vec<SettledSeqs>,
    ) {
        if epoch == self.membership().epoch
            && from != self.me
            && self
                .settled
                .on_claim(from, at, proposers, self.built, &self.cfg.membership)
        {
            self.try_rejoin();
        }
    }

    /// Rejoin once the settled exchange has enough claims (see [`SettledExchange::ready`]).
    pub(super) fn try_rejoin(&mut self) {
        let ready = self.settled.ready(
            &self.cfg.membership,
            self.built,
            self.now,
            self.cfg.resend_ms,
        );
        if let Some((pos, settled)) = ready {
            self.rejoin(pos, settled);
        }
    }

    /// Some proposer has more than 2W decided seqs above its watermark: a correct proposer
    /// cannot get that far ahead of an undecided seq (replies stop W above it), so the seq at our
    /// watermark was decided without us learning of it.
    pub(super) fn watermark_stuck(&self) -> bool {
        self.membership()
            .validators()
            .iter()
            .any(|p| self.record.decided_above_watermark(p) > 2 * self.cfg.window as usize)
    }

    /// Ask for the decisions, and so the headers, of commands decided here without their header
    /// where they hold a proposer's watermark back. A Byzantine proposer that showed a batch
    /// to a few replicas only leaves the others' watermarks behind theirs, and a replica judges
    /// floors and the reach of replies by its watermark: left apart, the two sides refuse each
    /// other's checkpoint work for good (docs/consensus.md, "Headers of decided commands").
    /// Only the seq at each proposer's watermark is asked about (the one that holds it), each
    /// id of one peer, rotating, so that one proposer's uncountable marks cannot crowd out
    /// another's and no mark costs a broadcast and n - 1 certificates per resend.
    fn ask_headers_of_uncounted(&mut self) {
        let asks: Vec<InstanceId> = self
            .membership()
            .validators()
            .iter()
            .flat_map(|p| {
                self.record
                    .uncounted_from_watermark(p, 1)
                    .into_iter()
                    .map(move |(seq, id)| InstanceId::Cmd {
                        proposer: *p,
                        seq,
                        id,
                    })
            })
            .collect();
        self.fetch_in_turn(asks);
    }

    /// Ask one peer for each of `insts`, the peers taken in turn across resends.
    fn fetch_in_turn(&mut self, insts: Vec<InstanceId>) {
        let peers: Vec<ValidatorId> = self
            .membership()
            .validators()
            .iter()
            .copied()
            .filter(|v| *v != self.me)
            .collect();
        if peers.is_empty() {
            return;
        }
        for (k, inst) in insts.into_iter().enumerate() {
            let to = peers[(self.resend_rounds as usize + k) % peers.len()];
            self.outbox.send(to, Message::Fetch(inst));
        }
    }

    /// Record a decision: the mark (nothing below the floor).
    pub(super) fn record_decided(
        &mut self,
        p: ValidatorId,
        seq: Seq,
        id: CommandId,
        counts: bool,
    ) -> Vec<StorageOp> {
        if seq < self.record.floor(&p) {
            return vec![];
        }
        self.record.mark(p, seq, id, counts);
        let counts = self.record.counts(&p, seq, &id);
        vec![StorageOp::Put(
            Key::Decided(p, seq, id),
            Record::Marked(counts),
        )]
    }

    /// Raise the decided record to a taken block's agreed floors (our own next seq never falls
    /// below ours); returns the writes deleting the marks pruned under them (the floors
    /// themselves are stored with the block meta).
    pub(super) fn take_floors(&mut self, floors: &Floors) -> Vec<StorageOp> {
        let mut ops = vec![];
        for (p, floor) in floors {
            let pruned = self.record.raise_floor(*p, *floor);
            ops.extend(
                pruned
                    .into_iter()
                    .map(|(p, s, i)| StorageOp::Delete(Key::Decided(p, s, i))),
            );
            if *p == self.me {
                self.own.skip_below(*floor);
            }
        }
        ops
    }

    /// Continue after chain block `pos`: take its position, count what f+1 validators vouch
    /// settled as decided, and drop every command we hold that is now known settled.
    pub(super) fn rejoin(&mut self, pos: ChainPosition, settled: BTreeMap<ValidatorId, Combined>) {
        let (from, c) = (self.built, pos.index);
        if self.chain.last() >= c && self.chain.id(c).is_some_and(|k| k != pos.checkpoint) {
            // We decided another K_c than the certified chain holds: never adopt over it (the
            // engine halts when it checks the block it builds against the chain).
            return;
        }
        // Everything written below goes out as one write with the block meta: a crash in the
        // middle must not leave raised floors with the old block position.
        let write = self.outbox.begin_write();
        // The floors are c's agreed floors, from the certified chain; the claims add exact
        // marks above them.
        let mut ops = self.take_floors(&pos.floors);
        let mut fetch = vec![];
        for (
            p,
            Combined {
                decided,
                unvouched,
                seqs,
                ..
            },
        ) in &settled
        {
            for seq in seqs {
                self.record.mark_seq(*p, *seq);
            }
            fetch.extend(unvouched.iter().map(|(seq, id)| InstanceId::Cmd {
                proposer: *p,
                seq: *seq,
                id: *id,
            }));
            for (seq, id) in decided {
                ops.extend(self.record_decided(*p, *seq, *id, true));
            }
            if *p == self.me {
                let top = decided.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
                self.own.skip_below(top);
            }
        }
        self.persist(ops);
        // Commands now known decided: in a block up to c unless we know it lands later.
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.insts.ids() {
            if let InstanceId::Cmd { proposer, seq, id } = inst {
                refs.insert((*proposer, *seq, *id));
            }
        }
        for e in self.dds.entries() {
            if let DepKind::Txs { seq } = e.dep.kind {
                refs.insert((e.dep.proposer, seq, e.dep.id));
            }
        }
        for (id, b) in self.payloads.iter() {
            let h = &b.header.body;
            if !h.is_checkpoint() {
                refs.insert((h.proposer, h.seq, *id));
            }
        }
        let mut requeue: Vec<(Seq, Vec<Tx>)> = vec![];
        for (p, seq, id) in refs {
            let lands_later = self.committed.get(&id).is_some_and(|k| k.after >= c);
            if !self.record.is_decided(&p, seq, &id) || lands_later {
                continue;
            }
            let maybe_void = seq < crate::floors::floor_of(&pos.floors, &self.me);
            if p == self.me && (!self.committed.contains(&id) || maybe_void) {
                // Ours, outcome unknown (in a skipped block, Noop, or void below c's floor):
                // propose its transactions again; a copy already in a block is skipped by every
                // builder.
                if let Some(b) = self.payloads.get(&id) {
                    requeue.push((seq, b.txs.clone()));
                }
            }
            self.collect_garbage_cmd(
                InstanceId::Cmd {
                    proposer: p,
                    seq,
                    id,
                },
                c,
            );
        }
        self.own.requeue(requeue);
        // Checkpoint candidates up to c.
        let stale: Vec<CommandId> = self
            .dds
            .entries()
            .filter(|e| matches!(e.dep.kind, DepKind::Ckpt { index, .. } if index <= c))
            .map(|e| e.dep.id)
            .collect();
        let mut ops = vec![];
        for id in stale {
            self.dds.remove(&id);
            self.payloads.remove(&id);
            ops.push(StorageOp::Delete(Key::Reply(id)));
        }
        self.persist(ops);
        self.chain.rejoin_at(&pos);
        self.dds.restore_counters(c, 0);
        self.built = c;
        self.last_build_ms = self.now;
        self.catch_up.rejoined(c);
        self.gc(c);
        let meta = self.meta();
        self.persist(vec![meta]);
        self.outbox.end_write(write);
        if c > from {
            self.outbox.emit(Output::Rejoined { from, to: c });
        }
        // Peers still hold the few blocks finished since c, and the decisions some of them
        // listed but too few to vouch for.
        if self.membership().n() > 1 {
            self.outbox.ask_others(Message::SyncRequest(c + 1));
            let fetch: Vec<InstanceId> = fetch
                .into_iter()
                .filter(|i| !self.ctx().is_decided_inst(i))
                .take(64)
                .collect();
            for inst in fetch {
                self.outbox.ask_others(Message::Fetch(inst));
            }
        }
        self.advance_ckpts();
        self.try_build_blocks();
        self.try_propose_own();
    }

    pub(super) fn resend(&mut self) {
        let now = self.now;
        let horizon = self.cfg.resend_ms;
        for b in self.collector.to_announce() {
            self.broadcast(Message::Announce(b));
        }
        let payloads = &self.payloads;
        let msgs = self
            .insts
            .stalled_messages(now, horizon, self.chain.next(), |v| payloads.of_value(v));
        for m in msgs {
            if self.membership().n() > 1 {
                self.outbox.ask_others(m);
            }
        }
        if self.membership().n() == 1 {
            return;
        }
        self.resend_rounds += 1;
        self.ask_headers_of_uncounted();
        // Ask for finished blocks when none was built for a while, or when the chain shows we are
        // behind; when idle and the chain is ahead, also what is settled there (rejoining).
        let chain_ahead = self.catch_up.chain_ahead_by(self.built, 1);
        let idle = now.saturating_sub(self.last_build_ms) >= 2 * horizon;
        if idle || chain_ahead {
            let next = self.built + 1;
            self.outbox.ask_others(Message::SyncRequest(next));
        }
        // Rejoin from the chain when stuck behind it, or when so far behind that peers will soon
        // no longer hold the blocks to catch up with.
        let far_behind = self
            .catch_up
            .chain_ahead_by(self.built, (self.cfg.retain_sync_blocks / 2).max(4));
        self.try_rejoin();
        if (idle && chain_ahead) || far_behind {
            if let Some(head) = self.catch_up.chain_head().cloned() {
                self.ask_settled(head);
            }
        } else if !chain_ahead && (self.watermark_stuck() || self.settled.floor_gap()) {
            // Caught up, but a proposer's watermark waits on a seq nobody listed when we
            // rejoined, or we refused a candidate whose floor passed it: ask again about our
            // own last block; the marks f+1 peers vouch for fill the gap.
            self.settled.clear_floor_gap();
            if let Some(own) = self.chain.position(self.built) {
                self.ask_settled(own);
            }
        }
        if !chain_ahead {
            return;
        }
        // Behind the chain: the next checkpoint made no progress here for a while, so ask for
        // its decision (peers do not resend votes of decided instances).
        let next = InstanceId::Ckpt(self.chain.next());
        let stalled = self
            .insts
            .get(&next)
            .is_none_or(|st| now.saturating_sub(st.last_progress_ms) >= horizon);
        if stalled {
            self.outbox.ask_others(Message::Fetch(next));
        }
        // ... and when the next block's checkpoint is decided but some of its commands made no
        // progress here, ask one peer each (rotating) for their decisions.
        let Some(k) = self.chain.decided(self.built + 1) else {
            return;
        };
        let floors = k.floors();
        let missing: Vec<InstanceId> = k
            .deps
            .iter()
            .filter(|d| {
                matches!(d.kind, DepKind::Txs { .. })
                    && !crate::floors::voids(floors, d)
                    && !self.ctx().dep_decided(d)
            })
            .map(|d| d.instance())
            .filter(|i| {
                self.insts
                    .get(i)
                    .is_none_or(|st| now.saturating_sub(st.last_progress_ms) >= horizon)
            })
            .take(16)
            .collect();
        self.fetch_in_turn(missing);
    }
}

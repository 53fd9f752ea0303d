//! Recovery: catching up by finished blocks, the settled exchange and rejoining from the chain,
//! and the periodic resend of what is stalled.

use super::*;

impl Replica {
    pub(super) fn on_sync_request(&mut self, from: ValidatorId, b: BlockIndex) {
        self.recovery.serve(&mut self.outbox, from, b);
    }

    pub(super) fn on_sync_block(&mut self, from: ValidatorId, blk: FinishedBlock) {
        if !self.recovery.offer(from, blk, self.execution.built()) {
            return;
        }
        // Adopt every consecutive block that f+1 validators vouch for.
        let before = self.execution.built();
        while let Some(blk) = self
            .recovery
            .vouched(self.execution.built() + 1, self.membership().one_correct())
        {
            self.adopt(blk);
        }
        if self.execution.built() >= before + SYNC_BATCH {
            // A full batch was adopted: keep pulling.
            let next = self.execution.built() + 1;
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
            self.execution.forget(&id);
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

    /// Answer what is settled at block `at`.
    pub(super) fn on_settled_request(&mut self, from: ValidatorId, epoch: Epoch, at: BlockIndex) {
        self.recovery
            .answer_settled(&ctx!(self), &mut self.outbox, from, epoch, at);
    }

    /// A claim of what is settled at block `at`: rejoin once enough agree.
    pub(super) fn on_settled(
        &mut self,
        from: ValidatorId,
        epoch: Epoch,
        at: BlockIndex,
        proposers: Vec<SettledSeqs>,
    ) {
        let ctx = ctx!(self);
        if let Some(r) = self.recovery.on_settled(&ctx, from, epoch, at, proposers) {
            self.rejoin(r.pos, r.settled);
        }
    }

    /// Record a decision in the decided record (nothing below the floor).
    pub(super) fn record_decided(
        &mut self,
        p: ValidatorId,
        seq: Seq,
        id: CommandId,
        counts: bool,
    ) -> Vec<StorageOp> {
        self.record.record(p, seq, id, counts).into_iter().collect()
    }

    /// Take a block's agreed floors: the decided record rises to them, and our own next seq
    /// never falls below ours. Returns the writes deleting the marks pruned under them.
    pub(super) fn take_floors(&mut self, floors: &Floors) -> Vec<StorageOp> {
        for (_, floor) in floors.iter().filter(|(p, _)| *p == self.me) {
            self.proposer.skip_below(*floor);
        }
        self.record.take_floors(floors)
    }

    /// Continue after chain block `pos`: take its position, count what f+1 validators vouch
    /// settled as decided, and drop every command we hold that is now known settled.
    pub(super) fn rejoin(&mut self, pos: ChainPosition, settled: BTreeMap<ValidatorId, Combined>) {
        let (from, c) = (self.execution.built(), pos.index);
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
                self.proposer.skip_below(top);
            }
        }
        self.persist(ops);
        // Commands now known decided: in a block up to c unless we know it lands later.
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.single_shot.instances().ids() {
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
            let committed = self.execution.committed();
            let lands_later = committed.get(&id).is_some_and(|k| k.after >= c);
            if !self.record.is_decided(&p, seq, &id) || lands_later {
                continue;
            }
            let maybe_void = seq < crate::floors::floor_of(&pos.floors, &self.me);
            if p == self.me && (!committed.contains(&id) || maybe_void) {
                // Ours, outcome unknown (in a skipped block, Noop, or void below c's floor):
                // propose its transactions again; a copy already in a block is skipped by every
                // builder.
                if let Some(b) = self.payloads.get(&id) {
                    requeue.push((seq, b.txs.to_vec()));
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
        self.proposer.requeue(requeue);
        if c > from {
            self.proposer.rejoined();
        }
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
        self.execution.rejoined(c, self.now);
        self.recovery.rejoined(c);
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
        let (now, period) = (self.now, self.cfg.resend_ms);
        self.proposer
            .reannounce_due(&ctx!(self), &mut self.outbox, period);
        let payloads = &self.payloads;
        let members = self.cfg.membership.validators();
        let first = self.proposer.round_trip().first_wait(period);
        let msgs = self.single_shot.instances_mut().stalled_messages(
            now,
            (period, first),
            self.chain.next(),
            members,
            |v| payloads.of_value(v),
        );
        if self.membership().n() > 1 {
            let me = self.me;
            for (to, m) in msgs {
                match to {
                    Some(v) if v == me => {}
                    Some(v) => self.outbox.send(v, m),
                    None => self.outbox.ask_others(m),
                }
            }
        }
        if self.membership().n() == 1 {
            return;
        }
        let (plan, rejoin) = self.recovery.resend_before_rejoin(
            &ctx!(self),
            &mut self.outbox,
            self.execution.last_build_ms(),
        );
        if let Some(r) = rejoin {
            self.rejoin(r.pos, r.settled);
        }
        let single_shot = &self.single_shot;
        self.recovery
            .resend_after_rejoin(&ctx!(self), &mut self.outbox, plan, |i| {
                single_shot.last_progress(i)
            });
    }
}

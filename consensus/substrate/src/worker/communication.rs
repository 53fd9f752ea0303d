//! Talking to peers: core messages as notifications (with the hello that binds a peer to a
//! validator key), the fetch client and server (core messages, block certificates), and which
//! peers are members.

use super::*;

/// The engine's side of the network: the notification protocol and its peers (each bound to a
/// validator key by its hello, or not yet), fetch requests both ways, and the per-peer rate
/// limit on what they send.
pub(super) struct Links {
    pub(super) network: Arc<dyn NetworkService>,
    pub(super) notifications: Box<dyn NotificationService>,
    pub(super) fetch_protocol: ProtocolName,
    pub(super) fetch_in: async_channel::Receiver<IncomingRequest>,
    pub(super) fetch_out: FuturesUnordered<BoxFuture<'static, FetchAnswer>>,
    pub(super) peers: BTreeMap<PeerId, Option<ValidatorId>>,
    pub(super) rate: RateLimit,
}

/// What one of this node's fetch requests asked for.
pub(super) enum Asked {
    /// Core messages from this validator.
    Core(ValidatorId),
    /// The certificate of this block number.
    Certificate(u64),
}

/// The outcome of one of this node's fetch requests.
pub(super) struct FetchAnswer {
    pub(super) peer: PeerId,
    pub(super) asked: Asked,
    pub(super) result: Result<Vec<u8>, String>,
}

/// Fetch requests in flight at most; the core asks again on its resend timers.
pub(super) const MAX_FETCHES_IN_FLIGHT: usize = 256;
/// A built block still waiting for votes this long asks peers for its certificate. It asks at
/// once when the network is visibly past it (see `network_is_past`).
pub(super) const CERTIFICATE_FETCH_AFTER_MS: u64 = 4_000;

impl<B, BE, C, P> Engine<B, BE, C, P>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B> + 'static,
    C: EngineClient<B, BE>,
    P: TransactionPool<Block = B, Hash = H256> + 'static,
{
    pub(super) fn send_core(&mut self, to: Option<ValidatorId>, msg: &Message) {
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
        let bytes = Frame::Core(encode_message(msg)).encode_frame();
        let len = bytes.len() as u64;
        let sent = match to {
            Some(v) => match self.peer_of(&v) {
                Some(peer) => {
                    self.link.notifications.send_sync_notification(&peer, bytes);
                    1
                }
                None => 0,
            },
            None => self.broadcast_encoded(bytes),
        };
        if let Some(m) = &self.metrics {
            m.messages_sent
                .with_label_values(&[msg.kind()])
                .inc_by(sent);
            m.bytes_sent
                .with_label_values(&[msg.kind()])
                .inc_by(sent * len);
        }
    }

    pub(super) fn broadcast(&mut self, frame: &Frame) {
        self.broadcast_encoded(frame.encode_frame());
    }

    /// Send an encoded frame to every member peer; returns to how many.
    fn broadcast_encoded(&mut self, bytes: Vec<u8>) -> u64 {
        let peers = self.member_peers();
        for (p, _) in &peers {
            self.link
                .notifications
                .send_sync_notification(p, bytes.clone());
        }
        peers.len() as u64
    }

    /// Peers that said a valid Hello for a key of the current set.
    pub(super) fn member_peers(&self) -> Vec<(PeerId, ValidatorId)> {
        self.link
            .peers
            .iter()
            .filter_map(|(p, v)| v.filter(|k| self.membership.contains(k)).map(|k| (*p, k)))
            .collect()
    }

    // ------------------------------------------------------------------ fetch protocol

    pub(super) fn start_fetch(&mut self, peer: PeerId, asked: Asked, payload: Vec<u8>) {
        if self.link.fetch_out.len() >= MAX_FETCHES_IN_FLIGHT {
            return;
        }
        let (tx, rx) = oneshot::channel();
        self.link.network.start_request(
            peer,
            self.link.fetch_protocol.clone(),
            payload,
            None,
            tx,
            IfDisconnected::ImmediateError,
        );
        self.link.fetch_out.push(
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

    /// Have f + 1 validators, so at least one correct one, voted above block `number`? A correct
    /// validator votes for a block only after finalizing its parent, so block `number` is then
    /// final elsewhere and its certificate can be fetched.
    pub(super) fn network_is_past(&self, number: u64) -> bool {
        self.fin.tally.network_is_past(number, &self.membership)
    }

    /// Ask every validator peer for the certificate of block `number`.
    pub(super) fn request_certificate(&mut self, number: u64) {
        let payload = FetchRequest::Certificate { number }.encode();
        for (peer, _) in self.member_peers() {
            self.start_fetch(peer, Asked::Certificate(number), payload.clone());
        }
    }

    /// Serve a peer's fetch. A core fetch goes to the core as a message from the requester; the
    /// messages the core addresses to the requester form the response (sent after every other
    /// output, persists included, is applied: persist before send).
    pub(super) fn on_fetch_request(&mut self, req: IncomingRequest) -> Result<(), String> {
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
        if !self.link.rate.allow(&peer, self.now) {
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
        let from = match self.link.peers.get(&peer) {
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
        let outs = r.handle(self.now, bsmr_consensus_core::Input::Message { from, msg });
        let (mut answer, mut size, mut rest) = (vec![], 0u64, vec![]);
        for o in outs {
            match o {
                Output::Send { to: Some(v), msg } if v == from => {
                    let m = encode_message(&msg);
                    if answer.len() < fetch::MAX_RESPONSE_MESSAGES
                        && size + m.len() as u64 + 16 <= fetch::MAX_RESPONSE_SIZE
                    {
                        size += m.len() as u64 + 16;
                        if let Some(metrics) = &self.metrics {
                            metrics.messages_sent.with_label_values(&[msg.kind()]).inc();
                            metrics
                                .bytes_sent
                                .with_label_values(&[msg.kind()])
                                .inc_by(m.len() as u64);
                        }
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
    pub(super) fn certificate_of(&self, number: u64) -> Option<([u8; 32], Vec<u8>)> {
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
    pub(super) async fn on_fetch_answer(&mut self, a: FetchAnswer) -> Result<(), String> {
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
            self.link.network.report_peer(peer, fetch::cost::BAD_FETCH);
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
                        Ok(msg) => self.feed_peer_message(from, msg, false)?,
                        Err(_) => {
                            self.link.network.report_peer(peer, fetch::cost::BAD_FETCH);
                            break;
                        }
                    }
                }
            }
            (Asked::Certificate(number), FetchResponse::Certificate(Some((hash, just)))) => {
                if self.fin.awaiting.as_ref().map(|a| a.number) != Some(number) {
                    return Ok(());
                }
                let cert = match FinalityCertificate::decode_untrusted(&just) {
                    Ok(c) if c.vote.number == number && c.vote.hash == hash => c,
                    _ => {
                        self.link
                            .network
                            .report_peer(peer, fetch::cost::BAD_CERTIFICATE);
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
            _ => self.link.network.report_peer(peer, fetch::cost::BAD_FETCH),
        }
        Ok(())
    }

    pub(super) fn say_hello_to_all(&mut self) {
        let Some(s) = self.signer.clone() else { return };
        let bytes = hello(&self.link.network.local_peer_id(), &self.genesis, &*s).encode_frame();
        let peers: Vec<PeerId> = self.link.peers.keys().copied().collect();
        for p in peers {
            self.link
                .notifications
                .send_sync_notification(&p, bytes.clone());
        }
    }

    pub(super) fn peer_of(&self, v: &ValidatorId) -> Option<PeerId> {
        self.link
            .peers
            .iter()
            .find(|(_, x)| x.as_ref() == Some(v))
            .map(|(p, _)| *p)
    }

    pub(super) async fn on_network_event(&mut self, ev: NotificationEvent) -> Result<(), String> {
        match ev {
            NotificationEvent::ValidateInboundSubstream { result_tx, .. } => {
                let _ = result_tx.send(ValidationResult::Accept);
            }
            NotificationEvent::NotificationStreamOpened { peer, .. } => {
                self.link.peers.insert(peer, None);
                if let Some(s) = &self.signer {
                    let frame = hello(&self.link.network.local_peer_id(), &self.genesis, &**s);
                    self.link
                        .notifications
                        .send_sync_notification(&peer, frame.encode_frame());
                }
            }
            NotificationEvent::NotificationStreamClosed { peer } => {
                self.link.peers.remove(&peer);
                self.link.rate.remove(&peer);
            }
            NotificationEvent::NotificationReceived { peer, notification } => {
                self.on_notification(peer, &notification).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn on_notification(
        &mut self,
        peer: PeerId,
        bytes: &[u8],
    ) -> Result<(), String> {
        if !self.link.rate.allow(&peer, self.now) {
            self.link.network.report_peer(peer, cost::FLOOD);
            return Ok(());
        }
        let Some(frame) = Frame::decode_frame(bytes) else {
            self.link.network.report_peer(peer, cost::MALFORMED);
            return Ok(());
        };
        match frame {
            Frame::Hello(h) => match check_hello(&h, &peer, &self.genesis, &Sr25519Verifier) {
                Some(v) => {
                    // One peer per key: a newer connection replaces an older one. Membership is
                    // checked when messages are used, so a key that joins in a later epoch
                    // needs no new Hello.
                    self.link
                        .peers
                        .values_mut()
                        .filter(|x| x.as_ref() == Some(&v))
                        .for_each(|x| *x = None);
                    self.link.peers.insert(peer, Some(v));
                    log::debug!(target: LOG, "validator key {} speaks from {peer}", hex(&v));
                }
                None => self.link.network.report_peer(peer, cost::BAD_HELLO),
            },
            Frame::Core(bytes) => {
                let Some(Some(from)) = self.link.peers.get(&peer).copied() else {
                    return Ok(());
                };
                if !self.membership.contains(&from) {
                    return Ok(());
                }
                match decode_message(&bytes) {
                    Ok(msg) => self.feed_peer_message(from, msg, true)?,
                    Err(_) => self.link.network.report_peer(peer, cost::MALFORMED),
                }
            }
            Frame::Finality(v) => {
                if matches!(self.link.peers.get(&peer), Some(Some(k)) if self.membership.contains(k))
                {
                    self.on_vote(peer, v).await?;
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ blocks and finality
}

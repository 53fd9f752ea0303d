//! Prometheus metrics of the engine (all prefixed `bsmr_`).

use substrate_prometheus_endpoint::{
    register, Counter, CounterVec, Gauge, Histogram, HistogramOpts, Opts, PrometheusError,
    Registry, U64,
};

/// The engine's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Commands (batches) decided.
    pub commands_committed: Counter<U64>,
    /// Decided in view 0.
    pub fast_commits: Counter<U64>,
    /// Decided after a view change.
    pub slow_commits: Counter<U64>,
    /// Own batches: announce to local commit, seconds.
    pub commit_latency: Histogram,
    /// Dependency set sizes of decided commands.
    pub dependency_set_size: Histogram,
    /// View-change messages sent.
    pub view_changes: Counter<U64>,
    /// Blocks finalized by this engine.
    pub blocks_finalized: Counter<U64>,
    /// Own blocks: built and voted to certified (the finality round), seconds.
    pub block_finality: Histogram,
    /// Transactions included in finalized blocks.
    pub txs_finalized: Counter<U64>,
    /// Misbehaviour proofs produced.
    pub misbehaviour: Counter<U64>,
    /// Authenticated validator peers.
    pub validator_peers: Gauge<U64>,
    /// Bytes of own batches the congestion window lets be in flight (0: open, the seq window
    /// alone limits).
    pub send_window: Gauge<U64>,
    /// The round trip our own batches lately took to a quorum of replies, as a retransmission
    /// timeout (ms).
    pub round_trip: Gauge<U64>,
    /// Consensus messages handed to the network (notifications and fetch answers), per kind
    /// ([`Message::kind`]), one per peer.
    ///
    /// [`Message::kind`]: bsmr_consensus_core::Message::kind
    pub messages_sent: CounterVec<U64>,
    /// Their bytes, per kind.
    pub bytes_sent: CounterVec<U64>,
}

impl Metrics {
    /// Register on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, PrometheusError> {
        Ok(Metrics {
            commands_committed: register(
                Counter::new("bsmr_commands_committed_total", "Commands decided")?,
                registry,
            )?,
            fast_commits: register(
                Counter::new("bsmr_fast_commits_total", "Commands decided in view 0")?,
                registry,
            )?,
            slow_commits: register(
                Counter::new(
                    "bsmr_slow_commits_total",
                    "Commands decided after a view change",
                )?,
                registry,
            )?,
            commit_latency: register(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "bsmr_commit_latency_seconds",
                        "Own batches: announce to local commit",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ]),
                )?,
                registry,
            )?,
            dependency_set_size: register(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "bsmr_dependency_set_size",
                        "Dependencies of decided commands",
                    )
                    .buckets(vec![
                        0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0,
                    ]),
                )?,
                registry,
            )?,
            view_changes: register(
                Counter::new("bsmr_view_changes_total", "View changes sent")?,
                registry,
            )?,
            blocks_finalized: register(
                Counter::new("bsmr_blocks_finalized_total", "Blocks finalized")?,
                registry,
            )?,
            block_finality: register(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "bsmr_block_finality_seconds",
                        "Blocks this node built: its finality vote to the certificate's import",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ]),
                )?,
                registry,
            )?,
            txs_finalized: register(
                Counter::new(
                    "bsmr_transactions_finalized_total",
                    "Transactions in finalized blocks",
                )?,
                registry,
            )?,
            misbehaviour: register(
                Counter::new("bsmr_misbehaviour_proofs_total", "Misbehaviour proofs")?,
                registry,
            )?,
            validator_peers: register(
                Gauge::new("bsmr_validator_peers", "Authenticated validator peers")?,
                registry,
            )?,
            send_window: register(
                Gauge::new(
                    "bsmr_send_window_bytes",
                    "Bytes of own batches the congestion window lets be in flight (0: open)",
                )?,
                registry,
            )?,
            round_trip: register(
                Gauge::new(
                    "bsmr_round_trip_timeout_ms",
                    "Own batches' round trip to a quorum of replies, as a retransmission timeout",
                )?,
                registry,
            )?,
            messages_sent: register(
                CounterVec::new(
                    Opts::new(
                        "bsmr_messages_sent_total",
                        "Consensus messages handed to the network, one per peer, by kind",
                    ),
                    &["kind"],
                )?,
                registry,
            )?,
            bytes_sent: register(
                CounterVec::new(
                    Opts::new(
                        "bsmr_message_bytes_sent_total",
                        "Bytes of consensus messages handed to the network, by kind",
                    ),
                    &["kind"],
                )?,
                registry,
            )?,
        })
    }
}

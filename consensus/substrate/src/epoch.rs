//! Epochs on the engine side: the consensus membership of an on-chain validator set, and the
//! replica this node runs for it (seeded from the finalized chain when it has no state of its
//! own: a new epoch, or a validator joining late). The worker switches to a new epoch's replica
//! at the start index `epoch::next_epoch_start` gives (protocol.md, "Epochs").

use crate::aux_store::AuxStorage;
use crate::config::{EngineConfig, Mode};
use crate::crypto::{local_member_key, validator_ids, KeySource, KeystoreSigner, Sr25519Verifier};
use crate::hex;
use crate::LOG;
use bsmr_consensus_core::{Config as CoreConfig, Digest, Membership, Replica, Rotation, Signer};
use bsmr_primitives::BsmrApi;
use bsmr_sim::adversary::Adversary;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
use sc_client_api::{backend::Backend, AuxStore, StorageProvider};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_core::H256;
use sp_runtime::traits::Block as BlockT;
use std::sync::Arc;

/// The validator set the runtime records at finalized block `number`.
pub(crate) fn validator_set_at<B, C>(
    client: &C,
    number: u64,
) -> Result<bsmr_primitives::ValidatorSet, String>
where
    B: BlockT<Hash = H256>,
    C: ProvideRuntimeApi<B, Api: BsmrApi<B>> + HeaderBackend<B>,
{
    let hash = client
        .hash(number.try_into().map_err(|_| "block number overflow")?)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("block #{number} is missing"))?;
    client
        .runtime_api()
        .validator_set(hash)
        .map_err(|e| format!("reading the validator set at block #{number}: {e}"))
}

/// The consensus view of an on-chain validator set under `mode`.
pub(crate) fn membership_of(
    genesis: Digest,
    set: &bsmr_primitives::ValidatorSet,
    mode: Mode,
) -> Membership {
    let m = Membership::new(genesis, set.epoch, validator_ids(&set.validators));
    match mode {
        Mode::Leaderless => m,
        Mode::Leader => m.with_fixed_checkpoint_leader(),
    }
}

/// The replica of this node for `membership`, if the keystore holds a member key and the node
/// runs as a validator. A replica with no persisted state that starts above genesis (a new epoch,
/// or a validator joining late) starts from the finalized block: fence, built index, K_b id and
/// timestamp are seeded from the chain, so its first candidate or reply names the right base.
pub(crate) fn make_replica<B, BE, C>(
    client: &C,
    keys: &KeySource,
    validator: bool,
    membership: &Membership,
    set: &bsmr_primitives::ValidatorSet,
    storage: &mut AuxStorage<C>,
    engine: &EngineConfig,
) -> Result<(Option<Arc<KeystoreSigner>>, Option<Replica>), String>
where
    B: BlockT<Hash = H256>,
    BE: Backend<B>,
    C: HeaderBackend<B> + StorageProvider<B, BE> + AuxStore,
{
    let local = if validator {
        local_member_key(&keys.keystore, &set.validators)
    } else {
        None
    };
    let Some(public) = local else {
        log::info!(
            target: LOG,
            "👀 epoch {}: no bsmr key of the {} validators in the keystore{}: following and verifying",
            membership.epoch,
            membership.n(),
            if validator { "" } else { " (not started with --validator)" }
        );
        return Ok((None, None));
    };
    storage.load_checked().map_err(incompatible_state)?;
    let info = client.info();
    let fin: u64 = info.finalized_number.try_into().unwrap_or(0);
    if storage.is_empty() && fin > 0 {
        let header = client
            .header(info.finalized_hash)
            .map_err(|e| e.to_string())?
            .ok_or("the finalized header is missing")?;
        let crate::builder::ChainCheckpoint {
            checkpoint: ckpt,
            next_rotation,
            floors,
            ..
        } = crate::builder::checkpoint_of(&header).unwrap_or_else(|| {
            log::warn!(
                target: LOG,
                "finalized block #{fin} has no readable BSMR digest (made by another bsmr version?): \
                 starting from it with no checkpoint id; this validator will not reply to \
                 checkpoint candidates until it rejoins from the chain"
            );
            crate::builder::ChainCheckpoint {
                index: fin,
                checkpoint: [0; 32],
                next_rotation: Rotation::fresh(membership.epoch),
                floors: vec![],
            }
        });
        let ts = crate::builder::chain_timestamp::<B, BE, C>(client, info.finalized_hash)?;
        let meta = bsmr_consensus_core::storage::Meta {
            fence: fin,
            next_pos: 0,
            built: fin,
            built_ckpt: ckpt,
            built_ts: ts,
            next_rotation,
            built_floors: floors,
        };
        storage
            .apply(&[bsmr_consensus_core::StorageOp::Put(
                bsmr_consensus_core::Key::Meta,
                bsmr_consensus_core::Record::Meta(meta),
            )])
            .map_err(|e| e.to_string())?;
        log::info!(target: LOG, "consensus state of epoch {} starts after finalized block #{fin}", membership.epoch);
    }
    let mut core_cfg = CoreConfig::new(membership.clone());
    core_cfg.max_batch_txs = engine.max_batch_txs;
    core_cfg.retain_sync_blocks = engine.retain_sync_blocks;
    core_cfg.pacing_target_ms = engine.pacing_target_ms;
    // With the 4 s default alone, block times above ~3 s made view changes on most blocks and
    // suspended correct validators; 2 s covers the checkpoint consensus over a WAN.
    core_cfg.fit_block_time(engine.block_time_ms, 2_000);
    let replica = Replica::new(
        core_cfg,
        &*storage,
        Box::new(keys.signer(public)),
        Box::new(Sr25519Verifier),
    );
    log::info!(
        target: LOG,
        "🔐 bsmr validator {} (epoch {}, n = {}, f = {}, q = {}); {} persisted records",
        hex(&public.0),
        membership.epoch,
        membership.n(),
        membership.f(),
        membership.q(),
        storage.len()
    );
    Ok((Some(Arc::new(keys.signer(public))), Some(replica)))
}

/// The adversary of a validator run with `--unsafe-byzantine` (TESTING ONLY), seeded from its
/// key so that a run can be repeated.
pub(crate) fn adversary_for(
    cfg: &EngineConfig,
    signer: Option<&Arc<KeystoreSigner>>,
    membership: &Membership,
) -> Option<(Adversary, ChaCha8Rng)> {
    let behaviour = cfg.byzantine?;
    let signer = signer?;
    let mut rng = ChaCha8Rng::from_seed(signer.public());
    let window = CoreConfig::new(membership.clone()).window;
    let shared: bsmr_sim::adversary::SharedSigner = signer.clone();
    let adversary = Adversary::new(behaviour, shared, membership, window, &mut rng);
    Some((adversary, rng))
}

/// A persisted consensus state that does not decode, with what to do about it.
pub(crate) fn incompatible_state(e: impl std::fmt::Display) -> String {
    format!(
        "reading persisted consensus state: {e} (written by an incompatible bsmr version? such a \
         chain cannot be continued: remove the base path, e.g. `make clean-chain` for the local \
         network)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(epoch: u64, keys: &[u8]) -> bsmr_primitives::ValidatorSet {
        bsmr_primitives::ValidatorSet {
            epoch,
            validators: keys
                .iter()
                .map(|k| sp_core::sr25519::Public::from_raw([*k; 32]).into())
                .collect(),
        }
    }

    #[test]
    fn an_on_chain_set_becomes_the_membership_of_its_epoch_in_its_order() {
        let s = set(3, &[4, 2, 9]);
        let m = membership_of([7; 32], &s, Mode::Leaderless);
        assert_eq!(m.validators(), &[[4; 32], [2; 32], [9; 32]][..]);
        assert_eq!((m.epoch, m.genesis, m.n(), m.q()), (3, [7; 32], 3, 2));
        assert!(!m.fixed_checkpoint_leader());
        let leader = membership_of([7; 32], &s, Mode::Leader);
        assert!(
            leader.fixed_checkpoint_leader(),
            "the baseline's sticky primary"
        );
        assert_eq!(leader.validators(), m.validators());
    }
}

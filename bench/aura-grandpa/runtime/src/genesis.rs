//! Genesis presets: `dev` (Alice authors and finalizes alone) and `local` (Alice, Bob, Charlie
//! and Dave, like bsmr's local network). Both endow the well-known development accounts with
//! bsmr's endowment and make Alice the sudo key.

use crate::{AccountId, BalancesConfig, RuntimeGenesisConfig, SudoConfig};
use crate::{AuraConfig, GrandpaConfig};
use alloc::{vec, vec::Vec};
use frame_support::build_struct_json_patch;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_core::{ed25519, sr25519};
use sp_genesis_builder::{self, PresetId};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// Balance of each endowed account: the same as bsmr's genesis.
pub const ENDOWMENT: crate::Balance = 1u128 << 60;

/// The authoring and finality keys of a development validator: sr25519 for Aura and ed25519
/// for GRANDPA, both from the keyring name (`key insert --suri //Alice` gives the same keys).
fn authority(aura: Sr25519Keyring, grandpa: Ed25519Keyring) -> (AuraId, GrandpaId) {
    let aura: sr25519::Public = aura.public();
    let grandpa: ed25519::Public = grandpa.public();
    (aura.into(), grandpa.into())
}

fn genesis(authorities: Vec<(AuraId, GrandpaId)>) -> Value {
    let endowed: Vec<(AccountId, crate::Balance)> = Sr25519Keyring::well_known()
        .map(|k| (k.to_account_id(), ENDOWMENT))
        .collect();
    build_struct_json_patch!(RuntimeGenesisConfig {
        balances: BalancesConfig { balances: endowed },
        aura: AuraConfig {
            authorities: authorities
                .iter()
                .map(|(a, _)| a.clone())
                .collect::<Vec<_>>(),
        },
        grandpa: GrandpaConfig {
            authorities: authorities
                .iter()
                .map(|(_, g)| (g.clone(), 1))
                .collect::<Vec<_>>(),
        },
        sudo: SudoConfig {
            key: Some(Sr25519Keyring::Alice.to_account_id())
        },
    })
}

/// The JSON of the preset `id`, if it exists.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
    let patch = match id.as_ref() {
        sp_genesis_builder::DEV_RUNTIME_PRESET => genesis(vec![authority(
            Sr25519Keyring::Alice,
            Ed25519Keyring::Alice,
        )]),
        sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => genesis(vec![
            authority(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
            authority(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
            authority(Sr25519Keyring::Charlie, Ed25519Keyring::Charlie),
            authority(Sr25519Keyring::Dave, Ed25519Keyring::Dave),
        ]),
        _ => return None,
    };
    Some(
        serde_json::to_string(&patch)
            .expect("a JSON value serializes")
            .into_bytes(),
    )
}

/// The names of the presets.
pub fn preset_names() -> Vec<PresetId> {
    vec![
        PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
        PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
    ]
}

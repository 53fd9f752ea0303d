//! Genesis presets: `dev` (Alice, the only validator) and `local` (Alice, Bob, Charlie and Dave).
//!
//! Both endow the well-known development accounts and make Alice the sudo key.

use crate::{AccountId, BalancesConfig, MembershipConfig, RuntimeGenesisConfig, SudoConfig};
use alloc::{vec, vec::Vec};
use bsmr_primitives::AuthorityId;
use frame_support::build_struct_json_patch;
use serde_json::Value;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::Sr25519Keyring;

/// Balance given to each endowed account (about 1.15 million tokens).
pub const ENDOWMENT: crate::Balance = 1u128 << 60;

/// The preset of a single-validator development chain.
pub const DEV_PRESET: &str = sp_genesis_builder::DEV_RUNTIME_PRESET;
/// The preset of a local 4-validator network.
pub const LOCAL_PRESET: &str = sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET;

/// A validator as genesis needs it: its account and its `bsmr` consensus key.
fn validator(keyring: Sr25519Keyring) -> (AccountId, AuthorityId) {
    (keyring.to_account_id(), keyring.public().into())
}

/// The genesis of a chain with these validators, endowed accounts, sudo key and minimum set size.
fn genesis(
    validators: Vec<(AccountId, AuthorityId)>,
    endowed: Vec<AccountId>,
    root: AccountId,
    min_members: u32,
) -> Value {
    build_struct_json_patch!(RuntimeGenesisConfig {
        balances: BalancesConfig {
            balances: endowed
                .into_iter()
                .map(|account| (account, ENDOWMENT))
                .collect::<Vec<_>>(),
        },
        sudo: SudoConfig { key: Some(root) },
        membership: MembershipConfig {
            members: validators,
            min_members
        },
    })
}

/// `dev`: Alice alone validates (n = 1, f = 0); the minimum set size is 1.
pub fn development_config_genesis() -> Value {
    genesis(
        vec![validator(Sr25519Keyring::Alice)],
        Sr25519Keyring::well_known()
            .map(|k| k.to_account_id())
            .collect(),
        Sr25519Keyring::Alice.to_account_id(),
        1,
    )
}

/// `local`: Alice, Bob, Charlie and Dave validate (n = 4, f = 1); the minimum set size is 4.
pub fn local_config_genesis() -> Value {
    genesis(
        vec![
            validator(Sr25519Keyring::Alice),
            validator(Sr25519Keyring::Bob),
            validator(Sr25519Keyring::Charlie),
            validator(Sr25519Keyring::Dave),
        ],
        Sr25519Keyring::well_known()
            .map(|k| k.to_account_id())
            .collect(),
        Sr25519Keyring::Alice.to_account_id(),
        4,
    )
}

/// The JSON of the preset `id`, if it exists.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
    let patch = match id.as_ref() {
        DEV_PRESET => development_config_genesis(),
        LOCAL_PRESET => local_config_genesis(),
        _ => return None,
    };
    Some(
        serde_json::to_string(&patch)
            .expect("serialization to json is expected to work; qed")
            .into_bytes(),
    )
}

/// The names of the presets this runtime provides.
pub fn preset_names() -> Vec<PresetId> {
    vec![PresetId::from(DEV_PRESET), PresetId::from(LOCAL_PRESET)]
}

//! Runtime tests: genesis from both presets, and the thresholds the engine reads.

use crate::{
    genesis_config_presets::{get_preset, preset_names, DEV_PRESET, ENDOWMENT, LOCAL_PRESET},
    Balances, Membership, Runtime, RuntimeGenesisConfig, System,
};
use frame_support::traits::{fungible::Inspect, BuildGenesisConfig};
use serde_json::Value;
use sp_genesis_builder::PresetId;
use sp_keyring::Sr25519Keyring;

/// RFC 7386 merge patch: what the node does with a preset on top of the default genesis.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// Build the genesis state of preset `name` in fresh externalities.
fn genesis_ext(name: &str) -> sp_io::TestExternalities {
    let patch: Value =
        serde_json::from_slice(&get_preset(&PresetId::from(name)).expect("preset exists"))
            .expect("preset is JSON");
    let mut config = serde_json::to_value(RuntimeGenesisConfig::default()).unwrap();
    merge(&mut config, patch);
    let config: RuntimeGenesisConfig =
        serde_json::from_value(config).expect("preset deserializes into the genesis config");
    let mut ext = sp_io::TestExternalities::new_empty();
    ext.execute_with(|| config.build());
    ext
}

#[test]
fn presets_are_listed() {
    let names = preset_names();
    assert!(names.contains(&PresetId::from(DEV_PRESET)));
    assert!(names.contains(&PresetId::from(LOCAL_PRESET)));
    assert!(get_preset(&PresetId::from("no-such-preset")).is_none());
}

#[test]
fn dev_genesis_has_alice_as_the_only_validator() {
    genesis_ext(DEV_PRESET).execute_with(|| {
        let set = Membership::validator_set();
        assert_eq!(set.epoch, 0);
        assert_eq!(set.validators, vec![Sr25519Keyring::Alice.public().into()]);
        assert_eq!(
            (Membership::fault_tolerance(), Membership::quorum()),
            (0, 1)
        );
        assert_eq!(pallet_bsmr_membership::MinMembers::<Runtime>::get(), 1);
        assert_eq!(
            pallet_sudo::Key::<Runtime>::get(),
            Some(Sr25519Keyring::Alice.to_account_id())
        );
        assert_eq!(
            Balances::balance(&Sr25519Keyring::Bob.to_account_id()),
            ENDOWMENT
        );
    });
}

#[test]
fn local_genesis_has_four_validators_and_endowed_accounts() {
    genesis_ext(LOCAL_PRESET).execute_with(|| {
        let set = Membership::validator_set();
        let mut expected: Vec<_> = [
            Sr25519Keyring::Alice,
            Sr25519Keyring::Bob,
            Sr25519Keyring::Charlie,
            Sr25519Keyring::Dave,
        ]
        .into_iter()
        .map(|k| {
            (
                k.to_account_id(),
                bsmr_primitives::AuthorityId::from(k.public()),
            )
        })
        .collect();
        // The canonical validator order is the order of the accounts.
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let expected_keys: Vec<_> = expected.into_iter().map(|(_, key)| key).collect();
        assert_eq!(set.validators, expected_keys);
        assert_eq!(
            (Membership::fault_tolerance(), Membership::quorum()),
            (1, 3)
        );
        assert_eq!(pallet_bsmr_membership::MinMembers::<Runtime>::get(), 4);
        assert_eq!(Membership::next_validator_set(), None);
        for keyring in Sr25519Keyring::well_known() {
            assert_eq!(Balances::balance(&keyring.to_account_id()), ENDOWMENT);
        }
        let endowed = Sr25519Keyring::well_known().count() as u128;
        assert_eq!(Balances::total_issuance(), endowed * ENDOWMENT);
        assert_eq!(System::block_number(), 0);
    });
}

/// A misbehaviour report is priced from its length with the measured weights: a two-vote proof
/// is cheap, a longer proof never costs less, and the largest proof the core accepts still fits
/// in one block's normal extrinsic weight.
#[test]
fn report_weights_grow_with_the_proof_and_the_largest_fits_a_block() {
    use frame_support::dispatch::DispatchClass;
    let largest = pallet_bsmr_membership::ProofBytes::bound() as u32;
    let two_votes = Membership::report_weight(300);
    let mut previous = two_votes;
    for len in [1_000, 10_000, 100_000, largest] {
        let weight = Membership::report_weight(len);
        assert!(
            weight.all_gte(previous),
            "{len} bytes cost less than fewer bytes"
        );
        previous = weight;
    }
    assert!(previous.ref_time() > two_votes.ref_time());
    let max = crate::configs::RuntimeBlockWeights::get()
        .get(DispatchClass::Normal)
        .max_extrinsic
        .expect("normal extrinsics are bounded");
    assert!(previous.all_lte(max), "{previous:?} exceeds {max:?}");
    // Two sr25519 verifications in wasm take well under 20 ms, twice over.
    assert!(
        two_votes.ref_time() < 40 * frame_support::weights::constants::WEIGHT_REF_TIME_PER_MILLIS
    );
}

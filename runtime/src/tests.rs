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

/// `BsmrBlockBuilderApi::apply_extrinsics` leaves the state, and gives the answers, that one
/// `apply_extrinsic` call per extrinsic gives, each in a storage transaction kept only if it
/// applied (what `sc-block-builder` does): applied, stale, future, unpayable and failing
/// transfers, in one block.
#[test]
fn many_extrinsics_in_one_call_leave_the_state_of_one_call_each() {
    use crate::{signing::signed_transfer, Block, Executive, Header, UncheckedExtrinsic};
    use codec::Decode;
    use sp_core::{Pair, H256};
    use sp_runtime::{traits::Header as _, ApplyExtrinsicResult, StateVersion};

    // frame_system's genesis stores this as block 0's hash; signatures commit to it.
    let genesis = H256::repeat_byte(69);
    let (alice, bob, charlie) = (
        Sr25519Keyring::Alice,
        Sr25519Keyring::Bob,
        Sr25519Keyring::Charlie,
    );
    let nobody = sp_core::sr25519::Pair::from_string("//Nobody", None).unwrap();
    let xt = |bytes: Vec<u8>| UncheckedExtrinsic::decode(&mut &bytes[..]).unwrap();
    let xts = vec![
        xt(signed_transfer(
            &alice.pair(),
            bob.to_account_id(),
            1_000,
            0,
            genesis,
        )),
        // The same again: its nonce is used now.
        xt(signed_transfer(
            &alice.pair(),
            bob.to_account_id(),
            1_000,
            0,
            genesis,
        )),
        // Ahead of Alice's nonce, then the one before it.
        xt(signed_transfer(
            &alice.pair(),
            charlie.to_account_id(),
            7,
            2,
            genesis,
        )),
        xt(signed_transfer(
            &alice.pair(),
            charlie.to_account_id(),
            7,
            1,
            genesis,
        )),
        // No funds for the fee.
        xt(signed_transfer(
            &nobody,
            alice.to_account_id(),
            1,
            0,
            genesis,
        )),
        // More than Bob has: included, the transfer fails, the fee is paid.
        xt(signed_transfer(
            &bob.pair(),
            alice.to_account_id(),
            ENDOWMENT * 2,
            0,
            genesis,
        )),
        xt(signed_transfer(
            &alice.pair(),
            charlie.to_account_id(),
            7,
            2,
            genesis,
        )),
    ];
    let header = Header::new(
        1,
        Default::default(),
        Default::default(),
        genesis,
        Default::default(),
    );
    let run = |many: bool| -> (Vec<ApplyExtrinsicResult>, Vec<u8>) {
        let mut ext = genesis_ext(LOCAL_PRESET);
        ext.execute_with(|| {
            Executive::initialize_block(&header);
            let results = if many {
                <Runtime as bsmr_primitives::runtime_decl_for_bsmr_block_builder_api::BsmrBlockBuilderApi<Block>>::apply_extrinsics(
                    xts.clone(),
                )
            } else {
                xts.iter()
                    .map(|xt| {
                        sp_io::storage::start_transaction();
                        let r = Executive::apply_extrinsic(xt.clone());
                        if r.is_ok() {
                            sp_io::storage::commit_transaction();
                        } else {
                            sp_io::storage::rollback_transaction();
                        }
                        r
                    })
                    .collect()
            };
            (results, sp_io::storage::root(StateVersion::V1))
        })
    };
    let (one_each, root_one_each) = run(false);
    let (many, root_many) = run(true);
    assert_eq!(many, one_each);
    assert_eq!(root_many, root_one_each);
    // The block holds what it should: the first, fourth, sixth and last applied; the second
    // (stale), third (future at its turn) and fifth (no funds) refused.
    let applied: Vec<bool> = one_each.iter().map(|r| r.is_ok()).collect();
    assert_eq!(applied, [true, false, false, true, false, true, true]);
    assert!(
        one_each[5].as_ref().unwrap().is_err(),
        "Bob's transfer fails"
    );
}

/// What `signing::provided_tags` reads from a transaction's bytes is what the runtime's own
/// validation provides, for a transaction valid now and for one that waits on an earlier nonce
/// (a block's later transactions of one sender, validated at the block's parent). Anything the
/// bytes cannot tell (bare, trailing bytes, garbage) is left to the runtime.
#[test]
fn provided_tags_are_what_the_runtimes_validation_provides() {
    use crate::{signing::provided_tags, signing::signed_transfer, Executive};
    use crate::{MembershipCall, RuntimeCall, UncheckedExtrinsic};
    use codec::{Decode, Encode};
    use sp_core::H256;
    use sp_runtime::transaction_validity::TransactionSource;

    let genesis = H256::repeat_byte(69);
    let (alice, bob) = (Sr25519Keyring::Alice, Sr25519Keyring::Bob);
    genesis_ext(LOCAL_PRESET).execute_with(|| {
        for nonce in [0, 3] {
            let bytes = signed_transfer(&alice.pair(), bob.to_account_id(), 1_000, nonce, genesis);
            let xt = UncheckedExtrinsic::decode(&mut &bytes[..]).unwrap();
            let valid = Executive::validate_transaction(TransactionSource::InBlock, xt, genesis)
                .expect("a funded sender's transfer is valid");
            assert_eq!(valid.provides.len(), 1);
            assert_eq!(provided_tags(&bytes), Some(valid.provides), "nonce {nonce}");
            assert_eq!(valid.requires.is_empty(), nonce == 0);
        }
    });
    let transfer = signed_transfer(&alice.pair(), bob.to_account_id(), 1_000, 0, genesis);
    let mut trailing = transfer.clone();
    trailing.push(0);
    let report = UncheckedExtrinsic::new_bare(RuntimeCall::Membership(
        MembershipCall::report_misbehaviour {
            proof: vec![1, 2, 3].try_into().unwrap(),
        },
    ))
    .encode();
    for bytes in [
        trailing,
        report,
        vec![],
        transfer[..transfer.len() - 1].to_vec(),
    ] {
        assert_eq!(provided_tags(&bytes), None);
    }
}

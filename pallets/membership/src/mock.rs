//! A minimal runtime for the pallet's unit tests: accounts are `u64`, epochs are 10 blocks.

use crate as pallet_bsmr_membership;
use bsmr_primitives::AuthorityId;
use frame_support::{derive_impl, parameter_types, traits::Hooks};
use sp_runtime::BuildStorage;

type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Membership: pallet_bsmr_membership,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
}

parameter_types! {
    pub const EpochLength: u64 = 10;
    pub const MaxMembers: u32 = 8;
}

impl pallet_bsmr_membership::Config for Test {
    type EpochLength = EpochLength;
    type MaxMembers = MaxMembers;
    type WeightInfo = ();
}

/// A distinct consensus key for test member `i`.
pub fn key(i: u8) -> AuthorityId {
    AuthorityId::from(sp_core::sr25519::Public::from_raw([i; 32]))
}

/// Genesis with members 1..=4 (keys 1..=4) and a minimum of 4, at block 1.
pub fn new_test_ext() -> sp_io::TestExternalities {
    new_test_ext_with((1..=4).map(|i| (i as u64, key(i))).collect(), 4)
}

/// The default genesis with a keystore, in which the benchmarks generate and sign with keys.
#[cfg(feature = "runtime-benchmarks")]
pub fn new_bench_ext() -> sp_io::TestExternalities {
    let mut ext = new_test_ext();
    ext.register_extension(sp_keystore::KeystoreExt::new(
        sp_keystore::testing::MemoryKeystore::new(),
    ));
    ext
}

/// Genesis with the given members and minimum, at block 1.
pub fn new_test_ext_with(
    members: Vec<(u64, AuthorityId)>,
    min_members: u32,
) -> sp_io::TestExternalities {
    let mut storage = frame_system::GenesisConfig::<Test>::default()
        .build_storage()
        .unwrap();
    pallet_bsmr_membership::GenesisConfig::<Test> {
        members,
        min_members,
    }
    .assimilate_storage(&mut storage)
    .unwrap();
    let mut ext = sp_io::TestExternalities::new(storage);
    ext.execute_with(|| System::set_block_number(1));
    ext
}

/// Run blocks up to and including `n`, calling the pallet's `on_initialize` for each.
pub fn run_to_block(n: u64) {
    while System::block_number() < n {
        let next = System::block_number() + 1;
        System::set_block_number(next);
        Membership::on_initialize(next);
    }
}

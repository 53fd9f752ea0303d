//! The pallets whose benchmarks `bsmr-node benchmark pallet` runs (feature `runtime-benchmarks`).

frame_benchmarking::define_benchmarks!(
    [frame_system, SystemBench::<Runtime>]
    [pallet_balances, Balances]
    [pallet_timestamp, Timestamp]
    [pallet_sudo, Sudo]
    [pallet_bsmr_membership, Membership]
);

//! Weights of the runtime's pallets, generated on this project's machine by
//! `scripts/benchmark-weights.sh` (frame-benchmarking, `bsmr-node benchmark pallet`); each file
//! names the command, the machine and the date. Database reads and writes are priced with the
//! runtime's `DbWeight` (ParityDb).

pub mod frame_system;
pub mod pallet_balances;
pub mod pallet_bsmr_membership;
pub mod pallet_sudo;
pub mod pallet_timestamp;

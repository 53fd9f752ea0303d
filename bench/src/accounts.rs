//! Deterministic mapping of trace addresses to funded bench accounts (signing: [`crate::chain`]).
//!
//! Trace address `a` becomes bench account `blake2_256(a) mod A` (A = `--accounts`), whose key is
//! derived as `//bsmr-bench/<index>`. Hot trace accounts stay hot; the same trace always gives
//! the same mapping. Bench accounts are funded from a faucet (`//Alice`) before a run.

use sp_core::{crypto::AccountId32, sr25519, Pair, H256};

/// The key pair of bench account `i`.
pub fn bench_pair(i: usize) -> sr25519::Pair {
    sr25519::Pair::from_string(&format!("//bsmr-bench/{i}"), None)
        .expect("a valid derivation path; qed")
}

/// The bench account index a trace address maps to.
pub fn map_address(address: &str, accounts: usize) -> usize {
    let h = sp_crypto_hashing::blake2_256(address.to_ascii_lowercase().as_bytes());
    (u64::from_le_bytes(h[..8].try_into().expect("8 bytes; qed")) % accounts as u64) as usize
}

/// Account id of a pair.
pub fn account_of(p: &sr25519::Pair) -> AccountId32 {
    AccountId32::from(p.public())
}

/// The extrinsic hash the pool and blocks use (blake2-256 of the encoding).
pub fn xt_hash(xt: &[u8]) -> H256 {
    H256(sp_crypto_hashing::blake2_256(xt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_deterministic_and_case_insensitive() {
        assert_eq!(map_address("0xAbC", 64), map_address("0xabc", 64));
        let spread: std::collections::BTreeSet<usize> = (0..1000)
            .map(|i| map_address(&format!("0x{i:x}"), 64))
            .collect();
        assert!(spread.len() > 60, "addresses spread over the accounts");
        assert_ne!(account_of(&bench_pair(1)), account_of(&bench_pair(2)));
    }
}

//! Real sr25519 (schnorrkel, signing context `b"substrate"`, keys expanded from a 32-byte seed in
//! Ed25519 mode: exactly what sp-core's `sr25519::Pair::from_seed` and `sign` do), with
//! deterministic nonces so that a seeded run replays byte for byte, and a verification cache
//! shared by all simulated validators (each distinct signature is checked once; the result is the
//! same as checking it every time).

use bsmr_consensus_core::{Digest, Signature, Signer, ValidatorId, Verifier};
use rand_chacha::rand_core::SeedableRng;
use schnorrkel::{signing_context, ExpansionMode, Keypair, MiniSecretKey, PublicKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The key a Byzantine validator signs its rewritten messages with (its real one).
pub type SharedSigner = Arc<dyn Signer + Send + Sync>;

const CTX: &[u8] = b"substrate";

/// An sr25519 key pair.
#[derive(Clone)]
pub struct Sr25519Signer {
    pair: Keypair,
    seed: [u8; 32],
    /// Signatures made with this key (shared by its clones: the simulator's CPU model).
    pub signs: Arc<AtomicU64>,
}

impl Sr25519Signer {
    /// Key from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = MiniSecretKey::from_bytes(&seed)
            .expect("32 bytes; qed")
            .expand_to_keypair(ExpansionMode::Ed25519);
        Sr25519Signer {
            pair,
            seed,
            signs: Arc::default(),
        }
    }
    /// Deterministic key for validator `i` of a run.
    pub fn for_validator(i: usize) -> Self {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        seed[8..12].copy_from_slice(b"bsmr");
        Self::from_seed(seed)
    }
}

impl Signer for Sr25519Signer {
    fn public(&self) -> ValidatorId {
        self.pair.public.to_bytes()
    }
    fn sign(&self, digest: &Digest) -> Signature {
        self.signs.fetch_add(1, Ordering::Relaxed);
        // Deterministic nonce randomness derived from the secret seed and the message.
        let mut s = Vec::with_capacity(64);
        s.extend_from_slice(&self.seed);
        s.extend_from_slice(digest);
        let rng = rand_chacha::ChaCha20Rng::from_seed(sp_crypto_hashing::blake2_256(&s));
        let t = schnorrkel::context::attach_rng(signing_context(CTX).bytes(digest), rng);
        self.pair.sign(t).to_bytes()
    }
}

/// Memo key: who signed which digest with which signature.
type MemoKey = (ValidatorId, Digest, [u8; 64]);

/// sr25519 verification with a shared memo table.
#[derive(Clone, Default)]
pub struct Sr25519Verifier {
    // Lookup-only memo table (never iterated, so HashMap order cannot leak into the run).
    cache: Arc<Mutex<HashMap<MemoKey, bool>>>,
    /// Count of real verifications performed.
    pub real: Arc<AtomicU64>,
    /// Verifications asked for through this handle, memoized or not (the simulator's CPU
    /// model charges each node for every check it asks for).
    pub calls: Arc<AtomicU64>,
}

impl Sr25519Verifier {
    /// A handle sharing the memo table, with a count of its own.
    pub fn for_node(&self) -> Self {
        Sr25519Verifier {
            cache: self.cache.clone(),
            real: self.real.clone(),
            calls: Arc::default(),
        }
    }
    /// Drop the memo table (bounded memory in long runs).
    pub fn clear(&self) {
        self.cache
            .lock()
            .expect("never poisoned: no panics while held; qed")
            .clear();
    }
}

impl Verifier for Sr25519Verifier {
    fn verify(&self, who: &ValidatorId, digest: &Digest, sig: &Signature) -> bool {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let key = (*who, *digest, *sig);
        if let Some(r) = self.cache.lock().expect("never poisoned; qed").get(&key) {
            return *r;
        }
        self.real.fetch_add(1, Ordering::Relaxed);
        let ok = match (
            PublicKey::from_bytes(who),
            schnorrkel::Signature::from_bytes(sig),
        ) {
            (Ok(p), Ok(s)) => p.verify_simple(CTX, digest, &s).is_ok(),
            _ => false,
        };
        let mut c = self.cache.lock().expect("never poisoned; qed");
        if c.len() > 1_000_000 {
            c.clear();
        }
        c.insert(key, ok);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_deterministic() {
        let s = Sr25519Signer::for_validator(3);
        let v = Sr25519Verifier::default();
        let d = [7u8; 32];
        let sig = s.sign(&d);
        assert_eq!(sig, s.sign(&d), "deterministic nonces");
        assert!(v.verify(&s.public(), &d, &sig));
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(!v.verify(&s.public(), &d, &bad));
        assert!(!v.verify(&Sr25519Signer::for_validator(4).public(), &d, &sig));
    }
}

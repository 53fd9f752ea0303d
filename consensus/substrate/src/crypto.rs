//! The core's signing seams backed by Substrate: the keystore signs, sp-core verifies.
//!
//! Both use sr25519 with Substrate's signing context, so a signature made here verifies in the
//! simulator's schnorrkel verifier and vice versa.

use bsmr_consensus_core::{Digest, Signature, Signer, ValidatorId, Verifier};
use bsmr_primitives::{AuthorityId, KEY_TYPE};
use sc_keystore::LocalKeystore;
use sp_core::{crypto::ByteArray, sr25519, Pair};
use sp_keystore::KeystorePtr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Consensus signatures this process checked and made (one node per process), for
/// `bsmr_status`: the bench divides them by the finalized transactions to split the sr25519
/// cost between transactions and consensus (docs/performance.md).
static VERIFIED: AtomicU64 = AtomicU64::new(0);
static SIGNED: AtomicU64 = AtomicU64::new(0);

/// Consensus signatures checked by this process so far.
pub fn signatures_verified() -> u64 {
    VERIFIED.load(Ordering::Relaxed)
}

/// Consensus signatures made by this process so far.
pub fn signatures_made() -> u64 {
    SIGNED.load(Ordering::Relaxed)
}

/// Signs with the validator's `bsmr` key held in the node's keystore.
///
/// A local (file or in-memory) keystore re-derives a key pair from its stored secret on every
/// signature; for a phrase or a dev URI such as `//Alice` that is a PBKDF2 run of 2048 HMAC-SHA512
/// rounds, which profiling at 300 tx/s showed taking about 9% of the machine's CPU (consensus
/// signs every reply and vote). Given the local keystore, the signer loads the pair once.
pub struct KeystoreSigner {
    keystore: KeystorePtr,
    public: sr25519::Public,
    pair: Option<sr25519::Pair>,
}

impl KeystoreSigner {
    /// A signer for `public`, which must be in `keystore` (see [`local_member_key`]). With
    /// `local`, the same keystore as a [`LocalKeystore`], the key pair is loaded from it once.
    pub fn new(
        keystore: KeystorePtr,
        local: Option<&LocalKeystore>,
        public: sr25519::Public,
    ) -> Self {
        let pair = local.and_then(|ks| {
            ks.key_pair::<bsmr_primitives::crypto::Pair>(&AuthorityId::from(public))
                .ok()
                .flatten()
                .map(|p| p.into_inner())
        });
        KeystoreSigner {
            keystore,
            public,
            pair,
        }
    }

    /// Whether the key pair was loaded once (no keystore round trip per signature).
    pub fn has_cached_pair(&self) -> bool {
        self.pair.is_some()
    }
}

impl Signer for KeystoreSigner {
    fn public(&self) -> ValidatorId {
        self.public.0
    }

    fn sign(&self, digest: &Digest) -> Signature {
        SIGNED.fetch_add(1, Ordering::Relaxed);
        if let Some(pair) = &self.pair {
            return pair.sign(digest).0;
        }
        // The key was found in this keystore at start-up; a keystore that loses it (deleted file)
        // cannot sign any more, which is fatal for a validator.
        let sig = self
            .keystore
            .sr25519_sign(KEY_TYPE, &self.public, digest)
            .ok()
            .flatten()
            .expect(
                "the validator key was in the keystore at start-up and keys are never removed; qed",
            );
        sig.0
    }
}

/// Where this node's validator key comes from: the keystore, and the same keystore as a local
/// one when it is (see [`KeystoreSigner`]).
#[derive(Clone)]
pub struct KeySource {
    /// The node's keystore.
    pub keystore: KeystorePtr,
    /// The same keystore as a [`LocalKeystore`], if it is one.
    pub local: Option<Arc<LocalKeystore>>,
}

impl KeySource {
    /// A signer for the member key `public`.
    pub fn signer(&self, public: sr25519::Public) -> KeystoreSigner {
        KeystoreSigner::new(self.keystore.clone(), self.local.as_deref(), public)
    }
}

/// sr25519 verification with sp-core.
#[derive(Clone, Copy, Default)]
pub struct Sr25519Verifier;

impl Verifier for Sr25519Verifier {
    fn verify(&self, who: &ValidatorId, digest: &Digest, sig: &Signature) -> bool {
        VERIFIED.fetch_add(1, Ordering::Relaxed);
        sr25519::Pair::verify(
            &sr25519::Signature::from_raw(*sig),
            digest,
            &sr25519::Public::from_raw(*who),
        )
    }
}

/// The first key of `validators` that the keystore holds, if any: this node's member identity.
pub fn local_member_key(
    keystore: &KeystorePtr,
    validators: &[AuthorityId],
) -> Option<sr25519::Public> {
    validators
        .iter()
        .find(|v| keystore.has_keys(&[(v.to_raw_vec(), KEY_TYPE)]))
        .map(|v| {
            sr25519::Public::from_raw(
                v.as_slice()
                    .try_into()
                    .expect("sr25519 public keys are 32 bytes; qed"),
            )
        })
}

/// Validator ids of an on-chain set.
pub fn validator_ids(validators: &[AuthorityId]) -> Vec<ValidatorId> {
    validators
        .iter()
        .map(|v| {
            v.as_slice()
                .try_into()
                .expect("sr25519 public keys are 32 bytes; qed")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::{crypto::Signable, Signed};
    use sp_keystore::{testing::MemoryKeystore, Keystore};

    #[derive(codec::Encode, Clone)]
    struct Body(u64);
    impl Signable for Body {
        const TAG: &'static [u8] = b"test";
        fn epoch(&self) -> u64 {
            0
        }
    }

    #[test]
    fn keystore_signatures_verify_and_are_bound_to_the_body() {
        let ks: KeystorePtr = Arc::new(MemoryKeystore::new());
        let public = ks.sr25519_generate_new(KEY_TYPE, Some("//Alice")).unwrap();
        let signer = KeystoreSigner::new(ks.clone(), None, public);
        let signed = Signed::sign(Body(7), &[1; 32], &signer);
        assert!(signed.verify(&[1; 32], &Sr25519Verifier));
        assert!(
            !signed.verify(&[2; 32], &Sr25519Verifier),
            "another chain's genesis"
        );
        let mut forged = signed.clone();
        forged.body = Body(8);
        assert!(!forged.verify(&[1; 32], &Sr25519Verifier));
        let alice = AuthorityId::from(public);
        let bob = AuthorityId::from(sr25519::Public::from_raw([9; 32]));
        assert_eq!(local_member_key(&ks, &[bob.clone(), alice]), Some(public));
        assert_eq!(local_member_key(&ks, &[bob]), None);
    }

    #[test]
    fn a_local_keystore_key_is_loaded_once_and_signs_the_same() {
        let local = Arc::new(LocalKeystore::in_memory());
        let public = local
            .sr25519_generate_new(KEY_TYPE, Some("//Alice"))
            .unwrap();
        let ks: KeystorePtr = local.clone();
        let cached = KeystoreSigner::new(ks.clone(), Some(&local), public);
        assert!(cached.has_cached_pair());
        let signed = Signed::sign(Body(7), &[1; 32], &cached);
        assert!(signed.verify(&[1; 32], &Sr25519Verifier));
        // A key the local keystore lacks falls back to the keystore (which then lacks it too).
        let other = sr25519::Public::from_raw([9; 32]);
        assert!(!KeystoreSigner::new(ks, Some(&local), other).has_cached_pair());
    }
}

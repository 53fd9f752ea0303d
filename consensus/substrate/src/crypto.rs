//! The core's signing seams backed by Substrate: the keystore signs, sp-core verifies.
//!
//! Both use sr25519 with Substrate's signing context, so a signature made here verifies in the
//! simulator's schnorrkel verifier and vice versa.

use bsmr_consensus_core::{Digest, Signature, Signer, ValidatorId, Verifier};
use bsmr_primitives::{AuthorityId, KEY_TYPE};
use sp_core::{crypto::ByteArray, sr25519};
use sp_keystore::KeystorePtr;

/// Signs with the validator's `bsmr` key held in the node's keystore.
pub struct KeystoreSigner {
    keystore: KeystorePtr,
    public: sr25519::Public,
}

impl KeystoreSigner {
    /// A signer for `public`, which must be in `keystore` (see [`local_member_key`]).
    pub fn new(keystore: KeystorePtr, public: sr25519::Public) -> Self {
        KeystoreSigner { keystore, public }
    }
}

impl Signer for KeystoreSigner {
    fn public(&self) -> ValidatorId {
        self.public.0
    }

    fn sign(&self, digest: &Digest) -> Signature {
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

/// sr25519 verification with sp-core.
#[derive(Clone, Copy, Default)]
pub struct Sr25519Verifier;

impl Verifier for Sr25519Verifier {
    fn verify(&self, who: &ValidatorId, digest: &Digest, sig: &Signature) -> bool {
        use sp_core::Pair;
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
    use std::sync::Arc;

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
        let signer = KeystoreSigner::new(ks.clone(), public);
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
}

//! Signing seams and domain separation.
//!
//! Every signed item is signed over
//! `blake2_256("BSMR" | genesis | epoch | tag | SCALE(body))` (protocol.md, "Model"): domain
//! separation by chain (genesis), epoch, message type (tag) and instance (inside the body).
//! The engine plugs its keystore in as a [`Signer`]; the simulator uses real sr25519.

use crate::types::{hash, Digest, Epoch, Signature, ValidatorId};
use alloc::vec::Vec;
use codec::{Decode, Encode};

/// Produces signatures for the local validator.
pub trait Signer {
    /// The local validator's public key.
    fn public(&self) -> ValidatorId;
    /// Sign a 32-byte domain-separated digest.
    fn sign(&self, digest: &Digest) -> Signature;
}

/// Checks signatures of any validator.
pub trait Verifier {
    /// Is `sig` a valid signature of `who` over `digest`?
    fn verify(&self, who: &ValidatorId, digest: &Digest, sig: &Signature) -> bool;
}

/// A body that can be signed: it knows its domain tag and epoch.
pub trait Signable: Encode {
    /// Message-type tag for domain separation.
    const TAG: &'static [u8];
    /// The epoch the body belongs to.
    fn epoch(&self) -> Epoch;
}

/// The domain-separated digest that is actually signed.
pub fn signing_digest(genesis: &Digest, epoch: Epoch, tag: &[u8], body: &[u8]) -> Digest {
    let mut buf = Vec::with_capacity(4 + 32 + 8 + tag.len() + body.len());
    buf.extend_from_slice(b"BSMR");
    buf.extend_from_slice(genesis);
    buf.extend_from_slice(&epoch.to_le_bytes());
    buf.extend_from_slice(tag);
    buf.extend_from_slice(body);
    hash(&buf)
}

/// A signed body.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct Signed<T> {
    /// The signed content.
    pub body: T,
    /// Who signed.
    pub signer: ValidatorId,
    /// sr25519 signature over [`signing_digest`].
    pub sig: Signature,
}

impl<T: Signable> Signed<T> {
    /// Sign `body` with `signer`.
    pub fn sign(body: T, genesis: &Digest, signer: &dyn Signer) -> Self {
        let d = signing_digest(genesis, body.epoch(), T::TAG, &body.encode());
        Signed {
            sig: signer.sign(&d),
            signer: signer.public(),
            body,
        }
    }
    /// Verify the signature (membership is checked by the caller).
    pub fn verify(&self, genesis: &Digest, verifier: &dyn Verifier) -> bool {
        let d = signing_digest(genesis, self.body.epoch(), T::TAG, &self.body.encode());
        verifier.verify(&self.signer, &d, &self.sig)
    }
}

/// INSECURE deterministic "signatures" for unit tests and core benchmarks: the signature is
/// `blake2(pk | digest)` twice. Anyone can forge it; never use it outside tests.
#[derive(Clone, Debug)]
pub struct InsecureTestCrypto(pub ValidatorId);

impl InsecureTestCrypto {
    fn sig(who: &ValidatorId, digest: &Digest) -> Signature {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(who);
        b[32..].copy_from_slice(digest);
        let h = hash(&b);
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&h);
        s[32..].copy_from_slice(&h);
        s
    }
}

impl Signer for InsecureTestCrypto {
    fn public(&self) -> ValidatorId {
        self.0
    }
    fn sign(&self, digest: &Digest) -> Signature {
        Self::sig(&self.0, digest)
    }
}

impl Verifier for InsecureTestCrypto {
    fn verify(&self, who: &ValidatorId, digest: &Digest, sig: &Signature) -> bool {
        Self::sig(who, digest) == *sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Encode)]
    struct B(u64, Epoch);
    impl Signable for B {
        const TAG: &'static [u8] = b"test";
        fn epoch(&self) -> Epoch {
            self.1
        }
    }
    #[derive(Encode)]
    struct C(u64, Epoch);
    impl Signable for C {
        const TAG: &'static [u8] = b"othr";
        fn epoch(&self) -> Epoch {
            self.1
        }
    }

    #[test]
    fn domain_separation() {
        let g = [0u8; 32];
        let a = signing_digest(&g, 1, B::TAG, &B(5, 1).encode());
        assert_ne!(a, signing_digest(&g, 2, B::TAG, &B(5, 2).encode()));
        assert_ne!(a, signing_digest(&[1; 32], 1, B::TAG, &B(5, 1).encode()));
        assert_ne!(a, signing_digest(&g, 1, C::TAG, &C(5, 1).encode()));
    }

    #[test]
    fn sign_verify() {
        let k = InsecureTestCrypto([3; 32]);
        let s = Signed::sign(B(1, 0), &[0; 32], &k);
        assert!(s.verify(&[0; 32], &k));
        assert!(!s.verify(&[1; 32], &k));
    }
}

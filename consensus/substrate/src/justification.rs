//! Finality certificates: q signatures over (number, hash, state root), stored as the block's
//! justification under engine id `BSMR` (protocol.md, "Execution and blocks", Finality).
//!
//! Every validator that executes block b signs a [`FinalityVote`]; q matching votes from distinct
//! members of the validator set in force at the block's parent form a [`FinalityCertificate`].
//! Verification here is pure: the caller supplies the set (read through the runtime API at the
//! parent), so import and sync check exactly the same thing.

use crate::hex;
pub use bsmr_consensus_core::wire::FinalityVote;
use bsmr_consensus_core::{Digest, Epoch, Membership, Signed, ValidatorId, Verifier};
use codec::{Decode, DecodeLimit, Encode};
use std::collections::BTreeSet;

/// Upper bound on signatures in one certificate (protects decoding of untrusted justifications).
pub const MAX_CERT_SIGNATURES: usize = 1024;

/// q signatures over one [`FinalityVote`]: the justification of a bsmr block.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct FinalityCertificate {
    /// The vote every signature covers.
    pub vote: FinalityVote,
    /// (signer, sr25519 signature), sorted by signer.
    pub signatures: Vec<(ValidatorId, [u8; 64])>,
}

/// Why a certificate was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Not a SCALE-encoded certificate (or too large).
    #[error("malformed finality certificate")]
    Malformed,
    /// It certifies another block.
    #[error(
        "certificate is for block #{got_number} {got_hash}, expected #{want_number} {want_hash}"
    )]
    WrongBlock {
        /// Certified number.
        got_number: u64,
        /// Certified hash (hex).
        got_hash: String,
        /// Expected number.
        want_number: u64,
        /// Expected hash (hex).
        want_hash: String,
    },
    /// The state root differs from the header's.
    #[error("certificate state root does not match the header")]
    WrongStateRoot,
    /// The epoch is not the set's.
    #[error("certificate is for epoch {got}, the validator set at the parent is epoch {want}")]
    WrongEpoch {
        /// Certified epoch.
        got: Epoch,
        /// Expected epoch.
        want: Epoch,
    },
    /// Fewer than q valid signatures from distinct members.
    #[error("only {valid} valid signatures from distinct validators, {quorum} needed")]
    NoQuorum {
        /// Valid distinct member signatures.
        valid: usize,
        /// Quorum.
        quorum: usize,
    },
}

impl FinalityCertificate {
    /// Assemble a certificate from matching signed votes (duplicates by signer are dropped).
    pub fn from_votes<'a>(
        vote: FinalityVote,
        votes: impl IntoIterator<Item = &'a Signed<FinalityVote>>,
    ) -> Self {
        let mut signatures: Vec<(ValidatorId, [u8; 64])> = votes
            .into_iter()
            .filter(|v| v.body == vote)
            .map(|v| (v.signer, v.sig))
            .collect();
        signatures.sort();
        signatures.dedup_by(|a, b| a.0 == b.0);
        FinalityCertificate { vote, signatures }
    }

    /// Decode untrusted justification bytes with bounded depth; all bytes must be consumed.
    pub fn decode_untrusted(bytes: &[u8]) -> Result<Self, CertificateError> {
        let mut input = bytes;
        let cert = Self::decode_with_depth_limit(8, &mut input)
            .map_err(|_| CertificateError::Malformed)?;
        if !input.is_empty() || cert.signatures.len() > MAX_CERT_SIGNATURES {
            return Err(CertificateError::Malformed);
        }
        Ok(cert)
    }

    /// Check that this certifies block (`number`, `hash`, `state_root`) with q valid signatures
    /// from distinct members of `set`.
    pub fn verify(
        &self,
        number: u64,
        hash: &Digest,
        state_root: &Digest,
        set: &Membership,
        verifier: &dyn Verifier,
    ) -> Result<(), CertificateError> {
        if self.vote.number != number || self.vote.hash != *hash {
            return Err(CertificateError::WrongBlock {
                got_number: self.vote.number,
                got_hash: hex(&self.vote.hash),
                want_number: number,
                want_hash: hex(hash),
            });
        }
        if self.vote.state_root != *state_root {
            return Err(CertificateError::WrongStateRoot);
        }
        if self.vote.epoch != set.epoch {
            return Err(CertificateError::WrongEpoch {
                got: self.vote.epoch,
                want: set.epoch,
            });
        }
        let mut valid = BTreeSet::new();
        for (signer, sig) in &self.signatures {
            if !set.contains(signer) || valid.contains(signer) {
                continue;
            }
            let signed = Signed {
                body: self.vote,
                signer: *signer,
                sig: *sig,
            };
            if signed.verify(&set.genesis, verifier) {
                valid.insert(*signer);
            }
        }
        if valid.len() < set.q() {
            return Err(CertificateError::NoQuorum {
                valid: valid.len(),
                quorum: set.q(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_consensus_core::InsecureTestCrypto;

    fn set() -> (Membership, Vec<InsecureTestCrypto>) {
        let keys: Vec<InsecureTestCrypto> =
            (1..=4u8).map(|i| InsecureTestCrypto([i; 32])).collect();
        (
            Membership::new([7; 32], 0, keys.iter().map(|k| k.0).collect()),
            keys,
        )
    }

    fn vote() -> FinalityVote {
        FinalityVote {
            epoch: 0,
            number: 5,
            hash: [5; 32],
            state_root: [6; 32],
        }
    }

    #[test]
    fn quorum_of_members_verifies() {
        let (m, keys) = set();
        let votes: Vec<_> = keys[..3]
            .iter()
            .map(|k| Signed::sign(vote(), &m.genesis, k))
            .collect();
        let cert = FinalityCertificate::from_votes(vote(), &votes);
        let bytes = cert.encode();
        let back = FinalityCertificate::decode_untrusted(&bytes).unwrap();
        assert_eq!(back.verify(5, &[5; 32], &[6; 32], &m, &keys[0]), Ok(()));
    }

    #[test]
    fn rejects_short_duplicate_foreign_and_mismatched() {
        let (m, keys) = set();
        let two: Vec<_> = keys[..2]
            .iter()
            .map(|k| Signed::sign(vote(), &m.genesis, k))
            .collect();
        let mut cert = FinalityCertificate::from_votes(vote(), &two);
        assert_eq!(
            cert.verify(5, &[5; 32], &[6; 32], &m, &keys[0]),
            Err(CertificateError::NoQuorum {
                valid: 2,
                quorum: 3
            })
        );
        // A duplicated signer does not count twice.
        cert.signatures.push(cert.signatures[0]);
        assert!(matches!(
            cert.verify(5, &[5; 32], &[6; 32], &m, &keys[0]),
            Err(CertificateError::NoQuorum { valid: 2, .. })
        ));
        // A non-member's signature does not count.
        let outsider = InsecureTestCrypto([9; 32]);
        let o = Signed::sign(vote(), &m.genesis, &outsider);
        cert.signatures.push((o.signer, o.sig));
        assert!(matches!(
            cert.verify(5, &[5; 32], &[6; 32], &m, &keys[0]),
            Err(CertificateError::NoQuorum { valid: 2, .. })
        ));
        // A forged signature does not count.
        cert.signatures.push((keys[2].0, [0; 64]));
        assert!(matches!(
            cert.verify(5, &[5; 32], &[6; 32], &m, &keys[0]),
            Err(CertificateError::NoQuorum { valid: 2, .. })
        ));
        let three: Vec<_> = keys[..3]
            .iter()
            .map(|k| Signed::sign(vote(), &m.genesis, k))
            .collect();
        let good = FinalityCertificate::from_votes(vote(), &three);
        assert!(matches!(
            good.verify(6, &[5; 32], &[6; 32], &m, &keys[0]),
            Err(CertificateError::WrongBlock { .. })
        ));
        assert_eq!(
            good.verify(5, &[5; 32], &[7; 32], &m, &keys[0]),
            Err(CertificateError::WrongStateRoot)
        );
        let other_chain = Membership::new([8; 32], 0, keys.iter().map(|k| k.0).collect());
        assert!(matches!(
            good.verify(5, &[5; 32], &[6; 32], &other_chain, &keys[0]),
            Err(CertificateError::NoQuorum { valid: 0, .. })
        ));
        assert_eq!(
            FinalityCertificate::decode_untrusted(&[1, 2, 3]),
            Err(CertificateError::Malformed)
        );
    }
}

//! Finality checked from outside the node, the way a light client or a bridge would: the test
//! talks to a real `bsmr-node --dev` over JSON-RPC only, subscribes to certificates with
//! `bsmr_subscribeJustifications`, asks `bsmr_proveFinality` for each block's proof, and checks it
//! with nothing of the node's code: the header hashes, the parent link, a trie-proof check of the
//! membership storage against the parent's state root (sp-state-machine), and q valid sr25519
//! signatures over the domain-separated vote (the core's signing digest). Its trust anchor is the
//! genesis validator set (Alice alone). Each check is also shown to fail on a tampered proof.

#[allow(dead_code)] // each test uses part of the shared helpers
mod common;

use std::time::{Duration, Instant};

use bsmr_consensus_core::{wire::FinalityVote, Membership, Signed, Verifier};
use codec::Decode;
use common::dev_node::DevNode;
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde::Deserialize;
use sp_core::{sr25519, Pair, H256};
use sp_keyring::Sr25519Keyring;
use sp_runtime::traits::{BlakeTwo256, Hash as HashT};

/// How long the node may take to start answering RPC.
const STARTUP: Duration = Duration::from_secs(120);
/// How long the next certificate may take.
const NEXT_BLOCK: Duration = Duration::from_secs(60);
/// How many consecutive certificates are checked.
const BLOCKS: usize = 3;

type Header = sp_runtime::generic::Header<u32, BlakeTwo256>;

/// `bsmr_proveFinality`'s answer (hex fields as `sp_core::Bytes`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FinalityProof {
    number: u64,
    hash: sp_core::Bytes,
    header: sp_core::Bytes,
    certificate: sp_core::Bytes,
    parent_header: sp_core::Bytes,
    validator_set: ProvenSet,
    storage_keys: Vec<sp_core::Bytes>,
    storage_proof: Vec<sp_core::Bytes>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProvenSet {
    epoch: u64,
    validators: Vec<sp_core::Bytes>,
    quorum: u32,
}

/// `bsmr_justifications` items.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    number: u64,
    hash: sp_core::Bytes,
    certificate: sp_core::Bytes,
}

/// The justification's layout: the vote and (signer, signature) pairs.
#[derive(Decode)]
struct Certificate {
    vote: FinalityVote,
    signatures: Vec<([u8; 32], [u8; 64])>,
}

struct Sr25519;
impl Verifier for Sr25519 {
    fn verify(&self, who: &[u8; 32], digest: &[u8; 32], sig: &[u8; 64]) -> bool {
        sr25519::Pair::verify(
            &sr25519::Signature::from_raw(*sig),
            digest,
            &sr25519::Public::from_raw(*who),
        )
    }
}

/// What a verified proof establishes.
#[derive(Debug, PartialEq, Eq)]
struct Verified {
    number: u64,
    hash: H256,
    epoch: u64,
    validators: Vec<[u8; 32]>,
}

/// Check `proof` for a chain with genesis hash `genesis`, trusting nothing the node says except
/// what the proof's own data proves. The validator set is decoded from the proven storage, not
/// taken from the answer's `validatorSet` (which must merely agree).
fn verify(genesis: H256, proof: &FinalityProof) -> Result<Verified, String> {
    let header = Header::decode(&mut &proof.header[..]).map_err(|e| format!("header: {e}"))?;
    let hash = BlakeTwo256::hash(&proof.header);
    if hash.as_bytes() != &proof.hash[..] || u64::from(header.number) != proof.number {
        return Err("the header is not the named block".into());
    }
    let parent =
        Header::decode(&mut &proof.parent_header[..]).map_err(|e| format!("parent: {e}"))?;
    if BlakeTwo256::hash(&proof.parent_header) != header.parent_hash {
        return Err("the parent header is not the block's parent".into());
    }
    // The set in force at the parent, from its state.
    let nodes: Vec<Vec<u8>> = proof.storage_proof.iter().map(|n| n.to_vec()).collect();
    let keys: Vec<Vec<u8>> = proof.storage_keys.iter().map(|k| k.to_vec()).collect();
    if keys.len() != 2 {
        return Err("expected the members and current-epoch keys".into());
    }
    let values = sp_state_machine::read_proof_check::<BlakeTwo256, _>(
        parent.state_root,
        sp_state_machine::StorageProof::new(nodes),
        &keys,
    )
    .map_err(|e| format!("storage proof: {e}"))?;
    let members_bytes = values
        .get(&keys[0])
        .cloned()
        .flatten()
        .ok_or("the proof has no members")?;
    let members = <Vec<([u8; 32], [u8; 32])>>::decode(&mut &members_bytes[..])
        .map_err(|e| format!("members: {e}"))?;
    let epoch = match values.get(&keys[1]).cloned().flatten() {
        Some(bytes) => u64::decode(&mut &bytes[..]).map_err(|e| format!("epoch: {e}"))?,
        None => 0, // a value-query item absent from storage reads as its default
    };
    let validators: Vec<[u8; 32]> = members.iter().map(|(_, key)| *key).collect();
    let claimed: Vec<Vec<u8>> = proof
        .validator_set
        .validators
        .iter()
        .map(|v| v.to_vec())
        .collect();
    let proven: Vec<Vec<u8>> = validators.iter().map(|v| v.to_vec()).collect();
    if claimed != proven || proof.validator_set.epoch != epoch {
        return Err("the answer's validator set is not the proven one".into());
    }
    let set = Membership::new(genesis.0, epoch, validators.clone());
    if proof.validator_set.quorum as usize != set.q() {
        return Err("the answer's quorum is not the proven set's".into());
    }
    // q distinct members signed this block's vote.
    let mut input = &proof.certificate[..];
    let cert = Certificate::decode(&mut input).map_err(|e| format!("certificate: {e}"))?;
    if !input.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let vote = cert.vote;
    if vote.number != proof.number
        || vote.hash != hash.0
        || vote.state_root != header.state_root.0
        || vote.epoch != epoch
    {
        return Err("the certificate votes for another block, state or epoch".into());
    }
    let mut signers = std::collections::BTreeSet::new();
    for (signer, sig) in &cert.signatures {
        let signed = Signed {
            body: vote,
            signer: *signer,
            sig: *sig,
        };
        if set.contains(signer) && signed.verify(&genesis.0, &Sr25519) {
            signers.insert(*signer);
        }
    }
    if signers.len() < set.q() {
        return Err(format!(
            "{} valid member signatures, {} needed",
            signers.len(),
            set.q()
        ));
    }
    Ok(Verified {
        number: proof.number,
        hash,
        epoch,
        validators,
    })
}

async fn connect(node: &mut DevNode) -> WsClient {
    let started = Instant::now();
    let mut last_error = String::from("no attempt yet");
    while started.elapsed() < STARTUP {
        if let Some(status) = node.exit_status() {
            panic!("bsmr-node exited ({status})\n{}", node.log_tail());
        }
        match WsClientBuilder::default().build(node.ws_url()).await {
            Ok(client) => return client,
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "no RPC within {STARTUP:?} ({last_error})\n{}",
        node.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finality_proofs_verify_outside_the_node() {
    let mut node = DevNode::start();
    let rpc = connect(&mut node).await;
    let genesis: H256 = node
        .within(
            "chain_getBlockHash(0)",
            NEXT_BLOCK,
            rpc.request("chain_getBlockHash", rpc_params![0]),
        )
        .await;
    let trusted = vec![Sr25519Keyring::Alice.public().0];

    let mut sub: Subscription<Notification> = node
        .within(
            "bsmr_subscribeJustifications",
            NEXT_BLOCK,
            rpc.subscribe(
                "bsmr_subscribeJustifications",
                rpc_params![],
                "bsmr_unsubscribeJustifications",
            ),
        )
        .await;
    let mut last: Option<u64> = None;
    let mut proofs = Vec::new();
    while proofs.len() < BLOCKS {
        let note = node
            .within("the next certificate", NEXT_BLOCK, async {
                sub.next()
                    .await
                    .ok_or("the subscription ended")?
                    .map_err(|e| e.to_string())
            })
            .await;
        if let Some(prev) = last {
            assert_eq!(note.number, prev + 1, "certificates arrive in block order");
        }
        last = Some(note.number);
        let proof: FinalityProof = node
            .within(
                "bsmr_proveFinality",
                NEXT_BLOCK,
                rpc.request("bsmr_proveFinality", rpc_params![note.number]),
            )
            .await;
        assert_eq!(proof.certificate, note.certificate, "the same certificate");
        assert_eq!(proof.hash, note.hash, "the same block");
        let verified = verify(genesis, &proof)
            .unwrap_or_else(|e| panic!("block #{}: {e}\n{}", note.number, node.log_tail()));
        assert_eq!(verified.validators, trusted, "the genesis set signed");
        assert_eq!(verified.epoch, 0);
        assert_eq!(verified.number, note.number);
        let canonical: H256 = rpc
            .request("chain_getBlockHash", rpc_params![note.number])
            .await
            .expect("chain_getBlockHash");
        assert_eq!(verified.hash, canonical);
        proofs.push(proof);
    }

    // Each check can fail: tampered proofs are refused.
    let proof = proofs[0].clone();
    let mut forged = proof.clone();
    let cert_len = forged.certificate.0.len();
    forged.certificate.0[cert_len - 1] ^= 1; // a signature byte
    assert!(verify(genesis, &forged)
        .unwrap_err()
        .contains("valid member signatures"));
    let mut forged = proof.clone();
    forged.parent_header = proofs[1].parent_header.clone();
    assert!(verify(genesis, &forged).unwrap_err().contains("parent"));
    let mut forged = proof.clone();
    forged.header = proofs[1].header.clone();
    assert!(verify(genesis, &forged)
        .unwrap_err()
        .contains("named block"));
    let mut forged = proof.clone();
    forged.storage_proof.clear();
    assert!(verify(genesis, &forged).is_err(), "no proof, no set");
    let mut forged = proof.clone();
    forged.validator_set.validators = vec![Sr25519Keyring::Bob.public().0.to_vec().into()];
    assert!(verify(genesis, &forged)
        .unwrap_err()
        .contains("validator set"));
    let mut forged = proof.clone();
    forged.certificate = proofs[1].certificate.clone();
    assert!(verify(genesis, &forged)
        .unwrap_err()
        .contains("another block"));
    assert!(
        verify(H256::repeat_byte(1), &proof).is_err(),
        "signatures bind the chain's genesis"
    );

    // Clear errors for what cannot be proven.
    let err = rpc
        .request::<FinalityProof, _>("bsmr_proveFinality", rpc_params![0])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("genesis"), "{err}");
    let err = rpc
        .request::<FinalityProof, _>("bsmr_proveFinality", rpc_params![u32::MAX])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not finalized yet"), "{err}");
}

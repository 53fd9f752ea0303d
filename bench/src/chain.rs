//! Transfers signed for whatever chain an endpoint serves, read from its metadata: the call's
//! pallet and index, the dest and amount types, and the transaction extensions to sign over
//! (spec and transaction version, genesis, era, nonce, tip...). Built on subxt's offline
//! transaction builder, so the bench needs no compile-time knowledge of the runtime and the same
//! run can target any Substrate chain with pallet-balances.

use jsonrpsee::{core::client::ClientT, rpc_params, ws_client::WsClient};
use sp_core::{crypto::AccountId32, sr25519, Pair, H256};
use subxt::client::{OfflineClient, OfflineClientAtBlockImpl};
use subxt::config::substrate::{SpecVersionForRange, SubstrateConfig};
use subxt::config::SubstrateExtrinsicParamsBuilder as Params;
use subxt::metadata::Metadata;
use subxt::utils::{AccountId32 as SubxtAccountId, MultiAddress, MultiSignature};

/// The runtime version an endpoint reports (`state_getRuntimeVersion`).
async fn runtime_version(client: &WsClient) -> Result<serde_json::Value, String> {
    client
        .request("state_getRuntimeVersion", rpc_params![])
        .await
        .map_err(|e| format!("state_getRuntimeVersion: {e}"))
}

/// The name of the runtime an endpoint runs (`specName`, e.g. `bsmr`).
pub async fn spec_name(client: &WsClient) -> Result<String, String> {
    let version = runtime_version(client).await?;
    version["specName"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("state_getRuntimeVersion has no specName: {version}"))
}

/// What signing for one chain needs, fetched once from an endpoint.
pub struct Chain {
    at: subxt::client::ClientAtBlock<SubstrateConfig, OfflineClientAtBlockImpl<SubstrateConfig>>,
}

impl Chain {
    /// Read genesis hash, runtime version and metadata from `client`.
    pub async fn fetch(client: &WsClient) -> Result<Chain, String> {
        let genesis: H256 = client
            .request("chain_getBlockHash", rpc_params![0])
            .await
            .map_err(|e| format!("chain_getBlockHash: {e}"))?;
        let version = runtime_version(client).await?;
        let metadata: String = client
            .request("state_getMetadata", rpc_params![])
            .await
            .map_err(|e| format!("state_getMetadata: {e}"))?;
        let metadata = hex::decode(metadata.trim_start_matches("0x"))
            .map_err(|e| format!("state_getMetadata returned bad hex: {e}"))?;
        let number = |k: &str| {
            version[k]
                .as_u64()
                .map(|v| v as u32)
                .ok_or_else(|| format!("state_getRuntimeVersion has no {k}: {version}"))
        };
        Chain::new(
            genesis,
            number("specVersion")?,
            number("transactionVersion")?,
            &metadata,
        )
    }

    /// From known parts (`metadata`: SCALE `RuntimeMetadataPrefixed`, as `state_getMetadata`).
    pub fn new(
        genesis: H256,
        spec_version: u32,
        transaction_version: u32,
        metadata: &[u8],
    ) -> Result<Chain, String> {
        let metadata =
            Metadata::decode_from(metadata).map_err(|e| format!("cannot read metadata: {e}"))?;
        if metadata.pallet_by_name("Balances").is_none() {
            return Err("the chain has no Balances pallet to transfer with".into());
        }
        let config = SubstrateConfig::builder()
            .set_genesis_hash(subxt::utils::H256(genesis.0))
            .set_metadata_for_spec_versions([(spec_version, metadata.arc())])
            .set_spec_version_for_block_ranges([SpecVersionForRange {
                block_range: 0..u64::MAX,
                spec_version,
                transaction_version,
            }])
            .build();
        let at = OfflineClient::new_with_config(config)
            .at_block(0u64)
            .map_err(|e| format!("offline client: {e}"))?;
        Ok(Chain { at })
    }

    /// A signed, immortal `Balances::transfer_keep_alive(dest, amount)` from `from` at `nonce`.
    pub fn transfer(
        &self,
        from: &sr25519::Pair,
        dest: &AccountId32,
        amount: u128,
        nonce: u32,
    ) -> Result<Vec<u8>, String> {
        let dest = SubxtAccountId(*dest.as_ref());
        let call = subxt::dynamic::tx(
            "Balances",
            "transfer_keep_alive",
            (MultiAddress::<SubxtAccountId, ()>::Id(dest), amount),
        );
        let params = Params::<SubstrateConfig>::new()
            .nonce(nonce as u64)
            .immortal()
            .build();
        let mut signable = self
            .at
            .transactions()
            .create_signable_offline(&call, params)
            .map_err(|e| format!("building Balances::transfer_keep_alive: {e}"))?;
        let signed = signable
            .sign(&PairSigner(from))
            .map_err(|e| format!("signing: {e}"))?;
        Ok(signed.into_encoded())
    }
}

/// An sp-core sr25519 pair as a subxt signer.
struct PairSigner<'a>(&'a sr25519::Pair);

impl subxt::transactions::Signer<SubstrateConfig> for PairSigner<'_> {
    fn account_id(&self) -> SubxtAccountId {
        SubxtAccountId(self.0.public().0)
    }

    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign(payload).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::Encode;

    fn bsmr_chain(genesis: H256) -> Chain {
        let v = bsmr_runtime::VERSION;
        let metadata = bsmr_runtime::Runtime::metadata().encode();
        Chain::new(genesis, v.spec_version, v.transaction_version, &metadata).unwrap()
    }

    /// Read from metadata alone, the transfer is what the runtime's own signing helper builds
    /// with the runtime's types: same call, signer and extensions, and a valid signature over the
    /// runtime's signed payload (sr25519 signatures are randomized, so they cannot be compared).
    #[test]
    fn metadata_driven_transfer_matches_the_runtime_encoding() {
        use sp_runtime::{generic::Preamble, traits::Verify};
        let genesis = H256::repeat_byte(7);
        let chain = bsmr_chain(genesis);
        let alice = sp_keyring::Sr25519Keyring::Alice.pair();
        let bob = AccountId32::from(sp_keyring::Sr25519Keyring::Bob.public());
        let ours = chain.transfer(&alice, &bob, 12_345, 3).unwrap();
        let theirs =
            bsmr_runtime::signing::signed_transfer(&alice, bob.clone(), 12_345, 3, genesis);
        let decode = |bytes: &[u8]| {
            <bsmr_runtime::UncheckedExtrinsic as codec::Decode>::decode(&mut &bytes[..]).unwrap()
        };
        let (a, b) = (decode(&ours), decode(&theirs));
        assert_eq!(a.function, b.function);
        let (Preamble::Signed(who_a, sig, ext_a), Preamble::Signed(who_b, _, ext_b)) =
            (a.preamble, b.preamble)
        else {
            panic!("both signed");
        };
        assert_eq!(who_a, who_b);
        assert_eq!(ext_a.encode(), ext_b.encode());
        let payload = bsmr_runtime::signing::signed_payload(a.function, ext_a, genesis);
        let alice_id = AccountId32::from(alice.public());
        assert!(payload.using_encoded(|p| sig.verify(p, &alice_id)));
        // Another genesis is another chain: the signature must not carry over.
        let elsewhere =
            bsmr_runtime::signing::signed_payload(b.function, ext_b, H256::repeat_byte(8));
        assert!(!elsewhere.using_encoded(|p| sig.verify(p, &alice_id)));
    }

    /// A chain without pallet-balances is refused with a clear error.
    #[test]
    fn bad_metadata_is_refused() {
        let err = Chain::new(H256::zero(), 1, 1, b"not metadata")
            .err()
            .unwrap();
        assert!(err.contains("metadata"), "{err}");
    }
}

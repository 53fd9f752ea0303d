//! Chain specifications: `dev` (Alice alone), `local` (Alice, Bob, Charlie, Dave) or a JSON file.

use aura_grandpa_runtime::WASM_BINARY;
use sc_service::ChainType;
use sp_genesis_builder::{DEV_RUNTIME_PRESET as DEV, LOCAL_TESTNET_RUNTIME_PRESET as LOCAL};

/// A chain specification of the reference chain.
pub type ChainSpec = sc_service::GenericChainSpec;

/// The spec of `id`: `dev`, `local` (also the default) or the path of a chain spec JSON file.
pub fn load(id: &str) -> Result<ChainSpec, String> {
    let preset = match id {
        "dev" => DEV,
        "" | "local" => LOCAL,
        path => {
            return ChainSpec::from_json_file(path.into())
                .map_err(|e| format!("invalid chain spec `{path}`: {e}"))
        }
    };
    let wasm = WASM_BINARY.ok_or(
        "the runtime's WASM binary is missing (built with SKIP_WASM_BUILD=1); rebuild without it",
    )?;
    let mut properties = sc_chain_spec::Properties::new();
    properties.insert("ss58Format".into(), 42.into());
    properties.insert("tokenSymbol".into(), "REF".into());
    properties.insert("tokenDecimals".into(), 12.into());
    Ok(ChainSpec::builder(wasm, None)
        .with_name(&format!("Aura+GRANDPA reference ({preset})"))
        .with_id(&format!("aura_grandpa_{preset}"))
        .with_chain_type(if preset == DEV {
            ChainType::Development
        } else {
            ChainType::Local
        })
        .with_genesis_config_preset_name(preset)
        .with_properties(properties)
        .build())
}

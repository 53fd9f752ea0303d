//! Chain specifications: `dev`, `local`, or a JSON file.

use bsmr_runtime::{
    genesis_config_presets::{DEV_PRESET, LOCAL_PRESET},
    SS58_PREFIX, TOKEN_DECIMALS, TOKEN_SYMBOL, WASM_BINARY,
};
use sc_service::ChainType;

/// A chain specification of bsmr (genesis from a runtime preset or from JSON).
pub type ChainSpec = sc_service::GenericChainSpec;

/// The properties wallets (polkadot.js) read: address format and token.
fn properties() -> sc_chain_spec::Properties {
    let mut properties = sc_chain_spec::Properties::new();
    properties.insert("ss58Format".into(), SS58_PREFIX.into());
    properties.insert("tokenSymbol".into(), TOKEN_SYMBOL.into());
    properties.insert("tokenDecimals".into(), TOKEN_DECIMALS.into());
    properties
}

fn wasm_binary() -> Result<&'static [u8], String> {
    WASM_BINARY.ok_or_else(|| {
        "the runtime's WASM binary is not available: it was built with SKIP_WASM_BUILD=1; \
         rebuild without it"
            .to_string()
    })
}

/// `--dev`: a single validator (Alice), instant finality for development.
pub fn development_chain_spec() -> Result<ChainSpec, String> {
    Ok(ChainSpec::builder(wasm_binary()?, None)
        .with_name("bsmr development")
        .with_id("bsmr_dev")
        .with_chain_type(ChainType::Development)
        .with_protocol_id("bsmr")
        .with_genesis_config_preset_name(DEV_PRESET)
        .with_properties(properties())
        .build())
}

/// `--chain local`: Alice, Bob, Charlie and Dave validate on one machine.
pub fn local_chain_spec() -> Result<ChainSpec, String> {
    Ok(ChainSpec::builder(wasm_binary()?, None)
        .with_name("bsmr local testnet")
        .with_id("bsmr_local")
        .with_chain_type(ChainType::Local)
        .with_protocol_id("bsmr")
        .with_genesis_config_preset_name(LOCAL_PRESET)
        .with_properties(properties())
        .build())
}

/// A chain specification from a JSON file, with an error that names the file.
pub fn from_json_file(path: &str) -> Result<ChainSpec, String> {
    let file = std::path::PathBuf::from(path);
    if !file.exists() {
        return Err(format!(
            "chain spec `{path}` not found: use `dev`, `local` or the path of a chain spec JSON file"
        ));
    }
    ChainSpec::from_json_file(file).map_err(|e| format!("invalid chain spec `{path}`: {e}"))
}

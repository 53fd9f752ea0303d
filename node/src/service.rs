//! The node service: client, database (ParityDb), transaction pool, network, RPC and block
//! production.
//!
//! Consensus is the bsmr engine (`sc-consensus-bsmr`) at three seams: [`new_partial`] takes its
//! import queue (blocks from the network need a valid finality certificate), [`new_full`] adds its
//! notification protocol to the network and starts the engine task once the network and RPC are
//! up. Every node runs the engine: validators (a member `bsmr` key in the keystore and
//! `--validator`) order, build and finalize blocks; other nodes follow and verify.

use std::sync::Arc;

use bsmr_runtime::{apis::RuntimeApi, opaque::Block};
use futures::FutureExt;
use sc_client_api::{Backend, HeaderBackend};
use sc_service::{error::Error as ServiceError, Configuration, TaskManager};
use sc_telemetry::{Telemetry, TelemetryWorker};

/// The client with the WASM executor.
pub type FullClient = sc_service::TFullClient<
    Block,
    RuntimeApi,
    sc_executor::WasmExecutor<sp_io::SubstrateHostFunctions>,
>;
/// The database backend.
pub type FullBackend = sc_service::TFullBackend<Block>;
/// Chain selection: every imported bsmr block is final, so there is only one chain.
pub type FullSelectChain = sc_consensus::LongestChain<FullBackend, Block>;
/// The transaction pool.
pub type TransactionPool = sc_transaction_pool::TransactionPoolHandle<Block, FullClient>;

/// The parts shared by the node and the chain-maintenance subcommands.
pub type Service = sc_service::PartialComponents<
    FullClient,
    FullBackend,
    FullSelectChain,
    sc_consensus::DefaultImportQueue<Block>,
    TransactionPool,
    (Option<Telemetry>, sc_consensus_bsmr::BuiltBlocks<Block>),
>;

/// Build the client, backend, pool and import queue (the pool as `config` says).
pub fn new_partial(config: &Configuration) -> Result<Service, ServiceError> {
    new_partial_with(config, None)
}

/// [`new_partial`], with a single-state pool of these options that re-checks its ready
/// transactions only every 20 blocks or 60 s (`--pool-revalidation light`) when given.
pub fn new_partial_with(
    config: &Configuration,
    light_pool: Option<sc_transaction_pool::Options>,
) -> Result<Service, ServiceError> {
    let telemetry = config
        .telemetry_endpoints
        .clone()
        .filter(|x| !x.is_empty())
        .map(|endpoints| -> Result<_, sc_telemetry::Error> {
            let worker = TelemetryWorker::new(16)?;
            let telemetry = worker.handle().new_telemetry(endpoints);
            Ok((worker, telemetry))
        })
        .transpose()?;

    let executor = sc_service::new_wasm_executor::<sp_io::SubstrateHostFunctions>(&config.executor);
    let (client, backend, keystore_container, task_manager) =
        sc_service::new_full_parts::<Block, RuntimeApi, _>(
            config,
            telemetry.as_ref().map(|(_, telemetry)| telemetry.handle()),
            executor,
            Vec::new(),
        )?;
    let client = Arc::new(client);

    let telemetry = telemetry.map(|(worker, telemetry)| {
        task_manager
            .spawn_handle()
            .spawn("telemetry", None, worker.run());
        telemetry
    });

    let select_chain = sc_consensus::LongestChain::new(backend.clone());

    let transaction_pool = match light_pool {
        None => Arc::from(
            sc_transaction_pool::Builder::new(
                task_manager.spawn_essential_handle(),
                client.clone(),
                config.role.is_authority().into(),
            )
            .with_options(config.transaction_pool.clone())
            .with_prometheus(config.prometheus_registry())
            .build(),
        ),
        Some(options) => {
            let spawner = task_manager.spawn_essential_handle();
            // A block's transactions the pool does not hold are pruned by the tags in their
            // bytes, not validated again (`pool_api.rs`).
            let versions = client.clone();
            let api = Arc::new(crate::pool_api::InBlockTags::new(
                sc_transaction_pool::FullChainApi::new(
                    client.clone(),
                    config.prometheus_registry(),
                    &spawner,
                ),
                move |at| {
                    versions
                        .runtime_version_at(at, sp_core::traits::CallContext::Offchain)
                        .is_ok_and(|v| crate::pool_api::is_this_runtime(&v))
                },
            ));
            let chain = sc_client_api::UsageProvider::usage_info(&*client).chain;
            let pool = sc_transaction_pool::BasicPool::with_revalidation_type(
                options,
                config.role.is_authority().into(),
                api,
                config.prometheus_registry(),
                sc_transaction_pool::RevalidationType::Light,
                spawner,
                chain.best_number,
                chain.best_hash,
                chain.finalized_hash,
            );
            Arc::new(sc_transaction_pool::TransactionPoolWrapper(Box::new(
                crate::pool_api::LightPool(pool),
            )))
        }
    };

    let genesis = client.info().genesis_hash;
    let built = sc_consensus_bsmr::BuiltBlocks::default();
    let import_queue = sc_consensus_bsmr::import_queue(
        client.clone(),
        genesis.0,
        built.clone(),
        &task_manager.spawn_essential_handle(),
        config.prometheus_registry(),
    );

    Ok(sc_service::PartialComponents {
        client,
        backend,
        task_manager,
        import_queue,
        keystore_container,
        select_chain,
        transaction_pool,
        other: (telemetry, built),
    })
}

/// Build and start a full node (a validator when the keystore holds a member key).
pub fn new_full<
    N: sc_network::NetworkBackend<Block, <Block as sp_runtime::traits::Block>::Hash>,
>(
    config: Configuration,
    engine_config: sc_consensus_bsmr::EngineConfig,
    light_pool: Option<sc_transaction_pool::Options>,
) -> Result<TaskManager, ServiceError> {
    let sc_service::PartialComponents {
        client,
        backend,
        mut task_manager,
        import_queue,
        keystore_container,
        select_chain: _,
        transaction_pool,
        other: (mut telemetry, built),
    } = new_partial_with(&config, light_pool)?;

    let mut net_config = sc_network::config::FullNetworkConfiguration::<
        Block,
        <Block as sp_runtime::traits::Block>::Hash,
        N,
    >::new(&config.network, config.prometheus_registry().cloned());
    let metrics = N::register_notification_metrics(config.prometheus_registry());
    let genesis = client.info().genesis_hash;
    let (bsmr_protocol, bsmr_notifications) = sc_consensus_bsmr::notification_config::<Block, N>(
        genesis.as_ref(),
        metrics.clone(),
        net_config.peer_store_handle(),
    );
    net_config.add_notification_protocol(bsmr_protocol);
    let (fetch_protocol, fetch_requests) =
        sc_consensus_bsmr::fetch_config::<Block, N>(genesis.as_ref());
    net_config.add_request_response_protocol(fetch_protocol);

    // Client submissions, recorded by the RPC pool view below; both views hold them back from
    // gossip while the engine's gossip hold says so.
    let client_submissions = sc_consensus_bsmr::ClientSubmissions::default();
    let (network, system_rpc_tx, tx_handler_controller, sync_service, _bitswap) =
        sc_service::build_network(sc_service::BuildNetworkParams {
            config: &config,
            net_config,
            client: client.clone(),
            // Transactions gossiped by peers are imported through this view, so they are not
            // mistaken for client submissions; its periodic gossip round is bounded (pool_view/).
            transaction_pool: Arc::new(sc_consensus_bsmr::PoolView::for_network(
                transaction_pool.clone(),
                client_submissions.clone(),
                Arc::new(crate::classifier::RuntimeClassifier),
            )),
            spawn_handle: task_manager.spawn_handle(),
            spawn_essential_handle: task_manager.spawn_essential_handle(),
            import_queue,
            block_announce_validator_builder: None,
            warp_sync_config: None,
            block_relay: None,
            metrics,
            gap_sync_body_policy: None,
        })?;

    if config.offchain_worker.enabled {
        let offchain_workers =
            sc_offchain::OffchainWorkers::new(sc_offchain::OffchainWorkerOptions {
                runtime_api_provider: client.clone(),
                is_validator: config.role.is_authority(),
                keystore: Some(keystore_container.keystore()),
                offchain_db: backend.offchain_storage(),
                transaction_pool: Some(
                    sc_transaction_pool_api::OffchainTransactionPoolFactory::new(
                        transaction_pool.clone(),
                    ),
                ),
                network_provider: Arc::new(network.clone()),
                enable_http_requests: false,
                custom_extensions: |_| vec![],
            })?;
        task_manager.spawn_handle().spawn(
            "offchain-workers-runner",
            "offchain-worker",
            offchain_workers
                .run(client.clone(), task_manager.spawn_handle())
                .boxed(),
        );
    }

    // RPC (and the tasks spawned with it) see the pool through a view that records client
    // submissions: the engine proposes those at once. The view's import notifications, which
    // spawn_tasks gossips at once, are client transactions only, also those that became ready
    // after arriving as future ones; peers' transactions are relayed by the periodic round
    // (pool_view/).
    let rpc_pool = Arc::new(sc_consensus_bsmr::PoolView::for_rpc(
        transaction_pool.clone(),
        client_submissions.clone(),
        engine_config.rpc_backlog_limit,
        Arc::new(crate::classifier::RuntimeClassifier),
    ));
    let engine_status = sc_consensus_bsmr::SharedStatus::default();
    let rpc_builder = {
        let client = client.clone();
        let pool = rpc_pool.clone();
        let status = engine_status.clone();
        Box::new(move |_| {
            let deps = crate::rpc::FullDeps {
                client: client.clone(),
                pool: pool.clone(),
                engine_status: status.clone(),
            };
            crate::rpc::create_full(deps).map_err(Into::into)
        })
    };

    let is_validator = config.role.is_authority();
    let keystore = keystore_container.keystore();
    let prometheus_registry = config.prometheus_registry().cloned();

    sc_service::spawn_tasks(sc_service::SpawnTasksParams {
        network: network.clone(),
        client: client.clone(),
        keystore: keystore.clone(),
        task_manager: &mut task_manager,
        transaction_pool: rpc_pool,
        rpc_builder,
        backend,
        system_rpc_tx,
        tx_handler_controller,
        sync_service,
        config,
        telemetry: telemetry.as_mut(),
        tracing_execute_block: None,
    })?;

    let engine = sc_consensus_bsmr::start::<Block, FullBackend, FullClient, TransactionPool>(
        sc_consensus_bsmr::EngineParams {
            client,
            pool: transaction_pool,
            client_submissions,
            keystore,
            local_keystore: Some(keystore_container.local_keystore()),
            validator: is_validator,
            network,
            notifications: bsmr_notifications,
            fetch_requests,
            classifier: Arc::new(crate::classifier::RuntimeClassifier),
            built,
            status: engine_status,
            registry: prometheus_registry,
            config: engine_config,
            _block: Default::default(),
        },
    )
    .map_err(|e| ServiceError::Other(format!("starting the bsmr engine: {e}")))?;
    task_manager
        .spawn_essential_handle()
        .spawn_blocking("bsmr-engine", Some("bsmr"), engine);

    Ok(task_manager)
}

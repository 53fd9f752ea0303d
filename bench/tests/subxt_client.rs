//! subxt's online client (0.50, the stock `SubstrateConfig`) works against a real
//! `bsmr-node --dev` the same way it works against any Substrate chain: it follows finalized
//! blocks, reads `System.Account` through a dynamic storage query, and submits a dynamic
//! `Balances::transfer_keep_alive` signed with the Alice dev key, watches it into a finalized
//! block, finds its success and `Balances.Transfer` events, and reads the new account's balance
//! at that block. No code generated from this runtime's metadata is involved.

#[allow(dead_code)] // each test uses part of the shared helpers
mod common;

use common::dev_node::DevNode;

use std::time::{Duration, Instant};

use sp_core::{sr25519, Pair};
use sp_keyring::Sr25519Keyring;
use subxt::client::{Blocks, OnlineClientAtBlockImpl};
use subxt::dynamic::{At, Value};
use subxt::extrinsics::ExtrinsicEvents;
use subxt::transactions::{Signer, TransactionInBlock};
use subxt::utils::{AccountId32, MultiAddress, MultiSignature};
use subxt::{OnlineClient, OnlineClientAtBlock, SubstrateConfig};

/// How long the node may take to start answering RPC.
const STARTUP: Duration = Duration::from_secs(120);
/// How long the next finalized block may take.
const NEXT_BLOCK: Duration = Duration::from_secs(60);
/// How long a submitted transfer may take to reach a finalized block.
const FINALITY: Duration = Duration::from_secs(120);
/// How long one request (a query, a submission, fetching events) may take.
const REQUEST: Duration = Duration::from_secs(30);
/// What Alice sends: one token (the existential deposit is a thousandth of one).
const AMOUNT: u128 = 1_000_000_000_000;

type Client = OnlineClient<SubstrateConfig>;
type AtBlock = OnlineClientAtBlock<SubstrateConfig>;
type FinalizedTransaction =
    TransactionInBlock<SubstrateConfig, OnlineClientAtBlockImpl<SubstrateConfig>>;

/// subxt's online client for `node`, retried until the node answers or `STARTUP` has passed.
async fn connect(node: &mut DevNode) -> Client {
    let started = Instant::now();
    let mut last_error = String::from("no attempt yet");
    while started.elapsed() < STARTUP {
        if let Some(status) = node.exit_status() {
            panic!(
                "bsmr-node exited ({status}) before answering RPC\n{}",
                node.log_tail()
            );
        }
        match tokio::time::timeout(REQUEST, Client::from_url(node.ws_url())).await {
            Ok(Ok(client)) => return client,
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = format!("no answer within {REQUEST:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "subxt could not connect to {} within {STARTUP:?} ({last_error})\n{}",
        node.ws_url(),
        node.log_tail()
    );
}

/// An sp-core sr25519 pair as a subxt signer (as the bench's `chain.rs` signs).
struct PairSigner(sr25519::Pair);

impl PairSigner {
    fn account(&self) -> AccountId32 {
        AccountId32(self.0.public().0)
    }
}

impl Signer<SubstrateConfig> for PairSigner {
    fn account_id(&self) -> AccountId32 {
        self.account()
    }

    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign(payload).0)
    }
}

/// The number of the next block the finalized-block stream yields.
async fn next_finalized_number(node: &DevNode, blocks: &mut Blocks<SubstrateConfig>) -> u64 {
    let next = async {
        match blocks.next().await {
            Some(block) => block.map(|block| block.number()).map_err(|e| e.to_string()),
            None => Err("the finalized block stream ended".to_string()),
        }
    };
    node.within("the next finalized block", NEXT_BLOCK, next)
        .await
}

/// Follow finalized blocks until one comes after the first seen; both numbers.
async fn two_increasing_finalized_numbers(node: &DevNode, client: &Client) -> (u64, u64) {
    let mut blocks = node
        .within(
            "subscribing to finalized blocks",
            REQUEST,
            client.stream_blocks(),
        )
        .await;
    let first = next_finalized_number(node, &mut blocks).await;
    loop {
        let next = next_finalized_number(node, &mut blocks).await;
        assert!(
            next >= first,
            "finalized block numbers never go back: #{first}, then #{next}"
        );
        if next > first {
            return (first, next);
        }
    }
}

/// `who`'s free balance at `at`: a dynamic `System.Account` query, decoded to a dynamic value,
/// from which `data.free` is read.
async fn free_balance(node: &DevNode, at: &AtBlock, who: &AccountId32) -> u128 {
    let account = subxt::dynamic::storage::<(AccountId32,), Value>("System", "Account");
    let stored = node
        .within(
            "the System.Account query",
            REQUEST,
            at.storage().fetch(account, (*who,)),
        )
        .await;
    let info = stored
        .decode()
        .unwrap_or_else(|e| panic!("System.Account of {who} does not decode: {e}"));
    info.at("data")
        .at("free")
        .and_then(|free| free.as_u128())
        .unwrap_or_else(|| panic!("System.Account of {who} has no data.free balance: {info}"))
}

/// Sign `Balances::transfer_keep_alive(dest, amount)` (a dynamic call) with `from`'s key, submit
/// it, and watch it until it is in a finalized block.
async fn transfer_until_finalized(
    node: &DevNode,
    client: &Client,
    from: &PairSigner,
    dest: AccountId32,
    amount: u128,
) -> FinalizedTransaction {
    let call = subxt::dynamic::tx(
        "Balances",
        "transfer_keep_alive",
        (MultiAddress::<AccountId32, ()>::Id(dest), amount),
    );
    let mut transactions = node
        .within(
            "a transaction client at the finalized head",
            REQUEST,
            client.tx(),
        )
        .await;
    let progress = node
        .within(
            "signing and submitting the transfer",
            REQUEST,
            transactions.sign_and_submit_then_watch_default(&call, from),
        )
        .await;
    node.within(
        "the transfer reaching a finalized block",
        FINALITY,
        progress.wait_for_finalized(),
    )
    .await
}

/// `Pallet.Event` for every event of the transaction, for failure messages.
fn event_names(events: &ExtrinsicEvents<SubstrateConfig>) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Ok(event) => format!("{}.{}", event.pallet_name(), event.event_name()),
            Err(e) => format!("<undecodable: {e}>"),
        })
        .collect()
}

/// `(from, to, amount)` of every `Balances.Transfer` event of the transaction.
fn balance_transfers(
    events: &ExtrinsicEvents<SubstrateConfig>,
) -> Vec<(AccountId32, AccountId32, u128)> {
    events
        .iter()
        .map(|event| event.unwrap_or_else(|e| panic!("an event of the transfer: {e}")))
        .filter(|event| event.pallet_name() == "Balances" && event.event_name() == "Transfer")
        .map(|event| {
            event
                .decode_fields_unchecked_as::<(AccountId32, AccountId32, u128)>()
                .unwrap_or_else(|e| panic!("Balances.Transfer as (from, to, amount): {e}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_client_follows_finality_reads_storage_and_finalizes_a_dynamic_transfer() {
    let mut node = DevNode::start();
    let client = connect(&mut node).await;
    let node = &node;

    // a. Finalized blocks arrive, in increasing order.
    let (first, second) = two_increasing_finalized_numbers(node, &client).await;
    assert!(second > first, "finalized #{first}, then #{second}");

    // b. A dynamic storage query: Alice is endowed on the dev chain.
    let alice = PairSigner(Sr25519Keyring::Alice.pair());
    let head = node
        .within(
            "a client at the finalized head",
            REQUEST,
            client.at_current_block(),
        )
        .await;
    let alice_free = free_balance(node, &head, &alice.account()).await;
    assert!(
        alice_free > AMOUNT,
        "Alice can afford the transfer: free {alice_free}"
    );

    // c. A dynamic transfer to a fresh account, finalized, with its events and its effect.
    let fresh = sr25519::Pair::from_string("//SubxtTest", None).expect("a dev derivation");
    let dest = AccountId32(fresh.public().0);
    let transfer = transfer_until_finalized(node, &client, &alice, dest, AMOUNT).await;
    let events = node
        .within(
            "the transfer's events showing success",
            REQUEST,
            transfer.wait_for_success(),
        )
        .await;
    let names = event_names(&events);
    assert!(
        names.iter().any(|name| name == "System.ExtrinsicSuccess"),
        "the transfer succeeded: {names:?}"
    );
    assert_eq!(
        balance_transfers(&events),
        vec![(alice.account(), dest, AMOUNT)],
        "one Balances.Transfer from Alice to the fresh account: {names:?}"
    );
    let at_transfer = node
        .within("a client at the transfer's block", REQUEST, transfer.at())
        .await;
    assert!(
        at_transfer.block_number() >= 1,
        "the transfer is in a block after genesis"
    );
    assert_eq!(
        free_balance(node, &at_transfer, &dest).await,
        AMOUNT,
        "the fresh account holds exactly the amount at the transfer's finalized block {:?}",
        transfer.block_hash()
    );
}

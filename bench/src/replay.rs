//! Submit pre-signed transfers over RPC and measure each one: submit -> in a block -> finalized.
//!
//! Open loop: transaction i is submitted at its scheduled time whatever happened to the ones
//! before it (a fixed rate, or the trace's own inter-arrival times scaled). A sender's
//! transactions go to the same endpoint (sender mod endpoints), so nonces arrive in order, unless
//! `--endpoints-per-sender` makes them take turns on several.
//! A watcher follows new and finalized heads on the first endpoint, reads every block body and
//! matches extrinsic hashes; a finalized-head watcher on every endpoint gives each transaction its
//! finality as seen by the validator it was submitted to (what that validator's client sees).
//! Every submitted transaction ends either finalized or dropped with
//! its reason (RPC error, or not finalized before the deadline).
//! A node that refuses a transaction as busy (RPC error 1016, "Immediately Dropped": a bsmr
//! validator's `--rpc-backlog-limit`, or a full pool) is asked again, as a client would, after a
//! pause that doubles from 100 ms to 1 s with jitter, for as long as the settle window; its
//! latency counts from the first attempt. (A full pool that evicted a transaction to admit
//! another bans the evicted one for a while: asked again, it is refused as banned and dropped.)

use crate::accounts::xt_hash;
use jsonrpsee::{
    core::client::{ClientT, Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::{WsClient, WsClientBuilder},
};
use serde::Serialize;
use sp_core::H256;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A transaction ready to submit.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Encoded signed extrinsic.
    pub xt: Vec<u8>,
    /// Sender index (routes it to an endpoint).
    pub sender: usize,
    /// Added to the sender index to pick the endpoint (the sender's turn among its endpoints).
    pub endpoint_turn: usize,
    /// Submit time, in ms after the start.
    pub at_ms: u64,
    /// The signer's account (SS58) and the transaction's nonce, to tell where a lost one is.
    pub signer: (String, u32),
}

/// What happened to one transaction.
#[derive(Clone, Debug, Serialize)]
pub struct TxRecord {
    /// Extrinsic hash.
    pub hash: H256,
    /// Endpoint index it was sent to.
    pub endpoint: usize,
    /// Submit time (ms since start).
    pub submitted_ms: u64,
    /// Seen in a block (ms since start).
    pub included_ms: Option<u64>,
    /// Seen in a finalized block (ms since start).
    pub finalized_ms: Option<u64>,
    /// Block number.
    pub block: Option<u64>,
    /// Why it did not finalize.
    pub dropped: Option<String>,
    /// How often a node refused it as busy (RPC error 1016), whether it was accepted later or not.
    pub busy_refusals: u32,
}

/// The RPC error a node answers when its pool, or its backlog limit, is full; retriable.
pub const BUSY: i32 = 1016;
/// The first pause before asking a busy node again; it doubles up to [`BUSY_RETRY_MAX`].
const BUSY_RETRY_FIRST: Duration = Duration::from_millis(100);
const BUSY_RETRY_MAX: Duration = Duration::from_secs(1);

/// Replay outcome.
pub struct Outcome {
    /// One record per planned transaction, in plan order.
    pub records: Vec<TxRecord>,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// (ms since start, block number, extrinsics in it) for every finalized block seen.
    pub blocks: Vec<(u64, u64, usize)>,
    /// When the injected fault ran (ms since start), if the run had one.
    pub fault_ms: Option<u64>,
}

#[derive(Default)]
struct Seen {
    included: BTreeMap<H256, (u64, u64)>,
    finalized: BTreeMap<H256, (u64, u64)>,
    /// Per endpoint: when that endpoint reported the transaction finalized.
    finalized_at: Vec<BTreeMap<H256, u64>>,
    blocks: Vec<(u64, u64, usize)>,
}

/// What a head follower records.
#[derive(Clone, Copy)]
enum Follow {
    /// New heads: inclusion.
    Included,
    /// Finalized heads of endpoint `.0`; the first endpoint also records the block list.
    Finalized(usize),
}

/// A WebSocket RPC client for `url`, with room for many requests in flight.
pub async fn connect(url: &str) -> Result<WsClient, String> {
    WsClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .max_concurrent_requests(100_000)
        .build(url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// Read the extrinsic hashes of block `n` from `client`.
async fn block_xts(client: &WsClient, n: u64) -> Result<Vec<H256>, String> {
    let hash: Option<H256> = client
        .request("chain_getBlockHash", rpc_params![n])
        .await
        .map_err(|e| e.to_string())?;
    let Some(hash) = hash else { return Ok(vec![]) };
    let block: serde_json::Value = client
        .request("chain_getBlock", rpc_params![hash])
        .await
        .map_err(|e| e.to_string())?;
    let xts = block["block"]["extrinsics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(xts
        .iter()
        .filter_map(|x| x.as_str())
        .filter_map(|x| hex::decode(x.trim_start_matches("0x")).ok())
        .map(|b| xt_hash(&b))
        .collect())
}

/// The block number of a JSON header.
pub fn header_number(h: &serde_json::Value) -> u64 {
    h["number"]
        .as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}

/// Follow heads of one kind, recording every extrinsic of every block once.
async fn follow(
    url: String,
    what: Follow,
    start: Instant,
    seen: Arc<Mutex<Seen>>,
    from: u64,
) -> Result<(), String> {
    let client = connect(&url).await?;
    let (sub, unsub) = if matches!(what, Follow::Finalized(_)) {
        (
            "chain_subscribeFinalizedHeads",
            "chain_unsubscribeFinalizedHeads",
        )
    } else {
        ("chain_subscribeNewHeads", "chain_unsubscribeNewHeads")
    };
    let mut heads: Subscription<serde_json::Value> = client
        .subscribe(sub, rpc_params![], unsub)
        .await
        .map_err(|e| format!("{sub}: {e}"))?;
    let mut next = from + 1;
    while let Some(h) = heads.next().await {
        let h = h.map_err(|e| e.to_string())?;
        let top = header_number(&h);
        let now = start.elapsed().as_millis() as u64;
        while next <= top {
            let xts = block_xts(&client, next).await?;
            let mut s = seen.lock().expect("no panics while held; qed");
            match what {
                Follow::Included => {
                    for x in xts {
                        s.included.entry(x).or_insert((now, next));
                    }
                }
                Follow::Finalized(endpoint) => {
                    if endpoint == 0 {
                        s.blocks.push((now, next, xts.len()));
                    }
                    for x in xts {
                        s.finalized.entry(x).or_insert((now, next));
                        s.finalized_at[endpoint].entry(x).or_insert(now);
                    }
                }
            }
            next += 1;
        }
    }
    Ok(())
}

/// `pause` scaled by a factor in [0.5, 1.5) drawn from the transaction's index and attempt, so
/// transactions refused together do not all come back together.
fn jittered(pause: Duration, index: usize, attempt: u32) -> Duration {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same jitter in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (index, attempt).hash(&mut h);
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    pause.mul_f64(0.5 + unit)
}

/// Run the replay. `progress` is called with (submitted, finalized) counts; `fault` (e.g. killing
/// a validator) runs once, right after half of the plan is submitted.
pub async fn run(
    endpoints: &[String],
    plan: Vec<Planned>,
    settle: Duration,
    progress: impl Fn(usize, usize),
    mut fault: Option<Box<dyn FnOnce() + Send>>,
) -> Result<Outcome, String> {
    let mut clients = vec![];
    for e in endpoints {
        clients.push(Arc::new(connect(e).await?));
    }
    let head: H256 = clients[0]
        .request("chain_getFinalizedHead", rpc_params![])
        .await
        .map_err(|e| e.to_string())?;
    let header: serde_json::Value = clients[0]
        .request("chain_getHeader", rpc_params![head])
        .await
        .map_err(|e| e.to_string())?;
    let from = header_number(&header);
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen {
        finalized_at: vec![BTreeMap::new(); endpoints.len()],
        ..Seen::default()
    }));
    let mut watchers = vec![tokio::spawn(follow(
        endpoints[0].clone(),
        Follow::Included,
        start,
        seen.clone(),
        from,
    ))];
    for (i, e) in endpoints.iter().enumerate() {
        watchers.push(tokio::spawn(follow(
            e.clone(),
            Follow::Finalized(i),
            start,
            seen.clone(),
            from,
        )));
    }

    let n = plan.len();
    let signers: BTreeMap<H256, (String, u32)> = plan
        .iter()
        .map(|p| (xt_hash(&p.xt), p.signer.clone()))
        .collect();
    let records: Arc<Mutex<Vec<Option<TxRecord>>>> = Arc::new(Mutex::new(vec![None; n]));
    let mut tasks = Vec::with_capacity(n);
    let mut fault_ms = None;
    for (i, p) in plan.into_iter().enumerate() {
        let due = start + Duration::from_millis(p.at_ms);
        tokio::time::sleep_until(due.into()).await;
        let endpoint = (p.sender + p.endpoint_turn) % clients.len();
        let client = clients[endpoint].clone();
        let records = records.clone();
        tasks.push(tokio::spawn(async move {
            let submitted_ms = start.elapsed().as_millis() as u64;
            let first = Instant::now();
            let (mut busy_refusals, mut pause) = (0u32, BUSY_RETRY_FIRST);
            let dropped = loop {
                let r: Result<H256, jsonrpsee::core::ClientError> = client
                    .request(
                        "author_submitExtrinsic",
                        rpc_params![sp_core::Bytes(p.xt.clone())],
                    )
                    .await;
                match r {
                    Ok(_) => break None,
                    Err(jsonrpsee::core::ClientError::Call(e)) if e.code() == BUSY => {
                        busy_refusals += 1;
                        if first.elapsed() >= settle {
                            break Some(format!("refused as busy for {} s: {e}", settle.as_secs()));
                        }
                        tokio::time::sleep(jittered(pause, i, busy_refusals)).await;
                        pause = (pause * 2).min(BUSY_RETRY_MAX);
                    }
                    Err(e) => break Some(format!("rejected at submission: {e}")),
                }
            };
            records.lock().expect("no panics while held; qed")[i] = Some(TxRecord {
                hash: xt_hash(&p.xt),
                endpoint,
                submitted_ms,
                included_ms: None,
                finalized_ms: None,
                block: None,
                dropped,
                busy_refusals,
            });
        }));
        if i + 1 == n.div_ceil(2) {
            if let Some(f) = fault.take() {
                f();
                fault_ms = Some(start.elapsed().as_millis() as u64);
            }
        }
        if i % 200 == 0 {
            let fin = seen
                .lock()
                .expect("no panics while held; qed")
                .finalized
                .len();
            progress(i + 1, fin);
        }
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    // Wait until every accepted transaction is finalized, or no progress for `settle`.
    let mut last = (Instant::now(), usize::MAX);
    loop {
        let pending = {
            let recs = records.lock().expect("no panics while held; qed");
            let s = seen.lock().expect("no panics while held; qed");
            recs.iter()
                .flatten()
                .filter(|r| r.dropped.is_none() && !s.finalized.contains_key(&r.hash))
                .count()
        };
        progress(n, n - pending);
        if pending == 0 {
            break;
        }
        if pending != last.1 {
            last = (Instant::now(), pending);
        } else if last.0.elapsed() > settle {
            break;
        }
        // The first endpoint's two watchers (inclusion, and the block list) must keep running.
        if watchers[..2].iter().any(|w| w.is_finished()) {
            return Err(format!("lost the head subscription on {}", endpoints[0]));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed_ms = start.elapsed().as_millis() as u64;
    for w in &watchers {
        w.abort();
    }
    // Ask the validators where each unfinalized transaction is, before they are torn down.
    let stuck: Vec<(H256, usize)> = {
        let recs = records.lock().expect("no panics while held; qed");
        let s = seen.lock().expect("no panics while held; qed");
        recs.iter()
            .flatten()
            .filter(|r| r.dropped.is_none() && !s.finalized.contains_key(&r.hash))
            .map(|r| (r.hash, r.endpoint))
            .collect()
    };
    let whereabouts = locate(&clients, &stuck, &signers).await;
    let s = seen.lock().expect("no panics while held; qed");
    let recs = records.lock().expect("no panics while held; qed");
    let records = recs
        .iter()
        .map(|r| {
            let mut r = r.clone().expect("every task wrote its record; qed");
            if let Some((t, b)) = s.included.get(&r.hash) {
                r.included_ms = Some(*t);
                r.block = Some(*b);
            }
            if let Some((first, b)) = s.finalized.get(&r.hash) {
                // The submission endpoint's view; another endpoint's if it stopped watching.
                let t = s.finalized_at[r.endpoint].get(&r.hash).unwrap_or(first);
                r.finalized_ms = Some(*t);
                r.block = Some(*b);
                r.included_ms = Some(r.included_ms.unwrap_or(*t).min(*t));
            } else if r.dropped.is_none() {
                r.dropped = Some(format!(
                    "not finalized within {} s of the last progress: {}",
                    settle.as_secs(),
                    whereabouts.get(&r.hash).map_or("not asked", String::as_str)
                ));
            }
            r
        })
        .collect();
    Ok(Outcome {
        records,
        elapsed_ms,
        blocks: s.blocks.clone(),
        fault_ms,
    })
}

/// At most this many unfinalized transactions are located one by one.
const MAX_LOCATED: usize = 2_000;

/// Where each (hash, endpoint it was submitted to) is, as the validators tell: in which pools,
/// and what `bsmr_commandStatus` says on each validator. A chain without the `bsmr_*` RPC (the
/// reference chain) reports the pools only.
async fn locate(
    clients: &[Arc<WsClient>],
    stuck: &[(H256, usize)],
    signers: &BTreeMap<H256, (String, u32)>,
) -> BTreeMap<H256, String> {
    let mut pools = vec![];
    for c in clients {
        let pending: Option<Vec<sp_core::Bytes>> = c
            .request("author_pendingExtrinsics", rpc_params![])
            .await
            .ok();
        pools.push(pending.map(|xts| {
            xts.iter()
                .map(|x| xt_hash(&x.0))
                .collect::<std::collections::BTreeSet<H256>>()
        }));
    }
    let mut out = BTreeMap::new();
    for (hash, endpoint) in stuck.iter().take(MAX_LOCATED) {
        let mut statuses = vec![];
        for c in clients {
            let st: Option<serde_json::Value> = c
                .request("bsmr_commandStatus", rpc_params![hash])
                .await
                .ok();
            statuses
                .push(st.and_then(|v| v.get("status").and_then(|s| s.as_str().map(String::from))));
        }
        let mut line = whereabouts(*endpoint, &pools, hash, &statuses);
        if let Some((who, nonce)) = signers.get(hash) {
            // The endpoint's next nonce for the signer counts its chain and its ready pool.
            let next: Option<u64> = clients[*endpoint]
                .request("system_accountNextIndex", rpc_params![who])
                .await
                .ok();
            line += &match next {
                Some(next) if next > u64::from(*nonce) => {
                    "; its nonce is used (chain or ready pool)".to_string()
                }
                Some(next) if next == u64::from(*nonce) => {
                    "; its nonce is the signer's next".to_string()
                }
                Some(_) => "; an earlier nonce of the signer is missing".to_string(),
                None => String::new(),
            };
        }
        out.insert(*hash, line);
    }
    out
}

/// One line naming the furthest stage a transaction reached: committed somewhere, proposed
/// somewhere, waiting in a pool, or gone from every pool. Validators are named by endpoint index.
fn whereabouts(
    endpoint: usize,
    pools: &[Option<std::collections::BTreeSet<H256>>],
    hash: &H256,
    statuses: &[Option<String>],
) -> String {
    let at = |want: &str| -> Vec<String> {
        statuses
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_deref() == Some(want))
            .map(|(i, _)| i.to_string())
            .collect()
    };
    let in_pools: Vec<String> = pools
        .iter()
        .enumerate()
        .filter(|(_, p)| p.as_ref().is_some_and(|p| p.contains(hash)))
        .map(|(i, _)| i.to_string())
        .collect();
    let pools_known = pools.iter().any(Option::is_some);
    let pool_part = if !pools_known {
        String::new()
    } else if in_pools.is_empty() {
        "; in no pool".to_string()
    } else {
        format!("; in the pool of {}", in_pools.join(","))
    };
    let (committed, proposed) = (at("committed"), at("proposed"));
    if !committed.is_empty() {
        format!(
            "committed by {} but in no finalized block{pool_part}",
            committed.join(",")
        )
    } else if !proposed.is_empty() {
        format!(
            "proposed by {}, not committed{pool_part}",
            proposed.join(",")
        )
    } else if in_pools.iter().any(|i| *i == endpoint.to_string()) {
        format!("waiting in its endpoint's pool, never proposed{pool_part}")
    } else if pools_known && in_pools.is_empty() {
        "gone from every pool, never proposed".to_string()
    } else {
        format!("never proposed{pool_part}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_jittered_within_half_to_one_and_a_half_the_pause() {
        let pause = Duration::from_millis(100);
        let waits: Vec<Duration> = (0..1_000).map(|i| jittered(pause, i, 1)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= pause / 2 && *w < pause.mul_f64(1.5)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(
            distinct.len() > 900,
            "spread, not in step: {}",
            distinct.len()
        );
        assert_ne!(
            jittered(pause, 5, 1),
            jittered(pause, 5, 2),
            "per attempt too"
        );
    }

    #[test]
    fn whereabouts_name_the_furthest_stage() {
        let h = H256([7; 32]);
        let pool = |has: bool| Some(if has { [h].into() } else { Default::default() });
        let st = |s: &str| Some(s.to_string());
        assert_eq!(
            whereabouts(
                0,
                &[pool(true), pool(false)],
                &h,
                &[st("proposed"), st("unknown")]
            ),
            "proposed by 0, not committed; in the pool of 0"
        );
        assert_eq!(
            whereabouts(1, &[pool(false), pool(false)], &h, &[st("committed"), None]),
            "committed by 0 but in no finalized block; in no pool"
        );
        assert_eq!(
            whereabouts(
                1,
                &[pool(false), pool(true)],
                &h,
                &[st("unknown"), st("unknown")]
            ),
            "waiting in its endpoint's pool, never proposed; in the pool of 1"
        );
        assert_eq!(
            whereabouts(1, &[pool(false), pool(false)], &h, &[None, None]),
            "gone from every pool, never proposed"
        );
        assert_eq!(whereabouts(0, &[None], &h, &[None]), "never proposed");
    }
}

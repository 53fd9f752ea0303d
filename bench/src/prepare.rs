//! Preparing a replay: funding the trace's accounts from //Alice and signing the plan.

use super::*;

/// Fund the bench accounts the plan uses from //Alice, then sign the plan.
pub(crate) async fn prepare(
    endpoints: &[String],
    load: &LoadArgs,
    t: &trace::Trace,
) -> Result<Vec<replay::Planned>, String> {
    let rate_ok = load.rate.is_finite() && load.rate > 0.0;
    if !rate_ok && load.trace_speedup.is_none() {
        return Err("--rate must be positive".into());
    }
    let client = replay::connect(&endpoints[0]).await?;
    let chain = chain::Chain::fetch(&client).await?;
    let used: std::collections::BTreeSet<usize> = t
        .txs
        .iter()
        .flat_map(|x| {
            [
                accounts::map_address(&x.from, load.accounts),
                accounts::map_address(&x.to, load.accounts),
            ]
        })
        .collect();
    // Funding: one transfer from Alice to each used account (all to one endpoint, in nonce order).
    let alice = <sp_core::sr25519::Pair as sp_core::Pair>::from_string(&load.faucet, None)
        .map_err(|e| format!("--faucet {}: not a secret URI ({e:?})", load.faucet))?;
    let alice_id: AccountId32 = accounts::account_of(&alice);
    let mut nonce: u32 = client
        .request("system_accountNextIndex", rpc_params![alice_id.to_string()])
        .await
        .map_err(|e| e.to_string())?;
    let funding: Vec<replay::Planned> = used
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let xt = chain.transfer(
                &alice,
                &accounts::account_of(&accounts::bench_pair(*i)),
                1_000_000_000_000_000,
                nonce,
            )?;
            nonce += 1;
            Ok(replay::Planned {
                xt,
                sender: 0,
                endpoint_turn: 0,
                at_ms: k as u64 * 2,
                signer: (alice_id.to_string(), nonce - 1),
            })
        })
        .collect::<Result<_, String>>()?;
    eprintln!(
        "funding {} bench accounts from {} ...",
        funding.len(),
        load.faucet
    );
    let outcome = replay::run(
        &endpoints[..1],
        funding,
        Duration::from_secs(load.settle_secs),
        |_, _| {},
        None,
    )
    .await?;
    let failed = outcome
        .records
        .iter()
        .filter(|r| r.dropped.is_some())
        .count();
    if failed > 0 {
        return Err(format!(
            "{failed} funding transfers were not finalized: {:?}",
            outcome.records.iter().find_map(|r| r.dropped.clone())
        ));
    }
    // Sign the plan with each account's next nonce.
    let mut nonces: BTreeMap<usize, u32> = BTreeMap::new();
    for i in &used {
        let who = accounts::account_of(&accounts::bench_pair(*i));
        let n: u32 = client
            .request("system_accountNextIndex", rpc_params![who.to_string()])
            .await
            .map_err(|e| e.to_string())?;
        nonces.insert(*i, n);
    }
    let first_nonce = nonces.clone();
    let pairs: BTreeMap<usize, sp_core::sr25519::Pair> = used
        .iter()
        .map(|i| (*i, accounts::bench_pair(*i)))
        .collect();
    let plan = t
        .txs
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let from = accounts::map_address(&x.from, load.accounts);
            let to = accounts::map_address(&x.to, load.accounts);
            let n = nonces
                .get_mut(&from)
                .expect("every used account has a nonce; qed");
            let amount = 1_000_000 + x.amount % 1_000_000_000;
            let xt = chain.transfer(
                &pairs[&from],
                &accounts::account_of(&pairs[&to]),
                amount,
                *n,
            )?;
            let signer = (accounts::account_of(&pairs[&from]).to_string(), *n);
            let endpoint_turn =
                (*n - first_nonce[&from]) as usize % usize::from(load.endpoints_per_sender);
            *n += 1;
            let at_ms = match load.trace_speedup {
                Some(s) => (x.at_s as f64 * 1000.0 / s) as u64,
                None => (k as f64 * 1000.0 / load.rate) as u64,
            };
            Ok(replay::Planned {
                xt,
                sender: from,
                endpoint_turn,
                at_ms,
                signer,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(plan)
}

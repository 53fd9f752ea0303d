// What a wallet or dApp built on polkadot-api (PAPI) does against a bsmr network, over the new
// JSON-RPC spec (chainHead_v1_*, transaction_v1_*): follow finalized blocks, read balances and the
// validator set through the metadata, submit a signed transfer and follow it to finalized.
//
// usage: node js/papi.test.mjs ws://127.0.0.1:9944
// (zombienet runs the same checks through js/papi.zn.cjs.) Throws on the first failed check.
import { createClient } from 'polkadot-api';
import { getWsProvider } from 'polkadot-api/ws';
import { getPolkadotSigner } from 'polkadot-api/signer';
import { WebSocket } from 'ws';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
  console.log(`ok (papi): ${msg}`);
}

const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);

export async function runPapiChecks(endpoint) {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  // Charlie pays, so that this can run next to the @polkadot/api checks (Alice) without nonce races.
  const payer = keyring.addFromUri('//Charlie');
  const payee = keyring.addFromUri('//Ferdie');
  // Node.js 20 has no global WebSocket; 22 and browsers do.
  const client = createClient(getWsProvider(endpoint, { websocketClass: WebSocket }));
  try {
    const api = client.getUnsafeApi();

    // The finalized-block stream (chainHead_v1_follow): two distinct, increasing heights.
    const heights = await withTimeout(new Promise((resolve, reject) => {
      const seen = [];
      const sub = client.finalizedBlock$.subscribe({
        next: (b) => {
          if (seen.length === 0 || b.number > seen[seen.length - 1]) seen.push(b.number);
          if (seen.length >= 2) {
            sub.unsubscribe();
            resolve(seen);
          }
        },
        error: reject,
      });
    }), 60000, 'two finalized blocks');
    check(heights[1] > heights[0], `finalized blocks #${heights[0]} then #${heights[1]}`);

    // Storage through the metadata.
    const version = await api.constants.System.Version();
    check(version.spec_name === 'bsmr', `runtime ${version.spec_name} v${version.spec_version}`);
    const members = await api.query.Membership.Members.getValue();
    check(members.length >= 1, `Membership.Members: ${members.length} validators`);
    const before = (await api.query.System.Account.getValue(payee.address)).data.free;
    check(typeof before === 'bigint', `System.Account(Ferdie).data.free = ${before}`);

    // A signed transfer, followed to finalized (transaction_v1_broadcast + chainHead bodies).
    const signer = getPolkadotSigner(payer.publicKey, 'Sr25519', (m) => payer.sign(m));
    const amount = 1_000_000_000n;
    const tx = api.tx.Balances.transfer_keep_alive({
      dest: { type: 'Id', value: payee.address },
      value: amount,
    });
    const events = [];
    const final = await withTimeout(new Promise((resolve, reject) => {
      tx.signSubmitAndWatch(signer).subscribe({
        next: (ev) => {
          events.push(ev.type + (ev.type === 'txBestBlocksState' ? `:${ev.found}` : ''));
          if (ev.type === 'finalized') resolve(ev);
        },
        error: reject,
      });
    }), 60000, `transfer finalized (events so far: ${events.join(', ')})`).catch((e) => {
      throw new Error(`${e.message}; events seen: ${events.join(', ')}`);
    });
    check(final.ok, `transfer finalized in #${final.block.number} (${events.join(' -> ')})`);
    check(final.events.some((e) => e.type === 'Balances' && e.value.type === 'Transfer'), 'Balances.Transfer event');
    const after = (await api.query.System.Account.getValue(payee.address, { at: final.block.hash })).data.free;
    check(after === before + amount, `Ferdie received ${amount} (${before} -> ${after})`);
    console.log('all polkadot-api checks passed');
  } finally {
    client.destroy();
  }
}

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  const endpoint = process.argv[2];
  if (!endpoint) {
    console.error('usage: node js/papi.test.mjs <ws endpoint>');
    process.exit(2);
  }
  runPapiChecks(endpoint).then(() => process.exit(0)).catch((e) => {
    console.error(`FAIL: ${e.message}`);
    process.exit(1);
  });
}

// What explorers, wallets and exchanges read through substrate-api-sidecar (npm
// @substrate/api-sidecar), against a bsmr network: the finalized head, a block with its
// extrinsics and events, account balances. Starts sidecar on a free port, pointed at the node.
//
// usage: node js/sidecar.test.mjs ws://127.0.0.1:9944
// (zombienet runs the same checks through js/sidecar.zn.cjs.) Throws on the first failed check.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
  console.log(`ok (sidecar): ${msg}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const freePort = () => new Promise((resolve, reject) => {
  const srv = createServer();
  srv.once('error', reject);
  srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});

async function getJson(base, route) {
  const res = await fetch(`${base}${route}`);
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`GET ${route}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export async function runSidecarChecks(endpoint) {
  await cryptoWaitReady();
  const here = path.dirname(fileURLToPath(import.meta.url));
  const bin = path.join(here, '..', 'node_modules', '.bin', 'substrate-api-sidecar');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = [];
  const sidecar = spawn(bin, [], {
    env: {
      ...process.env,
      SAS_SUBSTRATE_URL: endpoint,
      SAS_EXPRESS_BIND_HOST: '127.0.0.1',
      SAS_EXPRESS_PORT: String(port),
      SAS_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  sidecar.stdout.on('data', (d) => log.push(String(d)));
  sidecar.stderr.on('data', (d) => log.push(String(d)));
  const api = await ApiPromise.create({ provider: new WsProvider(endpoint), noInitWarn: true });
  try {
    let version = null;
    for (let i = 0; i < 120 && !version; i++) {
      version = await getJson(base, '/node/version').catch(() => null);
      if (!version) await sleep(500);
    }
    check(version !== null, `sidecar is up on ${base} (node ${version && version.clientVersion})`);

    // The finalized head agrees with the node's.
    const head = await getJson(base, '/blocks/head');
    const nodeFinal = (await api.rpc.chain.getHeader(await api.rpc.chain.getFinalizedHead())).number.toNumber();
    check(Number(head.number) >= 1 && Number(head.number) <= nodeFinal + 1, `/blocks/head is #${head.number} (node finalized #${nodeFinal})`);
    check(head.extrinsics.some((x) => x.method.pallet === 'timestamp' && x.method.method === 'set'), 'head block carries its timestamp.set inherent');

    // A transfer: sidecar shows it in its block, with success and the Balances.Transfer event.
    const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
    const dave = keyring.addFromUri('//Dave');
    const eve = keyring.addFromUri('//Eve');
    const blockHash = await new Promise((resolve, reject) => {
      api.tx.balances.transferKeepAlive(eve.address, 2_000_000_000n).signAndSend(dave, ({ status }) => {
        if (status.isInvalid || status.isDropped) reject(new Error(`transfer ${status.type}`));
        if (status.isFinalized) resolve(status.asFinalized.toHex());
      }).catch(reject);
    });
    const block = await getJson(base, `/blocks/${blockHash}`);
    const xt = block.extrinsics.find((x) => x.method.pallet === 'balances' && x.method.method === 'transferKeepAlive');
    check(!!xt, `/blocks/${blockHash.slice(0, 10)}… (#${block.number}) lists the transfer`);
    check(xt.success === true, 'the transfer succeeded');
    check(xt.events.some((e) => e.method.pallet === 'balances' && e.method.method === 'Transfer'), 'with its balances.Transfer event');
    // Sidecar computes `info.partialFee` only for chains its fee calculator knows; the fee paid
    // is in the transaction-payment event, which is what an indexer of bsmr reads.
    const feePaid = xt.events.find((e) => e.method.pallet === 'transactionPayment' && e.method.method === 'TransactionFeePaid');
    check(feePaid && BigInt(feePaid.data[1]) > 0n, `fee paid (transactionPayment.TransactionFeePaid): ${feePaid && feePaid.data[1]}`);

    // Balances, now and at the transfer's block.
    const bal = await getJson(base, `/accounts/${eve.address}/balance-info`);
    check(BigInt(bal.free) >= 2_000_000_000n, `/accounts/Eve/balance-info: free ${bal.free}`);
    const atBlock = await getJson(base, `/accounts/${eve.address}/balance-info?at=${block.number}`);
    check(BigInt(atBlock.free) >= 2_000_000_000n, `balance at #${block.number}: free ${atBlock.free}`);
    console.log('all sidecar checks passed');
  } catch (e) {
    throw new Error(`${e.message}\nsidecar output:\n${log.join('').slice(-2000)}`);
  } finally {
    await api.disconnect();
    sidecar.kill('SIGTERM');
  }
}

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  const endpoint = process.argv[2];
  if (!endpoint) {
    console.error('usage: node js/sidecar.test.mjs <ws endpoint>');
    process.exit(2);
  }
  runSidecarChecks(endpoint).then(() => process.exit(0)).catch((e) => {
    console.error(`FAIL: ${e.message}`);
    process.exit(1);
  });
}

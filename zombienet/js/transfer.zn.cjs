// zombienet js-script: a transfer submitted to this node is finalized and Bob's balance grows.
// zombienet calls run(nodeName, networkInfo) with the node's ws endpoint in networkInfo.
const { ApiPromise, WsProvider } = require('@polkadot/api');
const { Keyring } = require('@polkadot/keyring');
const { cryptoWaitReady } = require('@polkadot/util-crypto');

async function run(nodeName, networkInfo) {
  await cryptoWaitReady();
  const { wsUri } = networkInfo.nodesByName[nodeName];
  const api = await ApiPromise.create({ provider: new WsProvider(wsUri), noInitWarn: true });
  const keyring = new Keyring({ type: 'sr25519' });
  const alice = keyring.addFromUri('//Alice');
  const bob = keyring.addFromUri('//Bob');
  const before = (await api.query.system.account(bob.address)).data.free.toBigInt();
  const amount = 1_000_000_000_000n;
  const block = await new Promise((resolve, reject) => {
    api.tx.balances
      .transferKeepAlive(bob.address, amount)
      .signAndSend(alice, { nonce: -1 }, ({ status }) => {
        if (status.isInvalid || status.isDropped || status.isUsurped) reject(new Error(`transfer ${status.type}`));
        if (status.isFinalized) resolve(status.asFinalized);
      })
      .catch(reject);
  });
  const after = (await api.query.system.account.at(block, bob.address)).data.free.toBigInt();
  await api.disconnect();
  if (after - before < amount) throw new Error(`Bob got ${after - before}, expected at least ${amount}`);
  return 1;
}

module.exports = { run };

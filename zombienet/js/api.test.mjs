// What polkadot.js apps does, against a running bsmr network, with @polkadot/api:
// connect, read metadata and chain properties, list balances (api-derive), transfer and follow it
// to finalized, subscribe to finalized heads, read the membership pallet and call it via sudo
// (leaving the validator set as it was),
// submit a bogus (unsigned) misbehaviour report and see it refused, call the bsmr_* RPC with declared types, decode the BSMR justification of a block.
//
// usage: node js/api.test.mjs ws://127.0.0.1:9944 [ws://other-node ...]
// (zombienet runs the same checks through js/api.zn.cjs.) Throws on the first failed check.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { u8aToString } from '@polkadot/util';


// The bsmr RPC methods and the certificate type, declared as apps would declare them.
const rpc = {
  bsmr: {
    status: { description: 'bsmr engine status', params: [], type: 'BsmrStatus' },
    commandStatus: { description: 'where a transaction is', params: [{ name: 'txHash', type: 'H256' }], type: 'Json' },
  },
};
const types = {
  BsmrStatus: {
    epoch: 'u64', validators: 'Vec<Text>', n: 'u32', f: 'u32', quorum: 'u32',
    localValidator: 'Option<Text>', connectedValidators: 'u32', committedCommands: 'u64',
    fastCommits: 'u64', pendingBatches: 'u64', undecidedInstances: 'u64', lastBlock: 'u64',
    lastFinalized: 'u64', viewChanges: 'u64', misbehaviourProofs: 'u64', proposedTxs: 'u64', mode: 'Text',
    nextCheckpointLeader: 'Option<Text>', skippedCheckpointLeaders: 'Vec<Text>',
  },
  // Field names are ours (SCALE is positional); `hash` would shadow the codec's own .hash getter.
  BsmrFinalityVote: { epoch: 'u64', number: 'u64', blockHash: '[u8; 32]', stateRoot: '[u8; 32]' },
  BsmrFinalityCertificate: { vote: 'BsmrFinalityVote', signatures: 'Vec<([u8; 32], [u8; 64])>' },
};

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
  console.log(`ok: ${msg}`);
}

const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);

export async function runChecks(endpoints) {
  await cryptoWaitReady();
  const api = await withTimeout(ApiPromise.create({ provider: new WsProvider(endpoints[0]), rpc, types, noInitWarn: true }), 60000, 'connect');

  // Metadata and chain properties, as apps reads them at connect.
  const [chain, props, version] = await Promise.all([api.rpc.system.chain(), api.rpc.system.properties(), api.rpc.state.getRuntimeVersion()]);
  check(chain.toString().startsWith('bsmr'), `chain name "${chain}"`);
  check(props.ss58Format.unwrap().toNumber() === 42, 'ss58Format 42');
  check(props.tokenSymbol.unwrap()[0].toString() === 'BSMR', 'token symbol BSMR');
  check(props.tokenDecimals.unwrap()[0].toNumber() === 12, '12 decimals');
  check(api.runtimeMetadata.version >= 14, `metadata V${api.runtimeMetadata.version}`);
  check(!!api.tx.balances && !!api.tx.membership && !!api.query.membership, 'balances and membership pallets in metadata');
  check(version.specName.toString().length > 0, `runtime ${version.specName} v${version.specVersion}`);

  // Accounts and balances through api-derive (the Accounts page).
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const alice = keyring.addFromUri('//Alice');
  const bob = keyring.addFromUri('//Bob');
  const all = await api.derive.balances.all(bob.address);
  check(all.freeBalance.gtn(0), `Bob's free balance ${all.freeBalance.toHuman()}`);
  const infos = await api.derive.accounts.info(alice.address);
  check(infos.accountId.toString() === alice.address, 'derive.accounts.info');

  // Subscribe to finalized heads.
  const heads = [];
  const unsubHeads = await api.rpc.chain.subscribeFinalizedHeads((h) => heads.push(h.number.toNumber()));

  // A transfer followed to finalized (the Transfer dialog).
  const before = (await api.query.system.account(bob.address)).data.free.toBigInt();
  const amount = 1_234_000_000_000n;
  const finalizedIn = await withTimeout(new Promise((resolve, reject) => {
    api.tx.balances.transferKeepAlive(bob.address, amount).signAndSend(alice, ({ status, dispatchError }) => {
      if (dispatchError) reject(new Error(`dispatch error ${dispatchError}`));
      if (status.isInvalid || status.isDropped || status.isUsurped) reject(new Error(`transfer ${status.type}`));
      if (status.isFinalized) resolve(status.asFinalized);
    }).catch(reject);
  }), 120000, 'transfer finalized');
  const after = (await api.query.system.account.at(finalizedIn, bob.address)).data.free.toBigInt();
  check(after - before >= amount, `transfer finalized in ${finalizedIn.toHex().slice(0, 10)}…, Bob +${after - before}`);

  // The engine's RPC with declared types.
  const status = await api.rpc.bsmr.status();
  check(status.n.toNumber() >= 1 && status.quorum.toNumber() <= status.n.toNumber(), `bsmr_status: n=${status.n} f=${status.f} q=${status.quorum} epoch=${status.epoch}`);
  check(status.lastFinalized.toNumber() >= 1, `bsmr_status.lastFinalized ${status.lastFinalized}`);
  // Unset only right at an epoch boundary (the finalized header still carries the old epoch's rotation).
  const validatorKeys = status.validators.map((v) => v.toString());
  const next = status.nextCheckpointLeader;
  const position = (v) => validatorKeys.indexOf(v.toString());
  check(next.isNone || position(next.unwrap()) >= 0, `bsmr_status.nextCheckpointLeader: validator #${next.isSome ? position(next.unwrap()) : 'none'}`);
  const skipped = status.skippedCheckpointLeaders.map(position);
  check(skipped.every((i) => i >= 0), `bsmr_status.skippedCheckpointLeaders: validators [${skipped}]`);

  // Membership pallet: read it and call it through sudo, leaving the network as it was found
  // (a run against `make run` must not grow the set to 5 members on 4 nodes): set the minimum
  // size to its current value, and try to add a validator that is already a member, which the
  // pallet refuses (sudo reports the dispatch error; nothing is scheduled).
  const members = await api.query.membership.members();
  check(members.length === status.n.toNumber(), `membership has ${members.length} members`);
  const sudoEvents = (call, what) => withTimeout(new Promise((resolve, reject) => {
    api.tx.sudo.sudo(call).signAndSend(alice, ({ status: st, events: evs }) => {
      if (st.isInvalid || st.isDropped) reject(new Error(`sudo ${st.type}`));
      if (st.isFinalized) resolve(evs.map(({ event }) => event));
    }).catch(reject);
  }), 120000, `${what} finalized`);
  const pendingCount = async () => Object.keys((await api.query.membership.pendingChanges()).toJSON()).length;
  const pendingBefore = await pendingCount();
  const minMembers = (await api.query.membership.minMembers()).toNumber();
  const setMin = await sudoEvents(api.tx.membership.setMinMembers(minMembers), 'sudo set_min_members');
  check(setMin.some((e) => e.section === 'membership' && e.method === 'MinMembersSet'), `sudo set_min_members(${minMembers}): membership.MinMembersSet`);
  const [firstWho, firstKey] = members[0];
  const again = await sudoEvents(api.tx.membership.addMember(firstWho, firstKey), 'sudo add_member');
  const sudid = again.find((e) => e.section === 'sudo' && e.method === 'Sudid');
  const result = sudid && sudid.data[0];
  const error = result && result.isErr && result.asErr.isModule ? api.registry.findMetaError(result.asErr.asModule) : null;
  check(error && error.section === 'membership' && error.name === 'AlreadyMember', `sudo add_member(existing member) refused: ${error ? `${error.section}.${error.name}` : 'accepted'}`);
  const pendingAfter = await pendingCount();
  check(pendingAfter === pendingBefore, `pending membership changes unchanged (${pendingBefore} -> ${pendingAfter})`);

  // Misbehaviour reports: the unsigned call and the offence record are in the metadata; on an
  // honest network nobody is recorded, and a report that proves nothing is refused by the pool
  // (the runtime checks every proof before it is accepted).
  const offences = await api.query.membership.offences.entries();
  check(offences.length === 0, 'membership.offences: no validator recorded on an honest network');
  const refused = await api.tx.membership.reportMisbehaviour('0x00ff').send().then(
    () => null,
    (e) => String(e.message || e),
  );
  check(refused !== null && refused.includes('1010'), `a bogus misbehaviour report is refused: ${refused}`);

  // The BSMR justification of a finalized block decodes to a certificate with a quorum.
  const head = await api.rpc.chain.getFinalizedHead();
  const signed = await api.rpc.chain.getBlock(head);
  const just = signed.justifications.unwrap().find(([engine]) => u8aToString(engine) === 'BSMR');
  check(!!just, 'finalized block carries a BSMR justification');
  const cert = api.createType('BsmrFinalityCertificate', just[1].toU8a(true));
  check(cert.vote.number.toNumber() === signed.block.header.number.toNumber(), `certificate for #${cert.vote.number}`);
  check(cert.vote.blockHash.toHex() === head.toHex(), 'certificate names the block hash');
  check(cert.vote.stateRoot.toHex() === signed.block.header.stateRoot.toHex(), 'certificate names the state root');
  check(cert.signatures.length >= status.quorum.toNumber(), `certificate has ${cert.signatures.length} signatures (q=${status.quorum})`);

  unsubHeads();
  check(heads.length >= 1, `received ${heads.length} finalized heads`);

  // Every other endpoint agrees on that block.
  for (const ep of endpoints.slice(1)) {
    const other = await withTimeout(ApiPromise.create({ provider: new WsProvider(ep), rpc, types, noInitWarn: true }), 60000, `connect ${ep}`);
    const n = signed.block.header.number.toNumber();
    let finalized = 0;
    for (let i = 0; i < 240 && finalized < n; i++) {
      finalized = (await other.rpc.chain.getHeader(await other.rpc.chain.getFinalizedHead())).number.toNumber();
      if (finalized < n) await new Promise((r) => setTimeout(r, 500));
    }
    check(finalized >= n, `${ep} finalized #${n} (it is at #${finalized} after 120 s)`);
    const h = await other.rpc.chain.getBlockHash(n);
    check(h.toHex() === head.toHex(), `${ep} has the same block #${n}`);
    await other.disconnect();
  }
  await api.disconnect();
  console.log('all polkadot.js checks passed');
}

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) {
  const endpoints = process.argv.slice(2);
  if (endpoints.length === 0) {
    console.error('usage: node js/api.test.mjs <ws endpoint> [more endpoints]');
    process.exit(2);
  }
  runChecks(endpoints).then(() => process.exit(0)).catch((e) => {
    console.error(`FAIL: ${e.message}`);
    process.exit(1);
  });
}

// zombienet js-script: this node's finalized height passes a baseline by N blocks.
// Arguments (`with "N"` or `with "N,peer"`): N, and optionally the node whose finalized height at
// the call is the baseline (default: this node's own). Returns how far past the baseline it got,
// so a DSL line can require `return is at least N` whatever heights the chain had reached before.
const { ApiPromise, WsProvider } = require('@polkadot/api');

async function finalizedHeight(api) {
  const head = await api.rpc.chain.getFinalizedHead();
  return (await api.rpc.chain.getHeader(head)).number.toNumber();
}

async function run(nodeName, networkInfo, args) {
  const blocks = Number(args[0] ?? 10);
  if (!Number.isInteger(blocks) || blocks <= 0) throw new Error(`advance: bad block count ${args[0]}`);
  const baseNode = args[1] ?? nodeName;
  if (!networkInfo.nodesByName[baseNode]) throw new Error(`advance: no node named ${baseNode}`);
  const connect = (name) =>
    ApiPromise.create({ provider: new WsProvider(networkInfo.nodesByName[name].wsUri), noInitWarn: true });
  const base = await connect(baseNode);
  const baseline = await finalizedHeight(base);
  await base.disconnect();
  const api = await connect(nodeName);
  let height = await finalizedHeight(api);
  while (height < baseline + blocks) {
    await new Promise((r) => setTimeout(r, 500));
    height = await finalizedHeight(api);
  }
  await api.disconnect();
  return height - baseline;
}

module.exports = { run };

// zombienet js-script: the @polkadot/api checks of api.test.mjs against this node, comparing the
// finalized chain with every other node of the network.
async function run(nodeName, networkInfo) {
  const { runChecks } = await import('./api.test.mjs');
  const first = networkInfo.nodesByName[nodeName].wsUri;
  const others = Object.entries(networkInfo.nodesByName)
    .filter(([name]) => name !== nodeName)
    .map(([, n]) => n.wsUri);
  await runChecks([first, ...others]);
  return 1;
}

module.exports = { run };

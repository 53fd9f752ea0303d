// zombienet js-script: the polkadot-api checks of papi.test.mjs against this node.
async function run(nodeName, networkInfo) {
  const { runPapiChecks } = await import('./papi.test.mjs');
  await runPapiChecks(networkInfo.nodesByName[nodeName].wsUri);
  return 1;
}

module.exports = { run };

// zombienet js-script: the substrate-api-sidecar checks of sidecar.test.mjs against this node.
async function run(nodeName, networkInfo) {
  const { runSidecarChecks } = await import('./sidecar.test.mjs');
  await runSidecarChecks(networkInfo.nodesByName[nodeName].wsUri);
  return 1;
}

module.exports = { run };

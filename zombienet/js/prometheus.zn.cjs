// zombienet js-script: a real Prometheus server (Debian package `prometheus`, installed by
// scripts/setup.sh) scrapes every node of the network; the script then queries it for the
// engine's `bsmr_*` series and Substrate's own `substrate_*` series of every node.
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function query(base, promql) {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
  return body.data.result;
}

async function run(_nodeName, networkInfo) {
  execFileSync('prometheus', ['--version'], { stdio: 'ignore' }); // throws with a clear ENOENT
  const nodes = Object.values(networkInfo.nodesByName);
  const targets = nodes.map((n) => new URL(n.prometheusUri).host);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bsmr-prometheus-'));
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    'scrape_configs:',
    '  - job_name: bsmr',
    '    static_configs:',
    `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
    '',
  ].join('\n'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = [];
  const prom = spawn('prometheus', [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  prom.stdout.on('data', (d) => log.push(String(d)));
  prom.stderr.on('data', (d) => log.push(String(d)));
  try {
    const want = [
      'bsmr_blocks_finalized_total',
      'bsmr_commands_committed_total',
      'bsmr_validator_peers',
      'bsmr_block_finality_seconds_count',
      'substrate_block_height',
    ];
    const missing = () => want.filter((m) => !(seen[m] >= targets.length));
    const seen = {};
    for (let i = 0; i < 90 && (i === 0 || missing().length > 0); i++) {
      await sleep(1000);
      for (const m of want) {
        const series = await query(base, `${m} > 0`).catch(() => []);
        seen[m] = new Set(series.map((s) => s.metric.instance)).size;
      }
    }
    if (missing().length > 0) {
      throw new Error(`Prometheus (${targets.length} targets) lacks series with a value above 0 from every node: ${missing().map((m) => `${m} (${seen[m] || 0} nodes)`).join(', ')}`);
    }
    // Every series the shipped Grafana dashboard plots exists.
    const dashboard = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'grafana', 'bsmr-engine.json'), 'utf8'));
    const plotted = new Set();
    for (const p of dashboard.panels) {
      for (const t of p.targets) for (const m of t.expr.match(/\b(bsmr|substrate)_[a-z_]+/g) || []) plotted.add(m);
    }
    for (const m of plotted) {
      const series = await query(base, `count(${m})`);
      if (series.length === 0) throw new Error(`the Grafana dashboard plots ${m}, which no node exports`);
    }
    console.log(`ok (prometheus): the Grafana dashboard's ${plotted.size} series exist`);
    const up = await query(base, 'up == 1');
    if (up.length !== targets.length) throw new Error(`only ${up.length} of ${targets.length} targets up`);
    console.log(`ok (prometheus): ${want.join(', ')} scraped from all ${targets.length} nodes`);
    return 1;
  } catch (e) {
    throw new Error(`${e.message}\nprometheus output:\n${log.join('').slice(-1500)}`);
  } finally {
    prom.kill('SIGTERM');
    await sleep(500);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { run };

/**
 * `npm run bench`: throughput of five targets round-robin, event latency
 * under a background load, then memory and scale; prints a table with
 * PASS/MISS lines and writes bench/results.json. A miss never fails the
 * process: the figures are the product.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { type LatencyResult, runLatency } from './latency.js';
import { BENCH_DIR, pinning, pinSelf, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { round, spread } from './lib/stats.js';
import { type PipelineResult, runPipeline } from './pipeline.js';
import { runScale, type ScaleResult } from './scale.js';
import { DESCRIPTIONS, runThroughput, TARGETS, type ThroughputResult } from './throughput.js';

const log = (line: string) => console.log(`[bench] ${line}`);

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {}
  return {
    // Not availableParallelism(): this process is pinned to one core by then.
    nproc: cpus().length,
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown',
    node: process.version,
    pinning: pinning.enabled
      ? 'servers on core 0, load generator on core 1'
      : `none (${pinning.reason})`,
    commit,
  };
}

interface Memory {
  bytesPerClient: number;
  clients: number;
  sessions: number;
  throughput: { how: string; at100: number; atN: number; ratio: number };
  lifecycle: {
    startBytes: number;
    peakBytes: number;
    endBytes: number;
    endVsStart: number;
  } & Record<string, unknown>;
}

async function runMemory(): Promise<Memory> {
  const { child, ready } = await startChild(`${BENCH_DIR}memory.ts`, {
    core: 0,
    nodeArgs: ['--expose-gc'],
  });
  await child.stop();
  return ready.result as Memory;
}

/** Per-round ratios a/b of two targets' figures, as median and min–max. */
function ratio(t: ThroughputResult, a: string, b: string, field: 'rps' | 'perCpuSecond') {
  const wa = t.windows[a];
  const wb = t.windows[b];
  if (!wa?.length || !wb?.length) return null;
  const values = wa
    .map((w, i) => w[field] / (wb[i]?.[field] ?? Number.NaN))
    .filter(Number.isFinite);
  return spread(values);
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';
const mb = (bytes: number) => `${fmt(bytes / 1048576, 1)} MB`;

function report(
  t: ThroughputResult | null,
  latency: LatencyResult | null,
  memory: Memory | null,
  scale: ScaleResult | null,
  pipeline: PipelineResult | null,
): { lines: string[]; targets: Array<{ target: string; value: string; pass: boolean }> } {
  const lines: string[] = [];
  const targets: Array<{ target: string; value: string; pass: boolean }> = [];
  const verdict = (target: string, value: string, pass: boolean) =>
    targets.push({ target, value, pass });
  if (t) {
    const clients = settings.sessions * settings.clientsPerSession;
    lines.push(
      '',
      `Throughput: ${settings.rounds} rounds × (${settings.warmup} s warm-up + ${settings.seconds} s); median (min–max over rounds)`,
      `- default config (ours-http, ours-ws): over HTTP ${settings.connections} connections, each request with the token of its player (${clients.toLocaleString('en-US')} players);` +
        ` over WebSocket ${settings.wsPlayers.toLocaleString('en-US')} players, a connection each, 1 update in flight, at most ${settings.playerRate}/s each (the limit is 10)`,
      `- AUTH=off (ours-*-authoff) and the other targets: ${settings.connections} connections (WebSocket: ${settings.wsInFlight} in flight each)`,
      '',
      '| target            | req/s                      | req per server CPU-s       | server CPU | what |',
      '| ----------------- | -------------------------- | -------------------------- | ---------- | ---- |',
    );
    for (const target of TARGETS) {
      const windows = t.windows[target];
      if (!windows?.length) continue;
      const rps = spread(windows.map((w) => w.rps));
      const cpu = spread(windows.map((w) => w.perCpuSecond));
      const share = spread(windows.map((w) => w.serverCpu));
      lines.push(
        `| ${target.padEnd(17)} | ${`${fmt(rps.median)} (${fmt(rps.min)}–${fmt(rps.max)})`.padEnd(26)} | ${`${fmt(cpu.median)} (${fmt(cpu.min)}–${fmt(cpu.max)})`.padEnd(26)} | ${`${fmt(share.median * 100)}%`.padEnd(10)} | ${DESCRIPTIONS[target]} |`,
      );
    }
    // What each simulated player sent, at the busiest window (the limit is 10/s).
    const busiest = (target: string) => Math.max(...(t.windows[target] ?? []).map((w) => w.rps));
    if (t.windows['ours-http']?.length) {
      lines.push(
        '',
        `Per player (default config, busiest window): over HTTP ${fmt(busiest('ours-http') / clients, 2)} updates/s, over WebSocket ${fmt(busiest('ours-ws') / settings.wsPlayers, 2)} (no update refused: checked on the server's counts after every window)`,
      );
    }
    lines.push(
      '',
      '| ratio                         | by req/s            | by req per server CPU-s |',
      '| ----------------------------- | ------------------- | ----------------------- |',
    );
    const pairs: Array<[string, string]> = [];
    for (const ours of ['ours-http', 'ours-ws', 'ours-http-authoff', 'ours-ws-authoff']) {
      for (const other of ['floor', 'peer', 'limit']) pairs.push([ours, other]);
    }
    // What the default configuration costs against AUTH=off, same transport.
    pairs.push(['ours-http', 'ours-http-authoff'], ['ours-ws', 'ours-ws-authoff']);
    for (const [ours, other] of pairs) {
      const r = ratio(t, ours, other, 'rps');
      const c = ratio(t, ours, other, 'perCpuSecond');
      if (!r || !c) continue;
      lines.push(
        `| ${`${ours}/${other}`.padEnd(29)} | ${`${fmt(r.median, 2)} (${fmt(r.min, 2)}–${fmt(r.max, 2)})`.padEnd(19)} | ${`${fmt(c.median, 2)} (${fmt(c.min, 2)}–${fmt(c.max, 2)})`.padEnd(23)} |`,
      );
    }
    // Each verdict says what it compares: the floor and the peer check no token
    // and limit no rate, so only the AUTH=off lines are like for like; the
    // default-config lines are what users run against those same references.
    for (const [ours, other, floor, label] of [
      [
        'ours-http',
        'floor',
        0.9,
        'ours over HTTP, default config (player tokens, rate limit) ≥ 0.9 × floor (yoga, no auth)',
      ],
      ['ours-http-authoff', 'floor', 0.9, 'ours over HTTP, AUTH=off ≥ 0.9 × floor (yoga, no auth)'],
      [
        'ours-ws',
        'peer',
        1,
        'ours over WebSocket, default config (a connection per player) ≥ 1.0 × peer (mercurius over HTTP, no auth)',
      ],
      [
        'ours-ws-authoff',
        'peer',
        1,
        'ours over WebSocket, AUTH=off, 32 connections ≥ 1.0 × peer (mercurius over HTTP, no auth)',
      ],
    ] as const) {
      const byRps = ratio(t, ours, other, 'rps');
      const byCpu = ratio(t, ours, other, 'perCpuSecond');
      if (!byRps || !byCpu) continue;
      const shown = (r: typeof byRps) =>
        `${fmt(r.median, 2)} × (${fmt(r.min, 2)}–${fmt(r.max, 2)})`;
      verdict(`${label}, by req/s`, shown(byRps), byRps.median >= floor);
      verdict(`${label}, by req per server CPU-s`, shown(byCpu), byCpu.median >= floor);
    }
  }
  if (latency) {
    const bg = latency.background;
    lines.push(
      '',
      `batchNeeded latency, ms, under a background load of ${bg ? `${fmt(bg.achievedRate)} updates/s (asked ${fmt(bg.targetRate)})` : 'none'}`,
      'client: update sent → subscriber received; server: need decided in the store → subscriber received',
      '',
      '| transport | subscribers | client p50 | client p99 | server p50 | server p99 | samples |',
      '| --------- | ----------- | ---------- | ---------- | ---------- | ---------- | ------- |',
    );
    for (const f of latency.figures) {
      lines.push(
        `| ${f.transport.padEnd(9)} | ${String(f.subscribers).padEnd(11)} | ${fmt(f.client.p50, 2).padEnd(10)} | ${fmt(f.client.p99, 2).padEnd(10)} | ${fmt(f.server.p50, 2).padEnd(10)} | ${fmt(f.server.p99, 2).padEnd(10)} | ${String(f.samples).padEnd(7)} |`,
      );
    }
    // The issue times from "when a position update makes a batch needed": the
    // store's decision (server-side). The client-side figure adds the update's
    // own HTTP request, queued behind the background load; it is shown beside.
    for (const f of latency.figures.filter((x) => x.subscribers === 10)) {
      verdict(
        `batchNeeded p99 ≤ 5 ms, 10 subscribers, ${f.transport === 'ws' ? 'WebSocket' : 'SSE'} (from the need's decision)`,
        `${fmt(f.server.p99, 2)} ms (from the update's send: ${fmt(f.client.p99, 2)} ms)`,
        f.server.p99 <= 5 && f.lost === 0,
      );
    }
  }
  if (memory) {
    const life = memory.lifecycle;
    lines.push(
      '',
      `Memory and scale (in-process coordinator, ${fmt(memory.clients)} clients in ${fmt(memory.sessions)} sessions)`,
      '',
      `- heap per client position: ${fmt(memory.bytesPerClient)} bytes`,
      `- update throughput (${memory.throughput.how}): ${fmt(memory.throughput.at100)}/s at 100 clients, ${fmt(memory.throughput.atN)}/s at ${fmt(memory.clients)} clients (ratio ${fmt(memory.throughput.ratio, 2)})`,
      `- lifecycle: heap ${mb(life.startBytes)} at start, ${mb(life.peakBytes)} with every client, ${mb(life.endBytes)} after all expired and sessions ended (${life.endVsStart >= 0 ? '+' : ''}${fmt(life.endVsStart * 100, 1)}%)`,
    );
    verdict(
      'heap per client position ≤ 300 bytes',
      `${fmt(memory.bytesPerClient)} bytes`,
      memory.bytesPerClient <= 300,
    );
    verdict(
      `throughput at ${fmt(memory.clients)} clients ≥ 0.9 × at 100, in-process coordinator`,
      `${fmt(memory.throughput.ratio, 2)} ×`,
      memory.throughput.ratio >= 0.9,
    );
    verdict(
      'lifecycle heap back within 10% of start',
      `${life.endVsStart >= 0 ? '+' : ''}${fmt(life.endVsStart * 100, 1)}%`,
      Math.abs(life.endVsStart) <= 0.1,
    );
  }
  if (scale) {
    const r = scale.ratio;
    lines.push(
      '',
      'Update throughput over HTTP, the real service, every client joined first (median, min–max over rounds)',
      '',
      `- 100 clients: ${fmt(scale.at100.rps.median)} req/s, ${fmt(scale.at100.perCpuSecond.median)} per server CPU-s`,
      `- ${fmt(scale.clients)} clients: ${fmt(scale.atN.rps.median)} req/s, ${fmt(scale.atN.perCpuSecond.median)} per server CPU-s`,
      `- ratio: ${fmt(r.rps.median, 2)} (${fmt(r.rps.min, 2)}–${fmt(r.rps.max, 2)}) by req/s, ${fmt(r.perCpuSecond.median, 2)} (${fmt(r.perCpuSecond.min, 2)}–${fmt(r.perCpuSecond.max, 2)}) by CPU`,
    );
    verdict(
      `throughput at ${fmt(scale.clients)} clients ≥ 0.9 × at 100, over HTTP, by req per server CPU-s`,
      `${fmt(r.perCpuSecond.median, 2)} × (${fmt(r.perCpuSecond.min, 2)}–${fmt(r.perCpuSecond.max, 2)})`,
      r.perCpuSecond.median >= 0.9,
    );
  }
  if (pipeline) {
    const p = pipeline.playback;
    const k = pipeline.keepUp;
    lines.push(
      '',
      `Pipeline (real ffmpeg, segment server, hls.js in Chromium; segments of ${pipeline.segmentDuration} s for encoding, the e2e settings for playback)`,
      '',
      '| renditions | encode speed, × realtime (median) | runs |',
      '| ---------- | --------------------------------- | ---- |',
      ...pipeline.encode.map(
        (e) =>
          `| ${e.renditions} | ${fmt(e.speed, 2)} | ${e.runs.map((r) => fmt(r, 2)).join(', ')} |`,
      ),
      '',
      `- full ladder: ${fmt(k.ladderSpeed, 2)}× realtime; start cost ${fmt(k.startupSeconds, 2)} s a batch; a batch gains ${fmt(k.leadPerSegment, 2)} s of lead over a 1× viewer per segment it makes`,
      `- keeps up with one viewer at 1×: ${k.smallestBatch === null ? 'no batch size (the ladder is slower than realtime here)' : `batches of ${k.smallestBatch} segment${k.smallestBatch === 1 ? '' : 's'} or more (lead gained ≥ start cost)`}; largest batch made within the default BATCH_TIMEOUT (120 s) without a renewal: ${k.largestWithoutRenewal} segments; threshold ≥ ${k.smallestThreshold} for the first segment of the next batch to arrive in time`,
      `- time to first frame: ${fmt(p.timeToFirstFrameMs.median)} ms median, ${fmt(p.timeToFirstFrameMs.max)} ms worst (${p.timeToFirstFrameMs.samples} players)`,
      `- seek to playing: ${fmt(p.seekToPlayingMs.median)} ms median, ${fmt(p.seekToPlayingMs.max)} ms worst (${p.seekToPlayingMs.samples} seeks)`,
      `- stalls: ${p.stalls} in ${p.boundariesCrossed} batch boundaries crossed (${fmt(p.stallsPer100Boundaries, 1)} per 100)`,
    );
    verdict(
      'no stall across batch boundaries (one viewer, from the start)',
      `${fmt(p.stallsPer100Boundaries, 1)} per 100 boundaries (${p.boundariesCrossed} crossed)`,
      p.stalls === 0 && p.boundariesCrossed > 0,
    );
    verdict(
      'a seek plays again within 5 s (worst)',
      `${fmt(p.seekToPlayingMs.max)} ms`,
      p.seekToPlayingMs.max <= 5000,
    );
  }
  lines.push('', '| target | figure | verdict |', '| ------ | ------ | ------- |');
  for (const v of targets) lines.push(`| ${v.target} | ${v.value} | ${v.pass ? 'PASS' : 'MISS'} |`);
  return { lines, targets };
}

async function main() {
  const startedAt = new Date();
  const loadStart = loadavg();
  log(
    `machine: ${JSON.stringify(machine())}, load average ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  let pipeline: PipelineResult | null = null;
  let throughput: ThroughputResult | null = null;
  let latency: LatencyResult | null = null;
  let memory: Memory | null = null;
  let scale: ScaleResult | null = null;
  const timings: Record<string, number> = {};
  const timed = async <T>(phase: string, run: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await run();
    } finally {
      timings[phase] = Math.round((Date.now() - started) / 1000);
      log(`${phase} took ${timings[phase]} s`);
    }
  };
  // First, and unpinned: ffmpeg and Chromium use both cores, as they would here.
  if (settings.phases.has('pipeline')) pipeline = await timed('pipeline', () => runPipeline(log));
  pinSelf(1);
  if (settings.phases.has('throughput')) {
    throughput = await timed('throughput', () => runThroughput(log));
  }
  if (settings.phases.has('latency')) {
    const oursHttp = throughput?.windows['ours-http'];
    const rate = oursHttp?.length
      ? spread(oursHttp.map((w) => w.rps)).median / 2
      : Number(process.env.BENCH_BACKGROUND_RATE ?? 500);
    latency = await timed('latency', () => runLatency(rate, log));
  }
  if (settings.phases.has('scale')) scale = await timed('scale', () => runScale(log));
  if (settings.phases.has('memory')) {
    log(`memory and scale: ${settings.memoryClients} clients, in-process`);
    memory = await timed('memory', () => runMemory());
  }
  const { lines, targets } = report(throughput, latency, memory, scale, pipeline);
  console.log(lines.join('\n'));
  const results = {
    command: `${Object.entries(process.env)
      .filter(([k]) => k.startsWith('BENCH_'))
      .map(([k, v]) => `${k}=${v} `)
      .join('')}npm run bench`,
    startedAt: startedAt.toISOString(),
    seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    machine: { ...machine(), loadAverageStart: loadStart, loadAverageEnd: loadavg() },
    settings: { ...settings, phases: [...settings.phases] },
    timings,
    targets,
    throughput,
    scale,
    latency,
    memory,
    pipeline,
  };
  // Only a run of every phase replaces results.json (the figures bench/README.md
  // quotes); a partial run writes results.partial.json, which git ignores.
  const complete = ['throughput', 'latency', 'scale', 'memory', 'pipeline'].every((phase) =>
    settings.phases.has(phase),
  );
  const file = new URL(complete ? 'results.json' : 'results.partial.json', import.meta.url);
  writeFileSync(
    file,
    `${JSON.stringify(results, (_k, v) => (typeof v === 'number' ? round(v, 3) : v), 2)}\n`,
  );
  log(`wrote ${file.pathname} in ${results.seconds} s`);
}

await main();

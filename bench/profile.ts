/**
 * `npx tsx bench/profile.ts <limit|floor|ours|ours-authoff|peer> [http|ws] [seconds]`:
 * starts one server (pinned like in the benchmark), loads it as the
 * benchmark does, profiles its CPU during the measured window only (the
 * inspector's profiler, started and stopped over IPC after the warm-up, so
 * start-up is not in it), and prints where the time went:
 * self time by package and by function, and inclusive time by function.
 * The .cpuprofile lands in bench/profiles/ (for Chrome DevTools or speedscope).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startOurs } from './lib/ours.js';
import { BENCH_DIR, pinSelf, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { Counter, runHttp } from './load/http.js';
import { runWs } from './load/ws.js';

const [server = 'ours', transport = 'http', seconds = '8'] = process.argv.slice(2);
const dir = join(BENCH_DIR, 'profiles');
mkdirSync(dir, { recursive: true });
pinSelf(1);
// ours: the default configuration (players with their tokens); ours-authoff: BENCH_AUTH=off.
const ours = server.startsWith('ours')
  ? await startOurs(server === 'ours-authoff' ? { BENCH_AUTH: 'off' } : {})
  : null;
const { child, ready } = ours
  ? { child: ours.child, ready: { url: ours.url, wsUrl: ours.wsUrl } }
  : await startChild(`${BENCH_DIR}servers/${server}.ts`, { core: 0 });
const tokens = ours?.tokens;
const file = join(
  dir,
  `${server}-${transport}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`,
);
const counter = new Counter();
if (transport === 'ws') {
  const run = await runWs(ready.wsUrl as string, counter, {
    warmup: 2,
    seconds: Number(seconds),
    players: tokens && { tokens, count: settings.wsPlayers, perSecond: settings.playerRate },
    onMeasureStart: () => child.ask({ type: 'profileStart' }),
    onMeasureEnd: () => child.ask({ type: 'profileStop', path: file }),
  });
  console.log(`${server} over WebSocket: ${Math.round(run.rps)} req/s`);
} else {
  await runHttp(ready.url as string, counter, { seconds: 2, tokens });
  await child.ask({ type: 'profileStart' });
  const run = await runHttp(ready.url as string, counter, { seconds: Number(seconds), tokens });
  await child.ask({ type: 'profileStop', path: file });
  console.log(`${server} over HTTP: ${Math.round(run.rps)} req/s`);
}
await child.stop();
console.log(`profile: ${file}`);
summarize(file);

interface ProfileNode {
  id: number;
  hitCount?: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}

function summarize(path: string, top = 25) {
  const { nodes } = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[] };
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const where = (url: string) => {
    if (!url) return '(native)';
    const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
    if (pkg) return pkg[1]!;
    if (url.startsWith('node:')) return 'node';
    const src = /\/(src|bench)\/(.*)$/.exec(url);
    return src ? `${src[1]}/${src[2]}` : url;
  };
  const name = (n: ProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const busy = nodes.filter((n) => n.callFrame.functionName !== '(idle)');
  const total = busy.reduce((sum, n) => sum + (n.hitCount ?? 0), 0);
  const self = new Map<string, number>();
  const packages = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, hits: number) =>
    map.set(key, (map.get(key) ?? 0) + hits);
  for (const n of busy) {
    const hits = n.hitCount ?? 0;
    if (hits === 0) continue;
    add(self, name(n), hits);
    add(packages, where(n.callFrame.url), hits);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const key = name(byId.get(id)!);
      if (!seen.has(key)) add(inclusive, key, hits);
      seen.add(key);
    }
  }
  const show = (title: string, map: Map<string, number>) => {
    console.log(`\n${title} (% of busy samples)`);
    for (const [key, hits] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((100 * hits) / total).toFixed(1).padStart(5)}%  ${key}`);
    }
  };
  show('self time by package', packages);
  show('self time by function', self);
  show('inclusive time by function', inclusive);
}

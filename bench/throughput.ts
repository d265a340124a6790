/**
 * The seven throughput targets, each server in its own child process on core
 * 0, the load from this process on core 1, round-robin over `rounds` rounds
 * (each round starting one target later, so no target always goes first):
 * a warm-up (replies checked for `errors`), then a measured window. Ours runs
 * twice: in the default configuration (access control and the per-player
 * rate limit on, players with their own tokens) and with BENCH_AUTH=off.
 * After each window of ours, the server's own count of updateClientPosition
 * outcomes must show no refusal (RATE_LIMITED above all), or the run fails.
 */
import { loadavg } from 'node:os';
import { assertNoRefusals, type Ours, positionOutcomes, startOurs } from './lib/ours.js';
import { BENCH_DIR, type Child, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { type Encoder, startEncoder } from './load/encoder.js';
import { Counter, preflightHttp, runHttp } from './load/http.js';
import { type Players, preflightWs, runWs } from './load/ws.js';

export const TARGETS = [
  'limit',
  'floor',
  'ours-http',
  'ours-ws',
  'ours-http-authoff',
  'ours-ws-authoff',
  'peer',
] as const;
export type TargetName = (typeof TARGETS)[number];

export const DESCRIPTIONS: Record<TargetName, string> = {
  limit: 'node:http, constant reply bytes',
  floor: 'graphql-yoga, one-field schema, constant resolver, no auth',
  'ours-http': 'the service over HTTP, default config: player tokens, rate limit',
  'ours-ws': 'the service over WebSocket, default config: a connection per player',
  'ours-http-authoff': 'the service over HTTP, AUTH=off, no rate limit',
  'ours-ws-authoff': 'the service over WebSocket, AUTH=off, 32 shared connections',
  peer: 'fastify + mercurius, graphql-jit, one-field schema, no auth',
};

const SERVER_OF: Record<TargetName, string> = {
  limit: 'limit',
  floor: 'floor',
  'ours-http': 'ours',
  'ours-ws': 'ours',
  'ours-http-authoff': 'ours-authoff',
  'ours-ws-authoff': 'ours-authoff',
  peer: 'peer',
};

const overWs = (target: TargetName) => target === 'ours-ws' || target === 'ours-ws-authoff';

export interface Window {
  round: number;
  rps: number;
  requests: number;
  seconds: number;
  warmupErrorReplies: number;
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Requests per CPU-second the server used in the window: steadier than req/s on a busy machine. */
  perCpuSecond: number;
  /** Fractions of one core the server and this load generator used during the window. */
  serverCpu: number;
  clientCpu: number;
  /** The 1-minute load average when the window ended. */
  loadAverage: number;
}

export interface ThroughputResult {
  windows: Record<string, Window[]>;
  /** Per ours server (`ours`, `ours-authoff`): its stats after the last round. */
  oursStats: Record<string, unknown>;
  /** Per encoder worker (one per ours server): needs heard, batches completed. */
  encoders: Array<Encoder['counts']>;
}

export async function runThroughput(log: (line: string) => void): Promise<ThroughputResult> {
  const targets = TARGETS.filter((t) => settings.targets === null || settings.targets.includes(t));
  const servers = new Map<string, { child: Child; url: string; wsUrl?: string; ours?: Ours }>();
  const encoders: Encoder[] = [];
  const clients = settings.sessions * settings.clientsPerSession;
  if (settings.wsPlayers > clients) {
    throw new Error(
      `BENCH_WS_PLAYERS=${settings.wsPlayers} exceeds the layout's ${clients} clients`,
    );
  }
  try {
    for (const name of new Set(targets.map((t) => SERVER_OF[t]))) {
      if (name === 'ours' || name === 'ours-authoff') {
        const started = Date.now();
        const ours = await startOurs(name === 'ours' ? {} : { BENCH_AUTH: 'off' });
        servers.set(name, { child: ours.child, url: ours.url, wsUrl: ours.wsUrl, ours });
        log(
          `started ${name} (access control ${ours.auth}) at ${ours.url}${ours.tokens ? `, ${ours.tokens.length} player tokens minted with issueClientToken in ${Date.now() - started} ms` : ''}`,
        );
        continue;
      }
      const { child, ready } = await startChild(`${BENCH_DIR}servers/${name}.ts`, { core: 0 });
      servers.set(name, { child, url: ready.url as string });
      log(`started ${name} at ${ready.url}`);
    }
    const counters = new Map(targets.map((t) => [t, new Counter()]));
    // The players layout over WebSocket when the server checks tokens.
    const playersOf = (target: TargetName): Players | undefined => {
      const tokens = servers.get(SERVER_OF[target])!.ours?.tokens;
      return tokens && { tokens, count: settings.wsPlayers, perSecond: settings.playerRate };
    };
    const tokensOf = (target: TargetName) => servers.get(SERVER_OF[target])!.ours?.tokens;
    // Pre-flight: every target answers the operation with data and no errors.
    for (const target of targets) {
      const server = servers.get(SERVER_OF[target])!;
      if (overWs(target)) await preflightWs(server.wsUrl!, counters.get(target)!, tokensOf(target));
      else await preflightHttp(server.url, counters.get(target)!, tokensOf(target));
    }
    log(`pre-flight passed: ${targets.join(', ')} reply without errors`);
    for (const { ours } of servers.values()) {
      if (ours) encoders.push(startEncoder(ours.wsUrl, ours.encoderToken));
    }
    if (settings.prime > 0) {
      for (const target of targets) {
        const server = servers.get(SERVER_OF[target])!;
        const counter = counters.get(target)!;
        const before = server.ours && (await positionOutcomes(server.ours));
        let errorReplies: number;
        if (overWs(target)) {
          const run = await runWs(server.wsUrl!, counter, {
            warmup: 0,
            seconds: settings.prime,
            players: playersOf(target),
          });
          errorReplies = run.errorReplies;
        } else {
          const run = await runHttp(server.url, counter, {
            seconds: settings.prime,
            checkReplies: true,
            tokens: tokensOf(target),
          });
          errorReplies = run.errorReplies + run.non2xx;
        }
        if (server.ours && before) {
          assertNoRefusals(before, await positionOutcomes(server.ours), `priming ${target}`);
        }
        if (errorReplies > 0) log(`priming ${target}: ${errorReplies} replies with errors`);
      }
      log(`primed each target for ${settings.prime} s`);
    }

    const windows: Record<string, Window[]> = Object.fromEntries(targets.map((t) => [t, []]));
    for (let round = 0; round < settings.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const target of order) {
        const server = servers.get(SERVER_OF[target])!;
        const counter = counters.get(target)!;
        const outcomesBefore = server.ours && (await positionOutcomes(server.ours));
        let window: Omit<Window, 'perCpuSecond' | 'loadAverage' | 'serverCpu' | 'clientCpu'>;
        let cpuBefore = 0;
        let cpuAfter: number | null = null;
        let clientBefore = process.cpuUsage();
        let clientCpu: NodeJS.CpuUsage | null = null;
        // The window's CPU is read as close to its edges as the two loads allow.
        const markStart = async () => {
          cpuBefore = await server.child.ask<number>({ type: 'cpu' });
          clientBefore = process.cpuUsage();
        };
        if (overWs(target)) {
          const run = await runWs(server.wsUrl!, counter, {
            warmup: settings.warmup,
            seconds: settings.seconds,
            players: playersOf(target),
            onMeasureStart: markStart,
            onMeasureEnd: async () => {
              clientCpu = process.cpuUsage(clientBefore);
              cpuAfter = await server.child.ask<number>({ type: 'cpu' });
            },
          });
          window = {
            round,
            rps: run.rps,
            requests: run.requests,
            seconds: run.seconds,
            warmupErrorReplies: run.errorReplies,
            errors: 0,
          };
        } else {
          const tokens = tokensOf(target);
          const warm = await runHttp(server.url, counter, {
            seconds: settings.warmup,
            checkReplies: true,
            tokens,
          });
          await markStart();
          const run = await runHttp(server.url, counter, { seconds: settings.seconds, tokens });
          window = {
            round,
            rps: run.rps,
            requests: run.requests,
            seconds: run.seconds,
            warmupErrorReplies: warm.errorReplies + warm.non2xx,
            errors: run.errors + run.timeouts + run.non2xx,
            p50Ms: run.latencyP50Ms,
            p99Ms: run.latencyP99Ms,
          };
        }
        clientCpu ??= process.cpuUsage(clientBefore);
        cpuAfter ??= await server.child.ask<number>({ type: 'cpu' });
        if (server.ours && outcomesBefore) {
          assertNoRefusals(
            outcomesBefore,
            await positionOutcomes(server.ours),
            `round ${round + 1} ${target}`,
          );
        }
        const clientSeconds = (clientCpu.user + clientCpu.system) / 1e6;
        const cpuSeconds = (cpuAfter - cpuBefore) / 1e6;
        windows[target]!.push({
          ...window,
          perCpuSecond: window.requests / cpuSeconds,
          serverCpu: cpuSeconds / window.seconds,
          clientCpu: clientSeconds / window.seconds,
          loadAverage: loadavg()[0]!,
        });
        const problems =
          window.warmupErrorReplies + window.errors > 0
            ? ` (${window.warmupErrorReplies} error replies in warm-up, ${window.errors} errors)`
            : '';
        log(
          `round ${round + 1}/${settings.rounds} ${target.padEnd(17)} ${Math.round(window.rps)} req/s, ${Math.round(window.requests / cpuSeconds)} per CPU-s (server ${Math.round((100 * cpuSeconds) / window.seconds)}%, load ${Math.round((100 * clientSeconds) / window.seconds)}% of a core)${problems}`,
        );
      }
    }
    const oursStats: Record<string, unknown> = {};
    for (const [name, { ours }] of servers) {
      if (ours) oursStats[name] = await ours.child.ask({ type: 'stats' });
    }
    return { windows, oursStats, encoders: encoders.map((e) => e.counts) };
  } finally {
    await Promise.all(encoders.map((e) => e.stop()));
    await Promise.all([...servers.values()].map(({ child }) => child.stop()));
  }
}

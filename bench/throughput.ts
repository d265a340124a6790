/**
 * The five throughput targets, each server in its own child process on core
 * 0, the load from this process on core 1, round-robin over `rounds` rounds
 * (each round starting one target later, so no target always goes first):
 * a warm-up (replies checked for `errors`), then a measured window.
 */
import { loadavg } from 'node:os';
import { BENCH_DIR, type Child, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { type Encoder, startEncoder } from './load/encoder.js';
import { Counter, preflightHttp, runHttp } from './load/http.js';
import { preflightWs, runWs } from './load/ws.js';

export const TARGETS = ['limit', 'floor', 'ours-http', 'ours-ws', 'peer'] as const;
export type TargetName = (typeof TARGETS)[number];

export const DESCRIPTIONS: Record<TargetName, string> = {
  limit: 'node:http, constant reply bytes',
  floor: 'graphql-yoga, one-field schema, constant resolver',
  'ours-http': 'the service over HTTP (yoga)',
  'ours-ws': 'the service over WebSocket (graphql-ws)',
  peer: 'fastify + mercurius, graphql-jit, one-field schema',
};

const SERVER_OF: Record<TargetName, string> = {
  limit: 'limit',
  floor: 'floor',
  'ours-http': 'ours',
  'ours-ws': 'ours',
  peer: 'peer',
};

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
  oursStats: unknown;
  encoder: Encoder['counts'];
}

export async function runThroughput(log: (line: string) => void): Promise<ThroughputResult> {
  const targets = TARGETS.filter((t) => settings.targets === null || settings.targets.includes(t));
  const servers = new Map<string, { child: Child; url: string; wsUrl?: string }>();
  let encoder: Encoder | null = null;
  try {
    for (const name of new Set(targets.map((t) => SERVER_OF[t]))) {
      const { child, ready } = await startChild(`${BENCH_DIR}servers/${name}.ts`, { core: 0 });
      servers.set(name, {
        child,
        url: ready.url as string,
        wsUrl: ready.wsUrl as string | undefined,
      });
      log(`started ${name} at ${ready.url}`);
    }
    const counters = new Map(targets.map((t) => [t, new Counter()]));
    // Pre-flight: every target answers the operation with data and no errors.
    for (const target of targets) {
      const server = servers.get(SERVER_OF[target])!;
      if (target === 'ours-ws') await preflightWs(server.wsUrl!, counters.get(target)!);
      else await preflightHttp(server.url, counters.get(target)!);
    }
    log(`pre-flight passed: ${targets.join(', ')} reply without errors`);
    const ours = servers.get('ours');
    if (ours) encoder = startEncoder(ours.wsUrl!);
    if (settings.prime > 0) {
      for (const target of targets) {
        const server = servers.get(SERVER_OF[target])!;
        const counter = counters.get(target)!;
        let errorReplies: number;
        if (target === 'ours-ws') {
          const run = await runWs(server.wsUrl!, counter, { warmup: 0, seconds: settings.prime });
          errorReplies = run.errorReplies;
        } else {
          const run = await runHttp(server.url, counter, {
            seconds: settings.prime,
            checkReplies: true,
          });
          errorReplies = run.errorReplies + run.non2xx;
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
        if (target === 'ours-ws') {
          const run = await runWs(server.wsUrl!, counter, {
            warmup: settings.warmup,
            seconds: settings.seconds,
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
          const warm = await runHttp(server.url, counter, {
            seconds: settings.warmup,
            checkReplies: true,
          });
          await markStart();
          const run = await runHttp(server.url, counter, { seconds: settings.seconds });
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
          `round ${round + 1}/${settings.rounds} ${target.padEnd(9)} ${Math.round(window.rps)} req/s, ${Math.round(window.requests / cpuSeconds)} per CPU-s (server ${Math.round((100 * cpuSeconds) / window.seconds)}%, load ${Math.round((100 * clientSeconds) / window.seconds)}% of a core)${problems}`,
        );
      }
    }
    const oursStats = ours ? await ours.child.ask({ type: 'stats' }) : null;
    return {
      windows,
      oursStats,
      encoder: encoder?.counts ?? { needs: 0, completed: 0, failed: 0 },
    };
  } finally {
    await encoder?.stop();
    await Promise.all([...servers.values()].map(({ child }) => child.stop()));
  }
}

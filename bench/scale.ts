/**
 * Update throughput over HTTP at 100 clients (10 sessions of 10) and at
 * BENCH_MEMORY_CLIENTS clients (sessions of 10), the real service in two
 * child processes on core 0, every client joined before the load; windows
 * alternate between the two, BENCH_SCALE_ROUNDS rounds (2 by default).
 *
 * With access control off (BENCH_AUTH=off): this measures how the store
 * scales with its clients, and 100,000 players with their own tokens would
 * overflow the 10,000 verified player tokens the service keeps, so that the
 * large case would also pay a signature check per request (bench/README.md).
 */

import { BENCH_DIR, type Child, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { type Spread, spread } from './lib/stats.js';
import { Counter, type Layout, runHttp } from './load/http.js';

export interface ScaleResult {
  clients: number;
  at100: { rps: Spread; perCpuSecond: Spread };
  atN: { rps: Spread; perCpuSecond: Spread };
  /** Per-round ratios atN / at100. */
  ratio: { rps: Spread; perCpuSecond: Spread };
}

export async function runScale(log: (line: string) => void): Promise<ScaleResult> {
  const rounds = Number(process.env.BENCH_SCALE_ROUNDS ?? 2);
  const clients = settings.memoryClients;
  const layouts: Layout[] = [
    { sessions: 10, clientsPerSession: 10 },
    { sessions: Math.max(1, Math.floor(clients / 10)), clientsPerSession: 10 },
  ];
  const servers: Array<{ child: Child; url: string; layout: Layout; counter: Counter }> = [];
  try {
    for (const layout of layouts) {
      const { child, ready } = await startChild(`${BENCH_DIR}servers/ours.ts`, {
        core: 0,
        env: {
          BENCH_AUTH: 'off',
          BENCH_SESSIONS: String(layout.sessions),
          BENCH_CLIENTS_PER_SESSION: String(layout.clientsPerSession),
          BENCH_SEED: '1',
        },
      });
      servers.push({ child, url: ready.url as string, layout, counter: new Counter() });
    }
    const figures = servers.map(() => ({ rps: [] as number[], perCpuSecond: [] as number[] }));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 ? [1, 0] : [0, 1];
      for (const i of order) {
        const server = servers[i]!;
        await runHttp(server.url, server.counter, {
          seconds: settings.warmup,
          layout: server.layout,
        });
        const before = await server.child.ask<number>({ type: 'cpu' });
        const run = await runHttp(server.url, server.counter, {
          seconds: settings.seconds,
          layout: server.layout,
        });
        const cpu = ((await server.child.ask<number>({ type: 'cpu' })) - before) / 1e6;
        figures[i]!.rps.push(run.rps);
        figures[i]!.perCpuSecond.push(run.requests / cpu);
        const n = server.layout.sessions * server.layout.clientsPerSession;
        log(
          `scale round ${round + 1}/${rounds} ${n} clients: ${Math.round(run.rps)} req/s, ${Math.round(run.requests / cpu)} per CPU-s${run.non2xx + run.errors ? ` (${run.non2xx + run.errors} errors)` : ''}`,
        );
      }
    }
    const ratio = (field: 'rps' | 'perCpuSecond') =>
      spread(figures[1]![field].map((v, k) => v / figures[0]![field][k]!));
    return {
      clients: layouts[1]!.sessions * layouts[1]!.clientsPerSession,
      at100: { rps: spread(figures[0]!.rps), perCpuSecond: spread(figures[0]!.perCpuSecond) },
      atN: { rps: spread(figures[1]!.rps), perCpuSecond: spread(figures[1]!.perCpuSecond) },
      ratio: { rps: ratio('rps'), perCpuSecond: ratio('perCpuSecond') },
    };
  } finally {
    await Promise.all(servers.map(({ child }) => child.stop()));
  }
}

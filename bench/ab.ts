/**
 * Compares configurations of ours over WebSocket, interleaved round by round
 * (rotating which goes first) so that a busy machine hits all of them alike:
 * `AB_VARIANTS='BENCH_SRC=/tmp/base/src|' npx tsx bench/ab.ts` (each variant is
 * a space-separated list of environment settings for servers/ours.ts, such as
 * BENCH_SRC, another copy of src/ to serve, e.g. one made with
 * `git archive <commit> src | tar -x -C /tmp/base`). Prints each
 * window's req per server CPU-second and, per variant, the median (min–max)
 * of its per-round ratio to the first variant.
 *
 * Ours runs in the default configuration, with the benchmark's loads of it
 * (players with their own tokens; over WebSocket one connection per player),
 * an encoder worker beside it, each server primed once before round 1, and
 * no refused update allowed;
 * `BENCH_AUTH=off` in a variant runs the configuration earlier levers were
 * measured in.
 */

import { loadavg } from 'node:os';
import { assertNoRefusals, type Ours, positionOutcomes, startOurs } from './lib/ours.js';
import { BENCH_DIR, type Child, pinSelf, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { spread } from './lib/stats.js';
import { type Encoder, startEncoder } from './load/encoder.js';
import { Counter, runHttp } from './load/http.js';
import { runWs } from './load/ws.js';

const envOf = (spec: string) =>
  Object.fromEntries(
    spec
      .split(' ')
      .filter(Boolean)
      .map((kv) => {
        const at = kv.indexOf('=');
        return [kv.slice(0, at), kv.slice(at + 1)];
      }),
  );
pinSelf(1);
const variants = (process.env.AB_VARIANTS ?? '').split('|');
// AB_TRANSPORT=http loads over HTTP (autocannon) instead of WebSocket.
const overHttp = process.env.AB_TRANSPORT === 'http';
const servers: Array<{
  spec: string;
  child: Child;
  url: string;
  wsUrl: string;
  counter: Counter;
  perCpu: number[];
  ours?: Ours;
}> = [];
const encoders: Encoder[] = [];
for (const spec of variants) {
  // SERVER=floor (or limit, peer) in a variant serves that target instead of ours.
  const { SERVER = 'ours', ...env } = envOf(spec);
  if (SERVER === 'ours') {
    const ours = await startOurs(env);
    encoders.push(startEncoder(ours.wsUrl, ours.encoderToken));
    servers.push({ spec, ...ours, ours, counter: new Counter(), perCpu: [] });
    continue;
  }
  const { child, ready } = await startChild(`${BENCH_DIR}servers/${SERVER}.ts`, {
    core: 0,
    env,
  });
  servers.push({
    spec,
    child,
    url: ready.url as string,
    wsUrl: ready.wsUrl as string,
    counter: new Counter(),
    perCpu: [] as number[],
  });
}
const playersOf = (ours: Ours | undefined) =>
  ours?.tokens && {
    tokens: ours.tokens,
    count: settings.wsPlayers,
    perSecond: settings.playerRate,
  };
// Each server loaded once, unmeasured, before round 1 (as throughput.ts does):
// otherwise the first window of round 1 runs code V8 has not optimised yet.
for (const s of servers) {
  if (settings.prime === 0) break;
  const before = s.ours && (await positionOutcomes(s.ours));
  if (overHttp)
    await runHttp(s.url, s.counter, { seconds: settings.prime, tokens: s.ours?.tokens });
  else {
    await runWs(s.wsUrl, s.counter, {
      warmup: 0,
      seconds: settings.prime,
      players: playersOf(s.ours),
    });
  }
  if (s.ours && before) {
    assertNoRefusals(before, await positionOutcomes(s.ours), `priming [${s.spec}]`);
  }
}
for (let round = 0; round < settings.rounds; round++) {
  const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
  for (const s of order) {
    let before = 0;
    let after = 0;
    const onMeasureStart = async () => {
      before = await s.child.ask<number>({ type: 'cpu' });
    };
    const onMeasureEnd = async () => {
      after = await s.child.ask<number>({ type: 'cpu' });
    };
    let run: { requests: number; rps: number; errorReplies: number };
    const tokens = s.ours?.tokens;
    const outcomesBefore = s.ours && (await positionOutcomes(s.ours));
    if (overHttp) {
      const warm = await runHttp(s.url, s.counter, {
        seconds: settings.warmup,
        checkReplies: true,
        tokens,
      });
      await onMeasureStart();
      run = { ...(await runHttp(s.url, s.counter, { seconds: settings.seconds, tokens })) };
      await onMeasureEnd();
      run.errorReplies = warm.errorReplies;
    } else {
      run = await runWs(s.wsUrl, s.counter, {
        warmup: settings.warmup,
        seconds: settings.seconds,
        players: playersOf(s.ours),
        onMeasureStart,
        onMeasureEnd,
      });
    }
    if (s.ours && outcomesBefore) {
      assertNoRefusals(
        outcomesBefore,
        await positionOutcomes(s.ours),
        `round ${round + 1} [${s.spec}]`,
      );
    }
    s.perCpu.push(run.requests / ((after - before) / 1e6));
    console.log(
      `round ${round + 1} [${s.spec}] ${Math.round(run.rps)} req/s, ${Math.round(s.perCpu.at(-1)!)} per CPU-s, load average ${loadavg()[0]!.toFixed(1)}${run.errorReplies ? `, ${run.errorReplies} error replies` : ''}`,
    );
  }
}
const base = servers[0]!;
for (const s of servers) {
  const f = spread(s.perCpu);
  const r = spread(s.perCpu.map((v, i) => v / base.perCpu[i]!));
  console.log(
    `[${s.spec}] per CPU-s ${Math.round(f.median)} (${Math.round(f.min)}–${Math.round(f.max)}); ×${r.median.toFixed(2)} (${r.min.toFixed(2)}–${r.max.toFixed(2)}) of [${base.spec}]`,
  );
}
await Promise.all(encoders.map((e) => e.stop()));
await Promise.all(servers.map((s) => s.child.stop()));

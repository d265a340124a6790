/**
 * The latency phase's background: position updates at a steady rate
 * (BENCH_BG_RATE per second, over BENCH_BG_URL) from their own process, so the
 * subscribers' event loop is not the one sending them. Runs until the parent
 * asks for `stop`, which answers with the rate achieved.
 *
 * Paced here rather than with autocannon's `overallRate`: autocannon lets
 * each connection send its whole share of a second as fast as it can at the
 * start of that second, then wait. That is a burst every second, which
 * queues 32 requests at once in front of whatever the latency driver sends.
 * Here updates leave every millisecond, as many as the rate owes by then, over
 * up to BENCH_CONNECTIONS keep-alive connections (open loop: a slow server
 * does not slow the schedule; the agent queues what finds no free socket).
 * It starts when the parent says `start`, with the players' tokens when the
 * server checks them (each update then carries its player's token).
 */
import { Agent, request } from 'node:http';
import { serveParent } from '../lib/processes.js';
import { settings } from '../lib/settings.js';
import { updateBody, updateHeaders } from './http.js';

const url = new URL(process.env.BENCH_BG_URL!);
const rate = Number(process.env.BENCH_BG_RATE);
const agent = new Agent({ keepAlive: true, maxSockets: settings.connections });
let sent = 0;
let ok = 0;
let non2xx = 0;
let errors = 0;
let tokens: readonly string[] | undefined;

function send(n: number) {
  const body = updateBody(n);
  const req = request(
    {
      agent,
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { ...updateHeaders(n, tokens), 'content-length': Buffer.byteLength(body) },
    },
    (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) ok++;
        else non2xx++;
      });
    },
  );
  req.on('error', () => errors++);
  req.end(body);
}

let started = 0;
let pacer: NodeJS.Timeout | undefined;
process.send?.({ type: 'ready' });

serveParent({
  start: ({ tokens: given }: { tokens?: string[] }) => {
    tokens = given;
    started = performance.now();
    pacer = setInterval(() => {
      const owed = Math.floor(((performance.now() - started) / 1000) * rate);
      while (sent < owed) send(sent++);
    }, 1);
  },
  stop: async () => {
    clearInterval(pacer);
    const seconds = (performance.now() - started) / 1000;
    agent.destroy();
    return { targetRate: rate, achievedRate: ok / seconds, non2xx, errors };
  },
});

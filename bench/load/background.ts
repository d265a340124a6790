/**
 * The latency phase's background: position updates at a fixed rate
 * (BENCH_BG_RATE per second, over BENCH_BG_URL) from their own process, so the
 * subscribers' event loop is not the one sending them. Runs until the parent
 * asks for `stop`, which answers with the rate achieved.
 */
import autocannon from 'autocannon';
import { serveParent } from '../lib/processes.js';
import { settings } from '../lib/settings.js';
import { updateBody } from './http.js';

const url = process.env.BENCH_BG_URL!;
const rate = Number(process.env.BENCH_BG_RATE);
let n = 0;
const started = performance.now();
let finished: Promise<autocannon.Result> | null = null;
const instance = autocannon(
  {
    url,
    connections: settings.connections,
    duration: 3_600,
    overallRate: rate,
    requests: [
      {
        method: 'POST',
        path: new URL(url).pathname,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        setupRequest: (request) => ({ ...request, body: updateBody(n++) }),
      },
    ],
  },
  () => {},
);
finished = new Promise((resolve) => instance.on('done', resolve));
process.send?.({ type: 'ready' });

serveParent({
  stop: async () => {
    instance.stop();
    const result = await finished!;
    const seconds = (performance.now() - started) / 1000;
    return {
      targetRate: rate,
      achievedRate: result['2xx'] / seconds,
      non2xx: result.non2xx,
      errors: result.errors,
    };
  },
});

import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * The suite that talks to the server through its API and depends on the
 * store: it runs once per store. (Access control and request limits do not
 * touch the store, and read the memory store's snapshot: memory only.)
 */
const integration = [
  'test/http.test.ts',
  'test/sse.test.ts',
  'test/websocket.test.ts',
  'test/validation.test.ts',
  'test/concurrency.test.ts',
  'test/audit.test.ts',
  'test/lifecycle.test.ts',
  'test/websocket-health.test.ts',
  'test/stream-session-updated-api.test.ts',
  // Operators (issue 7): the gauges read the store, and the activity behind the
  // counters and logs comes back from Redis' scripts.
  'test/metrics.test.ts',
  'test/logs.test.ts',
  // Contract v2 (issue 12): coverage, several needs and batches at once, the video's end.
  'test/v2-coverage-api.test.ts',
  'test/v2-concurrency.test.ts',
];

export default defineConfig({
  resolve: {
    // Node resolves `graphql` to its CommonJS build (the package has no
    // exports map), and so do yoga and graphql-ws; vite would pick the ESM
    // build for our sources. Two copies break graphql-js' instanceof checks.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    // A hang guard, not a speed bound: a loaded 2-core machine runs both projects at once.
    testTimeout: 60_000,
    hookTimeout: 20_000,
    // Tests start real servers; two cores are the limit here.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'memory',
          // Everything, test/dashboard.e2e.test.ts (real Chromium) included; not the
          // redis project, whose list names only the store-dependent integration files.
          include: ['test/**/*.test.ts'],
          exclude: ['test/redis-*.test.ts', 'test/store-parity.test.ts'],
          env: { TEST_STORE: 'memory' },
        },
      },
      {
        extends: true,
        test: {
          name: 'redis',
          // The parity test runs both stores side by side: it needs Redis.
          include: [...integration, 'test/redis-*.test.ts', 'test/store-parity.test.ts'],
          env: { TEST_STORE: 'redis' },
          globalSetup: ['test/redis-global-setup.ts'],
        },
      },
    ],
  },
});

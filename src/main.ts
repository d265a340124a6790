import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './server/app.js';
import { SnapshotError } from './state/snapshot-file.js';

// The shutdown must end within this, whatever is still open.
const HARD_EXIT_AFTER = 9_500; // ms, under the 10 s a supervisor usually grants

async function main() {
  const config = loadConfig();
  const app = buildApp({ config });
  // Handlers first: a signal that arrives while starting still shuts down cleanly.
  const started = app.start();
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    signalled = true;
    console.log(`${signal} received: shutting down`);
    setTimeout(() => {
      console.error('shutdown took too long: exiting');
      process.exit(1);
    }, HARD_EXIT_AFTER).unref();
    started
      .catch(() => {})
      .then(() => app.stop())
      .then(
        () => {
          console.log('shut down cleanly');
          process.exit(0);
        },
        (error) => {
          console.error('shutdown failed', error);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  const { url } = await started;
  console.log(`hls-batch-coordinator listening on ${url} (store: ${config.store})`);
  if (!config.authEnabled) {
    console.warn(
      'WARNING: AUTH=off: every caller is admin. For local development only; never expose this server.',
    );
    return;
  }
  // Shown once, like Jupyter's token: set ADMIN_TOKEN / ENCODER_TOKEN to choose your own.
  const { adminToken, encoderToken } = app.generatedTokens;
  if (adminToken) console.log(`admin token (generated; set ADMIN_TOKEN to fix it): ${adminToken}`);
  if (encoderToken) {
    console.log(`encoder token (generated; set ENCODER_TOKEN to fix it): ${encoderToken}`);
  }
  if (config.clientTokenSecret === null) {
    console.log(
      'player tokens are signed with a generated key: they end with this process (set CLIENT_TOKEN_SECRET to keep them valid across restarts)',
    );
  }
}

main().catch((error) => {
  const expected = error instanceof ConfigError || error instanceof SnapshotError;
  console.error(expected ? error.message : error);
  process.exit(1);
});

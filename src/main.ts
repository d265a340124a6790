import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './server/app.js';
import { createLogger, type Logger } from './server/logger.js';
import { SnapshotError } from './state/snapshot-file.js';

// The shutdown must end within this, whatever is still open.
const HARD_EXIT_AFTER = 9_500; // ms, under the 10 s a supervisor usually grants

async function main() {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel });
  const app = buildApp({ config, logger });
  // Handlers first: a signal that arrives while starting still shuts down cleanly.
  const started = app.start();
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) {
      logger.error({ signal }, `${signal} again: exiting now`);
      process.exit(1);
    }
    signalled = true;
    logger.info({ signal }, `${signal} received: shutting down`);
    setTimeout(() => {
      logger.error('shutdown took too long: exiting');
      process.exit(1);
    }, HARD_EXIT_AFTER).unref();
    started
      .catch(() => {})
      .then(() => app.stop())
      .then(
        () => {
          logger.info('shut down cleanly');
          process.exit(0);
        },
        (error) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  const { url } = await started;
  // The URL is followed by a space: scripts read it from this line.
  logger.info(
    { url, store: config.store },
    `hls-batch-coordinator listening on ${url} (store: ${config.store})`,
  );
  if (!config.authEnabled) {
    logger.warn(
      'AUTH=off: every caller is admin. For local development only; never expose this server.',
    );
    return;
  }
  showGeneratedTokens(app.generatedTokens, logger);
  if (config.clientTokenSecret === null) {
    logger.info(
      'player tokens are signed with a generated key: they end with this process (set CLIENT_TOKEN_SECRET to keep them valid across restarts)',
    );
  }
}

/**
 * Shown once, like Jupyter's token, as plain lines on stderr: never in the
 * structured log, which may be shipped elsewhere (tokens are never logged).
 */
function showGeneratedTokens(
  tokens: { readonly adminToken?: string; readonly encoderToken?: string },
  logger: Logger,
): void {
  const { adminToken, encoderToken } = tokens;
  if (adminToken) {
    process.stderr.write(`admin token (generated; set ADMIN_TOKEN to fix it): ${adminToken}\n`);
  }
  if (encoderToken) {
    process.stderr.write(
      `encoder token (generated; set ENCODER_TOKEN to fix it): ${encoderToken}\n`,
    );
  }
  if (adminToken || encoderToken) {
    logger.info(
      { adminToken: Boolean(adminToken), encoderToken: Boolean(encoderToken) },
      'generated tokens were printed on stderr, once',
    );
  }
}

main().catch((error) => {
  // On stderr, where a supervisor shows why a start failed; a bad setting or
  // snapshot is said in a sentence, not a stack trace.
  const logger = createLogger({ fd: 2 });
  if (error instanceof ConfigError || error instanceof SnapshotError) logger.fatal(error.message);
  else logger.fatal({ err: error }, 'failed to start');
  process.exit(1);
});

import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './server/app.js';

async function main() {
  const config = loadConfig();
  const app = buildApp({ config });
  const { url } = await app.start();
  console.log(`hls-batch-coordinator listening on ${url} (store: ${config.store})`);
  const shutdown = (signal: string) => {
    console.log(`${signal} received, shutting down`);
    app.stop().then(
      () => process.exit(0),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});

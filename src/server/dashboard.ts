import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_PATH = '/dashboard';

/** Where the dashboard's sources live: dashboard/ at the root of the project. */
const SOURCE_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

export interface DashboardOptions {
  /** Where a failed build is reported. */
  readonly log: Pick<Console, 'error'>;
  /**
   * Keep each file once read or built. Off in development, so that an edit
   * to dashboard/ shows on reload (the bundle is rebuilt, ~50 ms).
   */
  readonly cache?: boolean;
}

/**
 * Serves the operator dashboard, a static page that needs no credentials
 * itself (it asks for a token and talks to /graphql like any client):
 *
 * - `GET /dashboard`: dashboard/index.html
 * - `GET /dashboard/app.js`: dashboard/main.ts and graphql-ws, bundled by
 *   esbuild in memory on the first request and kept (nothing prebuilt is
 *   committed, and there is no build step to forget)
 * - `GET /dashboard/style.css`: dashboard/style.css
 *
 * Anything else under /dashboard is 404, other methods 405. A bundle that
 * fails to build answers 500, is logged, and is tried again on the next request.
 */
export function serveDashboard({ log, cache = true }: DashboardOptions) {
  // A Map, so that no path can reach a property every object has.
  const loaders = new Map<string, () => Promise<Asset>>([
    [DASHBOARD_PATH, () => readAsset('index.html', 'text/html; charset=utf-8')],
    [`${DASHBOARD_PATH}/app.js`, bundle],
    [`${DASHBOARD_PATH}/style.css`, () => readAsset('style.css', 'text/css; charset=utf-8')],
  ]);
  const cached = new Map<string, Promise<Asset>>();

  function load(path: string, loader: () => Promise<Asset>): Promise<Asset> {
    if (!cache) return loader();
    let asset = cached.get(path);
    if (asset === undefined) {
      asset = loader();
      cached.set(path, asset);
      // A failure is not kept: the next request tries again.
      asset.catch(() => cached.delete(path));
    }
    return asset;
  }

  return async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (path === `${DASHBOARD_PATH}/`) {
      // The page's links are relative to /dashboard (so a path prefix in front works too).
      res.writeHead(308, { location: `../${DASHBOARD_PATH.slice(1)}` });
      res.end();
      return;
    }
    const loader = loaders.get(path);
    if (loader === undefined) return sendText(res, 404, 'Not found.');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendText(res, 405, 'Method not allowed.');
    }
    let asset: Asset;
    try {
      asset = await load(path, loader);
    } catch (error) {
      log.error('dashboard: could not build', path, error);
      return sendText(res, 500, 'The dashboard could not be built; see the server log.');
    }
    const headers = {
      'content-type': asset.type,
      etag: asset.etag,
      // Revalidate every time: an unchanged file costs a 304.
      'cache-control': 'no-cache',
      ...SECURITY_HEADERS,
    };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': asset.body.length });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  };
}

/**
 * The page loads only its own script and style and talks only to its own
 * origin (ws: included: 'self' covers the same host's WebSocket).
 */
const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

async function readAsset(name: string, type: string): Promise<Asset> {
  return asset(await readFile(`${SOURCE_DIR}${name}`), type);
}

async function bundle(): Promise<Asset> {
  // Loaded on first use: a server whose dashboard nobody opens never starts esbuild.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [`${SOURCE_DIR}main.ts`],
    tsconfig: `${SOURCE_DIR}tsconfig.json`,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'inline',
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (output === undefined) throw new Error('esbuild produced no output');
  return asset(Buffer.from(output.contents), 'text/javascript; charset=utf-8');
}

function asset(body: Buffer, type: string): Asset {
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, type, etag: `"${hash}"` };
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

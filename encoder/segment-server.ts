/**
 * The segment server (issue 13): what players load. Per stream session a
 * master playlist of the ladder's renditions, a VOD playlist per rendition
 * listing every segment 0..lastSegment up front, and the segments themselves
 * from OUTPUT_DIR. A segment in range that is not made yet is held until the
 * encoder renames it into place (then 503 with Retry-After after a bound), so
 * a player can play across batch boundaries and seek anywhere without ever
 * seeing a playlist change. node:http only; see docs/pipeline-interfaces.md.
 */
import { type FSWatcher, watch } from 'node:fs';
import { access, mkdir, open, readdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { bandwidth, LADDER, type Rendition, renditionNamed } from './ladder.js';
import { renditionDir, segmentFileName, segmentPath } from './paths.js';

export interface SegmentServerOptions {
  /** Where the encoder writes: OUTPUT_DIR/<sessionDirName(id)>/<rendition>/seg_<n>.ts. */
  outputDir: string;
  /** 0 picks a free port. */
  port: number;
  /** Interface to listen on; 127.0.0.1 when absent. */
  host?: string;
  /** The service's http(s) URL of /graphql. */
  coordinatorUrl: string;
  /** The encoder (or admin) token, to read sessions; none with the service's AUTH=off. */
  token?: string;
  /** Seconds a request for a segment not made yet is held before 503 (default 20). */
  holdSeconds?: number;
  /** For tests: the fetch the service is asked with. */
  fetch?: typeof fetch;
  /** Milliseconds between the checks that back up fs.watch (default 250). */
  pollMs?: number;
  /** Milliseconds an unknown session is remembered as unknown (default 2000). */
  notFoundTtlMs?: number;
  /** Milliseconds a known session's length is kept (default 10 minutes). */
  sessionTtlMs?: number;
  /** Milliseconds one question to the service may take (default 5000). */
  coordinatorTimeoutMs?: number;
  /** Where problems are reported (a failing service, a broken watcher); silent when absent. */
  onError?: (error: Error) => void;
}

export interface SegmentServer {
  /** http://host:port, without a trailing slash. */
  url: string;
  port: number;
  /** Answers held requests with 503, stops listening and ends open connections. */
  close(): Promise<void>;
  /** Drops what it knows of a session (an ended one, whose id may come back for another video). */
  forget(streamSessionId: string): void;
  /** For tests and metrics: requests held now, and directories watched for them. */
  stats(): { held: number; watchedDirs: number; lookups: number };
}

/** What the segment server needs to know of a session. */
export interface SessionLength {
  lastSegment: number | null;
  segmentDuration: number;
  durationSeconds: number | null;
}

/**
 * CODECS per rendition: H.264 Main profile, as the worker asks libx264 for
 * (`-profile:v main`), at the level libx264 picks for the ladder's sizes at
 * 25-30 fps (3.0, 3.1, 4.0; checked with ffprobe), and AAC-LC.
 * A source smaller than a rendition is encoded smaller, at a lower level: a
 * player that can decode the declared level can decode it.
 */
const CODECS: Record<Rendition['name'], string> = {
  '1080p': 'avc1.4d4028,mp4a.40.2',
  '720p': 'avc1.4d401f,mp4a.40.2',
  '480p': 'avc1.4d401e,mp4a.40.2',
};

const SEGMENT = /^seg_(\d{1,9})\.ts$/;
const MAX_ID_LENGTH = 128;

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': 'Range, Content-Type, Authorization, Cache-Control',
  'access-control-expose-headers': 'Content-Length, Retry-After',
  'access-control-max-age': '86400',
} as const;

const PLAYLIST_HEADERS = {
  'content-type': 'application/vnd.apple.mpegurl',
  'cache-control': 'no-cache',
} as const;

const SEGMENT_HEADERS = {
  'content-type': 'video/mp2t',
  'cache-control': 'public, max-age=31536000, immutable',
} as const;

export function masterPlaylist(): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const r of LADDER) {
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidth(r)},RESOLUTION=${r.width}x${r.height},CODECS="${CODECS[r.name]}"`,
      `${r.name}/index.m3u8`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The VOD playlist of a session of known length: every segment, the last one shorter. */
export function mediaPlaylist(
  session: Pick<SessionLength, 'segmentDuration' | 'durationSeconds'> & { lastSegment: number },
): string {
  const d = session.segmentDuration;
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    `#EXT-X-TARGETDURATION:${d}`,
    '#EXT-X-MEDIA-SEQUENCE:0',
    '#EXT-X-PLAYLIST-TYPE:VOD',
  ];
  const total = session.durationSeconds ?? (session.lastSegment + 1) * d;
  for (let n = 0; n <= session.lastSegment; n++) {
    const length = n < session.lastSegment ? d : total - session.lastSegment * d;
    lines.push(`#EXTINF:${length.toFixed(3)},`, segmentFileName(n));
  }
  lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

class CoordinatorError extends Error {
  override name = 'CoordinatorError';
}

const SESSION_QUERY =
  'query SegmentServerSession($id: ID!) { streamSession(id: $id) { lastSegment segmentDuration durationSeconds } }';

/** One directory watched for the segments requests wait for: one fs.watch and one poll, however many wait. */
interface DirWatch {
  dir: string;
  /** File name → the requests waiting for it. */
  waiters: Map<string, Set<() => void>>;
  watcher: FSWatcher | null;
  poll: NodeJS.Timeout;
  polling: boolean;
}

export async function startSegmentServer(options: SegmentServerOptions): Promise<SegmentServer> {
  const holdMs = Math.max(0, (options.holdSeconds ?? 20) * 1000);
  const pollMs = options.pollMs ?? 250;
  const doFetch = options.fetch ?? fetch;
  const onError = options.onError ?? (() => {});
  const coordinatorTimeoutMs = options.coordinatorTimeoutMs ?? 5_000;
  const found = new LRUCache<string, SessionLength>({
    max: 10_000,
    ttl: options.sessionTtlMs ?? 600_000,
  });
  const notFound = new LRUCache<string, true>({ max: 10_000, ttl: options.notFoundTtlMs ?? 2_000 });
  /** One question to the service per session at a time, however many requests ask. */
  const inFlight = new Map<string, Promise<SessionLength | null>>();
  const dirs = new Map<string, DirWatch>();
  /** Every held request's way to end now (on close). */
  const held = new Set<() => void>();
  let lookups = 0;
  let closing = false;

  async function askService(id: string): Promise<SessionLength | null> {
    lookups++;
    let response: Response;
    try {
      response = await doFetch(options.coordinatorUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
        body: JSON.stringify({ query: SESSION_QUERY, variables: { id } }),
        signal: AbortSignal.timeout(coordinatorTimeoutMs),
      });
    } catch (error) {
      throw new CoordinatorError(`the coordinator did not answer: ${(error as Error).message}`);
    }
    let body: {
      data?: { streamSession: SessionLength | null } | null;
      errors?: Array<{ message: string; extensions?: { code?: string } }>;
    };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw new CoordinatorError(`the coordinator answered ${response.status} without JSON`);
    }
    const e = body.errors?.[0];
    if (e !== undefined) {
      throw new CoordinatorError(
        `the coordinator refused: ${e.extensions?.code ?? 'ERROR'} ${e.message}`,
      );
    }
    if (body.data === undefined || body.data === null) {
      throw new CoordinatorError(`the coordinator answered ${response.status} without data`);
    }
    return body.data.streamSession;
  }

  async function sessionLength(id: string): Promise<SessionLength | null> {
    const known = found.get(id);
    if (known !== undefined) return known;
    if (notFound.has(id)) return null;
    let pending = inFlight.get(id);
    if (pending === undefined) {
      pending = askService(id)
        .then((session) => {
          if (session === null) notFound.set(id, true);
          else found.set(id, session);
          return session;
        })
        .finally(() => inFlight.delete(id));
      inFlight.set(id, pending);
    }
    return pending;
  }

  /** Wakes the waiters of files that now exist in a watched directory. */
  async function check(w: DirWatch, only?: string): Promise<void> {
    if (only !== undefined) {
      const waiting = w.waiters.get(only);
      if (waiting === undefined) return;
      // fs.watch also reports deletions: wake only for a file that is there.
      const there = await access(path.join(w.dir, only)).then(
        () => true,
        () => false,
      );
      if (there) for (const wake of [...(w.waiters.get(only) ?? [])]) wake();
      return;
    }
    if (w.polling) return;
    w.polling = true;
    try {
      // A few files waited for: look at each. Many: one listing of the folder (which may hold
      // thousands of segments of a long video) answers for all of them.
      const names =
        w.waiters.size <= 16
          ? (
              await Promise.all(
                [...w.waiters.keys()].map((name) =>
                  access(path.join(w.dir, name)).then(
                    () => name,
                    () => null,
                  ),
                ),
              )
            ).filter((name) => name !== null)
          : await readdir(w.dir).catch(() => [] as string[]);
      for (const name of names) {
        const waiting = w.waiters.get(name);
        if (waiting !== undefined) for (const wake of [...waiting]) wake();
      }
    } finally {
      w.polling = false;
    }
  }

  function watchDir(dir: string): DirWatch {
    let w = dirs.get(dir);
    if (w !== undefined) return w;
    const created: DirWatch = {
      dir,
      waiters: new Map(),
      watcher: null,
      poll: setInterval(() => void check(created), pollMs),
      polling: false,
    };
    created.poll.unref();
    try {
      created.watcher = watch(dir, { persistent: false }, (_event, filename) => {
        // ffmpeg's writes to seg_<n>.ts.tmp come by the hundred: only the rename into place
        // (an event named seg_<n>.ts) matters. No name at all: look at everything.
        if (typeof filename !== 'string') void check(created);
        else if (SEGMENT.test(filename)) void check(created, filename);
      });
      created.watcher.on('error', (error) => {
        // The directory went (a session's segments deleted): the poll carries on.
        onError(error);
        created.watcher?.close();
        created.watcher = null;
      });
    } catch (error) {
      onError(error as Error);
    }
    w = created;
    dirs.set(dir, w);
    return w;
  }

  function unwatch(w: DirWatch, file: string, wake: () => void): void {
    const waiting = w.waiters.get(file);
    waiting?.delete(wake);
    if (waiting !== undefined && waiting.size === 0) w.waiters.delete(file);
    if (w.waiters.size === 0 && dirs.get(w.dir) === w) {
      dirs.delete(w.dir);
      clearInterval(w.poll);
      w.watcher?.close();
    }
  }

  /**
   * Resolves 'made' when the file exists, 'timeout' after holdMs, 'gone' when
   * the client left or the server closes. The watch is released in every case.
   */
  async function waitFor(
    dir: string,
    file: string,
    response: http.ServerResponse,
    timeoutMs: number,
  ): Promise<'made' | 'timeout' | 'gone'> {
    await mkdir(dir, { recursive: true });
    if (response.destroyed || closing) return 'gone';
    const w = watchDir(dir);
    return new Promise((resolve) => {
      let done = false;
      const finish = (how: 'made' | 'timeout' | 'gone') => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        held.delete(gone);
        response.off('close', gone);
        unwatch(w, file, made);
        resolve(how);
      };
      const made = () => finish('made');
      const gone = () => finish('gone');
      const timer = setTimeout(() => finish('timeout'), timeoutMs);
      timer.unref();
      held.add(gone);
      // The response's close, not the request's: a GET's request closes once its (empty) body is read.
      response.on('close', gone);
      let waiting = w.waiters.get(file);
      if (waiting === undefined) {
        waiting = new Set();
        w.waiters.set(file, waiting);
      }
      waiting.add(made);
      // It may have appeared between the caller's open and the watch.
      void check(w, file);
    });
  }

  function send(
    response: http.ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string> = {},
    head = false,
  ): void {
    if (response.headersSent || response.destroyed) return;
    response.writeHead(status, {
      ...CORS,
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      ...headers,
      ...(closing ? { connection: 'close' } : {}),
      'content-length': Buffer.byteLength(body),
    });
    response.end(head ? undefined : body);
  }

  async function serveSegment(
    response: http.ServerResponse,
    id: string,
    rendition: Rendition,
    n: number,
    head: boolean,
  ): Promise<void> {
    const file = segmentPath(options.outputDir, id, rendition.name, n);
    const deadline = Date.now() + holdMs;
    for (;;) {
      try {
        const handle = await open(file, 'r');
        let size: number;
        try {
          size = (await handle.stat()).size;
        } catch (error) {
          await handle.close();
          throw error;
        }
        if (response.destroyed) {
          await handle.close();
          return;
        }
        response.writeHead(200, {
          ...CORS,
          ...SEGMENT_HEADERS,
          'content-length': size,
        });
        if (head) {
          await handle.close();
          response.end();
          return;
        }
        const stream = handle.createReadStream();
        stream.on('error', () => response.destroy());
        response.on('close', () => stream.destroy());
        stream.pipe(response);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      if (closing || Date.now() >= deadline) break;
      const outcome = await waitFor(
        renditionDir(options.outputDir, id, rendition.name),
        segmentFileName(n),
        response,
        deadline - Date.now(),
      );
      if (outcome === 'gone') {
        if (closing) break;
        return;
      }
      if (outcome === 'timeout') break;
    }
    send(
      response,
      503,
      `segment ${n} of ${rendition.name} is not made yet; ask again\n`,
      { 'retry-after': '2' },
      head,
    );
  }

  async function handle(request: http.IncomingMessage, response: http.ServerResponse) {
    const method = request.method ?? 'GET';
    if (method === 'OPTIONS') {
      const asked = request.headers['access-control-request-headers'];
      response.writeHead(204, {
        ...CORS,
        ...(typeof asked === 'string' && asked.length <= 1024
          ? { 'access-control-allow-headers': asked }
          : {}),
        'content-length': 0,
      });
      response.end();
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(response, 405, 'only GET, HEAD and OPTIONS\n', { allow: 'GET, HEAD, OPTIONS' });
      return;
    }
    const head = method === 'HEAD';
    const notFoundHere = () => send(response, 404, 'not found\n', {}, head);

    const url = request.url ?? '/';
    const query = url.indexOf('?');
    // Split before decoding: an id may hold an encoded '/', never a path step of its own.
    const parts = (query < 0 ? url : url.slice(0, query)).split('/');
    if (parts[0] !== '' || parts[1] !== 'sessions') return notFoundHere();
    let id: string;
    try {
      id = decodeURIComponent(parts[2] ?? '');
    } catch {
      return notFoundHere();
    }
    if (id.length === 0 || id.length > MAX_ID_LENGTH) return notFoundHere();

    let rendition: Rendition | undefined;
    let segment: number | undefined;
    if (parts.length === 4 && parts[3] === 'master.m3u8') {
      // the master playlist
    } else if (parts.length === 5) {
      const [, , , name = '', file = ''] = parts;
      rendition = renditionNamed(name);
      if (rendition === undefined) return notFoundHere();
      if (file !== 'index.m3u8') {
        const match = SEGMENT.exec(file);
        if (match === null) return notFoundHere();
        segment = Number(match[1]);
      }
    } else {
      return notFoundHere();
    }

    let session: SessionLength | null;
    try {
      session = await sessionLength(id);
    } catch (error) {
      onError(error as Error);
      send(
        response,
        502,
        `the segment server cannot learn this session's length from the coordinator (${(error as Error).message})\n`,
        { 'retry-after': '2' },
        head,
      );
      return;
    }
    if (session === null) {
      send(response, 404, 'unknown stream session\n', {}, head);
      return;
    }
    if (session.lastSegment === null) {
      send(
        response,
        409,
        'this stream session has no known length (durationSeconds): no VOD playlist\n',
        {},
        head,
      );
      return;
    }

    if (rendition === undefined) {
      const body = masterPlaylist();
      send(response, 200, body, PLAYLIST_HEADERS, head);
      return;
    }
    if (segment === undefined) {
      const body = mediaPlaylist({
        lastSegment: session.lastSegment,
        segmentDuration: session.segmentDuration,
        durationSeconds: session.durationSeconds,
      });
      send(response, 200, body, PLAYLIST_HEADERS, head);
      return;
    }
    if (segment > session.lastSegment) {
      send(response, 404, `segment ${segment} is past the last one\n`, {}, head);
      return;
    }
    await serveSegment(response, id, rendition, segment, head);
  }

  const server = http.createServer((request, response) => {
    handle(request, response).catch((error: Error) => {
      onError(error);
      if (!response.headersSent) send(response, 500, 'internal error\n');
      else response.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    forget(streamSessionId) {
      found.delete(streamSessionId);
      notFound.delete(streamSessionId);
    },
    stats: () => ({ held: held.size, watchedDirs: dirs.size, lookups }),
    async close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const end of [...held]) end();
      // A connection becomes idle when its response is finished: close each as it does.
      const idle = setInterval(() => server.closeIdleConnections(), 20);
      server.closeIdleConnections();
      // Segments being streamed get a moment; then the rest are cut.
      const cut = setTimeout(() => server.closeAllConnections(), 1_000);
      await closed;
      clearInterval(idle);
      clearTimeout(cut);
      for (const w of dirs.values()) {
        clearInterval(w.poll);
        w.watcher?.close();
      }
      dirs.clear();
    },
  };
}

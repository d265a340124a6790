/**
 * The segment server (issue 13) against the real service in this process,
 * access control on: it asks the service for a session's length with the
 * encoder token. Segment files are plain bytes here (what a player makes of
 * them is test/pipeline.e2e.test.ts' business); they appear as ffmpeg makes
 * them appear, written under another name and renamed into place.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bandwidth, LADDER } from '../encoder/ladder.js';
import { renditionDir, segmentPath, sessionDirName } from '../encoder/paths.js';
import {
  masterPlaylist,
  type SegmentServer,
  startSegmentServer,
} from '../encoder/segment-server.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  eventually,
  Q,
  sleep,
  startTestServer,
  type TestServer,
} from './fixtures.js';

let service: TestServer;
let segments: SegmentServer;
let outputDir: string;
const errors: Error[] = [];

beforeAll(async () => {
  service = await startTestServer({ ...authOverrides, segmentDuration: 2 });
  outputDir = mkdtempSync(path.join(tmpdir(), 'segment-server-'));
  segments = await startSegmentServer({
    outputDir,
    port: 0,
    coordinatorUrl: service.url,
    token: ENCODER_TOKEN,
    holdSeconds: 10,
    onError: (error) => errors.push(error),
  });
});

afterAll(async () => {
  await segments?.close();
  await service?.stop();
  if (outputDir) rmSync(outputDir, { recursive: true, force: true });
});

async function createSession(id: string, input: Record<string, unknown> = {}) {
  const response = await service.gql(
    Q.create,
    { input: { id, videoSourcePath: `/media/${id}.mp4`, ...input } },
    { authorization: `Bearer ${ADMIN_TOKEN}` },
  );
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
}

let counter = 0;
/** A fresh session of 9 s in 2 s segments: 0..4, the last one 1 s. */
async function freshSession(input: Record<string, unknown> = {}): Promise<string> {
  const id = `movie-${++counter}-${Date.now()}`;
  await createSession(id, { durationSeconds: 9, ...input });
  return id;
}

/** A segment made as ffmpeg's temp_file makes it: written as .tmp, then renamed. */
async function make(id: string, name: string, n: number, body = `segment ${n} of ${name}`) {
  const file = segmentPath(outputDir, id, name, n);
  mkdirSync(path.dirname(file), { recursive: true });
  await writeFile(`${file}.tmp`, body);
  await rename(`${file}.tmp`, file);
}

const get = (p: string, init?: RequestInit) => fetch(`${segments.url}${p}`, init);

/** A raw GET, the path sent as given (fetch would normalise dot segments). */
function rawGet(p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${segments.url}/`, { path: p, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
  });
}

describe('playlists', () => {
  it('lists every rendition of the ladder, highest first, in the master playlist', async () => {
    const id = await freshSession();
    const response = await get(`/sessions/${id}/master.m3u8`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    const text = await response.text();
    expect(text).toBe(masterPlaylist());
    expect(text).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:3',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidth(LADDER[0]!)},RESOLUTION=1920x1080,CODECS="avc1.4d4028,mp4a.40.2"`,
        '1080p/index.m3u8',
        `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidth(LADDER[1]!)},RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2"`,
        '720p/index.m3u8',
        `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidth(LADDER[2]!)},RESOLUTION=854x480,CODECS="avc1.4d401e,mp4a.40.2"`,
        '480p/index.m3u8',
        '',
      ].join('\n'),
    );
  });

  it('lists every segment 0..lastSegment in a VOD playlist, the last one shorter', async () => {
    const id = await freshSession({ durationSeconds: 9.5 });
    for (const r of LADDER) {
      const response = await get(`/sessions/${id}/${r.name}/index.m3u8`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
      expect(response.headers.get('cache-control')).toBe('no-cache');
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(await response.text()).toBe(
        [
          '#EXTM3U',
          '#EXT-X-VERSION:3',
          '#EXT-X-TARGETDURATION:2',
          '#EXT-X-MEDIA-SEQUENCE:0',
          '#EXT-X-PLAYLIST-TYPE:VOD',
          '#EXTINF:2.000,',
          'seg_0.ts',
          '#EXTINF:2.000,',
          'seg_1.ts',
          '#EXTINF:2.000,',
          'seg_2.ts',
          '#EXTINF:2.000,',
          'seg_3.ts',
          '#EXTINF:1.500,',
          'seg_4.ts',
          '#EXT-X-ENDLIST',
          '',
        ].join('\n'),
      );
    }
  });

  it('gives a whole last segment its full length', async () => {
    const id = await freshSession({ durationSeconds: 6, segmentDuration: 3 });
    const text = await (await get(`/sessions/${id}/480p/index.m3u8`)).text();
    expect(text).toContain('#EXT-X-TARGETDURATION:3\n');
    expect(text.match(/#EXTINF:3\.000,/g)).toHaveLength(2);
    expect(text).toMatch(/seg_1\.ts\n#EXT-X-ENDLIST\n$/);
  });

  it('answers HEAD with the headers and no body', async () => {
    const id = await freshSession();
    const response = await get(`/sessions/${id}/480p/index.m3u8`, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    expect(Number(response.headers.get('content-length'))).toBeGreaterThan(100);
    expect(await response.text()).toBe('');
  });

  it('is 409 for a session of unknown length, 404 for an unknown one', async () => {
    const id = `live-${Date.now()}`;
    await createSession(id);
    for (const p of ['master.m3u8', '480p/index.m3u8', '480p/seg_0.ts']) {
      const response = await get(`/sessions/${id}/${p}`);
      expect(response.status, p).toBe(409);
      expect(await response.text()).toMatch(/no known length/);
      expect((await get(`/sessions/nobody-${Date.now()}/${p}`)).status, p).toBe(404);
    }
  });
});

describe('segments', () => {
  it('serves a made segment as video/mp2t, cached for good, with CORS', async () => {
    const id = await freshSession();
    const body = 'x'.repeat(10_000);
    await make(id, '480p', 2, body);
    const response = await get(`/sessions/${id}/480p/seg_2.ts`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('video/mp2t');
    expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('content-length')).toBe('10000');
    expect(await response.text()).toBe(body);

    const head = await get(`/sessions/${id}/480p/seg_2.ts`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('video/mp2t');
    expect(head.headers.get('content-length')).toBe('10000');
    expect(await head.text()).toBe('');
  });

  it('holds a segment not made yet until it is renamed into place', async () => {
    const id = await freshSession();
    const started = Date.now();
    const pending = get(`/sessions/${id}/720p/seg_1.ts`);
    await eventually(() => segments.stats().held === 1);
    // A temp file being written does not release it.
    const file = segmentPath(outputDir, id, '720p', 1);
    await writeFile(`${file}.tmp`, 'half');
    await sleep(300); // nothing marks "not released": a pause, then the request is still held
    expect(segments.stats().held).toBe(1);
    await writeFile(`${file}.tmp`, 'the whole segment');
    const renamedAt = Date.now();
    await rename(`${file}.tmp`, file);
    const response = await pending;
    const latency = Date.now() - renamedAt;
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('video/mp2t');
    expect(await response.text()).toBe('the whole segment');
    // fs.watch wakes it at once; the poll is the fallback.
    expect(latency).toBeLessThan(1_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await eventually(() => segments.stats().held === 0 && segments.stats().watchedDirs === 0);
  });

  it('is woken by fs.watch, not the poll: with the poll slowed to a minute, a rename releases it', async () => {
    const watchOnly = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: service.url,
      token: ENCODER_TOKEN,
      pollMs: 60_000,
    });
    try {
      const id = await freshSession();
      const pending = fetch(`${watchOnly.url}/sessions/${id}/480p/seg_2.ts`);
      await eventually(() => watchOnly.stats().held === 1);
      // ffmpeg writes the temp file in many chunks before the rename.
      const file = segmentPath(outputDir, id, '480p', 2);
      for (let i = 0; i < 20; i++) await writeFile(`${file}.tmp`, 'x'.repeat(1000 * (i + 1)));
      const renamedAt = Date.now();
      await rename(`${file}.tmp`, file);
      const response = await pending;
      expect(await response.text()).toBe('x'.repeat(20_000));
      expect(Date.now() - renamedAt).toBeLessThan(500);
    } finally {
      await watchOnly.close();
    }
  });

  it('creates the rendition directory to watch when the encoder has not yet', async () => {
    const id = await freshSession();
    const pending = get(`/sessions/${id}/1080p/seg_0.ts`);
    await eventually(() => segments.stats().held === 1);
    await make(id, '1080p', 0, 'made');
    expect(await (await pending).text()).toBe('made');
    expect(renditionDir(outputDir, id, '1080p')).toContain(sessionDirName(id));
  });

  it('answers 503 with Retry-After when the segment is not made within the bound', async () => {
    const quick = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: service.url,
      token: ENCODER_TOKEN,
      holdSeconds: 0.3,
    });
    try {
      const id = await freshSession();
      const started = Date.now();
      const response = await fetch(`${quick.url}/sessions/${id}/480p/seg_3.ts`);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(await response.text()).toMatch(/not made yet/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(quick.stats()).toMatchObject({ held: 0, watchedDirs: 0 });
    } finally {
      await quick.close();
    }
  });

  it('holds 100 requests at once with one watch per directory, and releases them all', async () => {
    const id = await freshSession({ durationSeconds: 200 });
    const before = segments.stats().lookups;
    // 100 requests over 2 renditions and 25 segments, several for the same segment.
    const wanted = Array.from({ length: 100 }, (_, i) => ({
      name: i % 2 === 0 ? '480p' : '720p',
      n: 50 + (i % 25),
    }));
    const pending = wanted.map(({ name, n }) =>
      get(`/sessions/${id}/${name}/seg_${n}.ts`).then(async (r) => ({
        status: r.status,
        body: await r.text(),
      })),
    );
    await eventually(() => segments.stats().held === 100, { timeout: 10_000 });
    expect(segments.stats().watchedDirs).toBe(2);
    // One question to the service for all of them.
    expect(segments.stats().lookups - before).toBe(1);
    for (let n = 50; n < 75; n++) {
      await make(id, '480p', n, `480p ${n}`);
      await make(id, '720p', n, `720p ${n}`);
    }
    const answers = await Promise.all(pending);
    answers.forEach((answer, i) => {
      expect(answer).toEqual({ status: 200, body: `${wanted[i]!.name} ${wanted[i]!.n}` });
    });
    await eventually(() => segments.stats().held === 0 && segments.stats().watchedDirs === 0);
  });

  it('releases the watch when the client goes away', async () => {
    const id = await freshSession();
    const abort = new AbortController();
    const pending = get(`/sessions/${id}/480p/seg_4.ts`, { signal: abort.signal }).catch(
      (error: Error) => error,
    );
    await eventually(() => segments.stats().held === 1 && segments.stats().watchedDirs === 1);
    abort.abort();
    expect(await pending).toBeInstanceOf(Error);
    await eventually(() => segments.stats().held === 0 && segments.stats().watchedDirs === 0);
  });

  it('finds a segment made while fs.watch misses it, by the poll', async () => {
    // A directory replaced under the watch (deleted and made again): inotify watches the old one.
    const id = await freshSession();
    const pending = get(`/sessions/${id}/480p/seg_0.ts`);
    await eventually(() => segments.stats().held === 1);
    const dir = renditionDir(outputDir, id, '480p');
    rmSync(dir, { recursive: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'seg_0.ts'), 'by the poll');
    const response = await pending;
    expect(await response.text()).toBe('by the poll');
  });

  it('is 404 outside 0..lastSegment and for unknown renditions or malformed names', async () => {
    const id = await freshSession();
    await make(id, '480p', 0);
    const paths = [
      `/sessions/${id}/480p/seg_5.ts`, // past the last segment (4)
      `/sessions/${id}/480p/seg_99999999.ts`,
      `/sessions/${id}/480p/seg_-1.ts`,
      `/sessions/${id}/480p/seg_a.ts`,
      `/sessions/${id}/480p/seg_0.ts.tmp`,
      `/sessions/${id}/480p/seg_0.TS`,
      `/sessions/${id}/480p/seg_0.m4s`,
      `/sessions/${id}/360p/seg_0.ts`,
      `/sessions/${id}/360p/index.m3u8`,
      `/sessions/${id}/480P/seg_0.ts`,
      `/sessions/${id}/480p/seg_0.ts/x`,
      `/sessions/${id}/480p/`,
      `/sessions/${id}/`,
      `/sessions/${id}`,
      `/sessions/${id}/index.m3u8`,
      `/sessions/${id}/480p/master.m3u8`,
      `/sessions/${id}/master.m3u8/x`,
      '/sessions/',
      '/sessions//480p/seg_0.ts',
      `/sessions/${'x'.repeat(129)}/master.m3u8`,
      `/sessions/%E0%A4%A/master.m3u8`,
      '/',
      '/favicon.ico',
    ];
    for (const p of paths) {
      const response = await rawGet(p);
      expect(response.status, p).toBe(404);
    }
    // A missing one in range is held, not 404: the control.
    expect((await get(`/sessions/${id}/480p/seg_0.ts`)).status).toBe(200);
  });

  it('never leaves OUTPUT_DIR: ids are mapped by sessionDirName, names must be the ladder', async () => {
    // A file outside any session's folder that a traversal would reach.
    writeFileSync(path.join(outputDir, 'secret.ts'), 'secret');
    mkdirSync(path.join(outputDir, 'x'), { recursive: true });
    writeFileSync(path.join(outputDir, 'x', 'seg_0.ts'), 'secret');
    const id = await freshSession();
    for (const p of [
      `/sessions/${id}/../secret.ts`,
      `/sessions/${id}/480p/../../secret.ts`,
      `/sessions/${id}/..%2F..%2Fx/seg_0.ts`,
      `/sessions/${id}/%2E%2E/seg_0.ts`,
      `/sessions/..%2F${id}/480p/seg_0.ts`,
      `/sessions/..%2Fx/480p/seg_0.ts`,
      '/sessions/../secret.ts',
      '/sessions/%2E%2E/x/seg_0.ts',
      `/sessions/${id}/480p/..%2F..%2F..%2Fsecret.ts`,
      `/sessions/${id}/480p/seg_0.ts%00`,
    ]) {
      const response = await rawGet(p);
      expect(response.status, p).toBe(404);
      expect(response.body).not.toContain('secret');
    }

    // An id that is no safe folder name has a folder of its own, found through the mapping.
    const odd = '../escape/..';
    await createSession(odd, { durationSeconds: 9 });
    expect(sessionDirName(odd)).toMatch(/^~/);
    await make(odd, '480p', 1, 'the odd one');
    const response = await get(`/sessions/${encodeURIComponent(odd)}/480p/seg_1.ts`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('the odd one');
    const slashed = 'a/b';
    await createSession(slashed, { durationSeconds: 9 });
    await make(slashed, '480p', 0, 'a slash in the id');
    expect(await (await get(`/sessions/a%2Fb/480p/seg_0.ts`)).text()).toBe('a slash in the id');
  });
});

describe('HTTP', () => {
  it('answers a CORS preflight with the methods and headers allowed', async () => {
    const id = await freshSession();
    const response = await get(`/sessions/${id}/480p/seg_0.ts`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://player.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'range, x-custom',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-methods')).toBe('GET, HEAD, OPTIONS');
    expect(response.headers.get('access-control-allow-headers')).toBe('range, x-custom');
    expect(response.headers.get('access-control-max-age')).toBe('86400');
    // No session lookup for a preflight: it holds nothing and asks no one.
    const plain = await get('/sessions/anything/480p/seg_0.ts', { method: 'OPTIONS' });
    expect(plain.status).toBe(204);
    expect(plain.headers.get('access-control-allow-headers')).toMatch(/Range/);
  });

  it('refuses other methods with 405', async () => {
    const id = await freshSession();
    const response = await get(`/sessions/${id}/master.m3u8`, { method: 'POST', body: 'x' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
  });

  it("caches a session's length, and an unknown session only briefly", async () => {
    const briefly = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: service.url,
      token: ENCODER_TOKEN,
      notFoundTtlMs: 300,
    });
    try {
      const id = `later-${Date.now()}`;
      expect((await fetch(`${briefly.url}/sessions/${id}/master.m3u8`)).status).toBe(404);
      await createSession(id, { durationSeconds: 9 });
      // Remembered as unknown for a moment, then asked again.
      expect((await fetch(`${briefly.url}/sessions/${id}/master.m3u8`)).status).toBe(404);
      expect(briefly.stats().lookups).toBe(1);
      await eventually(
        async () => (await fetch(`${briefly.url}/sessions/${id}/master.m3u8`)).status === 200,
        { timeout: 3_000 },
      );
      const asked = briefly.stats().lookups;
      for (let i = 0; i < 5; i++) {
        expect((await fetch(`${briefly.url}/sessions/${id}/480p/index.m3u8`)).status).toBe(200);
      }
      expect(briefly.stats().lookups).toBe(asked);
    } finally {
      await briefly.close();
    }
  });

  it('asks the length anew after forget(): an ended id made again for another video', async () => {
    const id = `again-${Date.now()}`;
    await createSession(id, { durationSeconds: 9 });
    const lines = async () =>
      (await (await get(`/sessions/${id}/480p/index.m3u8`)).text())
        .split('\n')
        .filter((line) => line.startsWith('seg_'));
    expect(await lines()).toHaveLength(5);
    const ended = await service.gql(
      'mutation($id: ID!) { endStreamSession(id: $id) }',
      { id },
      { authorization: `Bearer ${ADMIN_TOKEN}` },
    );
    expect(ended.data).toEqual({ endStreamSession: true });
    await createSession(id, { durationSeconds: 21 });
    // Still the old length, from the cache, until the encoder says the session ended.
    expect(await lines()).toHaveLength(5);
    segments.forget(id);
    expect(await lines()).toHaveLength(11);
  });

  it('answers 502 with a clear body when the service is down or refuses the token', async () => {
    const down = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: 'http://127.0.0.1:1/graphql',
      token: ENCODER_TOKEN,
      onError: () => {},
    });
    const refused = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: service.url,
      token: 'not-the-encoder-token',
      onError: () => {},
    });
    try {
      const a = await fetch(`${down.url}/sessions/movie/480p/seg_0.ts`);
      expect(a.status).toBe(502);
      expect(a.headers.get('access-control-allow-origin')).toBe('*');
      expect(await a.text()).toMatch(/cannot learn .* from the coordinator .*did not answer/);
      const b = await fetch(`${refused.url}/sessions/movie/master.m3u8`);
      expect(b.status).toBe(502);
      expect(await b.text()).toMatch(/UNAUTHENTICATED/);
      // An outage is not remembered: the next request asks again.
      await fetch(`${down.url}/sessions/movie/480p/seg_0.ts`);
      expect(down.stats().lookups).toBe(2);
    } finally {
      await down.close();
      await refused.close();
    }
  });

  it('answers held requests with 503 when it closes', async () => {
    const closing = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: service.url,
      token: ENCODER_TOKEN,
    });
    const id = await freshSession();
    const pending = fetch(`${closing.url}/sessions/${id}/480p/seg_2.ts`);
    await eventually(() => closing.stats().held === 1);
    await closing.close();
    expect((await pending).status).toBe(503);
    expect(closing.stats()).toMatchObject({ held: 0, watchedDirs: 0 });
  });

  it('reported no errors of its own', () => {
    expect(errors).toEqual([]);
  });
});

/**
 * Issue 7: who may read /metrics. With auth on: the admin token or
 * METRICS_TOKEN; no or a bad token is 401, a valid token of another role
 * 403. With AUTH=off it is open. And the two settings that came with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  startTestServer,
  type TestServer,
} from './fixtures.js';

const METRICS_TOKEN = 'm'.repeat(24);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function get(server: TestServer, headers: Record<string, string> = {}, method = 'GET') {
  return fetch(`${server.baseUrl}/metrics`, { method, headers });
}

describe('/metrics with auth on and METRICS_TOKEN set', () => {
  let server: TestServer;
  let playerToken: string;
  beforeAll(async () => {
    server = await startTestServer({ ...authOverrides, metricsToken: METRICS_TOKEN });
    await server.gql(
      'mutation { createStreamSession(input: { id: "s", videoSourcePath: "/v" }) { id } }',
      {},
      bearer(ADMIN_TOKEN),
    );
    playerToken = (
      await server.gql(
        'mutation { issueClientToken(streamSessionId: "s", sessionId: "p") }',
        {},
        bearer(ADMIN_TOKEN),
      )
    ).data?.issueClientToken;
    expect(playerToken).toMatch(/^ey/);
  });
  afterAll(() => server.stop());

  it.each([
    ['the admin token', () => bearer(ADMIN_TOKEN)],
    ['METRICS_TOKEN', () => bearer(METRICS_TOKEN)],
    ['METRICS_TOKEN, lower-case scheme', () => ({ authorization: `bearer ${METRICS_TOKEN}` })],
  ])('serves them to %s', async (_, headers) => {
    const response = await get(server, headers());
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('# TYPE hbc_graphql_operations_total counter');
  });

  it.each([
    ['no token', () => ({})],
    ['a wrong token', () => bearer('x'.repeat(24))],
    ['METRICS_TOKEN with a character more', () => bearer(`${METRICS_TOKEN}m`)],
    ['another scheme', () => ({ authorization: `Basic ${METRICS_TOKEN}` })],
  ])('answers 401 to %s, and shows nothing', async (_, headers) => {
    const response = await get(server, headers());
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
    expect(await response.text()).not.toContain('hbc_');
  });

  it.each([
    ['the encoder token', () => bearer(ENCODER_TOKEN)],
    ['a player token', () => bearer(playerToken)],
  ])('answers 403 to %s, and shows nothing', async (_, headers) => {
    const response = await get(server, headers());
    expect(response.status).toBe(403);
    expect(await response.text()).not.toContain('hbc_');
  });

  it('accepts no METRICS_TOKEN for GraphQL: it is for the metrics alone', async () => {
    const response = await server.gql('{ streamSessions { id } }', {}, bearer(METRICS_TOKEN));
    // A valid token of a role that may not do this (the scraper's).
    expect(response.data ?? null).toBeNull();
    expect(response.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(response.errors?.[0]?.message).toContain('scraper');
  });

  it('answers 405 to a POST, and HEAD without a body', async () => {
    const post = await get(server, bearer(ADMIN_TOKEN), 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await get(server, bearer(ADMIN_TOKEN), 'HEAD');
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });
});

describe('/metrics with auth on and no METRICS_TOKEN', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...authOverrides });
  });
  afterAll(() => server.stop());

  it('serves them to the admin token only', async () => {
    expect((await get(server, bearer(ADMIN_TOKEN))).status).toBe(200);
    expect((await get(server, bearer(METRICS_TOKEN))).status).toBe(401);
    expect((await get(server)).status).toBe(401);
  });
});

describe('/metrics with AUTH=off', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ authEnabled: false });
  });
  afterAll(() => server.stop());

  it('serves them to anyone', async () => {
    const response = await get(server);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('hbc_stream_sessions');
  });
});

describe('LOG_LEVEL and METRICS_TOKEN', () => {
  it('reads them, with the defaults info and none', () => {
    expect(loadConfig({})).toMatchObject({ logLevel: 'info', metricsToken: null });
    expect(loadConfig({ LOG_LEVEL: 'debug', METRICS_TOKEN: METRICS_TOKEN })).toMatchObject({
      logLevel: 'debug',
      metricsToken: METRICS_TOKEN,
    });
    expect(loadConfig({ LOG_LEVEL: 'silent' }).logLevel).toBe('silent');
  });

  it('refuses a level pino does not have, naming it', () => {
    expect(() => loadConfig({ LOG_LEVEL: 'verbose' })).toThrow(ConfigError);
    expect(() => loadConfig({ LOG_LEVEL: 'verbose' })).toThrow(/LOG_LEVEL='verbose'/);
  });

  it('refuses a short METRICS_TOKEN without echoing it', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short-metrics' })).toThrow(
      /METRICS_TOKEN: must be at least 16/,
    );
    expect(() => loadConfig({ METRICS_TOKEN: 'short-metrics' })).not.toThrow(/short-metrics/);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  Q,
  sseSubscribe,
  startTestServer,
  type TestServer,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

describe('smoke', () => {
  it('creates over HTTP and hears FIRST_BATCH over SSE and WebSocket', async () => {
    const sse = sseSubscribe(server.url, Q.batchNeeded, { streamSessionId: 'smoke' });
    await sse.ready;
    const ws = wsSubscribe(server.wsClient(), Q.batchNeeded, { streamSessionId: 'smoke' });
    // Both listen before the session exists: they hear the need live, not replayed.
    await eventually(() => server.app.coordinator.subscriptionCount === 2);
    const created = await server.gql(Q.create, {
      input: { id: 'smoke', videoSourcePath: '/a.mp4' },
    });
    expect(created.errors).toBeUndefined();
    const [s] = await sse.waitFor(1);
    const [w] = await ws.waitFor(1);
    expect((s as any).data.batchNeeded.reason).toBe('FIRST_BATCH');
    expect((w as any).data.batchNeeded.reason).toBe('FIRST_BATCH');
    const r = await wsRequest(server.wsClient(), Q.update, {
      input: { streamSessionId: 'smoke', sessionId: 'p', segmentNumber: 2, quality: 'Q480P' },
    });
    expect(r.data?.updateClientPosition.segmentNumber).toBe(2);
    const bad = await wsRequest(server.wsClient(), Q.update, {
      input: { streamSessionId: 'nope', sessionId: 'p', segmentNumber: 2, quality: 'Q480P' },
    });
    expect(bad.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    sse.stop();
    ws.stop();
  });
});

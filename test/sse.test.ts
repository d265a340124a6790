/**
 * batchNeeded over Server-Sent Events (POST or GET with Accept: text/event-stream).
 */

import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSRF_HEADER } from '../src/server/protection.js';
import { batchNeededRules, brief, type NeedEvent } from './batch-needed-rules.js';
import {
  type GraphQLResponse,
  Q,
  sessionDriver,
  sseSubscribe,
  startTestServer,
  type TestServer,
} from './fixtures.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

async function subscribe(streamSessionId?: string) {
  const sub = sseSubscribe<NeedEvent>(
    server.url,
    Q.batchNeeded,
    streamSessionId === undefined ? {} : { streamSessionId },
  );
  await sub.ready;
  return sub;
}

describe('batchNeeded over SSE', () => {
  batchNeededRules({ name: 'sse', server: () => server, subscribe });
});

describe('SSE transport', () => {
  const s = sessionDriver(() => server);

  it('answers with text/event-stream and "next" events carrying the need', async () => {
    const id = `sse-raw-${Math.random().toString(36).slice(2, 8)}`;
    await s.create(id, { batchSize: 4, threshold: 1 });
    const abort = new AbortController();
    // Fails the read instead of hanging when no event comes.
    setTimeout(() => abort.abort(), 5_000).unref();
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: Q.batchNeeded, variables: { streamSessionId: id } }),
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events: Array<{ event?: string; data: string }> = [];
    const parser = createParser({ onEvent: (e) => events.push({ event: e.event, data: e.data }) });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    while (!events.some((e) => e.event === 'next')) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
    abort.abort();
    const next = events.find((e) => e.event === 'next')!;
    const payload = JSON.parse(next.data) as NeedEvent;
    expect(brief(payload)).toBe('FIRST_BATCH 0@0');
    expect(payload.data?.batchNeeded.endSegment).toBe(3);
  });

  it('subscribes over GET with Accept: text/event-stream too', async () => {
    const id = `sse-get-${Math.random().toString(36).slice(2, 8)}`;
    await s.create(id);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 5_000).unref();
    const params = new URLSearchParams({
      query: Q.batchNeeded,
      variables: JSON.stringify({ streamSessionId: id }),
    });
    const response = await fetch(`${server.url}?${params}`, {
      headers: { accept: 'text/event-stream', [CSRF_HEADER]: '1' },
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('FIRST_BATCH')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    abort.abort();
    expect(text).toContain('event: next');
    expect(text).toContain(id);
  });

  it('a bad streamSessionId is BAD_USER_INPUT in the stream, which then completes', async () => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: Q.batchNeeded, variables: { streamSessionId: '' } }),
    });
    // The stream ends on its own: reading it to the end must finish.
    const text = await response.text();
    const events: Array<{ event?: string; data: string }> = [];
    createParser({ onEvent: (e) => events.push({ event: e.event, data: e.data }) }).feed(text);
    const next = events.find((e) => e.event === 'next');
    expect(next).toBeDefined();
    const payload = JSON.parse(next!.data) as GraphQLResponse;
    expect(payload.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(events.at(-1)?.event).toBe('complete');
  });

  it('a subscriber that goes away does not disturb the others', async () => {
    const id = `sse-leave-${Math.random().toString(36).slice(2, 8)}`;
    const leaving = await subscribe(id);
    const staying = await subscribe(id);
    await s.create(id, { batchSize: 10, threshold: 3 });
    await leaving.waitFor(1);
    await staying.waitFor(1);
    leaving.stop();
    await s.claim(id, 0, 0, 9);
    await s.move(id, 'p', 9);
    await s.complete(id, 0);
    const events = await staying.waitFor(2);
    expect(events.map(brief)).toEqual(['FIRST_BATCH 0@0', 'APPROACHING_END 1@10']);
    expect(leaving.events).toHaveLength(1);
    staying.stop();
  });
});

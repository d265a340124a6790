/**
 * ChangeCoalescer on its own, on fake timers: leading edge, at most one look
 * per interval per key, the trailing look after the last change, forget and
 * close, and memory bounded by the keys, not the changes.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChangeCoalescer, type TakenChange } from '../src/state/change-coalescer.js';

const INTERVAL = 250;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Whether a promise has settled, and with what, without waiting for it. */
async function peek<T>(promise: Promise<T>): Promise<{ settled: boolean; value?: T }> {
  let state: { settled: boolean; value?: T } = { settled: false };
  void promise.then((value) => {
    state = { settled: true, value };
  });
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return state;
}

/**
 * The one taker of a coalescer: `drain` takes and deals with every key ready
 * now, and keeps its take waiting for the next one (a coalescer has one taker).
 */
function taker(c: ChangeCoalescer<string>) {
  let pending: Promise<TakenChange<string> | null> | null = null;
  return {
    async drain(): Promise<string[]> {
      const keys: string[] = [];
      for (;;) {
        pending ??= c.take();
        const next = await peek(pending);
        if (!next.settled) return keys;
        pending = null;
        const taken = next.value as TakenChange<string>;
        keys.push(taken.key);
        c.done(taken);
      }
    },
  };
}

describe('ChangeCoalescer', () => {
  it('hands out a key that changes after a quiet spell at once', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    const waiting = c.take();
    c.changed('a');
    expect(await peek(waiting)).toMatchObject({ settled: true, value: { key: 'a' } });
    // A key that is ready already is handed out without waiting too.
    c.changed('b');
    expect((await c.take())?.key).toBe('b');
  });

  it('hands a busy key out at most once per interval, and once after its last change', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    c.changed('a');
    const first = (await c.take()) as TakenChange<string>;
    c.done(first);
    for (let i = 0; i < 100; i++) c.changed('a');
    const second = c.take();
    await vi.advanceTimersByTimeAsync(INTERVAL - 1);
    expect((await peek(second)).settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await peek(second)).toMatchObject({ settled: true, value: { key: 'a' } });
    c.done((await second) as TakenChange<string>);
    // Nothing changed since: the interval passes and the key is forgotten.
    const third = c.take();
    await vi.advanceTimersByTimeAsync(INTERVAL * 4);
    expect((await peek(third)).settled).toBe(false);
    expect(c.size).toBe(0);
    c.close();
    expect(await third).toBeNull();
  });

  it('does not lose a change made while the key is being dealt with', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    c.changed('a');
    const taken = (await c.take()) as TakenChange<string>;
    c.changed('a'); // while its state is being read
    c.done(taken);
    const t = taker(c);
    expect(await t.drain()).toEqual([]);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(await t.drain()).toEqual(['a']);
  });

  it('keeps keys apart, in the order they became ready', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    const t = taker(c);
    c.changed('a');
    c.changed('b');
    c.changed('a');
    c.changed('c');
    expect(await t.drain()).toEqual(['a', 'b', 'c']);
    c.changed('b');
    c.changed('d'); // a key new to it is not held back by the others' intervals
    expect(await t.drain()).toEqual(['d']);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(await t.drain()).toEqual(['b']);
  });

  it('forget drops what is pending; a hand-out in progress is no longer current', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    c.changed('a');
    const taken = (await c.take()) as TakenChange<string>;
    expect(c.isCurrent(taken)).toBe(true);
    c.changed('a');
    c.forget('a');
    expect(c.isCurrent(taken)).toBe(false);
    c.done(taken); // does nothing
    expect(c.size).toBe(0);
    await vi.advanceTimersByTimeAsync(INTERVAL * 2);
    const waiting = c.take();
    expect((await peek(waiting)).settled).toBe(false);
    // The same key coming back starts afresh, at once.
    c.changed('a');
    const again = (await waiting) as TakenChange<string>;
    expect(again.key).toBe('a');
    expect(c.isCurrent(again)).toBe(true);
    expect(c.isCurrent(taken)).toBe(false);
    // Forgetting a key within its interval cancels its timer.
    c.done(again);
    c.changed('a');
    c.forget('a');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close ends a waiting take with null, clears its timers and ignores later changes', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    c.changed('a');
    c.done((await c.take()) as TakenChange<string>);
    c.changed('a');
    expect(vi.getTimerCount()).toBe(1);
    const waiting = c.take();
    c.close();
    expect(await waiting).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    c.changed('b');
    expect(await c.take()).toBeNull();
    expect(c.size).toBe(0);
  });

  it('holds one entry per key however many changes a slow taker leaves', async () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    for (let i = 0; i < 100_000; i++) c.changed(`k${i % 50}`);
    expect(c.size).toBe(50);
    const keys = await taker(c).drain();
    expect(keys).toHaveLength(50);
    expect(new Set(keys).size).toBe(50);
  });

  it('allows one taker at a time', () => {
    const c = new ChangeCoalescer<string>(INTERVAL);
    void c.take();
    expect(() => c.take()).toThrow(/one taker/);
    c.close();
  });
});

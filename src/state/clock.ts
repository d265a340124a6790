import type { Instant } from './model.js';

/** Where the coordinator reads the time, so tests can set it. */
export interface Clock {
  now(): Instant;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(private current: Instant = Date.UTC(2026, 0, 1)) {}

  now(): Instant {
    return this.current;
  }

  advance(milliseconds: number): void {
    this.current += milliseconds;
  }

  set(instant: Instant): void {
    this.current = instant;
  }
}

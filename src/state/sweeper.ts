import type { ChangeRunner } from './change-runner.js';
import type { Clock } from './clock.js';
import type { DueWork, StreamSessionStore } from './store.js';

// Enough for any burst one sweep could cause, small enough to bound a sweep's pause.
const SWEEP_BATCH = 10_000;

/** What one sweep acted on. */
export interface SweepReport {
  readonly clientsExpired: number;
  readonly batchesStalled: number;
  readonly sessionsEnded: number;
}

export interface SweeperOptions {
  readonly store: StreamSessionStore;
  readonly changes: ChangeRunner;
  readonly clock: Clock;
  /** Told what each sweep that did something did (for logs); never throws into the sweeper. */
  readonly onSweep: (report: SweepReport) => void;
  /** Told when a sweep fails; the next one tries again. */
  readonly onError: (error: unknown) => void;
}

/**
 * Acts on every deadline that has passed: silent clients leave (as by
 * removeClient), batches claimed too long ago are announced STALLED, and
 * sessions empty for too long end (IDLE). Each is a change like any other,
 * made by the store, which checks again that it is still due. A sweep costs
 * what is due, not what exists.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<SweepReport> | null = null;
  private stopped = false;

  constructor(private readonly options: SweeperOptions) {}

  /** Sweeps once now; concurrent calls share one sweep. */
  sweep(): Promise<SweepReport> {
    this.sweeping ??= this.run().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  /** Sweeps every `intervalMs` until stop(); one timer for everything. */
  start(intervalMs: number): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setInterval(() => {
      // A tick that finds the last sweep still running leaves it alone (and
      // does not report its result a second time).
      if (this.sweeping !== null) return;
      this.sweep().then((report) => {
        if (report.clientsExpired + report.batchesStalled + report.sessionsEnded > 0) {
          this.options.onSweep(report);
        }
      }, this.options.onError);
    }, intervalMs);
    // The sweeper alone must not keep a process alive.
    this.timer.unref();
  }

  /** Stops the timer for good and waits for a sweep in flight (a failed one too). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping?.catch(() => {});
  }

  private async run(): Promise<SweepReport> {
    const report = { clientsExpired: 0, batchesStalled: 0, sessionsEnded: 0 };
    const { store, clock } = this.options;
    for (const work of await store.dueWork(clock.now(), SWEEP_BATCH)) {
      if (await this.act(work)) report[COUNTED[work.kind]]++;
    }
    return report;
  }

  /** Acts on one item; true when it was still due and was done. */
  private act(work: DueWork): Promise<boolean> {
    const { store, changes, clock } = this.options;
    const id = work.streamSessionId;
    switch (work.kind) {
      case 'clientExpired':
        return changes.run(
          id,
          () => store.expireClient(id, work.sessionId, clock.now()),
          (expired) =>
            expired && { type: 'clientExpired', streamSessionId: id, sessionId: work.sessionId },
        );
      case 'batchStalled':
        return changes.run(
          id,
          () => store.stallBatch(id, work.batchNumber, clock.now()),
          (stalled) =>
            stalled && { type: 'batchStalled', streamSessionId: id, batchNumber: work.batchNumber },
        );
      case 'sessionIdle':
        return changes.run(
          id,
          () => store.endIdleSession(id, clock.now()),
          (ended) => ended && { type: 'streamSessionEnded', streamSessionId: id, reason: 'IDLE' },
        );
    }
  }
}

const COUNTED = {
  clientExpired: 'clientsExpired',
  batchStalled: 'batchesStalled',
  sessionIdle: 'sessionsEnded',
} as const satisfies Record<DueWork['kind'], keyof SweepReport>;

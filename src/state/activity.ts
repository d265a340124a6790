import type { BatchNeededReason, StreamSessionEndReason } from './model.js';
import type { Change } from './store.js';

/**
 * Something the coordinator did, told to its observer (logs and metrics)
 * once the change has committed: after it, never for a change that failed,
 * and once per change, whichever store holds the state. With several
 * instances on one Redis, each instance tells only of the changes it made
 * (and of the needs it handed to its own subscribers).
 *
 * Nothing is told per position update unless the update announced a need:
 * the observer is off the hot path.
 */
export type Activity =
  | {
      readonly type: 'streamSessionCreated';
      readonly streamSessionId: string;
      readonly videoSourcePath: string;
      readonly batchSize: number;
      readonly threshold: number;
      readonly segmentDuration: number;
    }
  | {
      readonly type: 'streamSessionEnded';
      readonly streamSessionId: string;
      readonly reason: StreamSessionEndReason;
    }
  | {
      /** A change made the session announce a need on batchNeeded. */
      readonly type: 'batchNeeded';
      readonly streamSessionId: string;
      readonly reason: BatchNeededReason;
      readonly batchNumber: number;
      readonly startSegment: number;
      readonly endSegment: number;
      readonly furthestSegment: number | null;
    }
  | {
      readonly type: 'batchClaimed';
      readonly streamSessionId: string;
      readonly batchNumber: number;
      readonly startSegment: number;
      readonly endSegment: number;
    }
  | {
      /** Completed for the first time (a repeated completeBatch is not told). */
      readonly type: 'batchCompleted';
      readonly streamSessionId: string;
      readonly batchNumber: number;
      /** From its (last) claim to its completion, in milliseconds. */
      readonly generationMs: number;
    }
  | {
      readonly type: 'batchStalled';
      readonly streamSessionId: string;
      readonly batchNumber: number;
    }
  | {
      /** A client silent past the client timeout left its session. */
      readonly type: 'clientExpired';
      readonly streamSessionId: string;
      readonly sessionId: string;
    }
  | {
      /**
       * A live need was handed to one batchNeeded subscriber (a new
       * subscriber's replay of pending needs is not told).
       */
      readonly type: 'batchNeededDelivered';
      readonly streamSessionId: string;
      readonly batchNumber: number;
      readonly reason: BatchNeededReason;
      /**
       * From the change that decided it (the session's updatedAt in the
       * event) to the hand-over, in milliseconds of the coordinator's clock.
       */
      readonly latencyMs: number;
    };

/** Told of each Activity; must not throw (what it throws is reported as an error and dropped). */
export type ActivityObserver = (activity: Activity) => void;

/**
 * Tells the observer (logs and metrics) what each change did. An observer
 * that throws is reported to `onError`, never thrown into the change that
 * caused it: the change has committed and stands.
 */
export class ActivityReporter {
  constructor(
    private readonly observer: ActivityObserver | null,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** False without an observer: callers skip building what nobody reads. */
  get enabled(): boolean {
    return this.observer !== null;
  }

  report(activity: Activity): void {
    if (this.observer === null) return;
    try {
      this.observer(activity);
    } catch (error) {
      this.onError(error);
    }
  }

  /**
   * Tells what a change did (as `describe` says; nothing for a change made
   * before, or one that found nothing to do), then the needs it announced.
   */
  reportChange<T>(
    streamSessionId: string,
    { result, announced, repeated }: Change<T>,
    describe?: (result: T) => Activity | false,
  ): void {
    if (this.observer === null) return;
    const activity = describe !== undefined && repeated !== true && describe(result);
    if (activity) this.report(activity);
    for (const need of announced) {
      this.report({
        type: 'batchNeeded',
        streamSessionId,
        reason: need.reason,
        batchNumber: need.batchNumber,
        startSegment: need.startSegment,
        endSegment: need.endSegment,
        furthestSegment: need.furthestSegment,
      });
    }
  }
}

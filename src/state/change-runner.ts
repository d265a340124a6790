import type { Activity, ActivityReporter } from './activity.js';
import type { Change, MaybePromise } from './store.js';

/**
 * Runs the store's changes for the coordinator. The store makes each change
 * atomic and publishes its events itself, so no lock is taken here: this
 * tells the observer what each change did once it has committed, and keeps
 * the changes still awaiting a reply so that a shutdown can wait for them.
 */
export class ChangeRunner {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly activity: ActivityReporter) {}

  /**
   * The change's result once the store has made it: at once from the
   * embedded store (which returns plain values or throws), when its reply
   * comes from a remote one. A store's error rejects.
   */
  run<T>(
    streamSessionId: string,
    change: () => MaybePromise<Change<T>>,
    describe?: (result: T) => Activity | false,
  ): Promise<T> {
    let made: MaybePromise<Change<T>>;
    try {
      made = change();
    } catch (error) {
      return Promise.reject(error);
    }
    if (!(made instanceof Promise)) {
      return Promise.resolve(this.committed(streamSessionId, made, describe));
    }
    const result = made.then((done) => this.committed(streamSessionId, done, describe));
    this.inFlight.add(result);
    const forget = () => this.inFlight.delete(result);
    result.then(forget, forget);
    return result;
  }

  /** Changes sent to the store and not answered yet. */
  get count(): number {
    return this.inFlight.size;
  }

  /** Resolves once every change in flight now has been answered (or failed). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private committed<T>(
    streamSessionId: string,
    change: Change<T>,
    describe?: (result: T) => Activity | false,
  ): T {
    this.activity.reportChange(streamSessionId, change, describe);
    return change.result;
  }
}

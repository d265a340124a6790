import { type Clock, systemClock } from './clock.js';
import { type EventBus, LocalEventBus } from './events.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis/redis-store.js';
import { loadSnapshot, saveSnapshot } from './snapshot-file.js';
import type { StreamSessionStore, Timeouts } from './store.js';

/** What createStore reads of the service's configuration. */
export interface StoreConfig extends Timeouts {
  readonly store: 'memory' | 'redis';
  /** Redis: where it is. */
  readonly redisUrl: string;
  /** Redis: what every key starts with. */
  readonly redisKeyPrefix: string;
  /** Memory: the snapshot file restored at start and saved at shutdown; null for none. */
  readonly snapshotPath: string | null;
}

export interface StoreOptions {
  /** Where the snapshot's time comes from. */
  readonly clock?: Clock;
  /** Redis: milliseconds the sweeper lease lasts without renewal (a few sweep intervals). */
  readonly sweepLease?: number;
  /** Told when an event cannot be delivered to this instance's listeners. */
  readonly onEventError?: (error: unknown) => void;
}

/** What a restore or a save dealt with, for the log. */
export interface PersistenceReport {
  readonly streamSessions: number;
  readonly path: string;
}

/** How the state outlives the process. */
export interface Persistence {
  /**
   * Restores the state saved last, before serving; null when there was
   * none to restore. Rejects with SnapshotError when a saved state exists
   * but cannot be used (it is left as it is).
   */
  restore(): Promise<PersistenceReport | null>;
  /** Saves the state, at shutdown; null when the store keeps it by itself (Redis). */
  save(): Promise<PersistenceReport | null>;
}

/** A store with everything that goes with it: the server only wires these. */
export interface StoreBackend {
  readonly store: StreamSessionStore;
  /** The bus the store publishes its events on; the coordinator's feeds listen to it. */
  readonly events: EventBus;
  readonly persistence: Persistence;
  /**
   * Gets ready to serve: Redis connects and subscribes (waiting at most a
   * moment: with Redis away it starts anyway, not ready, and keeps trying).
   */
  open(): Promise<void>;
  /** Closes the event bus and the store (save first, if wanted). */
  close(): Promise<void>;
}

/** The embedded store (STORE=memory) or Redis (STORE=redis), as configured. */
export function createStore(config: StoreConfig, options: StoreOptions = {}): StoreBackend {
  return config.store === 'redis' ? redisBackend(config, options) : memoryBackend(config, options);
}

function memoryBackend(config: StoreConfig, options: StoreOptions): StoreBackend {
  const events = new LocalEventBus(options.onEventError);
  const store = new MemoryStore(config, events);
  const clock = options.clock ?? systemClock;
  const path = config.snapshotPath;
  return {
    store,
    events,
    persistence: {
      async restore() {
        if (path === null) return null;
        const snapshot = await loadSnapshot(path);
        if (snapshot === null) return null;
        store.load(snapshot);
        return { streamSessions: store.size, path };
      },
      async save() {
        if (path === null) return null;
        await saveSnapshot(path, store.snapshot(clock.now()));
        return { streamSessions: store.size, path };
      },
    },
    async open() {},
    async close() {
      await events.close();
      await store.close();
    },
  };
}

function redisBackend(config: StoreConfig, options: StoreOptions): StoreBackend {
  const store = new RedisStore({
    url: config.redisUrl,
    keyPrefix: config.redisKeyPrefix,
    timeouts: config,
    sweepLease: options.sweepLease,
    onEventError: options.onEventError,
  });
  return {
    store,
    events: store.events,
    // Redis keeps the state itself.
    persistence: { restore: async () => null, save: async () => null },
    open: () => store.connect(),
    close: () => store.close(),
  };
}

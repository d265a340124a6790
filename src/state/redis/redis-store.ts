import { randomUUID } from 'node:crypto';
import { Redis, ReplyError } from 'ioredis';
import { shouldGenerateNextBatch } from '../batch-need.js';
import { type CoveragePiece, mergeCoverage } from '../coverage.js';
import { ConflictError, DomainError, InvalidInputError, NotFoundError } from '../errors.js';
import {
  type BatchNeed,
  type BatchNeededEvent,
  type BatchState,
  type ClientPosition,
  type CoveredRange,
  type Instant,
  QUALITIES,
  type Quality,
  type ReleaseSegmentsInput,
  type SetCurrentBatchInput,
  type StreamSessionSettings,
  type StreamSessionView,
  type UpdateClientPositionInput,
} from '../model.js';
import type { Change, DueWork, StreamSessionStore, Timeouts } from '../store.js';
import { SCRIPTS } from './lua.js';
import { list, normalize, publicBatch } from './normalize.js';
import { RedisEventBus } from './redis-event-bus.js';

/** The store could not be reached: the change may be retried. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('The store (Redis) is unavailable; retry shortly.', { cause });
    this.name = 'StoreUnavailableError';
  }
}

export interface RedisStoreOptions {
  readonly url: string;
  /**
   * The client to use instead of one made from `url` (its options should be
   * those below: no offline queue, no retries per request).
   */
  readonly client?: Redis;
  /** Every key starts with it, so deployments and test runs can share one Redis. */
  readonly keyPrefix: string;
  readonly timeouts: Timeouts;
  /** Milliseconds a command may take before it fails (no hangs while Redis is away). */
  readonly commandTimeout?: number;
  /** Milliseconds the sweeper lease lasts without renewal (a few sweep intervals). */
  readonly sweepLease?: number;
  /** Told when an event cannot be delivered (the bus goes on with the next). */
  readonly onEventError?: (error: unknown) => void;
}

// How often a store marked down asks Redis whether it is back.
const PROBE_INTERVAL = 250; // ms

type ScriptName = keyof typeof SCRIPTS;
type Scripted = Redis & Record<ScriptName, (...args: (string | number)[]) => Promise<unknown>>;

interface LuaReply<T> {
  result: T;
  /**
   * The needs the script announced (and published itself), in order;
   * absent or {} (cjson's empty list) when none.
   */
  announced?: Array<BatchNeed & { sequence: number }> | Record<string, never>;
  /** True when the change had already been made. */
  repeated?: boolean;
}

/**
 * All state in Redis, for several instances behind one load balancer. Each
 * change is one Lua script: one round trip, atomic, with contract v2's rules
 * inside (scripts/prelude.lua mirrors coverage.ts and StreamSession), so a
 * need is announced once across the cluster; the script also publishes the
 * events the change causes, and `events` delivers them to this instance's
 * listeners. A position update inside the client's safe range reads nothing
 * of the session (the hot path, update-client-position.lua). Reads of a
 * whole session are one MULTI; its view is built here, as StreamSession.view.
 */
export class RedisStore implements StreamSessionStore {
  /** Delivers what the scripts publish (any instance's changes) to this instance. */
  readonly events: RedisEventBus;
  private readonly redis: Scripted;
  private readonly prefix: string;
  private readonly timeouts: Timeouts;
  private readonly instance = randomUUID();
  /** True from a failed command until a probe gets an answer. */
  private down = false;
  private closed = false;
  private readonly sweepLease: number;

  constructor(options: RedisStoreOptions) {
    this.prefix = options.keyPrefix;
    this.timeouts = options.timeouts;
    this.sweepLease = options.sweepLease ?? 5_000;
    this.redis = (options.client ??
      new Redis(options.url, {
        // Fail fast while Redis is away instead of queueing (and hanging) requests.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: options.commandTimeout ?? 2_000,
        connectTimeout: 2_000,
        // Reconnect forever, backing off to one attempt a second.
        retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
        lazyConnect: true,
      })) as Scripted;
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.redis.defineCommand(name, { numberOfKeys: 0, lua });
    }
    // Errors surface through the commands that fail; this only keeps them off stderr.
    this.redis.on('error', () => {});
    this.events = new RedisEventBus(
      this.redis,
      this.prefix,
      (id) => this.getStreamSession(id),
      options.onEventError,
      () => this.pendingNeeds(),
    );
  }

  /**
   * Connects and subscribes to the events (the first connection may fail:
   * the client keeps retrying, and the store says it is not ready meanwhile).
   * Waits at most `within` milliseconds for the subscription.
   */
  async connect(within = 2_000): Promise<void> {
    if (this.redis.status === 'wait') await this.redis.connect().catch(() => {});
    await Promise.race([
      this.events.ready().catch(() => {}),
      new Promise((resolve) => setTimeout(resolve, within).unref()),
    ]);
  }

  async createStreamSession(
    settings: StreamSessionSettings,
    now: Instant,
  ): Promise<Change<StreamSessionView>> {
    const reply = await this.run<true>(
      'hbcCreate',
      settings.id,
      settings.videoSourcePath,
      settings.segmentDuration,
      settings.batchSize,
      settings.threshold,
      settings.startSegment,
      settings.durationSeconds ?? '',
      settings.lastSegment ?? '',
      settings.qualities.join(','),
      now,
    );
    const view: StreamSessionView = {
      ...settings,
      currentBatch: null,
      batches: [],
      stalledBatches: [],
      coverage: [],
      clientPositions: [],
      furthestSegment: null,
      slowestSegment: null,
      shouldGenerateNextBatch: false,
      createdAt: now,
      updatedAt: now,
    };
    return { result: view, announced: announced(reply) };
  }

  async endStreamSession(id: string, now: Instant): Promise<Change<boolean>> {
    return { result: (await this.call('hbcEnd', id, now)) === 1, announced: NONE };
  }

  async updateClientPosition(
    input: UpdateClientPositionInput,
    now: Instant,
  ): Promise<Change<ClientPosition>> {
    const { streamSessionId, sessionId, segmentNumber, quality } = input;
    const reply = await this.run<true>(
      'hbcUpdate',
      streamSessionId,
      sessionId,
      segmentNumber,
      quality,
      now,
    );
    return {
      result: { sessionId, segmentNumber, quality, lastUpdated: now },
      announced: announced(reply),
    };
  }

  async removeClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): Promise<Change<boolean>> {
    const reply = await this.run<boolean>('hbcRemove', streamSessionId, sessionId, now);
    return {
      result: reply.result,
      announced: announced(reply),
    };
  }

  async setCurrentBatch(input: SetCurrentBatchInput, now: Instant): Promise<Change<BatchState>> {
    const reply = await this.run<BatchState>(
      'hbcSetBatch',
      input.streamSessionId,
      input.batchNumber,
      input.startSegment,
      input.endSegment,
      input.videoSourcePath,
      input.videoStartOffset,
      JSON.stringify(input.qualities ?? null),
      now,
      this.timeouts.batchTimeout,
    );
    return {
      result: publicBatch(reply.result),
      announced: announced(reply),
    };
  }

  async completeBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): Promise<Change<BatchState>> {
    const reply = await this.run<BatchState>('hbcComplete', streamSessionId, batchNumber, now);
    return {
      result: publicBatch(reply.result),
      announced: announced(reply),
      repeated: reply.repeated === true,
    };
  }

  async renewBatchClaim(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): Promise<Change<BatchState>> {
    const reply = await this.run<BatchState>(
      'hbcRenew',
      streamSessionId,
      batchNumber,
      now,
      this.timeouts.batchTimeout,
    );
    return { result: publicBatch(reply.result), announced: NONE };
  }

  async releaseSegments(input: ReleaseSegmentsInput, now: Instant): Promise<Change<boolean>> {
    const reply = await this.run<boolean>(
      'hbcRelease',
      input.streamSessionId,
      input.startSegment,
      input.endSegment,
      JSON.stringify(input.qualities ?? null),
      now,
    );
    return { result: reply.result, announced: announced(reply) };
  }

  async getStreamSession(id: string): Promise<StreamSessionView | null> {
    const p = this.prefix;
    const results = await this.guard(() =>
      this.redis
        .multi()
        .hgetall(`${p}s:${id}`)
        .hgetall(`${p}c:${id}`)
        .zrevrange(`${p}z:${id}`, 0, 0, 'WITHSCORES')
        .zrange(`${p}z:${id}`, '0', '0', 'WITHSCORES')
        .exec(),
    );
    const [session, clients, top, bottom] = (results ?? []).map(([error, value]) => {
      if (error) throw new StoreUnavailableError(error);
      return value;
    }) as [Record<string, string>, Record<string, string>, string[], string[]];
    if (session === undefined || Object.keys(session).length === 0) return null;
    return view(id, session, clients, top, bottom);
  }

  async listStreamSessions(limit: number, offset: number): Promise<StreamSessionView[]> {
    if (limit === 0) return [];
    const ids = await this.guard(() =>
      this.redis.zrange(`${this.prefix}sessions`, String(offset), String(offset + limit - 1)),
    );
    const views = await Promise.all(ids.map((id) => this.getStreamSession(id)));
    return views.filter((v) => v !== null);
  }

  async pendingNeeds(streamSessionId?: string): Promise<BatchNeededEvent[]> {
    const needs = JSON.parse(
      (await this.call('hbcPending', streamSessionId ?? '')) as string,
    ) as Array<BatchNeed & { sequence: number; streamSessionId: string }>;
    // One view per session, shared by its needs (as MemoryStore.pendingNeeds).
    const views = new Map<string, Promise<StreamSessionView | null>>();
    const events = await Promise.all(
      needs.map(async ({ streamSessionId: id, ...need }) => {
        let view = views.get(id);
        if (view === undefined) {
          view = this.getStreamSession(id);
          views.set(id, view);
        }
        const session = await view;
        // As announced, with the furthest client now (MemoryStore.pendingNeeds).
        return (
          session && {
            ...normalize(need),
            furthestSegment: session.furthestSegment,
            streamSession: session,
          }
        );
      }),
    );
    return events.filter((e) => e !== null);
  }

  async dueWork(now: Instant, limit: number): Promise<DueWork[]> {
    const { clientTimeout, idleTimeout } = this.timeouts;
    return JSON.parse(
      (await this.call(
        'hbcDueWork',
        now,
        clientTimeout,
        idleTimeout,
        limit,
        this.instance,
        this.sweepLease,
      )) as string,
    ) as DueWork[];
  }

  async expireClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): Promise<Change<boolean>> {
    const reply = await this.run<boolean>(
      'hbcExpireClient',
      streamSessionId,
      sessionId,
      now,
      this.timeouts.clientTimeout,
    );
    return {
      result: reply.result,
      announced: announced(reply),
    };
  }

  async stallBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): Promise<Change<boolean>> {
    const reply = await this.run<boolean>(
      'hbcStallBatch',
      streamSessionId,
      batchNumber,
      now,
      this.timeouts.batchTimeout,
    );
    return {
      result: reply.result,
      announced: announced(reply),
    };
  }

  async endIdleSession(streamSessionId: string, now: Instant): Promise<Change<boolean>> {
    const reply = await this.call('hbcEndIdle', streamSessionId, now, this.timeouts.idleTimeout);
    return { result: reply === 1, announced: NONE };
  }

  async countClients(): Promise<number> {
    return this.guard(() => this.redis.zcard(`${this.prefix}dl:c`));
  }

  async countStreamSessions(): Promise<number> {
    return this.guard(() => this.redis.zcard(`${this.prefix}sessions`));
  }

  async isReady(): Promise<boolean> {
    return !this.down && (await this.ping());
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.events.close();
    this.redis.disconnect();
  }

  /** Runs a script that answers `{ result, announcement }` as JSON. */
  private async run<T>(name: ScriptName, ...args: (string | number)[]): Promise<LuaReply<T>> {
    return JSON.parse((await this.call(name, ...args)) as string) as LuaReply<T>;
  }

  /** Runs a script; its error replies become the domain's errors. */
  private call(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    return this.guard(() => this.redis[name](this.prefix, ...args));
  }

  /**
   * Runs a command: script error replies become the domain's errors; a
   * timeout or a lost connection marks the store down, and while it is down
   * commands fail at once instead of each waiting out its own timeout (a
   * queue of changes to one session would otherwise answer N × timeout late).
   */
  private async guard<T>(run: () => Promise<T>): Promise<T> {
    if (this.down) throw new StoreUnavailableError('Redis did not answer the last command');
    try {
      return await run();
    } catch (error) {
      if (error instanceof DomainError) throw error;
      const message = (error as Error).message ?? '';
      const [code, ...rest] = message.split(' ');
      if (code === 'NOT_FOUND') throw new NotFoundError(rest.join(' '));
      if (code === 'CONFLICT') throw new ConflictError(rest.join(' '));
      if (code === 'BAD_USER_INPUT') throw new InvalidInputError(rest.join(' '));
      // Any other reply from Redis is a fault of ours (a script error): not an outage.
      if (error instanceof ReplyError) throw error;
      this.markDown();
      throw new StoreUnavailableError(error);
    }
  }

  /** Probes Redis until it answers again, then lets commands through. */
  private markDown(): void {
    if (this.down || this.closed) return;
    this.down = true;
    const probe = async () => {
      while (this.down && !this.closed) {
        await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL).unref());
        if (await this.ping()) this.down = false;
      }
    };
    void probe();
  }

  private async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }
}

const NONE: readonly BatchNeed[] = Object.freeze([]);

/** What a script's reply says it announced, for the coordinator's observer. */
function announced(reply: LuaReply<unknown>): readonly BatchNeed[] {
  const needs = list(reply.announced);
  return needs.length === 0 ? NONE : needs.map(normalize);
}

/** A batch as a script stores it (BatchRecord in stream-session.ts). */
interface StoredBatch extends BatchState {
  readonly stalls: number;
}

const bySessionId = (a: ClientPosition, b: ClientPosition) =>
  a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0;

/**
 * A session as the API shows it, from its keys (their legend:
 * scripts/prelude.lua): StreamSession.view. The coverage is merged here, by
 * coverage.ts's own mergeCoverage, as StreamSession.coverage merges it.
 */
function view(
  id: string,
  s: Record<string, string>,
  clients: Record<string, string>,
  top: string[],
  bottom: string[],
): StreamSessionView {
  const currentBatch = s.currentBatch ? publicBatch(JSON.parse(s.currentBatch)) : null;
  const stored = list<StoredBatch>(JSON.parse(s.batches ?? '[]')).sort(
    (a, b) => a.batchNumber - b.batchNumber,
  );
  const batches = stored.map(publicBatch);
  const made = JSON.parse(s.made ?? '{}') as Partial<Record<Quality, Array<[number, number]>>>;
  const coverage: CoveredRange[] = [];
  for (const quality of QUALITIES) {
    const pieces: CoveragePiece[] = list(made[quality]).map(([start, end]) => ({
      start,
      end,
      open: false,
    }));
    for (const batch of batches) {
      if (!batch.isComplete && batch.qualities.includes(quality)) {
        pieces.push({ start: batch.startSegment, end: batch.endSegment, open: true });
      }
    }
    for (const range of mergeCoverage(pieces)) {
      coverage.push({ quality, startSegment: range.start, endSegment: range.end });
    }
  }
  const clientPositions: ClientPosition[] = Object.entries(clients)
    .map(([sessionId, value]) => {
      const [segment, quality, lastUpdated] = value.split('|');
      return {
        sessionId,
        segmentNumber: Number(segment),
        quality: quality as Quality,
        lastUpdated: Number(lastUpdated),
      };
    })
    .sort(bySessionId);
  const furthestSegment = top.length === 2 ? Number(top[1]) : null;
  const threshold = Number(s.threshold);
  return {
    id,
    videoSourcePath: s.videoSourcePath as string,
    segmentDuration: Number(s.segmentDuration),
    batchSize: Number(s.batchSize),
    threshold,
    startSegment: Number(s.startSegment),
    durationSeconds: s.durationSeconds ? Number(s.durationSeconds) : null,
    lastSegment: s.lastSegment ? Number(s.lastSegment) : null,
    qualities: (s.qualities ?? '').split(',').filter((q) => q !== '') as Quality[],
    currentBatch,
    batches,
    stalledBatches: stored.filter((b) => b.stalls > 0).map((b) => b.batchNumber),
    coverage,
    clientPositions,
    furthestSegment,
    slowestSegment: bottom.length === 2 ? Number(bottom[1]) : null,
    shouldGenerateNextBatch: shouldGenerateNextBatch(currentBatch, furthestSegment, threshold),
    createdAt: Number(s.createdAt),
    updatedAt: Number(s.updatedAt),
  };
}

import { ConflictError, streamSessionNotFound } from './errors.js';
import type {
  BatchNeededEvent,
  BatchState,
  ClientPosition,
  Instant,
  SetCurrentBatchInput,
  StreamSessionSettings,
  StreamSessionView,
  UpdateClientPositionInput,
} from './model.js';
import type { Change, StreamSessionStore } from './store.js';
import { StreamSession } from './stream-session.js';

/**
 * The embedded store: every stream session in this process's memory.
 * Its methods run synchronously to completion, so each change is atomic.
 */
export class MemoryStore implements StreamSessionStore {
  // A Map iterates in insertion order: oldest first, as the contract lists them.
  private readonly sessions = new Map<string, StreamSession>();

  async createStreamSession(
    settings: StreamSessionSettings,
    now: Instant,
  ): Promise<Change<StreamSessionView>> {
    if (this.sessions.has(settings.id)) {
      throw new ConflictError(`Stream session '${settings.id}' already exists.`);
    }
    const session = new StreamSession(settings, now);
    this.sessions.set(settings.id, session);
    return { result: session.view(), announcement: announcement(session) };
  }

  async endStreamSession(id: string): Promise<boolean> {
    return this.sessions.delete(id);
  }

  async updateClientPosition(
    input: UpdateClientPositionInput,
    now: Instant,
  ): Promise<Change<ClientPosition>> {
    const session = this.require(input.streamSessionId);
    const result = session.updateClientPosition(
      input.sessionId,
      input.segmentNumber,
      input.quality,
      now,
    );
    return { result, announcement: announcement(session) };
  }

  async removeClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): Promise<Change<boolean>> {
    const session = this.require(streamSessionId);
    const result = session.removeClient(sessionId, now);
    return { result, announcement: result ? announcement(session) : null };
  }

  async setCurrentBatch(input: SetCurrentBatchInput, now: Instant): Promise<Change<BatchState>> {
    const session = this.require(input.streamSessionId);
    const result = session.setCurrentBatch(input, now);
    return { result, announcement: announcement(session) };
  }

  async completeBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): Promise<Change<BatchState>> {
    const session = this.require(streamSessionId);
    const result = session.completeBatch(batchNumber, now);
    return { result, announcement: announcement(session) };
  }

  async getStreamSession(id: string): Promise<StreamSessionView | null> {
    return this.sessions.get(id)?.view() ?? null;
  }

  async listStreamSessions(limit: number, offset: number): Promise<StreamSessionView[]> {
    const page: StreamSessionView[] = [];
    let index = 0;
    for (const session of this.sessions.values()) {
      if (page.length >= limit) break;
      if (index++ >= offset) page.push(session.view());
    }
    return page;
  }

  async pendingNeeds(streamSessionId?: string): Promise<BatchNeededEvent[]> {
    const sessions =
      streamSessionId === undefined
        ? this.sessions.values()
        : [this.sessions.get(streamSessionId)].filter((s) => s !== undefined);
    const needs: BatchNeededEvent[] = [];
    for (const session of sessions) {
      const need = session.batchNeed();
      if (need === null) continue;
      needs.push({
        ...need,
        streamSession: session.view(),
        sequence: session.announcementSequence,
      });
    }
    return needs;
  }

  async isReady(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.sessions.clear();
  }

  /** How many sessions it holds (for tests and metrics). */
  get size(): number {
    return this.sessions.size;
  }

  private require(id: string): StreamSession {
    const session = this.sessions.get(id);
    if (session === undefined) throw streamSessionNotFound(id);
    return session;
  }
}

function announcement(session: StreamSession): BatchNeededEvent | null {
  const announced = session.announceNeed();
  if (announced === null) return null;
  return { ...announced.need, streamSession: session.view(), sequence: announced.sequence };
}

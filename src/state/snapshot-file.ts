import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { z } from 'zod';
import type { MemoryStoreSnapshot } from './memory-store.js';
import { BatchNeededReason, QUALITIES, type Quality } from './model.js';

/** A snapshot file that exists but cannot be used. Starting over it would lose state. */
export class SnapshotError extends Error {
  constructor(path: string, reason: string) {
    super(
      `Snapshot ${path} cannot be loaded: ${reason}. Move it away or fix it; it is not overwritten.`,
    );
    this.name = 'SnapshotError';
  }
}

const count = z.number().int().min(0);
const instant = z.number().finite();

const quality = z.enum(QUALITIES as [Quality, ...Quality[]]);

const batchV1 = z.object({
  batchNumber: count,
  startSegment: count,
  endSegment: count,
  videoSourcePath: z.string(),
  videoStartOffset: count,
  generationStarted: instant,
  generationEnded: instant.nullable(),
  isComplete: z.boolean(),
});

const batch = batchV1.extend({
  qualities: z.array(quality),
  isLastBatch: z.boolean(),
});

const settingsV1 = z.object({
  id: z.string().min(1),
  videoSourcePath: z.string(),
  segmentDuration: count,
  batchSize: count,
  threshold: count,
  startSegment: count,
});

const client = z.object({
  sessionId: z.string().min(1),
  segmentNumber: count,
  quality,
  lastUpdated: instant,
});

const reason = z.enum(Object.values(BatchNeededReason) as [string, ...string[]]);

const snapshotV2 = z.object({
  version: z.literal(2),
  savedAt: instant,
  sessions: z.array(
    z.object({
      settings: settingsV1.extend({
        durationSeconds: z.number().positive().nullable(),
        lastSegment: count.nullable(),
        qualities: z.array(quality).min(1),
      }),
      createdAt: instant,
      updatedAt: instant,
      currentBatch: batch.nullable(),
      batches: z.array(
        batch.extend({
          stalls: count,
          stalledAt: instant.nullable(),
          renewedAt: instant.optional(),
        }),
      ),
      made: z.array(z.object({ quality, startSegment: count, endSegment: count })),
      needs: z.array(
        z.object({
          reason,
          batchNumber: count,
          startSegment: count,
          endSegment: count,
          videoSourcePath: z.string(),
          videoStartOffset: count,
          furthestSegment: count.nullable(),
          qualities: z.array(quality).min(1),
          segmentDuration: count,
          isLastBatch: z.boolean(),
          sequence: count,
        }),
      ),
      claimedHigh: count,
      announcements: count,
      idleSince: instant.nullable().optional(),
      clients: z.array(client),
    }),
  ),
});

/** What a snapshot written before contract v2 (one current batch, no coverage) holds. */
const snapshotV1 = z.object({
  version: z.literal(1),
  savedAt: instant,
  sessions: z.array(
    z.object({
      settings: settingsV1,
      createdAt: instant,
      updatedAt: instant,
      currentBatch: batchV1.nullable(),
      stalls: count,
      announced: z
        .object({ reason, batchNumber: count, startSegment: count, endSegment: count })
        .nullable(),
      announcements: count,
      idleSince: instant.nullable().optional(),
      clients: z.array(client),
    }),
  ),
});

const snapshotSchema = z.union([snapshotV2, snapshotV1]);

/**
 * A v1 snapshot as v2 state: the video's length unknown, every rendition;
 * the current batch (if complete, its segments made in every rendition);
 * the need announced and not claimed still pending. Clients are decided on
 * their next report.
 */
function fromV1(v1: z.infer<typeof snapshotV1>): MemoryStoreSnapshot {
  return {
    version: 2,
    savedAt: v1.savedAt,
    sessions: v1.sessions.map((s) => {
      const settings = {
        ...s.settings,
        durationSeconds: null,
        lastSegment: null,
        qualities: QUALITIES,
      };
      const current = s.currentBatch && {
        ...s.currentBatch,
        qualities: QUALITIES,
        isLastBatch: false,
      };
      const claimedHigh = current ? current.batchNumber + 1 : 0;
      const announced = s.announced;
      const unclaimed =
        announced !== null &&
        (announced.batchNumber >= claimedHigh ||
          (announced.reason === 'STALLED' && s.stalls > 0 && current?.isComplete === false));
      return {
        settings,
        createdAt: s.createdAt,
        updatedAt: s.updatedAt,
        currentBatch: current,
        batches: current ? [{ ...current, stalls: s.stalls, stalledAt: null }] : [],
        made: current?.isComplete
          ? QUALITIES.map((q) => ({
              quality: q,
              startSegment: current.startSegment,
              endSegment: current.endSegment,
            }))
          : [],
        needs: unclaimed
          ? [
              {
                reason: announced.reason as BatchNeededReason,
                batchNumber: announced.batchNumber,
                startSegment: announced.startSegment,
                endSegment: announced.endSegment,
                videoSourcePath: settings.videoSourcePath,
                videoStartOffset: announced.startSegment * settings.segmentDuration,
                furthestSegment: null,
                qualities: QUALITIES,
                segmentDuration: settings.segmentDuration,
                isLastBatch: false,
                sequence: s.announcements,
              },
            ]
          : [],
        claimedHigh,
        announcements: s.announcements,
        idleSince: s.idleSince ?? null,
        clients: s.clients,
      };
    }),
  };
}

/**
 * Reads a snapshot. Null when there is no file (a first start); SnapshotError
 * when there is one that cannot be read or is not a valid snapshot.
 */
export async function loadSnapshot(path: string): Promise<MemoryStoreSnapshot | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SnapshotError(path, (error as Error).message);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SnapshotError(path, `not JSON (${(error as Error).message})`);
  }
  const parsed = snapshotSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SnapshotError(
      path,
      `not a valid snapshot (${issue?.path.join('.') || 'top level'}: ${issue?.message})`,
    );
  }
  const data = parsed.data;
  return data.version === 1 ? fromV1(data) : (data as MemoryStoreSnapshot);
}

/**
 * Writes a snapshot atomically: to a temporary file beside it, flushed to
 * disk, then renamed over the old one, so a crash mid-write leaves the
 * previous snapshot whole.
 */
export async function saveSnapshot(path: string, snapshot: MemoryStoreSnapshot): Promise<void> {
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(temporary, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify(snapshot));
    await file.sync();
  } catch (error) {
    await file.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await file.close();
  await rename(temporary, path);
}

import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { z } from 'zod';
import type { MemoryStoreSnapshot } from './memory-store.js';
import { QUALITIES } from './model.js';

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

const batchSchema = z.object({
  batchNumber: count,
  startSegment: count,
  endSegment: count,
  videoSourcePath: z.string(),
  videoStartOffset: count,
  generationStarted: instant,
  generationEnded: instant.nullable(),
  isComplete: z.boolean(),
});

const snapshotSchema = z.object({
  version: z.literal(1),
  savedAt: instant,
  sessions: z.array(
    z.object({
      settings: z.object({
        id: z.string().min(1),
        videoSourcePath: z.string(),
        segmentDuration: count,
        batchSize: count,
        threshold: count,
        startSegment: count,
      }),
      createdAt: instant,
      updatedAt: instant,
      currentBatch: batchSchema.nullable(),
      stalls: count,
      stallSerial: count,
      announced: z
        .object({
          reason: z.enum(['FIRST_BATCH', 'APPROACHING_END', 'SEEK_AHEAD', 'STALLED']),
          batchNumber: count,
          startSegment: count,
          endSegment: count,
          stalls: count,
        })
        .nullable(),
      announcements: count,
      idleSince: instant.nullable().optional(),
      clients: z.array(
        z.object({
          sessionId: z.string().min(1),
          segmentNumber: count,
          quality: z.enum(QUALITIES as [string, ...string[]]),
          lastUpdated: instant,
        }),
      ),
    }),
  ),
});

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
  return parsed.data as MemoryStoreSnapshot;
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

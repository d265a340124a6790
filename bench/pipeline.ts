/**
 * The `pipeline` phase of `npm run bench` (issue 13): real ffmpeg, the
 * segment server and hls.js in Chromium, on this machine.
 *
 * - Encode speed, per rendition alone and for the full ladder, in ×
 *   realtime: seconds of video made per wall second, for a batch of
 *   `ENCODE_SEGMENTS` segments of `D` s from a 1080p test source, with the
 *   worker's own arguments (`encodeBatch`, preset veryfast). Median of
 *   `ENCODE_RUNS`. The per-batch start cost (`startup`) is where a line
 *   through a 1-segment and an n-segment batch's times meets zero segments.
 * - What batch size keeps up with one viewer at 1× for the full ladder,
 *   from those two figures (see `keepUp`).
 * - Playback, from test/pipeline/harness.ts' `measurePipeline`: time to
 *   first frame, seek to playing (p50 and worst), stalls per 100 batch
 *   boundaries crossed.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeBatch } from '../encoder/ffmpeg.js';
import { LADDER, type Rendition } from '../encoder/ladder.js';
import { makeSource } from '../test/encoder-media.js';
import { measurePipeline } from '../test/pipeline/harness.js';
import { median } from './lib/stats.js';

const FFMPEG = process.env.FFMPEG_PATH ?? 'ffmpeg';
/** Seconds per segment, as the service's default. */
const D = 6;
const ENCODE_SEGMENTS = Number(process.env.BENCH_ENCODE_SEGMENTS ?? 4);
const ENCODE_RUNS = Number(process.env.BENCH_ENCODE_RUNS ?? 3);
const BOUNDARIES = Number(process.env.BENCH_PIPELINE_BOUNDARIES ?? 8);
const SEEKS = Number(process.env.BENCH_PIPELINE_SEEKS ?? 3);
/** The service's default BATCH_TIMEOUT, seconds. */
const BATCH_TIMEOUT = 120;

export interface EncodeSpeed {
  readonly renditions: string;
  /** Seconds of video per wall second, median. */
  readonly speed: number;
  readonly runs: readonly number[];
}

export interface KeepUp {
  readonly ladderSpeed: number;
  /** Seconds a batch costs beyond its share at that speed (ffmpeg start, seek, first keyframe). */
  readonly startupSeconds: number;
  /** Seconds of lead over a 1× viewer a batch gains per segment it makes: D·(1 − 1/s). */
  readonly leadPerSegment: number;
  /** The smallest batch that keeps a 1× viewer fed batch after batch; null when none does (speed < 1). */
  readonly smallestBatch: number | null;
  /** The largest batch made within the default BATCH_TIMEOUT without a renewal. */
  readonly largestWithoutRenewal: number;
  /** The smallest `threshold` (segments) under which the first segment of the next batch is there in time. */
  readonly smallestThreshold: number;
}

export interface PipelineResult {
  readonly segmentDuration: number;
  readonly encode: readonly EncodeSpeed[];
  readonly keepUp: KeepUp;
  readonly playback: {
    readonly timeToFirstFrameMs: { median: number; max: number; samples: number };
    readonly seekToPlayingMs: { median: number; max: number; samples: number };
    readonly boundariesCrossed: number;
    readonly stalls: number;
    readonly stallsPer100Boundaries: number;
  };
}

async function source(dir: string): Promise<string> {
  const seconds = (ENCODE_SEGMENTS + 1) * D + 2;
  const name = `bench-source-1080p-${seconds}s.mp4`;
  const file = path.join(dir, name);
  if (existsSync(file)) return file;
  return makeSource(dir, seconds, { size: '1920x1080', name });
}

/** Wall seconds to encode segments 1..n (offset D) of `renditions`. */
async function timeEncode(src: string, renditions: readonly Rendition[], n: number) {
  const out = await mkdtemp(path.join(tmpdir(), 'bench-encode-'));
  try {
    const started = performance.now();
    const encode = await encodeBatch({
      ffmpegPath: FFMPEG,
      sourcePath: src,
      sourceHeight: 1080,
      videoStartOffset: D,
      startSegment: 1,
      endSegment: n,
      segmentDuration: D,
      outputs: renditions.map((rendition) => ({ rendition, dir: path.join(out, rendition.name) })),
    });
    const outcome = await encode.done;
    if (!outcome.ok) throw new Error(outcome.reason);
    return (performance.now() - started) / 1000;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/**
 * Batch k+1 is announced when batch k is complete and the viewer is within
 * `threshold` segments of its end (a batch in flight holds the next one
 * back), so at best it starts with the viewer `threshold × D` seconds ahead
 * of nothing. Its segment j is on disk `startup + j·D/s` seconds later, and
 * the viewer needs it `lead + (j−1)·D` seconds later. With s ≥ 1 the first
 * segment binds: lead ≥ startup + D/s, whatever the batch size. Batch after
 * batch the lead changes by N·D·(1 − 1/s) − startup, so it holds when
 * N ≥ startup / (D·(1 − 1/s)); with s < 1 it shrinks every batch and the
 * viewer stalls sooner or later, whatever N.
 */
export function keepUp(ladderSpeed: number, startupSeconds: number): KeepUp {
  const s = ladderSpeed;
  const smallestBatch = s > 1 ? Math.max(1, Math.ceil(startupSeconds / (D * (1 - 1 / s)))) : null;
  return {
    ladderSpeed: s,
    startupSeconds,
    leadPerSegment: D * (1 - 1 / s),
    smallestBatch,
    largestWithoutRenewal: Math.max(0, Math.floor(((BATCH_TIMEOUT - startupSeconds) * s) / D)),
    smallestThreshold: Math.ceil((startupSeconds + D / s) / D),
  };
}

function summary(values: readonly number[]) {
  return {
    median: values.length ? Math.round(median([...values])) : Number.NaN,
    max: values.length ? Math.round(Math.max(...values)) : Number.NaN,
    samples: values.length,
  };
}

export async function runPipeline(log: (line: string) => void): Promise<PipelineResult> {
  const cache = path.resolve('node_modules/.cache/hls-batch-coordinator');
  await mkdir(cache, { recursive: true });
  const src = await source(cache);
  const sets: Array<{ name: string; renditions: readonly Rendition[] }> = [
    ...LADDER.map((r) => ({ name: r.name, renditions: [r] })),
    { name: '1080p+720p+480p', renditions: LADDER },
  ];
  const encode: EncodeSpeed[] = [];
  for (const set of sets) {
    const runs: number[] = [];
    for (let i = 0; i < ENCODE_RUNS; i++) {
      const seconds = await timeEncode(src, set.renditions, ENCODE_SEGMENTS);
      runs.push((ENCODE_SEGMENTS * D) / seconds);
    }
    const speed = median(runs);
    log(
      `encode ${set.name}: ${speed.toFixed(2)}× realtime (${runs.map((r) => r.toFixed(2)).join(', ')})`,
    );
    encode.push({ renditions: set.name, speed, runs });
  }
  // The start cost, from a line through a 1-segment and an n-segment batch
  // (t = start + segments·D/s), the two measured back to back so that the
  // machine's load changes little between them.
  const ladder = encode.at(-1)!.speed;
  const starts: number[] = [];
  for (let i = 0; i < ENCODE_RUNS; i++) {
    const one = await timeEncode(src, LADDER, 1);
    const many = await timeEncode(src, LADDER, ENCODE_SEGMENTS);
    starts.push(one - (many - one) / (ENCODE_SEGMENTS - 1));
  }
  const startupSeconds = Math.max(0, median(starts));
  log(
    `full-ladder start cost per batch: ${startupSeconds.toFixed(2)} s (${starts.map((x) => x.toFixed(2)).join(', ')})`,
  );

  const m = await measurePipeline({ boundaries: BOUNDARIES, seeks: SEEKS });
  log(
    `playback: ${m.boundariesCrossed} boundaries, ${m.stalls} stalls, seeks ${m.seekToPlayingMs.map(Math.round).join(', ')} ms`,
  );
  return {
    segmentDuration: D,
    encode,
    keepUp: keepUp(ladder, startupSeconds),
    playback: {
      timeToFirstFrameMs: summary(m.timeToFirstFrameMs),
      seekToPlayingMs: summary(m.seekToPlayingMs),
      boundariesCrossed: m.boundariesCrossed,
      stalls: m.stalls,
      stallsPer100Boundaries:
        m.boundariesCrossed > 0 ? (100 * m.stalls) / m.boundariesCrossed : Number.NaN,
    },
  };
}

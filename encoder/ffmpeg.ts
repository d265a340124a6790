/**
 * ffmpeg for one batch: the arguments that make exactly the batch's
 * segments of exactly its renditions, and running them.
 *
 * The recipe (checked with Debian's ffmpeg 5.1): input seek to the batch's
 * offset, `-t` its length, a key frame forced every segment duration (no
 * scene-cut key frames), the HLS muxer numbering segments from the batch's
 * first absolute segment number, and every output's timestamps shifted by
 * offset + one constant BASE, so that batches made by different processes
 * line up: segment n starts at BASE + n × D in every rendition. (With a base
 * of 0 the muxer shifts batch 0 alone by the B-frame delay.)
 *
 * One process makes all of a batch's renditions: the decoded source is
 * split, each copy scaled (never up) and encoded to its own HLS output.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { outputHeight, type Rendition } from './ladder.js';
import { segmentFileName } from './paths.js';

/** Seconds added to every output timestamp, the same for every batch (see above). */
export const TIMESTAMP_BASE_SECONDS = 10;

export interface BatchEncodeSpec {
  /** The source video (a path or anything ffmpeg opens). */
  readonly sourcePath: string;
  /** Seconds into the source where the batch starts (startSegment × segmentDuration). */
  readonly videoStartOffset: number;
  readonly startSegment: number;
  /** Inclusive. The last batch may reach past the source's end: it is cut there. */
  readonly endSegment: number;
  /** Seconds per segment. */
  readonly segmentDuration: number;
  /** The renditions to make, each with the folder its segments go to. */
  readonly outputs: ReadonlyArray<{ readonly rendition: Rendition; readonly dir: string }>;
  /** The source's height, to never upscale; null when unknown (the ladder's heights). */
  readonly sourceHeight: number | null;
  /**
   * Where ffmpeg writes each output's playlist, which nobody reads (the
   * segment server writes its own): a scratch folder, deleted afterwards.
   */
  readonly scratchDir: string;
  /** libx264's preset; `veryfast` unless set. */
  readonly preset?: string;
}

/** The arguments for `ffmpeg`: one process, every rendition of the batch, progress on stdout. */
export function buildFfmpegArgs(spec: BatchEncodeSpec): string[] {
  if (spec.outputs.length === 0) throw new Error('a batch makes at least one rendition');
  if (spec.endSegment < spec.startSegment) throw new Error('endSegment is before startSegment');
  const d = spec.segmentDuration;
  const length = (spec.endSegment - spec.startSegment + 1) * d;
  const n = spec.outputs.length;
  const split =
    n === 1 ? '[0:v]null[s0]' : `[0:v]split=${n}${spec.outputs.map((_, i) => `[s${i}]`).join('')}`;
  const scales = spec.outputs.map(
    ({ rendition }, i) =>
      `[s${i}]scale=-2:${outputHeight(rendition, spec.sourceHeight)},setsar=1[v${i}]`,
  );
  const args = [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'warning',
    '-nostats',
    '-progress',
    'pipe:1',
    '-y',
    '-ss',
    String(spec.videoStartOffset),
    '-i',
    spec.sourcePath,
    '-filter_complex',
    [split, ...scales].join(';'),
  ];
  spec.outputs.forEach(({ rendition, dir }, i) => {
    args.push(
      '-map',
      `[v${i}]`,
      '-map',
      '0:a:0?',
      '-t',
      String(length),
      '-c:v',
      'libx264',
      '-preset',
      spec.preset ?? 'veryfast',
      '-profile:v',
      'main',
      '-pix_fmt',
      'yuv420p',
      '-b:v',
      `${rendition.videoKbps}k`,
      '-maxrate',
      `${Math.round(rendition.videoKbps * 1.07)}k`,
      '-bufsize',
      `${rendition.videoKbps * 2}k`,
      '-force_key_frames',
      `expr:gte(t,n_forced*${d})`,
      '-sc_threshold',
      '0',
      '-c:a',
      'aac',
      '-b:a',
      `${rendition.audioKbps}k`,
      '-ac',
      '2',
      '-f',
      'hls',
      '-hls_time',
      String(d),
      '-hls_list_size',
      '0',
      '-hls_playlist_type',
      'vod',
      '-hls_flags',
      'temp_file',
      '-start_number',
      String(spec.startSegment),
      '-hls_segment_filename',
      path.join(dir, 'seg_%d.ts'),
      '-muxdelay',
      '0',
      '-muxpreload',
      '0',
      '-output_ts_offset',
      String(spec.videoStartOffset + TIMESTAMP_BASE_SECONDS),
      path.join(spec.scratchDir, `${rendition.name}.m3u8`),
    );
  });
  return args;
}

/** The segment files a batch must leave in `dir`, startSegment..endSegment, that are not there. */
export async function missingSegments(
  dir: string,
  startSegment: number,
  endSegment: number,
): Promise<string[]> {
  const missing: string[] = [];
  for (let n = startSegment; n <= endSegment; n++) {
    const file = path.join(dir, segmentFileName(n));
    try {
      await access(file);
    } catch {
      missing.push(file);
    }
  }
  return missing;
}

/** Deletes the half-written segments (`seg_<n>.ts.tmp`) a killed ffmpeg leaves in `dir`. */
export async function removeTempSegments(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((name) => /^seg_\d+\.ts\.tmp$/.test(name))
      .map((name) => rm(path.join(dir, name), { force: true })),
  );
}

/**
 * ffprobe: FFPROBE_PATH; else the one next to ffmpeg when ffmpeg is given as
 * a path (`…/ffmpeg-5` → `…/ffprobe-5`, or `…/ffprobe`) and it exists there;
 * else `ffprobe` on the PATH (so a wrapper script as FFMPEG_PATH still works).
 */
export function ffprobePathFor(ffmpegPath: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.FFPROBE_PATH) return env.FFPROBE_PATH;
  if (ffmpegPath.includes('/')) {
    const dir = path.dirname(ffmpegPath);
    const base = path.basename(ffmpegPath);
    const candidates = [base.replace('ffmpeg', 'ffprobe'), 'ffprobe'].filter((c) => c !== base);
    for (const candidate of candidates) {
      if (existsSync(path.join(dir, candidate))) return path.join(dir, candidate);
    }
  }
  return 'ffprobe';
}

/** The height of a source's first video stream; rejects with ffprobe's words when it cannot. */
export function probeHeight(ffprobePath: string, source: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      ffprobePath,
      [
        '-v',
        'error',
        '-select_streams',
        'v:0',
        '-show_entries',
        'stream=height',
        '-of',
        'csv=p=0',
        source,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', (error) => reject(new Error(`cannot run ${ffprobePath}: ${error.message}`)));
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`ffprobe failed (exit ${code}): ${tail(err, 5) || 'no message'}`));
        return;
      }
      const height = Number.parseInt(out.trim().split('\n')[0] ?? '', 10);
      resolve(Number.isFinite(height) && height > 0 ? height : null);
    });
  });
}

/** Source heights by source, probed once each (a failed probe is not kept). */
export class SourceHeights {
  private readonly known = new Map<string, Promise<number | null>>();
  constructor(private readonly ffprobePath: string) {}

  get(source: string): Promise<number | null> {
    let height = this.known.get(source);
    if (height === undefined) {
      height = probeHeight(this.ffprobePath, source);
      this.known.set(source, height);
      height.catch(() => this.known.delete(source));
    }
    return height;
  }
}

/** ffmpeg's `-progress` report, as far as it has come. */
export interface FfmpegProgress {
  /** Microseconds of output written (`out_time_us`). */
  readonly outTimeUs: number;
  /** Frames encoded. */
  readonly frame: number;
  /** Reports received so far. */
  readonly reports: number;
  /** `speed`, e.g. 6.5 for 6.5× realtime; null until known. */
  readonly speed: number | null;
}

export interface FfmpegResult {
  /** Exit code, null when ended by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The last lines ffmpeg wrote on stderr. */
  readonly stderrTail: string;
  readonly progress: FfmpegProgress;
  /** Wall time from start to exit. */
  readonly elapsedMs: number;
}

export interface RunningFfmpeg {
  readonly pid: number | undefined;
  /** Settles when the process has exited (never rejects: a spawn error is exit code null). */
  readonly done: Promise<FfmpegResult>;
  /** The latest progress report. */
  progress(): FfmpegProgress;
  /** SIGTERM to its process group, then SIGKILL after `graceMs`; resolves when it has exited. */
  kill(graceMs?: number): Promise<FfmpegResult>;
}

/** Process groups of the ffmpeg processes running now, for `killAllNow`. */
const liveGroups = new Set<number>();

/**
 * SIGKILLs every ffmpeg this process started and that still runs:
 * synchronous, for `process.on('exit')`, so that a crash of the worker
 * leaves no encoder running on.
 */
export function killAllNow(): void {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  liveGroups.clear();
}

/**
 * Starts ffmpeg in a process group of its own (so a wrapper script and its
 * children are stopped with it), reading `-progress` from stdout and keeping
 * the tail of stderr.
 */
export function startFfmpeg(
  ffmpegPath: string,
  args: readonly string[],
  onProgress?: (progress: FfmpegProgress) => void,
): RunningFfmpeg {
  const started = Date.now();
  let progress: FfmpegProgress = { outTimeUs: 0, frame: 0, reports: 0, speed: null };
  let stderr = '';
  let spawnError: Error | undefined;
  const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const group = child.pid;
  if (group !== undefined) liveGroups.add(group);
  let pending: Partial<Record<string, string>> = {};
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const eq = line.indexOf('=');
      if (eq < 0) continue;
      const key = line.slice(0, eq).trim();
      const value = line.slice(eq + 1).trim();
      pending[key] = value;
      if (key !== 'progress') continue;
      const outTime = Number(pending.out_time_us ?? pending.out_time_ms);
      const frame = Number(pending.frame);
      const speed = Number.parseFloat(pending.speed ?? '');
      progress = {
        outTimeUs: Number.isFinite(outTime)
          ? Math.max(progress.outTimeUs, outTime)
          : progress.outTimeUs,
        frame: Number.isFinite(frame) ? Math.max(progress.frame, frame) : progress.frame,
        reports: progress.reports + 1,
        speed: Number.isFinite(speed) ? speed : progress.speed,
      };
      pending = {};
      onProgress?.(progress);
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    // Only the tail is ever shown: keep a bounded amount.
    stderr = (stderr + chunk).slice(-8_192);
  });
  child.on('error', (error) => {
    spawnError = error;
  });
  const done = new Promise<FfmpegResult>((resolve) => {
    child.on('close', (code, signal) => {
      if (group !== undefined) liveGroups.delete(group);
      resolve({
        code: spawnError ? null : code,
        signal,
        stderrTail: spawnError
          ? `cannot run ${ffmpegPath}: ${spawnError.message}`
          : tail(stderr, 12),
        progress,
        elapsedMs: Date.now() - started,
      });
    });
  });

  function signalGroup(signal: NodeJS.Signals): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // Gone already.
      }
    }
  }

  let killing: Promise<FfmpegResult> | undefined;
  return {
    pid: child.pid,
    done,
    progress: () => progress,
    kill(graceMs = 3_000) {
      killing ??= (async () => {
        signalGroup('SIGTERM');
        const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
        try {
          return await done;
        } finally {
          clearTimeout(timer);
        }
      })();
      return killing;
    },
  };
}

/** A scratch folder for one ffmpeg run's playlists; remove it with `rm(dir, { recursive: true })`. */
export function makeScratchDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'hls-encoder-'));
}

/** The last `lines` non-empty lines of a text, joined by newlines. */
export function tail(text: string, lines: number): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '')
    .slice(-lines)
    .join('\n');
}

export interface EncodeBatchOptions {
  readonly ffmpegPath: string;
  readonly sourcePath: string;
  readonly sourceHeight: number | null;
  readonly videoStartOffset: number;
  readonly startSegment: number;
  readonly endSegment: number;
  readonly segmentDuration: number;
  readonly outputs: ReadonlyArray<{ readonly rendition: Rendition; readonly dir: string }>;
  readonly preset?: string;
  readonly onProgress?: (progress: FfmpegProgress) => void;
}

export type EncodeOutcome =
  | { readonly ok: true; readonly result: FfmpegResult }
  | { readonly ok: false; readonly reason: string; readonly result: FfmpegResult | null };

export interface RunningEncode {
  readonly pid: number | undefined;
  /** Settles once ffmpeg has exited and its scratch files are gone; never rejects. */
  readonly done: Promise<EncodeOutcome>;
  progress(): FfmpegProgress;
  /** Stops ffmpeg (SIGTERM, SIGKILL after graceMs); `done` then says it failed. */
  kill(graceMs?: number): Promise<void>;
}

/**
 * Encodes one batch: makes the rendition folders, runs ffmpeg, and checks
 * that every segment startSegment..endSegment of every rendition exists.
 * A nonzero exit, a signal or a missing segment is a failure whose reason
 * carries the tail of ffmpeg's stderr.
 */
export async function encodeBatch(options: EncodeBatchOptions): Promise<RunningEncode> {
  await Promise.all(options.outputs.map(({ dir }) => mkdir(dir, { recursive: true })));
  const scratchDir = await makeScratchDir();
  const args = buildFfmpegArgs({ ...options, scratchDir });
  const ffmpeg = startFfmpeg(options.ffmpegPath, args, options.onProgress);
  let killed = false;
  const done = (async (): Promise<EncodeOutcome> => {
    const result = await ffmpeg.done;
    await rm(scratchDir, { recursive: true, force: true });
    if (killed || result.code !== 0) {
      await Promise.all(options.outputs.map(({ dir }) => removeTempSegments(dir)));
      const how = killed
        ? 'stopped'
        : result.code === null
          ? result.signal
            ? `killed by ${result.signal}`
            : 'could not start'
          : `exited with code ${result.code}`;
      return {
        ok: false,
        reason: `ffmpeg ${how}${result.stderrTail ? `: ${result.stderrTail}` : ''}`,
        result,
      };
    }
    const missing = (
      await Promise.all(
        options.outputs.map(({ dir }) =>
          missingSegments(dir, options.startSegment, options.endSegment),
        ),
      )
    ).flat();
    if (missing.length > 0) {
      const shown = missing
        .slice(0, 5)
        .map((file) => path.relative(path.dirname(path.dirname(file)), file));
      return {
        ok: false,
        reason: `ffmpeg exited with code 0 but ${missing.length} segment(s) are missing (${shown.join(', ')}${missing.length > 5 ? ', …' : ''})${result.stderrTail ? `: ${result.stderrTail}` : ''}`,
        result,
      };
    }
    return { ok: true, result };
  })();
  return {
    pid: ffmpeg.pid,
    done,
    progress: () => ffmpeg.progress(),
    async kill(graceMs) {
      killed = true;
      await ffmpeg.kill(graceMs);
      await done;
    },
  };
}

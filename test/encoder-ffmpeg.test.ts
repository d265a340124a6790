/**
 * Issue 13, the encoder's ffmpeg: the arguments for one batch (pure), and
 * real ffmpeg making batches of a tiny source: exactly the batch's segments
 * of exactly its renditions, each about one segment long, timestamps that
 * continue from one batch to the next, the last batch cut at the video's
 * end, never upscaled, and failures that say why.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildFfmpegArgs,
  type EncodeBatchOptions,
  encodeBatch,
  ffprobePathFor,
  killAllNow,
  probeHeight,
  SourceHeights,
  startFfmpeg,
  TIMESTAMP_BASE_SECONDS,
} from '../encoder/ffmpeg.js';
import { LADDER, renditionOf } from '../encoder/ladder.js';
import {
  FFMPEG,
  FFPROBE,
  makeSource,
  pgrep,
  probe,
  script,
  segmentNames,
} from './encoder-media.js';
import { eventually } from './fixtures.js';

const [R1080, R720, R480] = LADDER as [
  (typeof LADDER)[number],
  (typeof LADDER)[number],
  (typeof LADDER)[number],
];

/** The values following each occurrence of `flag`. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));
}

describe('buildFfmpegArgs', () => {
  const base = {
    sourcePath: '/videos/film.mp4',
    videoStartOffset: 120,
    startSegment: 20,
    endSegment: 39,
    segmentDuration: 6,
    sourceHeight: 720,
    scratchDir: '/tmp/scratch',
    outputs: [
      { rendition: R1080, dir: '/out/s/1080p' },
      { rendition: R480, dir: '/out/s/480p' },
    ],
  };

  it('seeks to the batch, makes its length, numbers segments from its start, offsets by offset + BASE', () => {
    const args = buildFfmpegArgs(base);
    // -ss before -i (an input seek), one -i.
    expect(args.indexOf('-ss')).toBeLessThan(args.indexOf('-i'));
    expect(valuesOf(args, '-ss')).toEqual(['120']);
    expect(valuesOf(args, '-i')).toEqual(['/videos/film.mp4']);
    // Per output: 20 segments of 6 s, numbered from 20, shifted by 120 + 10.
    expect(valuesOf(args, '-t')).toEqual(['120', '120']);
    expect(valuesOf(args, '-start_number')).toEqual(['20', '20']);
    expect(valuesOf(args, '-output_ts_offset')).toEqual([
      String(120 + TIMESTAMP_BASE_SECONDS),
      String(120 + TIMESTAMP_BASE_SECONDS),
    ]);
    expect(valuesOf(args, '-hls_time')).toEqual(['6', '6']);
    expect(valuesOf(args, '-force_key_frames')).toEqual([
      'expr:gte(t,n_forced*6)',
      'expr:gte(t,n_forced*6)',
    ]);
    expect(valuesOf(args, '-sc_threshold')).toEqual(['0', '0']);
    expect(valuesOf(args, '-hls_flags')).toEqual(['temp_file', 'temp_file']);
    expect(valuesOf(args, '-hls_playlist_type')).toEqual(['vod', 'vod']);
    expect(valuesOf(args, '-muxdelay')).toEqual(['0', '0']);
    expect(valuesOf(args, '-muxpreload')).toEqual(['0', '0']);
    expect(valuesOf(args, '-hls_segment_filename')).toEqual([
      '/out/s/1080p/seg_%d.ts',
      '/out/s/480p/seg_%d.ts',
    ]);
    // The playlists ffmpeg writes go to the scratch folder, not next to the segments.
    expect(args.filter((a) => a.endsWith('.m3u8'))).toEqual([
      '/tmp/scratch/1080p.m3u8',
      '/tmp/scratch/480p.m3u8',
    ]);
    expect(valuesOf(args, '-progress')).toEqual(['pipe:1']);
  });

  it('makes only the renditions asked for, scaled to at most the source height, at their bitrates', () => {
    const args = buildFfmpegArgs(base);
    const graph = valuesOf(args, '-filter_complex')[0] ?? '';
    // Two outputs from one decode; 1080p of a 720p source stays 720, 480p is 480.
    expect(graph).toContain('split=2');
    expect(graph).toContain('scale=-2:720');
    expect(graph).toContain('scale=-2:480');
    expect(graph).not.toContain('scale=-2:1080');
    expect(valuesOf(args, '-map').filter((m) => m.startsWith('[v'))).toEqual(['[v0]', '[v1]']);
    expect(valuesOf(args, '-b:v')).toEqual([`${R1080.videoKbps}k`, `${R480.videoKbps}k`]);
    expect(valuesOf(args, '-b:a')).toEqual([`${R1080.audioKbps}k`, `${R480.audioKbps}k`]);
    expect(valuesOf(args, '-c:v')).toEqual(['libx264', 'libx264']);
    expect(valuesOf(args, '-c:a')).toEqual(['aac', 'aac']);

    const one = buildFfmpegArgs({
      ...base,
      sourceHeight: null,
      outputs: [{ rendition: R720, dir: '/out/s/720p' }],
    });
    expect(valuesOf(one, '-filter_complex')[0]).not.toContain('split');
    expect(valuesOf(one, '-filter_complex')[0]).toContain('scale=-2:720');
    expect(valuesOf(one, '-t')).toEqual(['120']);
  });

  it('refuses a batch of no rendition or of a reversed range', () => {
    expect(() => buildFfmpegArgs({ ...base, outputs: [] })).toThrow(/at least one rendition/);
    expect(() => buildFfmpegArgs({ ...base, startSegment: 5, endSegment: 4 })).toThrow();
  });

  it('finds ffprobe next to ffmpeg, else on the PATH, unless FFPROBE_PATH says', () => {
    expect(ffprobePathFor(FFMPEG, {})).toBe(FFPROBE);
    expect(ffprobePathFor('/no/such/dir/ffmpeg', {})).toBe('ffprobe');
    expect(ffprobePathFor('ffmpeg', {})).toBe('ffprobe');
    expect(ffprobePathFor(FFMPEG, { FFPROBE_PATH: '/x/probe' })).toBe('/x/probe');
  });
});

describe('encodeBatch with real ffmpeg', () => {
  let dir: string;
  let source: string;
  const D = 2;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'encoder-ffmpeg-test-'));
    // 25 s: segments 0..12 of 2 s, the last one 1 s long.
    source = await makeSource(dir, 25);
  }, 60_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  function batch(
    out: string,
    startSegment: number,
    endSegment: number,
    names: Array<'1080p' | '720p' | '480p'>,
    sourcePath = source,
  ): EncodeBatchOptions {
    return {
      ffmpegPath: FFMPEG,
      sourcePath,
      sourceHeight: 240,
      videoStartOffset: startSegment * D,
      startSegment,
      endSegment,
      segmentDuration: D,
      outputs: names.map((name) => ({
        rendition: LADDER.find((r) => r.name === name) ?? renditionOf('Q480P'),
        dir: path.join(out, name),
      })),
    };
  }

  it('two batches: exactly their segments per rendition, ~D each, 240 high, continuous timestamps', async () => {
    const out = path.join(dir, 'two');
    const first = await encodeBatch(batch(out, 0, 4, ['720p', '480p']));
    const one = await first.done;
    expect(one.ok, one.ok ? '' : one.reason).toBe(true);
    const second = await encodeBatch(batch(out, 5, 9, ['720p', '480p']));
    const two = await second.done;
    expect(two.ok, two.ok ? '' : two.reason).toBe(true);

    // Only the renditions asked for; in each, exactly seg_0..seg_9: no playlist, no .tmp.
    expect((await readdir(out)).sort()).toEqual(['480p', '720p']);
    for (const name of ['720p', '480p']) {
      expect((await readdir(path.join(out, name))).sort()).toEqual(segmentNames(0, 9).sort());
    }
    const probed = await Promise.all(
      segmentNames(0, 9).map((seg) => probe(path.join(out, '480p', seg))),
    );
    for (const [n, p] of probed.entries()) {
      // Never upscaled: a 240-line source stays 240 lines at "480p" and "720p".
      expect(p.height).toBe(240);
      expect(p.audio).toBe(true);
      expect(p.videoDuration).toBeGreaterThan(D - 0.15);
      expect(p.videoDuration).toBeLessThan(D + 0.15);
      // Segment n starts at BASE + n × D: batch 2 carries on where batch 1 stopped.
      expect(p.videoStart).toBeCloseTo(TIMESTAMP_BASE_SECONDS + n * D, 1);
    }
    const end4 = (probed[4]?.videoStart ?? 0) + (probed[4]?.videoDuration ?? 0);
    expect(Math.abs((probed[5]?.videoStart ?? 0) - end4)).toBeLessThan(0.05);
    const h720 = await probe(path.join(out, '720p', 'seg_7.ts'));
    expect(h720.height).toBe(240);
    expect(h720.videoStart).toBeCloseTo(TIMESTAMP_BASE_SECONDS + 7 * D, 1);
  });

  it('the last batch is cut at the video end: its last segment is the short remainder', async () => {
    const out = path.join(dir, 'last');
    const running = await encodeBatch(batch(out, 10, 12, ['480p']));
    const outcome = await running.done;
    expect(outcome.ok, outcome.ok ? '' : outcome.reason).toBe(true);
    expect((await readdir(path.join(out, '480p'))).sort()).toEqual(segmentNames(10, 12).sort());
    const last = await probe(path.join(out, '480p', 'seg_12.ts'));
    expect(last.videoDuration).toBeGreaterThan(0.8);
    expect(last.videoDuration).toBeLessThan(1.2);
    expect(last.videoStart).toBeCloseTo(TIMESTAMP_BASE_SECONDS + 12 * D, 1);
  });

  it('a batch reaching past the video end is a failure naming the missing segments', async () => {
    const out = path.join(dir, 'past');
    const running = await encodeBatch(batch(out, 10, 14, ['480p']));
    const outcome = await running.done;
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.reason).toMatch(/2 segment\(s\) are missing.*seg_13\.ts/);
  });

  it('a missing source fails with ffmpeg’s own words and leaves no segment', async () => {
    const out = path.join(dir, 'missing');
    const running = await encodeBatch(
      batch(out, 0, 4, ['480p'], path.join(dir, 'no-such-video.mp4')),
    );
    const outcome = await running.done;
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.reason).toMatch(/exited with code 1/);
      expect(outcome.reason).toMatch(/No such file or directory/);
    }
    expect(await readdir(path.join(out, '480p'))).toEqual([]);
  });

  it('killed, it stops at once and cleans its half-written segment', async () => {
    const out = path.join(dir, 'killed');
    await mkdir(out, { recursive: true });
    const running = await encodeBatch({
      ...batch(out, 0, 12, ['1080p', '720p', '480p']),
      preset: 'medium',
    });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (running.progress().reports > 0) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    await running.kill(2_000);
    const outcome = await running.done;
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.reason).toMatch(/^ffmpeg stopped/);
    for (const name of ['1080p', '720p', '480p']) {
      const left = await readdir(path.join(out, name));
      expect(left.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    }
  });

  it('killAllNow (the worker process exiting) SIGKILLs every ffmpeg still running, wrapper and all', async () => {
    // A wrapper with a child of its own; both carry the arguments on their command lines.
    const wrapper = await script(dir, 'sleepy-ffmpeg', 'sh -c "sleep 600; : $*"\nexit 1');
    const running = startFfmpeg(wrapper, ['killall-marker', dir]);
    await eventually(async () => (await pgrep(`killall-marker ${dir}`)).length === 2);
    killAllNow();
    const result = await running.done;
    expect(result.signal).toBe('SIGKILL');
    // Its child (sleep) went with it: the whole process group.
    await eventually(async () => (await pgrep(`killall-marker ${dir}`)).length === 0);
  });

  it('probes the source height once per source; a missing source is an error', async () => {
    expect(await probeHeight(FFPROBE, source)).toBe(240);
    const heights = new SourceHeights(FFPROBE);
    const a = heights.get(source);
    expect(heights.get(source)).toBe(a);
    expect(await a).toBe(240);
    await expect(probeHeight(FFPROBE, path.join(dir, 'nope.mp4'))).rejects.toThrow(/No such file/);
  });
});

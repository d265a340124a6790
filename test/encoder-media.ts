/**
 * Media for the encoder's tests: tiny sources made with ffmpeg's lavfi test
 * pattern and a tone, ffprobe of what was made, wrapper "ffmpeg"s, and
 * counting processes.
 */
import { execFile } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const FFMPEG = '/usr/bin/ffmpeg';
export const FFPROBE = '/usr/bin/ffprobe';

/**
 * A source of `seconds` seconds: a 25 fps test pattern of `size` with a
 * 440 Hz tone, a key frame a second. The encoder's tests, the pipeline's and
 * the bench's sources are all made here.
 */
export async function makeSource(
  dir: string,
  seconds: number,
  {
    size = '320x240',
    name,
    preset = 'ultrafast',
  }: { size?: string; name?: string; preset?: string } = {},
): Promise<string> {
  const file = path.join(dir, name ?? `source-${size}-${seconds}s.mp4`);
  await run(FFMPEG, [
    '-hide_banner',
    '-loglevel',
    'error',
    '-nostdin',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${size}:rate=25`,
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(seconds),
    '-c:v',
    'libx264',
    '-preset',
    preset,
    '-pix_fmt',
    'yuv420p',
    '-g',
    '25',
    '-c:a',
    'aac',
    file,
  ]);
  return file;
}

export interface Probed {
  /** The video stream's first timestamp and duration, in seconds. */
  videoStart: number;
  videoDuration: number;
  height: number;
  /** Whether it has an audio stream. */
  audio: boolean;
}

/** ffprobe of one segment file. */
export async function probe(file: string): Promise<Probed> {
  const { stdout } = await run(FFPROBE, [
    '-v',
    'error',
    '-show_entries',
    'stream=codec_type,start_time,duration,height',
    '-of',
    'json',
    file,
  ]);
  const streams = (
    JSON.parse(stdout) as {
      streams: Array<{ codec_type: string; start_time: string; duration: string; height?: number }>;
    }
  ).streams;
  const video = streams.find((s) => s.codec_type === 'video');
  if (video === undefined) throw new Error(`${file} has no video`);
  return {
    videoStart: Number(video.start_time),
    videoDuration: Number(video.duration),
    height: video.height ?? 0,
    audio: streams.some((s) => s.codec_type === 'audio'),
  };
}

/** An executable shell script at dir/name. */
export async function script(dir: string, name: string, body: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

/** The ids of processes whose command line contains `pattern` (pgrep -f). */
export async function pgrep(pattern: string): Promise<number[]> {
  try {
    const { stdout } = await run('pgrep', ['-f', pattern]);
    return stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(Number);
  } catch {
    // pgrep exits 1 when nothing matches.
    return [];
  }
}

/** seg_<n>.ts for n in start..end. */
export function segmentNames(start: number, end: number): string[] {
  const names: string[] = [];
  for (let n = start; n <= end; n++) names.push(`seg_${n}.ts`);
  return names;
}

/**
 * The rendition ladder the encoder makes and the segment server lists: one
 * entry per Quality of the contract, highest first. A rendition is never
 * upscaled: a source shorter than its height is encoded at the source's
 * height (see `outputHeight`).
 */
export type Quality = 'Q1080P' | 'Q720P' | 'Q480P';

export interface Rendition {
  /** The contract's enum value. */
  readonly quality: Quality;
  /** How the contract prints it, and the folder name under a session's output directory. */
  readonly name: '1080p' | '720p' | '480p';
  readonly height: number;
  /** Nominal width at 16:9, for the master playlist's RESOLUTION. */
  readonly width: number;
  readonly videoKbps: number;
  readonly audioKbps: number;
}

export const LADDER: readonly Rendition[] = [
  { quality: 'Q1080P', name: '1080p', height: 1080, width: 1920, videoKbps: 5000, audioKbps: 128 },
  { quality: 'Q720P', name: '720p', height: 720, width: 1280, videoKbps: 2800, audioKbps: 128 },
  { quality: 'Q480P', name: '480p', height: 480, width: 854, videoKbps: 1400, audioKbps: 96 },
];

export function renditionOf(quality: Quality): Rendition {
  const r = LADDER.find((x) => x.quality === quality);
  if (r === undefined) throw new Error(`unknown quality ${quality}`);
  return r;
}

export function renditionNamed(name: string): Rendition | undefined {
  return LADDER.find((x) => x.name === name);
}

/** The height to encode a rendition at: its own, or the source's when that is lower (never upscale). Even, as H.264 needs. */
export function outputHeight(rendition: Rendition, sourceHeight: number | null): number {
  const h = sourceHeight === null ? rendition.height : Math.min(rendition.height, sourceHeight);
  return h - (h % 2);
}

/** Peak bits per second of a rendition, for the master playlist's BANDWIDTH. */
export function bandwidth(rendition: Rendition): number {
  return Math.round((rendition.videoKbps + rendition.audioKbps) * 1000 * 1.1);
}

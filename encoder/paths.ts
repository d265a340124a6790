import path from 'node:path';

/**
 * Where a stream session's files live under OUTPUT_DIR:
 * `OUTPUT_DIR/<dir>/<quality name>/seg_<n>.ts`. A stream session id is any
 * string of up to 128 characters, so it is used as the folder's name only
 * when that is safe (letters, digits, `_`, `-`, inner dots, no `..`);
 * any other id becomes `~` and its base64url, which cannot collide with a
 * safe id (a safe id never starts with `~`).
 */
const SAFE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export function sessionDirName(streamSessionId: string): string {
  if (SAFE.test(streamSessionId) && !streamSessionId.includes('..')) return streamSessionId;
  return `~${Buffer.from(streamSessionId, 'utf8').toString('base64url')}`;
}

export function sessionDir(outputDir: string, streamSessionId: string): string {
  return path.join(outputDir, sessionDirName(streamSessionId));
}

export function renditionDir(
  outputDir: string,
  streamSessionId: string,
  qualityName: string,
): string {
  return path.join(sessionDir(outputDir, streamSessionId), qualityName);
}

export function segmentFileName(segment: number): string {
  return `seg_${segment}.ts`;
}

export function segmentPath(
  outputDir: string,
  streamSessionId: string,
  qualityName: string,
  segment: number,
): string {
  return path.join(renditionDir(outputDir, streamSessionId, qualityName), segmentFileName(segment));
}

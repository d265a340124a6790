/**
 * The demo's watch page: hls.js plays a stream session from the segment
 * server, and trackPlayback tells the service where this viewer is.
 *
 * It asks `data-config` (on <body>, relative to the page) for a JSON
 * `WatchConfig`: the playlist, the service's /graphql, the ids and a player
 * token that the demo's backend issued (issueClientToken) for this page.
 * Controls: play/pause, −30 s, +30 s, a seek bar, jump to a time, quality
 * (Auto or a fixed rendition). The status line says which segment was last
 * reported, the quality playing, how much is buffered ahead, and how many
 * times playback stalled; `#status`'s data-* attributes say the same for tests.
 */
import Hls from 'hls.js';
import { type PositionReport, qualityOfHeight, trackPlayback } from './track-playback.js';

export interface WatchConfig {
  /** The master playlist, e.g. http://127.0.0.1:4100/sessions/demo/master.m3u8. */
  readonly playlistUrl: string;
  /** The service's /graphql. */
  readonly graphqlUrl: string;
  readonly streamSessionId: string;
  readonly sessionId: string;
  /** A player token for this stream session and session id; absent with AUTH=off. */
  readonly token?: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const video = $<HTMLVideoElement>('video');
const ui = {
  play: $<HTMLButtonElement>('play'),
  back: $<HTMLButtonElement>('back'),
  forward: $<HTMLButtonElement>('forward'),
  seek: $<HTMLInputElement>('seek'),
  time: $<HTMLSpanElement>('time'),
  jump: $<HTMLFormElement>('jump'),
  jumpTo: $<HTMLInputElement>('jump-to'),
  quality: $<HTMLSelectElement>('quality'),
  muted: $<HTMLInputElement>('muted'),
  status: $<HTMLParagraphElement>('status'),
  error: $<HTMLParagraphElement>('error'),
};

let stalls = 0;
let started = false;
let reported: PositionReport | null = null;
let reports = 0;

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '0:00';
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "1:30", "90" or "1:02:03" in seconds; NaN when it is none of them. */
function parseTime(text: string): number {
  const parts = text.trim().split(':');
  if (parts.some((p) => !/^\d+(\.\d+)?$/.test(p))) return Number.NaN;
  return parts.reduce((total, part) => total * 60 + Number(part), 0);
}

function bufferedAhead(): number {
  const t = video.currentTime;
  for (let i = 0; i < video.buffered.length; i++) {
    if (video.buffered.start(i) <= t + 0.1 && t < video.buffered.end(i)) {
      return video.buffered.end(i) - t;
    }
  }
  return 0;
}

function showError(message: string): void {
  ui.error.hidden = false;
  ui.error.textContent = message;
}

async function main(): Promise<void> {
  const source = new URL(document.body.dataset.config ?? 'watch/session', location.href);
  const response = await fetch(source, { method: 'POST' });
  if (!response.ok) throw new Error(`${source} answered ${response.status}`);
  const config = (await response.json()) as WatchConfig;

  if (!Hls.isSupported()) throw new Error('This browser cannot play HLS through Media Source.');
  const hls = new Hls({
    // The segment server holds a request for a segment not made yet until the
    // encoder writes it (up to 20 s, then 503 Retry-After): wait for it.
    fragLoadPolicy: {
      default: {
        maxTimeToFirstByteMs: 45_000,
        maxLoadTimeMs: 120_000,
        timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: 8, retryDelayMs: 1_000, maxRetryDelayMs: 8_000 },
      },
    },
  });
  const tracking = trackPlayback(hls, video, {
    url: config.graphqlUrl,
    streamSessionId: config.streamSessionId,
    sessionId: config.sessionId,
    token: config.token,
    onError: showError,
    onReport: (report) => {
      reported = report;
      reports++;
      render();
    },
  });
  // For a console, and the end-to-end tests.
  Object.assign(window, { watch: { hls, tracking, config } });

  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    void video.play().catch(() => {
      // Autoplay refused (sound, no gesture): the Play button does it.
    });
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (data.fatal) showError(`Playback failed: ${data.type} ${data.details}`);
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, render);
  hls.on(Hls.Events.FRAG_CHANGED, render);
  hls.loadSource(config.playlistUrl);
  hls.attachMedia(video);

  ui.play.addEventListener('click', () => {
    if (video.paused) void video.play();
    else video.pause();
  });
  const seekBy = (delta: number) => {
    const end = Number.isFinite(video.duration) ? video.duration - 0.5 : Number.POSITIVE_INFINITY;
    video.currentTime = Math.max(0, Math.min(end, video.currentTime + delta));
  };
  ui.back.addEventListener('click', () => seekBy(-30));
  ui.forward.addEventListener('click', () => seekBy(30));
  let dragging = false;
  ui.seek.addEventListener('input', () => {
    dragging = true;
  });
  ui.seek.addEventListener('change', () => {
    dragging = false;
    video.currentTime = Number(ui.seek.value);
  });
  ui.jump.addEventListener('submit', (event) => {
    event.preventDefault();
    const target = parseTime(ui.jumpTo.value);
    if (Number.isNaN(target))
      return showError(`Not a time: '${ui.jumpTo.value}' (m:ss or seconds)`);
    video.currentTime = target;
  });
  ui.quality.addEventListener('change', () => {
    const height = Number(ui.quality.value);
    // -1: Auto (hls.js picks by bandwidth); else the level of that height. nextLevel,
    // not currentLevel: the switch comes at the next fragment boundary and what is
    // buffered plays on meanwhile, while the encoder makes the new rendition (a
    // currentLevel switch flushes the buffer and waits for it: a stall).
    hls.nextLevel =
      height < 0
        ? -1
        : hls.levels.findIndex(
            (level) => qualityOfHeight(level.height) === qualityOfHeight(height),
          );
  });
  ui.muted.addEventListener('change', () => {
    video.muted = ui.muted.checked;
  });

  video.addEventListener('playing', () => {
    started = true;
    render();
  });
  video.addEventListener('waiting', () => {
    // A wait at the playhead after playback began, not one a seek caused.
    if (started && !video.seeking) stalls++;
    render();
  });
  for (const type of ['play', 'pause', 'seeked', 'progress', 'durationchange']) {
    video.addEventListener(type, render);
  }
  video.addEventListener('timeupdate', () => {
    if (!dragging) ui.seek.value = String(video.currentTime);
    render();
  });
}

function render(): void {
  ui.play.textContent = video.paused ? 'Play' : 'Pause';
  const duration = Number.isFinite(video.duration) ? video.duration : 0;
  ui.seek.max = String(duration);
  ui.time.textContent = `${clock(video.currentTime)} / ${clock(duration)}`;
  const hls = (window as unknown as { watch?: { hls: Hls } }).watch?.hls;
  const level = hls === undefined ? undefined : hls.levels[hls.currentLevel];
  const playing = level === undefined ? '–' : `${level.height}p`;
  const auto = hls?.autoLevelEnabled ? ' (auto)' : '';
  const ahead = bufferedAhead();
  const state = video.ended
    ? 'ended'
    : video.paused
      ? 'paused'
      : video.readyState < 3
        ? 'waiting'
        : 'playing';
  ui.status.dataset.state = state;
  ui.status.dataset.segment = reported === null ? '' : String(reported.segmentNumber);
  ui.status.dataset.quality = reported?.quality ?? '';
  ui.status.dataset.stalls = String(stalls);
  ui.status.dataset.reports = String(reports);
  ui.status.dataset.time = video.currentTime.toFixed(2);
  ui.status.dataset.ahead = ahead.toFixed(1);
  ui.status.textContent = [
    state,
    reported === null
      ? 'nothing reported yet'
      : `segment ${reported.segmentNumber} reported (${reported.quality.slice(1).toLowerCase()})`,
    `quality ${playing}${auto}`,
    `buffered ahead ${ahead.toFixed(1)} s`,
    `stalls ${stalls}`,
  ].join(' · ');
}

main().catch((error: Error) => {
  ui.status.dataset.state = 'failed';
  showError(error.message);
  console.error(error);
});

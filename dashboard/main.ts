/**
 * The operator dashboard: every live stream session as a row with its
 * batches (every one in flight, and the completed ones not released), the
 * segments covered in each rendition, its clients, and the video's end when
 * known, kept live over one graphql-ws connection (streamSessionUpdated for
 * states, streamSessionEnded for endings). Plain DOM and SVG, no framework:
 * a row is redrawn at most once per animation frame, and only when it changed.
 */
import { type Client, createClient } from 'graphql-ws';

type Quality = 'Q1080P' | 'Q720P' | 'Q480P';

interface BatchState {
  batchNumber: number;
  startSegment: number;
  endSegment: number;
  isComplete: boolean;
  isStalled: boolean;
  qualities: Quality[];
  isLastBatch: boolean;
}

/** Segments of one rendition made or being made. */
interface CoveredRange {
  quality: Quality;
  startSegment: number;
  endSegment: number;
}

interface ClientPosition {
  sessionId: string;
  segmentNumber: number;
  quality: Quality;
  lastUpdated: string;
}

interface StreamSession {
  id: string;
  videoSourcePath: string;
  batchSize: number;
  threshold: number;
  startSegment: number;
  /** Null when the video's length is unknown. */
  lastSegment: number | null;
  /** The batch claimed most recently. */
  currentBatch: BatchState | null;
  /** Every batch in flight, and the completed ones not released, by batchNumber. */
  batches: BatchState[];
  /** By quality, then startSegment. */
  coverage: CoveredRange[];
  clientPositions: ClientPosition[];
  furthestSegment: number | null;
  slowestSegment: number | null;
  shouldGenerateNextBatch: boolean;
  createdAt: string;
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

const BATCH = 'batchNumber startSegment endSegment isComplete isStalled qualities isLastBatch';
const UPDATED = `subscription DashboardSessions {
  streamSessionUpdated {
    id videoSourcePath batchSize threshold startSegment lastSegment
    furthestSegment slowestSegment shouldGenerateNextBatch createdAt
    currentBatch { ${BATCH} }
    batches { ${BATCH} }
    coverage { quality startSegment endSegment }
    clientPositions { sessionId segmentNumber quality lastUpdated }
  }
}`;
const ENDED = 'subscription DashboardEndings { streamSessionEnded { id endedAt } }';
const LIVE_IDS =
  'query DashboardLiveIds($offset: Int) { streamSessions(limit: 1000, offset: $offset) { id } }';

const TOKEN_KEY = 'hls-batch-coordinator.token';
/** Ended sessions remembered, to drop a state that was sent before its end but arrives after. */
const ENDINGS_KEPT = 1_000;
/** Client markers stacked on one segment before the rest are counted ("+3"). */
const STACK = 3;
const QUALITY_NAME: Record<Quality, string> = { Q1080P: '1080p', Q720P: '720p', Q480P: '480p' };
/** One coverage lane per rendition, in this order. */
const QUALITIES: readonly Quality[] = ['Q1080P', 'Q720P', 'Q480P'];

const SVG_NS = 'http://www.w3.org/2000/svg';
// The track's vertical layout, in pixels, top down: the clients, the batches
// (one lane, or more when batches of different renditions overlap), one
// coverage lane per rendition, the segment numbers.
const MARKER_Y = 30;
const TRACK_TOP = 40;
const TRACK_HEIGHT = 18;
const LANE_GAP = 3;
const COVER_HEIGHT = 8;
const TICK_ROOM = 20;
/** Room on the left for the coverage lanes' names, and on the right for the last tick. */
const LEFT = 40;
const MARGIN = 12;

// ---- state

interface Row {
  session: StreamSession;
  /** When its latest state arrived (to tell it from states before a reconnect). */
  seenAt: number;
  element: HTMLElement;
  title: HTMLElement;
  path: HTMLElement;
  badge: HTMLElement;
  due: HTMLElement;
  facts: HTMLElement;
  svg: SVGSVGElement;
}

const rows = new Map<string, Row>();
const endedAt = new Map<string, number>();
const dirty = new Set<string>();
/** Rows scrolled far out of view: not redrawn until they come back. */
const offscreen = new Set<string>();
/** Offscreen rows whose session changed meanwhile. */
const stale = new Set<string>();
const visibility = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      const id = (entry.target as HTMLElement).dataset.session as string;
      if (entry.isIntersecting) {
        offscreen.delete(id);
        if (stale.delete(id)) markDirty(id);
      } else {
        offscreen.add(id);
      }
    }
  },
  { rootMargin: '400px 0px' },
);
let frame = 0;
let client: Client | null = null;

// ---- the page

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  signIn: $<HTMLFormElement>('sign-in'),
  token: $<HTMLInputElement>('token'),
  signInError: $('sign-in-error'),
  signOut: $<HTMLButtonElement>('sign-out'),
  status: $('status'),
  sessions: $('sessions'),
  empty: $('empty'),
  counts: {
    sessions: $('count-sessions'),
    clients: $('count-clients'),
    generating: $('count-generating'),
    stalled: $('count-stalled'),
  },
};

function setStatus(
  state: 'signed-out' | 'connecting' | 'live' | 'reconnecting' | 'error',
  text?: string,
) {
  ui.status.dataset.state = state;
  ui.status.textContent = text ?? state.replace('-', ' ');
}

function showSignIn(error = '') {
  ui.signIn.hidden = false;
  ui.signOut.hidden = true;
  ui.signInError.textContent = error;
  setStatus('signed-out');
  ui.token.focus();
}

ui.signIn.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (token === '') return;
  sessionStorage.setItem(TOKEN_KEY, token);
  ui.token.value = '';
  connect(token);
});

ui.signOut.addEventListener('click', () => signOut());

window.addEventListener('resize', () => {
  for (const id of rows.keys()) markDirty(id);
});

// ---- the connection

/** Opens the connection with the token, and keeps both subscriptions running. */
function connect(token: string) {
  ui.signIn.hidden = true;
  ui.signOut.hidden = false;
  let connections = 0;
  const url = new URL('graphql', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const c = createClient({
    url: url.href,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: Number.POSITIVE_INFINITY,
    // A refused token stays refused: ask for another instead of retrying.
    shouldRetry: (event) => !isRefusal(event),
    retryWait: (retries) =>
      new Promise((resolve) =>
        setTimeout(resolve, Math.min(10_000, 500 * 2 ** retries) * (0.5 + Math.random() / 2)),
      ),
    on: {
      connecting: () => setStatus(connections === 0 ? 'connecting' : 'reconnecting'),
      connected: () => {
        setStatus('live');
        renderCounts();
        // After a reconnect the states replay, but endings missed meanwhile do not.
        if (connections++ > 0) void dropEndedSince(c, Date.now());
      },
      closed: (event) => {
        if (client !== c) return;
        if (isRefusal(event)) signOut('The server refused this token.');
        else setStatus('reconnecting');
      },
    },
  });
  client = c;
  // Endings first, so that none after the first states is missed.
  keepSubscribed(c, ENDED, (data) => {
    const ended = data.streamSessionEnded as { id: string; endedAt: string };
    sessionEnded(ended.id, Date.parse(ended.endedAt));
  });
  keepSubscribed(c, UPDATED, (data) => sessionUpdated(data.streamSessionUpdated as StreamSession));
}

/**
 * Subscribes, and subscribes again (after a pause) when the server completes
 * it, as on a restart, or ends it with an error that is not about the token.
 */
function keepSubscribed(c: Client, query: string, next: (data: Record<string, unknown>) => void) {
  const again = () => {
    if (client === c) setTimeout(() => client === c && keepSubscribed(c, query, next), 1_000);
  };
  c.subscribe<Record<string, unknown>>(
    { query },
    {
      next: (result) => {
        // An error in one event: the subscription goes on.
        if (result.errors?.length) refusedOr(result.errors as GraphQLError[], () => {});
        else if (result.data) next(result.data);
      },
      error: (error) => {
        // A refused connection was handled in `closed`.
        if (client !== c || isRefusal(error)) return;
        refusedOr(Array.isArray(error) ? (error as GraphQLError[]) : [], again);
      },
      complete: again,
    },
  );
}

/** Signs out when the errors say the token is not good enough; else shows them and goes on. */
function refusedOr(errors: GraphQLError[], otherwise: () => void) {
  const [error] = errors;
  const code = error?.extensions?.code;
  if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') {
    signOut(`The server refused this token: ${error?.message}`);
    return;
  }
  setStatus('error', error?.message ?? 'the subscription failed; retrying');
  otherwise();
}

function isRefusal(event: unknown): boolean {
  return (event as { code?: number } | null)?.code === 4403;
}

function signOut(error = '') {
  const c = client;
  client = null;
  // Disposing a client whose connection was refused rejects with that refusal: known already.
  Promise.resolve(c?.dispose()).catch(() => {});
  sessionStorage.removeItem(TOKEN_KEY);
  for (const id of [...rows.keys()]) removeRow(id);
  endedAt.clear();
  renderCounts();
  showSignIn(error);
}

/** Runs one query over the connection. */
function request<T>(c: Client, query: string, variables: Record<string, unknown>): Promise<T> {
  return new Promise((resolve, reject) => {
    let data: T | undefined;
    c.subscribe<T>(
      { query, variables },
      {
        next: (result) => {
          if (result.errors?.length) reject(result.errors);
          else data = result.data as T;
        },
        error: reject,
        complete: () => (data === undefined ? reject(new Error('no result')) : resolve(data)),
      },
    );
  });
}

/** Removes the rows of sessions that ended while the connection was down. */
async function dropEndedSince(c: Client, reconnectedAt: number) {
  const live = new Set<string>();
  try {
    for (let offset = 0; ; offset += 1_000) {
      const page = await request<{ streamSessions: Array<{ id: string }> }>(c, LIVE_IDS, {
        offset,
      });
      for (const { id } of page.streamSessions) live.add(id);
      if (page.streamSessions.length < 1_000) break;
    }
  } catch {
    return; // the next reconnect tries again
  }
  for (const [id, row] of rows) {
    // A state that arrived since the reconnect is newer than the list.
    if (!live.has(id) && row.seenAt < reconnectedAt) removeRow(id);
  }
  renderCounts();
}

// ---- what the server says

function sessionUpdated(session: StreamSession) {
  const ended = endedAt.get(session.id);
  // A state of a session that has ended since (a new one with its id is created later).
  if (ended !== undefined && Date.parse(session.createdAt) < ended) return;
  let row = rows.get(session.id);
  if (row === undefined) {
    row = createRow(session);
    rows.set(session.id, row);
    visibility.observe(row.element);
    ui.sessions.append(row.element);
  }
  row.session = session;
  row.seenAt = Date.now();
  markDirty(session.id);
}

function sessionEnded(id: string, at: number) {
  endedAt.set(id, at);
  if (endedAt.size > ENDINGS_KEPT) endedAt.delete(endedAt.keys().next().value as string);
  removeRow(id);
  renderCounts();
}

function removeRow(id: string) {
  const row = rows.get(id);
  if (row === undefined) return;
  row.element.remove();
  rows.delete(id);
  dirty.delete(id);
  visibility.unobserve(row.element);
  offscreen.delete(id);
  stale.delete(id);
}

// ---- drawing

function markDirty(id: string) {
  dirty.add(id);
  if (frame === 0) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  for (const id of dirty) {
    const row = rows.get(id);
    if (row === undefined) continue;
    if (offscreen.has(id)) stale.add(id);
    else renderRow(row);
  }
  dirty.clear();
  renderCounts();
}

function renderCounts() {
  let clients = 0;
  let generating = 0;
  let stalled = 0;
  for (const { session } of rows.values()) {
    clients += session.clientPositions.length;
    for (const batch of session.batches) {
      const status = batchStatus(batch);
      if (status === 'generating') generating++;
      else if (status === 'stalled') stalled++;
    }
  }
  ui.counts.sessions.textContent = String(rows.size);
  ui.counts.clients.textContent = String(clients);
  ui.counts.generating.textContent = String(generating);
  ui.counts.stalled.textContent = String(stalled);
  ui.counts.stalled.classList.toggle('alert', stalled > 0);
  ui.empty.hidden = rows.size > 0 || client === null;
}

function batchStatus(batch: BatchState | null): 'none' | 'generating' | 'complete' | 'stalled' {
  if (batch === null) return 'none';
  if (batch.isComplete) return 'complete';
  return batch.isStalled ? 'stalled' : 'generating';
}

function createRow(session: StreamSession): Row {
  const element = html('section', { class: 'session', 'data-session': session.id });
  const header = html('header');
  const title = html('h2');
  const path = html('span', { class: 'path' });
  const badge = html('span', { class: 'badge' });
  const due = html('span', { class: 'badge due' });
  due.textContent = 'next batch due';
  const facts = html('span', { class: 'facts' });
  header.append(title, path, badge, due, facts);
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'track');
  svg.setAttribute('role', 'img');
  element.append(header, svg);
  return { session, seenAt: 0, element, title, path, badge, due, facts, svg };
}

function renderRow(row: Row) {
  const s = row.session;
  const batch = s.currentBatch;
  const status = batchStatus(batch);
  row.title.textContent = s.id;
  row.path.textContent = s.videoSourcePath;
  row.path.title = s.videoSourcePath;
  row.badge.dataset.status = status;
  row.badge.title = 'the batch claimed most recently';
  row.badge.textContent =
    batch === null
      ? 'no batch yet'
      : `batch ${batch.batchNumber} · ${batch.startSegment}–${batch.endSegment} · ${status}`;
  row.due.hidden = !s.shouldGenerateNextBatch;
  row.facts.replaceChildren(
    fact('clients', s.clientPositions.length),
    fact('in flight', s.batches.filter((b) => !b.isComplete).length),
    fact('furthest', s.furthestSegment ?? '–'),
    fact('slowest', s.slowestSegment ?? '–'),
    fact('last segment', s.lastSegment ?? '–'),
  );
  drawTrack(row);
}

function fact(label: string, value: string | number): HTMLElement {
  const span = html('span');
  const b = html('b');
  b.textContent = String(value);
  span.append(`${label} `, b);
  return span;
}

/**
 * On one axis of segments: the clients by quality, the batches (generating,
 * complete or stalled), one lane per rendition with its covered ranges and
 * the threshold mark before each range's end, the furthest and slowest
 * clients, and the video's end when known.
 */
function drawTrack(row: Row) {
  const s = row.session;
  const width = Math.max(200, row.svg.clientWidth || 800);
  const [lo, hi] = extent(s);
  const x = (segment: number) => LEFT + ((segment - lo) / (hi - lo)) * (width - LEFT - MARGIN);
  const parts: SVGElement[] = [];

  // Batches of different renditions may overlap: each goes in the first lane where it fits.
  const laneEnds: number[] = [];
  const placed = [...s.batches]
    .sort((a, b) => a.startSegment - b.startSegment)
    .map((b) => {
      let lane = laneEnds.findIndex((end) => end < b.startSegment);
      if (lane === -1) lane = laneEnds.push(b.endSegment) - 1;
      else laneEnds[lane] = b.endSegment;
      return { b, lane };
    });
  const coverTop = TRACK_TOP + Math.max(1, laneEnds.length) * (TRACK_HEIGHT + LANE_GAP) + 2;
  const laneY = (q: Quality) => coverTop + QUALITIES.indexOf(q) * (COVER_HEIGHT + LANE_GAP);
  const bottom = coverTop + QUALITIES.length * (COVER_HEIGHT + LANE_GAP);
  const height = bottom + TICK_ROOM;

  parts.push(svg('line', { class: 'axis', x1: LEFT, x2: width, y1: bottom, y2: bottom }));
  const step = niceStep((hi - lo) / Math.max(2, Math.floor(width / 90)));
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
    const tick = svg('text', { class: 'tick', x: x(t), y: bottom + 15, 'text-anchor': 'middle' });
    tick.textContent = String(t);
    parts.push(
      svg('line', { class: 'axis', x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4 }),
      tick,
    );
  }

  for (const { b, lane } of placed) {
    const status = batchStatus(b);
    const left = x(b.startSegment);
    const w = Math.max(2, x(b.endSegment + 1) - left);
    const y = TRACK_TOP + lane * (TRACK_HEIGHT + LANE_GAP);
    const renditions = b.qualities.map((q) => QUALITY_NAME[q]).join(', ');
    const rect = svg('rect', {
      class: `batch ${status}`,
      x: left,
      y,
      width: w,
      height: TRACK_HEIGHT,
      rx: 3,
      'data-batch': b.batchNumber,
      'data-status': status,
      'data-qualities': renditions,
    });
    rect.append(
      titled(
        `batch ${b.batchNumber}: segments ${b.startSegment}–${b.endSegment}${b.isLastBatch ? ' (the last)' : ''}, ${renditions}, ${status}`,
      ),
    );
    parts.push(rect);
    if (w > 28) {
      const label = svg('text', { class: 'batch-label', x: left + 5, y: y + 13 });
      label.textContent = `#${b.batchNumber}`;
      parts.push(label);
    }
  }

  for (const q of QUALITIES) {
    const y = laneY(q);
    const name = svg('text', {
      class: 'lane-label',
      x: LEFT - 6,
      y: y + COVER_HEIGHT,
      'text-anchor': 'end',
    });
    name.textContent = QUALITY_NAME[q];
    parts.push(
      svg('rect', {
        class: 'lane',
        x: LEFT,
        y,
        width: width - LEFT - MARGIN,
        height: COVER_HEIGHT,
      }),
      name,
    );
  }
  for (const r of s.coverage) {
    const y = laneY(r.quality);
    const name = QUALITY_NAME[r.quality];
    const left = x(r.startSegment);
    const range = svg('rect', {
      class: `range q${name}`,
      x: left,
      y,
      width: Math.max(2, x(r.endSegment + 1) - left),
      height: COVER_HEIGHT,
      rx: 2,
      'data-quality': name,
      'data-start': r.startSegment,
      'data-end': r.endSegment,
    });
    range.append(titled(`${name}: segments ${r.startSegment}–${r.endSegment} made or being made`));
    parts.push(range);
    // A client from this segment of the range on needs the batch after it (unless that one is on its way).
    if (r.endSegment !== s.lastSegment) {
      const from = Math.max(r.startSegment, r.endSegment - s.threshold);
      const mark = svg('line', {
        class: 'threshold',
        x1: x(from),
        x2: x(from),
        y1: y - 2,
        y2: y + COVER_HEIGHT + 2,
        'data-quality': name,
        'data-segment': from,
      });
      mark.append(titled(`${name}: a client at ${from}–${r.endSegment} needs the next batch`));
      parts.push(mark);
    }
  }

  if (s.lastSegment !== null && s.lastSegment + 1 <= hi) {
    const ex = x(s.lastSegment + 1);
    parts.push(svg('line', { class: 'last-segment', x1: ex, x2: ex, y1: 8, y2: bottom }));
    const label = svg('text', { class: 'last-label', x: ex - 3, y: 10, 'text-anchor': 'end' });
    label.textContent = `end · last segment ${s.lastSegment}`;
    parts.push(label);
  }
  for (const [which, segment] of [
    ['slowest', s.slowestSegment],
    ['furthest', s.furthestSegment],
  ] as const) {
    if (segment === null || (which === 'slowest' && segment === s.furthestSegment)) continue;
    const lx = x(segment + 0.5);
    parts.push(svg('line', { class: which, x1: lx, x2: lx, y1: MARKER_Y + 6, y2: bottom }));
  }

  // Clients on one segment stack upwards; past STACK they are counted.
  const onSegment = new Map<number, ClientPosition[]>();
  for (const c of s.clientPositions) {
    const list = onSegment.get(c.segmentNumber);
    if (list === undefined) onSegment.set(c.segmentNumber, [c]);
    else list.push(c);
  }
  for (const [segment, clients] of onSegment) {
    const cx = x(segment + 0.5);
    clients.slice(0, STACK).forEach((c, i) => {
      const marker = svg('circle', {
        class: `client q${QUALITY_NAME[c.quality]}`,
        cx,
        cy: MARKER_Y - i * 9,
        r: 5,
        'data-client': c.sessionId,
        'data-segment': c.segmentNumber,
        'data-quality': QUALITY_NAME[c.quality],
      });
      marker.append(
        titled(`${c.sessionId}: segment ${c.segmentNumber}, ${QUALITY_NAME[c.quality]}`),
      );
      parts.push(marker);
    });
    if (clients.length > STACK) {
      const more = svg('text', { class: 'more', x: cx + 7, y: MARKER_Y - (STACK - 1) * 9 + 3 });
      more.textContent = `+${clients.length - STACK}`;
      parts.push(more);
    }
  }

  row.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  row.svg.setAttribute('height', String(height));
  row.svg.setAttribute(
    'aria-label',
    `${s.id}: ${s.clientPositions.length} clients, furthest segment ${s.furthestSegment ?? 'none'}, ${s.batches.length} batches, ${s.coverage.length} covered ranges, ${row.badge.textContent}`,
  );
  row.svg.replaceChildren(...parts);
}

/**
 * The segments to show: the batches and covered ranges (or, before any,
 * where batch 0 will be) and every client, at least a batch wide, with a
 * little room; out to the video's end when that at most doubles the span,
 * and never past it.
 */
function extent(s: StreamSession): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const r of [...s.batches, ...s.coverage]) {
    lo = Math.min(lo, r.startSegment);
    hi = Math.max(hi, r.endSegment + 1);
  }
  if (lo === Number.POSITIVE_INFINITY) {
    lo = s.startSegment;
    hi = s.startSegment + s.batchSize;
  }
  for (const c of s.clientPositions) {
    lo = Math.min(lo, c.segmentNumber);
    hi = Math.max(hi, c.segmentNumber + 1);
  }
  hi = Math.max(hi, lo + s.batchSize);
  if (s.lastSegment !== null) {
    const end = s.lastSegment + 1;
    if (end - lo <= 2 * (hi - lo) || end < hi) hi = Math.max(lo + 1, end);
  }
  const room = Math.max(1, Math.round((hi - lo) * 0.03));
  return [Math.max(0, lo - room), hi + room];
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function html(tag: string, attributes: Record<string, string> = {}): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
}

function svg(tag: string, attributes: Record<string, string | number>): SVGElement {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

function titled(text: string): SVGElement {
  const title = document.createElementNS(SVG_NS, 'title');
  title.textContent = text;
  return title;
}

// ---- start

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved === null) showSignIn();
else connect(saved);

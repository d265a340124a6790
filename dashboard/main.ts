/**
 * The operator dashboard: every live stream session as a row with its
 * batches, its clients, the furthest segment and the threshold line, kept
 * live over one graphql-ws connection (streamSessionUpdated for states,
 * streamSessionEnded for endings). Plain DOM and SVG, no framework: a row
 * is redrawn at most once per animation frame, and only when it changed.
 */
import { type Client, createClient } from 'graphql-ws';

type Quality = 'Q1080P' | 'Q720P' | 'Q480P';

interface BatchState {
  batchNumber: number;
  startSegment: number;
  endSegment: number;
  isComplete: boolean;
  isStalled: boolean;
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
  currentBatch: BatchState | null;
  clientPositions: ClientPosition[];
  furthestSegment: number | null;
  shouldGenerateNextBatch: boolean;
  createdAt: string;
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

const UPDATED = `subscription DashboardSessions {
  streamSessionUpdated {
    id videoSourcePath batchSize threshold startSegment furthestSegment
    shouldGenerateNextBatch createdAt
    currentBatch { batchNumber startSegment endSegment isComplete isStalled }
    clientPositions { sessionId segmentNumber quality lastUpdated }
  }
}`;
const ENDED = 'subscription DashboardEndings { streamSessionEnded { id endedAt } }';
const LIVE_IDS =
  'query DashboardLiveIds($offset: Int) { streamSessions(limit: 1000, offset: $offset) { id } }';

const TOKEN_KEY = 'hls-batch-coordinator.token';
/** Batches of a session kept to draw behind the current one. */
const HISTORY_LENGTH = 6;
/** Ended sessions remembered, to drop a state that was sent before its end but arrives after. */
const ENDINGS_KEPT = 1_000;
/** Client markers stacked on one segment before the rest are counted ("+3"). */
const STACK = 3;
const QUALITY_NAME: Record<Quality, string> = { Q1080P: '1080p', Q720P: '720p', Q480P: '480p' };

const SVG_NS = 'http://www.w3.org/2000/svg';
// The track's vertical layout, in pixels.
const MARKER_Y = 30;
const TRACK_TOP = 40;
const TRACK_HEIGHT = 18;
const TICK_Y = 78;
const MARGIN = 12;

// ---- state

interface Row {
  session: StreamSession;
  /** The batches seen for this session, oldest first, the current one last. */
  batches: BatchState[];
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
  if (session.currentBatch !== null) remember(row.batches, session.currentBatch);
  markDirty(session.id);
}

function sessionEnded(id: string, at: number) {
  endedAt.set(id, at);
  if (endedAt.size > ENDINGS_KEPT) endedAt.delete(endedAt.keys().next().value as string);
  removeRow(id);
  renderCounts();
}

/** Keeps the batch (replacing an earlier state of it) and the few before it. */
function remember(batches: BatchState[], batch: BatchState) {
  const last = batches.at(-1);
  if (last?.batchNumber === batch.batchNumber) {
    batches[batches.length - 1] = batch;
  } else if (last === undefined || batch.batchNumber > last.batchNumber) {
    batches.push(batch);
  } else {
    // Numbers start again only for a new session with the same id: its history is its own.
    batches.length = 0;
    batches.push(batch);
  }
  if (batches.length > HISTORY_LENGTH) batches.splice(0, batches.length - HISTORY_LENGTH);
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
    const status = batchStatus(session.currentBatch);
    if (status === 'generating') generating++;
    else if (status === 'stalled') stalled++;
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
  return { session, batches: [], seenAt: 0, element, title, path, badge, due, facts, svg };
}

function renderRow(row: Row) {
  const s = row.session;
  const batch = s.currentBatch;
  const status = batchStatus(batch);
  row.title.textContent = s.id;
  row.path.textContent = s.videoSourcePath;
  row.path.title = s.videoSourcePath;
  row.badge.dataset.status = status;
  row.badge.textContent =
    batch === null
      ? 'no batch yet'
      : `batch ${batch.batchNumber} · ${batch.startSegment}–${batch.endSegment} · ${status}`;
  row.due.hidden = !s.shouldGenerateNextBatch;
  const threshold = batch === null ? null : batch.endSegment - s.threshold;
  row.facts.replaceChildren(
    fact('clients', s.clientPositions.length),
    fact('furthest', s.furthestSegment ?? '–'),
    fact('threshold', threshold ?? '–'),
  );
  drawTrack(row, threshold);
}

function fact(label: string, value: string | number): HTMLElement {
  const span = html('span');
  const b = html('b');
  b.textContent = String(value);
  span.append(`${label} `, b);
  return span;
}

/** The segments axis, the batches seen, the threshold and furthest lines, and the clients. */
function drawTrack(row: Row, threshold: number | null) {
  const s = row.session;
  const width = Math.max(200, row.svg.clientWidth || 800);
  const [lo, hi] = extent(s, row.batches);
  // Room at both ends for the first and last tick labels.
  const x = (segment: number) => MARGIN + ((segment - lo) / (hi - lo)) * (width - 2 * MARGIN);
  const parts: SVGElement[] = [];

  parts.push(
    svg('line', {
      class: 'axis',
      x1: 0,
      x2: width,
      y1: TRACK_TOP + TRACK_HEIGHT / 2,
      y2: TRACK_TOP + TRACK_HEIGHT / 2,
    }),
  );
  const step = niceStep((hi - lo) / Math.max(2, Math.floor(width / 90)));
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
    const tick = svg('text', { class: 'tick', x: x(t), y: TICK_Y, 'text-anchor': 'middle' });
    tick.textContent = String(t);
    parts.push(
      svg('line', {
        class: 'axis',
        x1: x(t),
        x2: x(t),
        y1: TRACK_TOP + TRACK_HEIGHT,
        y2: TRACK_TOP + TRACK_HEIGHT + 4,
      }),
      tick,
    );
  }

  const current = s.currentBatch;
  for (const b of row.batches) {
    const isCurrent = current !== null && b.batchNumber === current.batchNumber;
    const status = isCurrent ? batchStatus(b) : 'earlier';
    const left = x(b.startSegment);
    const w = Math.max(2, x(b.endSegment + 1) - left);
    const rect = svg('rect', {
      class: `batch ${status}`,
      x: left,
      y: TRACK_TOP,
      width: w,
      height: TRACK_HEIGHT,
      rx: 3,
      'data-batch': b.batchNumber,
      'data-status': status,
    });
    rect.append(
      titled(`batch ${b.batchNumber}: segments ${b.startSegment}–${b.endSegment} (${status})`),
    );
    parts.push(rect);
    if (w > 28) {
      const label = svg('text', { class: 'batch-label', x: left + 5, y: TRACK_TOP + 13 });
      label.textContent = `#${b.batchNumber}`;
      parts.push(label);
    }
  }

  if (threshold !== null) {
    const tx = x(threshold);
    parts.push(
      svg('line', { class: 'threshold', x1: tx, x2: tx, y1: 8, y2: TRACK_TOP + TRACK_HEIGHT + 2 }),
    );
    const label = svg('text', { class: 'threshold-label', x: tx - 3, y: 10, 'text-anchor': 'end' });
    label.textContent = `threshold ${threshold}`;
    parts.push(label);
  }
  if (s.furthestSegment !== null) {
    const fx = x(s.furthestSegment + 0.5);
    parts.push(
      svg('line', {
        class: 'furthest',
        x1: fx,
        x2: fx,
        y1: MARKER_Y + 6,
        y2: TRACK_TOP + TRACK_HEIGHT + 2,
      }),
    );
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

  row.svg.setAttribute('viewBox', `0 0 ${width} 84`);
  row.svg.setAttribute(
    'aria-label',
    `${s.id}: ${s.clientPositions.length} clients, furthest segment ${s.furthestSegment ?? 'none'}, ${row.badge.textContent}`,
  );
  row.svg.replaceChildren(...parts);
}

/**
 * The segments to show: the batches seen (or, before any, where batch 0
 * will be) and every client, at least a batch wide, with a little room.
 */
function extent(s: StreamSession, batches: BatchState[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const b of batches) {
    lo = Math.min(lo, b.startSegment);
    hi = Math.max(hi, b.endSegment + 1);
  }
  if (batches.length === 0) {
    lo = s.startSegment;
    hi = s.startSegment + s.batchSize;
  }
  for (const c of s.clientPositions) {
    lo = Math.min(lo, c.segmentNumber);
    hi = Math.max(hi, c.segmentNumber + 1);
  }
  hi = Math.max(hi, lo + s.batchSize);
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

/**
 * Starting ours (servers/ours.ts) in a child process and, in the default
 * configuration, minting a player token for every client of the layout; and
 * the check that no update was refused.
 */
import { mintPlayerTokens } from '../load/tokens.js';
import { playersOf } from './operation.js';
import { BENCH_DIR, type Child, startChild } from './processes.js';
import { settings } from './settings.js';

export interface Ours {
  readonly child: Child;
  readonly url: string;
  readonly wsUrl: string;
  /** 'on': the default configuration; 'off': BENCH_AUTH=off. */
  readonly auth: 'on' | 'off';
  /** The encoder token (access control on), for the encoder worker. */
  readonly encoderToken: string | undefined;
  readonly adminToken: string | undefined;
  /** `Authorization` values by client number of the layout (access control on). */
  readonly tokens: readonly string[] | undefined;
}

/** Starts ours on core 0 with `env` (BENCH_AUTH, BENCH_SRC, …) and mints the players' tokens. */
export async function startOurs(env: Record<string, string> = {}): Promise<Ours> {
  const { child, ready } = await startChild(`${BENCH_DIR}servers/ours.ts`, { core: 0, env });
  const wsUrl = ready.wsUrl as string;
  const auth = ready.auth === 'off' ? 'off' : 'on';
  const adminToken = ready.adminToken as string | undefined;
  let tokens: string[] | undefined;
  if (auth === 'on') {
    if (adminToken === undefined) throw new Error('ours gave no admin token to mint player tokens');
    tokens = await mintPlayerTokens(
      wsUrl,
      adminToken,
      playersOf(settings.sessions, settings.clientsPerSession),
    );
  }
  return {
    child,
    url: ready.url as string,
    wsUrl,
    auth,
    adminToken,
    encoderToken: ready.encoderToken as string | undefined,
    tokens,
  };
}

/** updateClientPosition's outcomes so far (ok, or an error code such as RATE_LIMITED). */
export function positionOutcomes(ours: Ours): Promise<Record<string, number>> {
  return ours.child.ask<Record<string, number>>({ type: 'positionOutcomes' });
}

/**
 * Throws unless every updateClientPosition between the two readings was
 * answered `ok`: a refused update (RATE_LIMITED above all) means the load
 * broke the layout's promise, and its figures would be the refusal's speed.
 */
export function assertNoRefusals(
  before: Record<string, number>,
  after: Record<string, number>,
  what: string,
): void {
  const refused = Object.entries(after)
    .filter(([outcome]) => outcome !== 'ok')
    .map(([outcome, count]) => [outcome, count - (before[outcome] ?? 0)] as const)
    .filter(([, count]) => count > 0);
  if (refused.length > 0) {
    throw new Error(
      `${what}: updates refused by the server (${refused.map(([o, c]) => `${c} ${o}`).join(', ')}); the load must stay under the per-player rate limit`,
    );
  }
}

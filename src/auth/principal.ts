import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';

/**
 * Who is calling. Resolved once per HTTP request or WebSocket connection,
 * from its bearer token; the schema's auth scopes decide what it may do.
 */
export type Principal =
  | { readonly role: 'admin' }
  | { readonly role: 'encoder' }
  /** METRICS_TOKEN: may read /metrics, and nothing of the GraphQL API. */
  | { readonly role: 'scraper' }
  | {
      readonly role: 'player';

      readonly streamSessionId: string;
      readonly sessionId: string;
      /** Milliseconds since the epoch. */
      readonly expiresAt: number;
    }
  /** No token: may do nothing (UNAUTHENTICATED). */
  | { readonly role: 'anonymous' }
  /** A token that is malformed, expired or wrongly signed (UNAUTHENTICATED). */
  | { readonly role: 'invalid'; readonly reason: string };

/** Player tokens kept verified at once (a few MB at most). */
const VERIFIED_PLAYER_TOKENS = 10_000;

// Principals without fields of their own are shared: they are never changed.
const ADMIN: Principal = Object.freeze({ role: 'admin' });
const ENCODER: Principal = Object.freeze({ role: 'encoder' });
const SCRAPER: Principal = Object.freeze({ role: 'scraper' });
const ANONYMOUS: Principal = Object.freeze({ role: 'anonymous' });

export interface AuthSettings {
  /** False with AUTH=off: every caller is admin. */
  readonly enabled: boolean;
  readonly adminToken: string;
  readonly encoderToken: string;
  /** The scraper's token for /metrics (METRICS_TOKEN); null: none, only the admin's. */
  readonly metricsToken: string | null;
  /** HMAC key for player tokens (HS256). */
  readonly clientTokenSecret: string;
}

const ISSUER = 'hls-batch-coordinator';
const AUDIENCE = 'player';

/** Makes a secret for a setting left unset: 32 random bytes, URL-safe. */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Turns `Authorization` header values (or graphql-ws connectionParams) into
 * a Principal. Never throws: a bad token is the 'invalid' principal.
 */
export class Authenticator {
  private readonly admin: Buffer;
  private readonly encoder: Buffer;
  private readonly scraper: Buffer | null;
  private readonly key: Uint8Array;

  constructor(private readonly settings: AuthSettings) {
    this.admin = digest(settings.adminToken);
    this.encoder = digest(settings.encoderToken);
    this.scraper = settings.metricsToken === null ? null : digest(settings.metricsToken);
    this.key = new TextEncoder().encode(settings.clientTokenSecret);
  }

  /** Player tokens whose signature was checked, until they expire. */
  private readonly players = new LRUCache<string, Principal>({
    max: VERIFIED_PLAYER_TOKENS,
    ttlAutopurge: false,
  });

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /**
   * The principal for an `Authorization` value such as `Bearer abc`; a
   * promise only while a player token's signature is checked.
   */
  authenticate(authorization: string | null | undefined): Principal | Promise<Principal> {
    if (!this.settings.enabled) return ADMIN;
    if (authorization == null || authorization === '') return ANONYMOUS;
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    if (match === null) return { role: 'invalid', reason: 'expected "Bearer <token>"' };
    const token = match[1] as string;
    // Digests have one length, so timingSafeEqual compares in constant time
    // whatever the length of what was sent.
    const sent = digest(token);
    if (timingSafeEqual(sent, this.admin)) return ADMIN;
    if (timingSafeEqual(sent, this.encoder)) return ENCODER;
    if (this.scraper !== null && timingSafeEqual(sent, this.scraper)) return SCRAPER;
    // A player sends the same token every few seconds: its signature is checked
    // once, and the principal kept until the token expires.
    const known = this.players.get(token);
    if (known !== undefined) return known;
    return this.verifyPlayer(token).then((principal) => {
      const ttl = principal.role === 'player' ? principal.expiresAt - Date.now() : 0;
      // (A ttl of 0 would keep it for ever.)
      if (ttl > 0) this.players.set(token, principal, { ttl });
      return principal;
    });
  }

  /** A signed token for one player of one stream session, valid for `ttlSeconds`. */
  async issueClientToken(
    streamSessionId: string,
    sessionId: string,
    ttlSeconds: number,
  ): Promise<string> {
    return new SignJWT({ ssid: streamSessionId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(sessionId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(this.key);
  }

  private async verifyPlayer(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'exp'],
      });
      if (typeof payload.ssid !== 'string' || typeof payload.sub !== 'string') {
        return { role: 'invalid', reason: 'the token names no stream session or client' };
      }
      return {
        role: 'player',
        streamSessionId: payload.ssid,
        sessionId: payload.sub,
        expiresAt: (payload.exp as number) * 1000,
      };
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired)
        return { role: 'invalid', reason: 'the token has expired' };
      return { role: 'invalid', reason: 'the token is not valid' };
    }
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** A stable, non-secret key for counting a principal's connections. */
export function principalKey(principal: Principal, authorization: string | null | undefined) {
  switch (principal.role) {
    case 'player':
      return `player:${principal.streamSessionId}\u0000${principal.sessionId}`;
    case 'admin':
    case 'encoder':
      // Several admin or encoder tokens share a role; count per token digest.
      return `${principal.role}:${digest(authorization ?? '')
        .toString('base64url')
        .slice(0, 16)}`;
    default:
      return principal.role;
  }
}

import SchemaBuilder from '@pothos/core';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import ValidationPlugin from '@pothos/plugin-validation';
import type { Authenticator, Principal } from '../auth/principal.js';
import type { PositionRateLimiter } from '../auth/rate-limit.js';
import type { BatchCoordinator } from '../state/coordinator.js';
import { ForbiddenError, InvalidInputError, UnauthenticatedError } from '../state/errors.js';
import type { Instant } from '../state/model.js';

/** What every resolver gets, the same over HTTP, SSE and WebSocket. */
export interface Context {
  readonly coordinator: BatchCoordinator;
  /** Who is calling, from the request's or the connection's bearer token. */
  readonly principal: Principal;
  readonly authenticator: Authenticator;
  readonly positionRateLimiter: PositionRateLimiter;
}

/** A player scope: the stream session, and the client if the field is about one. */
export interface PlayerScope {
  readonly streamSessionId: string;
  readonly sessionId?: string;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  AuthScopes: {
    admin: boolean;
    encoder: boolean;
    player: PlayerScope;
  };
  Scalars: {
    DateTime: { Input: Date; Output: Date | Instant };
    ID: { Input: string; Output: string };
  };
}>({
  // Scope auth first: a caller who may not call a field learns nothing of its validation.
  plugins: [ScopeAuthPlugin, ValidationPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: ({ principal }) => scopesOf(principal),
    unauthorizedError: (_parent, { principal }, info) => {
      if (principal.role === 'anonymous') {
        return new UnauthenticatedError(
          'Authentication required: send "Authorization: Bearer <token>".',
        );
      }
      if (principal.role === 'invalid') {
        return new UnauthenticatedError(`Invalid credentials: ${principal.reason}.`);
      }
      if (principal.role === 'player' && principal.expiresAt <= Date.now()) {
        return new UnauthenticatedError('Invalid credentials: the token has expired.');
      }
      return new ForbiddenError(`The ${principal.role} role may not use ${info.fieldName} here.`);
    },
  },
  validation: {
    // A failed rule becomes a BAD_USER_INPUT error naming the field at fault and its value.
    validationError: (result, args) =>
      new InvalidInputError(
        result.issues
          .map((issue) => {
            const path = (issue.path ?? []).map((p) => (typeof p === 'object' ? p.key : p));
            return `${path.join('.') || 'input'} ${issue.message} (got ${describe(valueAt(args, path))}).`;
          })
          .join(' '),
      ),
  },
});

type Scopes = {
  admin: boolean;
  encoder: boolean;
  player: (scope: PlayerScope) => boolean;
};

// One principal serves many operations (a WebSocket connection's, a player's
// cached token, the shared admin): its scopes are made once.
const scopes = new WeakMap<Principal, Scopes>();

function scopesOf(principal: Principal): Scopes {
  let made = scopes.get(principal);
  if (made === undefined) {
    made = {
      admin: principal.role === 'admin',
      encoder: principal.role === 'encoder',
      player: (scope) =>
        principal.role === 'player' &&
        principal.expiresAt > Date.now() &&
        principal.streamSessionId === scope.streamSessionId &&
        (scope.sessionId === undefined || principal.sessionId === scope.sessionId),
    };
    scopes.set(principal, made);
  }
  return made;
}

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  }
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

import { message } from './messages.js';

/**
 * Errors the domain throws on purpose. Each carries the contract's error code;
 * the GraphQL layer turns them into errors with `extensions.code` in one place.
 * Any other error is unexpected and stays masked.
 */

/** The codes of the errors the domain throws on purpose. */
export const DOMAIN_ERROR_CODES = [
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'RATE_LIMITED',
] as const;

export type DomainErrorCode = (typeof DOMAIN_ERROR_CODES)[number];

/**
 * Every code the contract lets an error carry in `extensions.code`: the
 * domain's, plus graphql-js' own for a request that does not parse or
 * validate. (The server adds INTERNAL_SERVER_ERROR for what it masks.)
 */
export const ERROR_CODES = [
  ...DOMAIN_ERROR_CODES,
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
] as const;

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends DomainError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

export class ConflictError extends DomainError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

export class InvalidInputError extends DomainError {
  constructor(message: string) {
    super('BAD_USER_INPUT', message);
  }
}

/** No credentials, or credentials that are malformed, expired or wrongly signed. */
export class UnauthenticatedError extends DomainError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
  }
}

/** Valid credentials that do not allow this operation. */
export class ForbiddenError extends DomainError {
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

/** Too many requests from one caller; nothing was changed. */
export class RateLimitedError extends DomainError {
  constructor(message: string) {
    super('RATE_LIMITED', message);
  }
}

/**
 * Ends a subscription whose reader fell too far behind: the server limits
 * what it holds for one reader, hence RATE_LIMITED.
 */
export class SlowSubscriberError extends DomainError {
  constructor(limit: number) {
    super(
      'RATE_LIMITED',
      `Subscription closed: its reader left more than ${limit} events unread. Read faster or resubscribe.`,
    );
  }
}

export const streamSessionNotFound = (id: string) =>
  new NotFoundError(message('streamSessionNotFound', { id }));

import { createGraphQLError, maskError as maskUnexpected } from 'graphql-yoga';
import { DomainError } from '../state/errors.js';

interface Located {
  nodes?: unknown;
  path?: readonly (string | number)[];
  originalError?: unknown;
}

/**
 * The one place where the domain's errors become GraphQL errors: a
 * DomainError keeps its message and gains the contract's `extensions.code`;
 * anything else is unexpected and yoga masks it ("Unexpected error.").
 */
export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = rootCause(error);
  if (original instanceof DomainError) {
    const located = error as Located;
    return createGraphQLError(original.message, {
      // biome-ignore lint/suspicious/noExplicitAny: the AST nodes of whichever graphql copy threw.
      nodes: located.nodes as any,
      path: located.path,
      extensions: { code: original.code },
    });
  }
  return maskUnexpected(error, message, isDev);
}

/**
 * The error under any GraphQLErrors wrapped around it. Executors wrap more
 * than once, and the wrappers may come from another copy of graphql-js
 * (ESM and CJS builds), so it follows `originalError` rather than instanceof.
 */
function rootCause(error: unknown): unknown {
  let cause = error;
  for (let depth = 0; depth < 10; depth++) {
    const next = (cause as Located | null)?.originalError;
    if (next === undefined || next === null || next === cause) break;
    cause = next;
  }
  return cause;
}

/** True for the errors the domain throws on purpose: answers to clients, not faults to log. */
export function isExpectedError(error: unknown): boolean {
  return rootCause(error) instanceof DomainError;
}

import {
  handleStreamOrSingleExecutionResult,
  type OnExecuteDoneEventPayload,
  type OnExecuteDoneHookResultOnNextHook,
  type Plugin,
} from '@envelop/core';
import { createGraphQLError, maskError as maskUnexpected } from 'graphql-yoga';
import { DomainError, ERROR_CODES } from '../state/errors.js';

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
  if ((original as Error | null)?.name === 'StoreUnavailableError') {
    // Not a fault of the request, nor a secret: say it, so clients retry.
    return createGraphQLError((original as Error).message, {
      extensions: { code: 'INTERNAL_SERVER_ERROR', http: { status: 503 } },
    });
  }
  return withContractCode(maskUnexpected(error, message, isDev));
}

/** The codes the contract promises, plus yoga's own for masked unexpected errors. */
const CONTRACT_CODES: ReadonlySet<string> = new Set([...ERROR_CODES, 'INTERNAL_SERVER_ERROR']);

interface WithExtensions extends Error {
  extensions?: { code?: unknown; http?: { status?: number } };
}

/**
 * yoga's and its plugins' own request errors (CSRF, batching, bad bodies)
 * carry no code, or BAD_REQUEST; the contract promises one of its codes.
 */
function withContractCode(error: Error): Error {
  const { extensions } = error as WithExtensions;
  const status = extensions?.http?.status;
  const code = extensions?.code;
  let contractCode: string | undefined;
  if (code === undefined && status === 403) contractCode = 'FORBIDDEN';
  else if (code === undefined && status !== undefined && status >= 400 && status < 500) {
    contractCode = 'BAD_USER_INPUT';
  } else if (typeof code === 'string' && !CONTRACT_CODES.has(code)) {
    // BAD_REQUEST, OPERATION_RESOLUTION_FAILURE and the like: the request is at fault.
    contractCode = 'BAD_USER_INPUT';
  }
  if (contractCode === undefined) return error;
  return createGraphQLError(error.message, {
    extensions: { ...extensions, code: contractCode },
  });
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

/**
 * True for errors that answer a client (the domain's own, and request
 * errors with a 4xx status such as CSRF or batching limits): not faults to log.
 */
export function isExpectedError(error: unknown): boolean {
  if (rootCause(error) instanceof DomainError) return true;
  const status = (error as WithExtensions | null)?.extensions?.http?.status;
  return status !== undefined && status >= 400 && status < 500;
}

/**
 * The contract code a client is given for an error of an executed
 * operation, as maskError and useContractErrorCodes make it (for metrics and
 * logs, which may see the error before either has run).
 */
export function contractCode(error: unknown): string {
  const original = rootCause(error);
  if (original instanceof DomainError) return original.code;
  const located = error as (WithExtensions & Located) | null;
  const code = located?.extensions?.code;
  if (typeof code === 'string') return CONTRACT_CODES.has(code) ? code : 'BAD_USER_INPUT';
  // graphql-js' own error with no path and no cause is about the request
  // (variables that do not coerce); anything else is unexpected.
  const aboutTheRequest =
    located?.name === 'GraphQLError' && located.path === undefined && original === error;
  return aboutTheRequest ? 'BAD_USER_INPUT' : 'INTERNAL_SERVER_ERROR';
}

type ErrorList = ReadonlyArray<Error & { path?: unknown; extensions?: Record<string, unknown> }>;

/** Request-level errors (bad variables) get BAD_USER_INPUT when graphql-js gave them no code. */
function coded(errors: ErrorList | undefined): ErrorList | undefined {
  if (errors === undefined || errors.every((e) => e.extensions?.code !== undefined))
    return undefined;
  return errors.map((e) =>
    e.extensions?.code !== undefined || e.path !== undefined
      ? e
      : createGraphQLError(e.message, {
          extensions: { ...e.extensions, code: 'BAD_USER_INPUT' },
        }),
  );
}

/**
 * Syntax errors get GRAPHQL_PARSE_FAILED whatever the transport, and
 * graphql-js reports variables that do not coerce (a null for a non-null
 * input field, a string for an Int) without a code; the contract promises
 * one. Runs on every transport, since it is an envelop plugin.
 */
export function useContractErrorCodes(): Plugin {
  const onDone: OnExecuteDoneHookResultOnNextHook<object> = ({ result, setResult }) => {
    const errors = coded(result.errors as ErrorList | undefined);
    if (errors !== undefined) setResult({ ...result, errors } as typeof result);
  };
  // The same hooks for every operation: nothing is made per request.
  const onParseDone = ({ result }: { result: unknown }) => {
    if (result instanceof Error && result.name === 'GraphQLError') {
      const error = result as Error & { extensions: Record<string, unknown> };
      error.extensions.code ??= 'GRAPHQL_PARSE_FAILED';
    }
  };
  const executeHooks = {
    onExecuteDone: (payload: OnExecuteDoneEventPayload<object>) =>
      handleStreamOrSingleExecutionResult(payload, onDone),
  };
  const subscribeHooks = {
    onSubscribeResult: (payload: OnExecuteDoneEventPayload<object>) =>
      handleStreamOrSingleExecutionResult(payload, onDone),
  };
  return {
    // yoga codes a syntax error only for HTTP requests, and caches the error
    // object for every transport: code it here, where all transports parse.
    onParse: () => onParseDone,
    onExecute: () => executeHooks,
    onSubscribe: () => subscribeHooks,
  };
}

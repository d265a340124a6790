/**
 * Typed GraphQL for the example clients, with gql.tada: each document's
 * result and variables are types inferred from `schema.graphql` (through
 * `graphql-env.d.ts`, made by `npm run examples:types`), so `tsc` refuses
 * a field the server does not have or a variable of the wrong type, and
 * `gql.tada check` (in `npm run check:types`) validates every document.
 *
 * Copy this file and `graphql-env.d.ts` into your own client; the transport
 * is plain fetch (HTTP) and graphql-ws (WebSocket), nothing else. It also
 * holds the small helpers the examples share.
 */
import { initGraphQLTada, type ResultOf, type TadaDocumentNode, type VariablesOf } from 'gql.tada';
import { print } from 'graphql';
import type { Client } from 'graphql-ws';
import type { introspection } from './graphql-env.js';

export const graphql = initGraphQLTada<{
  introspection: introspection;
  // Instants travel as RFC 3339 strings.
  scalars: { DateTime: string; ID: string };
}>();

export type { ResultOf, VariablesOf };

/** Any typed document: its result and variables types come with it. */
// biome-ignore lint/suspicious/noExplicitAny: the constraint of every typed document.
export type Document = TadaDocumentNode<any, any>;

/** The server answered with errors; `code` is the first one's `extensions.code`. */
export class OperationError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    /** The HTTP status, for a request over HTTP. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'OperationError';
  }
}

interface GraphQLErrorJson {
  message: string;
  extensions?: { code?: string };
}

/** The query text of a document, printed once per document. */
const texts = new WeakMap<Document, string>();
export function queryText(document: Document): string {
  let text = texts.get(document);
  if (text === undefined) {
    text = print(document);
    texts.set(document, text);
  }
  return text;
}

/**
 * Runs one query or mutation over HTTP with a bearer token. OperationError
 * when the server answers with errors; a TypeError (from fetch) when it
 * cannot be reached.
 */
export async function httpRequest<D extends Document>(
  url: string,
  token: string | undefined,
  document: D,
  variables: VariablesOf<D>,
  signal?: AbortSignal,
): Promise<ResultOf<D>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query: queryText(document), variables }),
    signal,
  });
  let body: { data?: ResultOf<D> | null; errors?: GraphQLErrorJson[] };
  try {
    body = (await response.json()) as typeof body;
  } catch {
    throw new OperationError(
      `HTTP ${response.status} without a GraphQL answer`,
      undefined,
      response.status,
    );
  }
  const error = body.errors?.[0];
  if (error !== undefined || body.data == null) {
    throw new OperationError(error?.message ?? 'no data', error?.extensions?.code, response.status);
  }
  return body.data;
}

/** Runs one query or mutation over a graphql-ws client; OperationError when it fails. */
export function wsRequest<D extends Document>(
  client: Client,
  document: D,
  variables: VariablesOf<D>,
): Promise<ResultOf<D>> {
  return new Promise((resolve, reject) => {
    let result: ResultOf<D> | undefined;
    client.subscribe<ResultOf<D>>(
      { query: queryText(document), variables: variables as Record<string, unknown> },
      {
        next: (value) => {
          const error = value.errors?.[0];
          if (error !== undefined || value.data == null) {
            reject(new OperationError(error?.message ?? 'no data', codeOf(error)));
          } else {
            result = value.data;
          }
        },
        error: (error) => reject(asOperationError(error)),
        complete: () => (result === undefined ? reject(new Error('no result')) : resolve(result)),
      },
    );
  });
}

/**
 * What graphql-ws reports as a subscription's error: the server's errors
 * (an array), or why the socket closed (a CloseEvent), or an Error.
 */
export function asOperationError(error: unknown): Error {
  if (Array.isArray(error)) {
    const first = error[0] as GraphQLErrorJson | undefined;
    return new OperationError(first?.message ?? 'failed', codeOf(first));
  }
  if (error instanceof Error) return error;
  const closed = error as { code?: number; reason?: string } | null;
  if (typeof closed?.code === 'number') {
    return new Error(`the socket closed: ${closed.code} ${closed.reason ?? ''}`.trim());
  }
  return new Error(String(error));
}

function codeOf(error: unknown): string | undefined {
  const code = (error as GraphQLErrorJson | undefined)?.extensions?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Waits `ms`; resolves false at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

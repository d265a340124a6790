import { performance } from 'node:perf_hooks';
import type { ExecutionResult, Plugin } from '@envelop/core';
import type { DocumentNode } from 'graphql';
import { contractCode } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics, OperationSeries } from './metrics.js';
import { operationOf } from './operation-of.js';

/** Where an operation's start is kept, on its own execution arguments. */
const STARTED = Symbol('operationStarted');

interface Measured {
  [STARTED]?: number;
  document: DocumentNode;
  operationName?: string | null;
}

/** An operation of a document, and its series. */
interface Described {
  readonly operationName: string | null;
  readonly name: string;
  readonly series: OperationSeries;
}

/**
 * An envelop plugin that counts and times every operation, whatever its
 * transport (HTTP, SSE and WebSocket all run through yoga's envelop), and
 * logs failed ones at debug with their contract code.
 *
 * The hot path: players send updateClientPosition thousands of times a
 * second. Per operation it reads the clock twice, finds the operation's
 * series by its parsed document (yoga and the WebSocket path keep parsed
 * documents, so this is one WeakMap lookup), and makes one counter
 * increment and one histogram observation on children bound once. The
 * hooks objects are made once, here, not per operation.
 *
 * An operation is named by its type and first root field (`mutation`,
 * `updateClientPosition`), never by the client's operationName, so the
 * number of series stays bounded by the schema. The time is execution's
 * (resolvers and store), not parsing or sending; a subscription's is its
 * setup. Requests refused before execution (syntax, validation) are not
 * counted.
 */
export function useOperationMetrics(metrics: Metrics, logger: Logger): Plugin {
  const byDocument = new WeakMap<DocumentNode, Described>();

  function describe(args: Measured): Described {
    const operationName = args.operationName ?? null;
    const cached = byDocument.get(args.document);
    if (cached !== undefined && cached.operationName === operationName) return cached;
    const operation = operationOf(args.document, operationName);
    const first = operation?.selectionSet.selections[0];
    const name = first?.kind === 'Field' ? first.name.value : 'unknown';
    const described = {
      operationName,
      name,
      series: metrics.operation(operation?.operation ?? 'unknown', name),
    };
    // A document of one operation is the common case; several are looked up each time.
    if (args.document.definitions.length === 1) byDocument.set(args.document, described);
    return described;
  }

  function finish(args: Measured, result: unknown): void {
    const started = args[STARTED];
    if (started === undefined) return;
    const seconds = (performance.now() - started) / 1_000;
    const { name, series } = describe(args);
    const errors = (result as ExecutionResult).errors;
    if (errors === undefined || errors.length === 0) {
      series.ok.count.inc();
      series.ok.duration.observe(seconds);
      return;
    }
    const code = contractCode(errors[0]);
    const failed = series.failed(code);
    failed.count.inc();
    failed.duration.observe(seconds);
    // Answers to a client, not faults of ours: a flood of them must not flood
    // the log at the default level. Unexpected errors are logged by yoga's logger.
    logger.debug({ operation: name, code, message: errors[0]?.message }, 'operation failed');
  }

  // Made once: a subscription's result is its stream (no errors) or its refusal.
  const afterExecute = {
    onExecuteDone: ({ args, result }: { args: unknown; result: unknown }) =>
      finish(args as Measured, result),
  };
  const afterSubscribe = {
    onSubscribeResult: ({ args, result }: { args: unknown; result: unknown }) =>
      finish(args as Measured, result),
  };
  return {
    onExecute({ args }) {
      (args as Measured)[STARTED] = performance.now();
      return afterExecute;
    },
    onSubscribe({ args }) {
      (args as Measured)[STARTED] = performance.now();
      return afterSubscribe;
    },
  };
}

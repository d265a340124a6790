import { useGraphQlJit } from '@envelop/graphql-jit';
import type { ExecutionArgs, GraphQLError } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { operationOf } from './operation-of.js';

/**
 * yoga plugins that run queries and mutations compiled by graphql-jit (each
 * query compiled once, kept with its parsed document), over HTTP and
 * WebSocket alike. Subscriptions keep graphql-js: graphql-jit 0.8 hands a
 * subscription's resolver the operation's variables instead of the field's
 * arguments. Variables that do not fit their types are BAD_USER_INPUT, as
 * graphql-js' executor makes them (graphql-jit gives them no code).
 */
export function jitPlugins(): Plugin[] {
  const compiled = ({ document, operationName }: ExecutionArgs) => {
    const kind = operationOf(document, operationName)?.operation;
    return kind !== undefined && kind !== 'subscription';
  };
  return [
    useGraphQlJit({}, { enableIf: compiled }) as Plugin,
    {
      // After graphql-jit's own onExecute, and inside execution, so the errors get
      // their code before yoga masks errors it does not know (graphql-jit's come
      // from the other build of graphql-js, CommonJS).
      onExecute({ args, executeFn, setExecuteFn }) {
        if (!compiled(args)) return;
        // A result that is ready stays synchronous: no promise per operation.
        setExecuteFn((executionArgs) => {
          const result = executeFn(executionArgs);
          return typeof (result as { then?: unknown }).then === 'function'
            ? (result as Promise<typeof result>).then(withCodes)
            : withCodes(result);
        });
      },
    },
  ];
}

/** Errors and no data: the request was refused before anything ran; its errors get a code. */
function withCodes<R extends object>(result: R): R {
  if (Symbol.asyncIterator in result || 'data' in result) return result;
  const { errors } = result as { errors?: readonly GraphQLError[] };
  if (!errors) return result;
  return { ...result, errors: errors.map(asBadUserInput) };
}

function asBadUserInput(error: GraphQLError): GraphQLError {
  if (error.extensions?.code !== undefined) return error;
  // yoga's own factory, so that yoga knows the error for one of its own.
  return createGraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { ...error.extensions, code: 'BAD_USER_INPUT' },
  });
}

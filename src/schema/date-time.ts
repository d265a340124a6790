import { GraphQLError, Kind } from 'graphql';
import { builder } from './builder.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function parse(value: unknown): Date {
  const date = typeof value === 'string' && RFC3339.test(value) ? new Date(value) : null;
  if (date === null || Number.isNaN(date.getTime())) {
    throw new GraphQLError(`DateTime must be an RFC 3339 string, got ${JSON.stringify(value)}.`);
  }
  return date;
}

export const DateTime = builder.scalarType('DateTime', {
  description: 'An instant, as an RFC 3339 string in UTC, e.g. 2026-11-24T01:50:07.123Z.',
  serialize: (value) => new Date(value).toISOString(),
  parseValue: parse,
  parseLiteral: (ast) => parse(ast.kind === Kind.STRING ? ast.value : undefined),
});

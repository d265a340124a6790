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

// Every position reply carries a DateTime, and most fall in the same second as
// the one before: the date and time up to the second are formatted once per second.
let second = Number.NaN;
let upToSecond = '';

/** `new Date(ms).toISOString()`, for the milliseconds since the epoch of years 1970 to 9999. */
export function toRfc3339(ms: number): string {
  const millis = ms % 1000;
  if (ms < 0 || ms >= 253402300800000 || !Number.isInteger(ms)) return new Date(ms).toISOString();
  if (ms - millis !== second) {
    second = ms - millis;
    upToSecond = new Date(second).toISOString().slice(0, 20);
  }
  return millis >= 100
    ? `${upToSecond}${millis}Z`
    : millis >= 10
      ? `${upToSecond}0${millis}Z`
      : `${upToSecond}00${millis}Z`;
}

export const DateTime = builder.scalarType('DateTime', {
  description: 'An instant, as an RFC 3339 string in UTC, e.g. 2026-11-24T01:50:07.123Z.',
  serialize: (value) => toRfc3339(typeof value === 'number' ? value : value.getTime()),
  parseValue: parse,
  parseLiteral: (ast) => parse(ast.kind === Kind.STRING ? ast.value : undefined),
});

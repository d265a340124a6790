import SchemaBuilder from '@pothos/core';
import ValidationPlugin from '@pothos/plugin-validation';
import type { BatchCoordinator } from '../state/coordinator.js';
import { InvalidInputError } from '../state/errors.js';
import type { Instant } from '../state/model.js';

/** What every resolver gets, the same over HTTP, SSE and WebSocket. */
export interface Context {
  readonly coordinator: BatchCoordinator;
}

export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | Instant };
    ID: { Input: string; Output: string };
  };
}>({
  plugins: [ValidationPlugin],
  defaultFieldNullability: false,
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

import { getOperationAST, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { operationOf } from '../src/server/operation-of.js';

describe('operationOf', () => {
  const documents = [
    '{ a }',
    'query Q { a }',
    'mutation M { a }',
    'subscription S { a }',
    'fragment F on T { a }',
    'query A { a } query B { b }',
    'query A { a } fragment F on T { a }',
  ];
  const names = [undefined, null, 'Q', 'M', 'S', 'A', 'B', 'nope'];

  it('answers as getOperationAST does, for every document and operation name', () => {
    for (const text of documents) {
      const document = parse(text);
      for (const name of names) {
        expect(operationOf(document, name), `${text} / ${name}`).toBe(
          getOperationAST(document, name) ?? null,
        );
      }
    }
  });
});

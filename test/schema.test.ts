/**
 * The committed schema.graphql is the schema the server runs, and a change
 * that breaks it is caught here. Whether it keeps the public contract
 * (api/contract.graphql of the shared folder beside the repository, not in
 * it) is checked by .ci/run with check-contract.mjs.
 *
 * printedSchema() runs in a child process (node --import tsx, as
 * `npm run schema:print` does): inside vitest, src/ gets graphql's ESM build
 * while Pothos builds the schema with its CommonJS build, and graphql-js
 * refuses to print a schema from "another module or realm".
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildSchema, findBreakingChanges, type GraphQLSchema } from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const committedPath = new URL('../schema.graphql', import.meta.url);

let printed: string;
beforeAll(() => {
  printed = execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const { printedSchema } = await import('./src/resolvers/index.ts'); process.stdout.write(printedSchema());",
    ],
    { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 },
  );
});

function breakingChanges(from: GraphQLSchema, to: GraphQLSchema): string[] {
  return findBreakingChanges(from, to).map((c) => `${c.type}: ${c.description}`);
}

/** The first line where two texts differ, to show what is stale. */
function firstDifference(a: string, b: string): string {
  const left = a.split('\n');
  const right = b.split('\n');
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    if (left[i] !== right[i]) {
      return `line ${i + 1}: committed ${JSON.stringify(left[i])}, printed ${JSON.stringify(right[i])}`;
    }
  }
  return 'none';
}

describe('schema.graphql', () => {
  it('printedSchema() prints a schema with the contract root types', () => {
    expect(printed).toContain('type Query');
    expect(printed).toContain('type Mutation');
    expect(printed).toContain('type Subscription');
  });

  it('is what printedSchema() prints now', () => {
    const committed = readFileSync(committedPath, 'utf8');
    expect(
      committed === printed,
      `schema.graphql is stale: run \`npm run schema:print\` (first difference: ${firstDifference(committed, printed)})`,
    ).toBe(true);
  });
});

describe('the committed schema.graphql against the printed one', () => {
  const committedText = () => readFileSync(committedPath, 'utf8');

  it('has no breaking change: the printed schema keeps everything reviewers saw committed', () => {
    const breaks = breakingChanges(buildSchema(committedText()), buildSchema(printed));
    expect(breaks, `breaking changes against schema.graphql:\n${breaks.join('\n')}`).toEqual([]);
  });

  it('the check can fail: removing or retyping a field is a breaking change', () => {
    const text = committedText();
    const committed = buildSchema(text);
    const withoutField = text
      .split('\n')
      .filter((line) => !line.trim().startsWith('streamSession(id: ID!)'))
      .join('\n');
    expect(withoutField).not.toBe(text);
    expect(breakingChanges(committed, buildSchema(withoutField)).join('\n')).toContain(
      'Query.streamSession',
    );
    const retyped = text.replace('  batchSize: Int!\n', '  batchSize: String!\n');
    expect(retyped).not.toBe(text);
    expect(breakingChanges(committed, buildSchema(retyped)).join('\n')).toContain('batchSize');
  });
});

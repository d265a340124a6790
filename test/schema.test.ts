/**
 * The committed schema.graphql is the schema the server runs, and a change
 * that breaks it is caught here. Whether it keeps the public contract
 * (api/contract-v2.graphql of the shared folder beside the repository, not
 * in it) is checked by .ci/run with `check-contract.mjs --v2`; here, only
 * that the v2 additions are in the schema, typed and described as v2.
 *
 * printedSchema() runs in a child process (node --import tsx, as
 * `npm run schema:print` does): inside vitest, src/ gets graphql's ESM build
 * while Pothos builds the schema with its CommonJS build, and graphql-js
 * refuses to print a schema from "another module or realm".
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  buildSchema,
  findBreakingChanges,
  type GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isObjectType,
} from 'graphql';
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

describe('the v2 additions (coverage), in the printed schema', () => {
  let schema: GraphQLSchema;
  beforeAll(() => {
    schema = buildSchema(printed);
  });

  function fieldOf(typeName: string, fieldName: string) {
    const type = schema.getType(typeName);
    if (!isObjectType(type) && !isInputObjectType(type)) {
      throw new Error(`${typeName} is not an object or input type of the schema`);
    }
    const field = type.getFields()[fieldName];
    if (field === undefined) throw new Error(`${typeName} has no field ${fieldName}`);
    return field;
  }

  it.each([
    ['StreamSession', 'durationSeconds', 'Float'],
    ['StreamSession', 'lastSegment', 'Int'],
    ['StreamSession', 'qualities', '[Quality!]!'],
    ['StreamSession', 'batches', '[BatchState!]!'],
    ['StreamSession', 'coverage', '[CoveredRange!]!'],
    ['BatchState', 'qualities', '[Quality!]!'],
    ['BatchState', 'isLastBatch', 'Boolean!'],
    ['BatchNeeded', 'segmentDuration', 'Int!'],
    ['BatchNeeded', 'isLastBatch', 'Boolean!'],
    ['CreateStreamSessionInput', 'durationSeconds', 'Float'],
    ['CreateStreamSessionInput', 'qualities', '[Quality!]'],
    ['SetCurrentBatchInput', 'qualities', '[Quality!]'],
  ])('%s.%s is %s, described as v2', (typeName, fieldName, type) => {
    const field = fieldOf(typeName, fieldName);
    expect(String(field.type)).toBe(type);
    expect(field.description).toMatch(/^v2: /);
  });

  it('CoveredRange is a range of one rendition', () => {
    expect(schema.getType('CoveredRange')?.description).toMatch(/^v2: /);
    expect(String(fieldOf('CoveredRange', 'quality').type)).toBe('Quality!');
    expect(String(fieldOf('CoveredRange', 'startSegment').type)).toBe('Int!');
    expect(String(fieldOf('CoveredRange', 'endSegment').type)).toBe('Int!');
  });

  it('releaseSegments(streamSessionId, startSegment, endSegment, qualities): Boolean!', () => {
    const field = fieldOf('Mutation', 'releaseSegments');
    expect(String(field.type)).toBe('Boolean!');
    expect(
      Object.fromEntries(
        ('args' in field ? field.args : []).map((arg) => [arg.name, String(arg.type)]),
      ),
    ).toEqual({
      streamSessionId: 'ID!',
      startSegment: 'Int!',
      endSegment: 'Int!',
      qualities: '[Quality!]',
    });
    expect(field.description).toMatch(/^v2: /);
  });

  it('BatchNeededReason has SEEK_BACK and QUALITY_CHANGE, each described, and says the v2 rules', () => {
    const reason = schema.getType('BatchNeededReason');
    if (!isEnumType(reason)) throw new Error('BatchNeededReason is not an enum');
    expect(reason.getValues().map((v) => v.name)).toEqual(
      expect.arrayContaining(['FIRST_BATCH', 'APPROACHING_END', 'SEEK_AHEAD', 'STALLED']),
    );
    expect(reason.getValue('SEEK_BACK')?.description).toMatch(/^v2: /);
    expect(reason.getValue('QUALITY_CHANGE')?.description).toMatch(/^v2: /);
    expect(reason.description).toContain('In v2 every client is served');
  });

  it('keeps what the server adds to the contract', () => {
    expect(String(fieldOf('BatchState', 'isStalled').type)).toBe('Boolean!');
    expect(String(fieldOf('StreamSession', 'clientCount').type)).toBe('Int!');
    expect(String(fieldOf('Mutation', 'issueClientToken').type)).toBe('String!');
    expect(String(fieldOf('Subscription', 'streamSessionEnded').type)).toBe('StreamSessionEnded!');
    expect(String(fieldOf('Subscription', 'streamSessionUpdated').type)).toBe('StreamSession!');
  });
});

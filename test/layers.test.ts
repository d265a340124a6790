/**
 * The layers import one way (ARCHITECTURE.md): the domain knows nothing of
 * GraphQL or of the server, and only the server wires everything.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src', import.meta.url));

/**
 * Every .ts file under `dir`, with the modules it imports: packages as
 * written, files of ours as `src/<path>`.
 */
function importsUnder(dir: string): Array<{ file: string; imports: string[] }> {
  const found: Array<{ file: string; imports: string[] }> = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    const text = readFileSync(path, 'utf8');
    const imports = [...text.matchAll(/^\s*(?:import|export)[^'";]*?from\s+'([^']+)'/gm)].map(
      ([, spec]) =>
        spec!.startsWith('.') ? `src/${relative(src, resolve(entry.parentPath, spec!))}` : spec!,
    );
    found.push({ file: relative(src, path), imports });
  }
  return found;
}

/** The imports of `layer` that break its rule, as "file -> import". */
function violations(layer: string, allowed: (spec: string) => boolean): string[] {
  return importsUnder(join(src, layer)).flatMap(({ file, imports }) =>
    imports.filter((spec) => !allowed(spec)).map((spec) => `${file} -> ${spec}`),
  );
}

const isGraphQL = (spec: string) =>
  /^(graphql|graphql-yoga|graphql-ws|@pothos\/|@envelop\/|@graphql-yoga\/|@escape\.tech\/)/.test(
    spec,
  );
const inSrc = (spec: string) => spec.startsWith('src/');
const under = (spec: string, ...folders: string[]) =>
  folders.some((f) => spec.startsWith(`src/${f}/`));

describe('the layers', () => {
  it('src/state imports no GraphQL and nothing else of src/', () => {
    expect(
      violations('state', (spec) => !isGraphQL(spec) && (!inSrc(spec) || under(spec, 'state'))),
    ).toEqual([]);
  });

  it('src/auth imports no GraphQL; of src/ only state and config', () => {
    expect(
      violations(
        'auth',
        (spec) =>
          !isGraphQL(spec) &&
          (!inSrc(spec) || under(spec, 'auth', 'state') || spec === 'src/config.js'),
      ),
    ).toEqual([]);
  });

  it('src/schema imports state and auth, never resolvers or server', () => {
    expect(
      violations('schema', (spec) => !inSrc(spec) || under(spec, 'schema', 'state', 'auth')),
    ).toEqual([]);
  });

  it('src/resolvers import schema and state, never server', () => {
    expect(
      violations(
        'resolvers',
        (spec) => !inSrc(spec) || under(spec, 'resolvers', 'schema', 'state'),
      ),
    ).toEqual([]);
  });

  it('sees the imports it checks (a file of each layer imports something)', () => {
    for (const layer of ['state', 'auth', 'schema', 'resolvers']) {
      expect(
        importsUnder(join(src, layer)).some((f) => f.imports.length > 0),
        layer,
      ).toBe(true);
    }
  });
});

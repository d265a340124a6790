/**
 * Reads a /metrics answer as Prometheus would: the text exposition format
 * (version 0.0.4), parsed by parse-prometheus-text-format and held to the
 * format's grammar line by line (the library is lenient: it reads a line
 * such as `foo abc` without complaint), with the rules a histogram must keep.
 */
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  /** Each family with its HELP and TYPE, as the library parsed it. */
  readonly families: readonly MetricFamily[];
  /** Every sample with all its labels (histograms' _bucket, _sum and _count included). */
  readonly samples: readonly PromSample[];
  /** The family's TYPE, lower case; undefined when there is no such family. */
  type(name: string): string | undefined;
  /** The one sample with exactly these labels; undefined when absent. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum over the samples whose labels include `labels` (0 when none). */
  sum(name: string, labels?: Record<string, string>): number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
// As Go's ParseFloat reads it (Prometheus does): NaN and Inf in any case (prom-client writes Nan).
const VALUE = '(?:[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?|[nN][aA][nN]|[+-][iI][nN][fF])';
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL}(?:,${LABEL})*)?,?)\\})? (${VALUE})(?: -?\\d+)?$`,
);
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Parses and checks an exposition; throws, naming the line, when it breaks the format. */
export function parsePrometheus(text: string): Scrape {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const seen = new Set<string>();
  text.split('\n').forEach((line, index) => {
    const where = `line ${index + 1}: ${line}`;
    if (line === '') return;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta !== null) {
      const [, kind, name = '', rest = ''] = meta;
      if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`bad metric name, ${where}`);
      if (seen.has(name)) throw new Error(`${kind} after the family's samples, ${where}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`unknown type, ${where}`);
        if (types.has(name)) throw new Error(`a second TYPE, ${where}`);
        types.set(name, rest);
      } else {
        if (helps.has(name)) throw new Error(`a second HELP, ${where}`);
        helps.add(name);
      }
      return;
    }
    if (line.startsWith('#')) return;
    const sample = SAMPLE.exec(line);
    if (sample === null) throw new Error(`not a sample, ${where}`);
    const family = familyOf(sample[1] as string, types);
    if (!types.has(family)) throw new Error(`a sample without a TYPE, ${where}`);
    seen.add(family);
  });

  // With `#` lines gone every sample is its own untyped family: all labels are kept.
  const samples = parsePrometheusTextFormat(
    `${text
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .join('\n')}\n`,
  ).flatMap((family) =>
    family.metrics.map((m) => ({
      name: family.name,
      labels: m.labels ?? {},
      value: Number(m.value),
    })),
  );
  const families = parsePrometheusTextFormat(text);
  checkHistograms(types, samples);

  const matches = (labels: Record<string, string>, wanted: Record<string, string>) =>
    Object.entries(wanted).every(([key, value]) => labels[key] === value);
  return {
    families,
    samples,
    type: (name) => types.get(name),
    value(name, labels = {}) {
      const found = samples.filter(
        (s) =>
          s.name === name &&
          Object.keys(s.labels).length === Object.keys(labels).length &&
          matches(s.labels, labels),
      );
      if (found.length > 1) throw new Error(`${found.length} samples of ${name}`);
      return found[0]?.value;
    },
    sum(name, labels = {}) {
      return samples
        .filter((s) => s.name === name && matches(s.labels, labels))
        .reduce((total, s) => total + s.value, 0);
    },
  };
}

function familyOf(sampleName: string, types: ReadonlyMap<string, string>): string {
  const suffixed = /^(.*)_(bucket|sum|count)$/.exec(sampleName);
  if (suffixed !== null) {
    const base = suffixed[1] as string;
    const type = types.get(base);
    if (type === 'histogram' || (type === 'summary' && suffixed[2] !== 'bucket')) return base;
  }
  return sampleName;
}

/** Buckets rise with `le`, end with +Inf, and +Inf is the count. */
function checkHistograms(types: ReadonlyMap<string, string>, samples: readonly PromSample[]) {
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Array<{ le: number; value: number }>>();
    for (const s of samples.filter((x) => x.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels;
      if (le === undefined) throw new Error(`${name}_bucket without le`);
      const key = canonical(rest);
      const buckets = series.get(key) ?? [];
      buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), value: s.value });
      series.set(key, buckets);
    }
    for (const [key, buckets] of series) {
      const count = samples.find((s) => s.name === `${name}_count` && canonical(s.labels) === key);
      const last = buckets.at(-1);
      if (last?.le !== Number.POSITIVE_INFINITY) throw new Error(`${name}${key}: no +Inf bucket`);
      if (count === undefined || count.value !== last.value) {
        throw new Error(`${name}${key}: the +Inf bucket is not the count`);
      }
      buckets.reduce((previous, bucket) => {
        if (bucket.le <= previous.le || bucket.value < previous.value) {
          throw new Error(`${name}${key}: buckets do not rise`);
        }
        return bucket;
      });
    }
  }
}

function canonical(labels: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

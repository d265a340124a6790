import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  CONFIG_VARIABLES,
  ConfigError,
  defaultConfig,
  envSchema,
  loadConfig,
} from '../src/config.js';

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('uses the defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      port: 4000,
      host: '127.0.0.1',
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      qualities: ['1080p', '720p', '480p'],
      store: 'memory',
      redisUrl: 'redis://127.0.0.1:6379',
      redisKeyPrefix: 'hbc:',
      maxQueuedEvents: 1_000,
      batchTimeout: 120_000,
      clientTimeout: 30_000,
      idleTimeout: 300_000,
      snapshotPath: null,
      wsPingInterval: 12_000,
      wsConnectionInitTimeout: 3_000,
      wsMaxBufferedBytes: 4_194_304,
      shutdownTimeout: 8_000,
      authEnabled: true,
      adminToken: null,
      encoderToken: null,
      clientTokenSecret: null,
      development: false,
      positionUpdatesPerSecond: 10,
      maxBodyBytes: 65_536,
      maxBatchOperations: 10,
      wsMaxConnectionsPerToken: 50,
      wsMaxSubscriptionsPerToken: 100,
      logLevel: 'info',
      metricsToken: null,
    });
  });

  it('defaultConfig is the defaults', () => {
    expect(defaultConfig).toEqual(loadConfig({}));
  });

  it('reads every variable', () => {
    expect(
      loadConfig({
        PORT: '8080',
        HOST: '0.0.0.0',
        SEGMENT_DURATION: '4',
        BATCH_SIZE: '50',
        THRESHOLD: '10',
        DEFAULT_QUALITIES: '720p,480p',
        STORE: 'redis',
        REDIS_URL: 'redis://cache.internal:6380/2',
        REDIS_KEY_PREFIX: 'staging:',
        MAX_QUEUED_EVENTS: '25',
        BATCH_TIMEOUT: '90',
        CLIENT_TIMEOUT: '15',
        SESSION_IDLE_TIMEOUT: '600',
        SNAPSHOT_PATH: '/var/lib/coordinator/snapshot.json',
        WS_PING_INTERVAL: '20',
        WS_CONNECTION_INIT_TIMEOUT: '5',
        WS_MAX_BUFFERED_BYTES: '65536',
        SHUTDOWN_TIMEOUT: '2',
        AUTH: 'off',
        ADMIN_TOKEN: 'admin-token-0123456789',
        ENCODER_TOKEN: 'encoder-token-0123456789',
        CLIENT_TOKEN_SECRET: 'client-token-secret-0123456789-abcdef',
        NODE_ENV: 'development',
        RATE_LIMIT_POSITION_UPDATES: '0',
        MAX_BODY_BYTES: '2048',
        MAX_BATCH_OPERATIONS: '3',
        WS_MAX_CONNECTIONS_PER_TOKEN: '4',
        WS_MAX_SUBSCRIPTIONS_PER_TOKEN: '5',
        LOG_LEVEL: 'debug',
        METRICS_TOKEN: 'metrics-token-0123456789',
      }),
    ).toEqual({
      port: 8080,
      host: '0.0.0.0',
      segmentDuration: 4,
      batchSize: 50,
      threshold: 10,
      qualities: ['720p', '480p'],
      store: 'redis',
      redisUrl: 'redis://cache.internal:6380/2',
      redisKeyPrefix: 'staging:',
      maxQueuedEvents: 25,
      batchTimeout: 90_000,
      clientTimeout: 15_000,
      idleTimeout: 600_000,
      snapshotPath: '/var/lib/coordinator/snapshot.json',
      wsPingInterval: 20_000,
      wsConnectionInitTimeout: 5_000,
      wsMaxBufferedBytes: 65_536,
      shutdownTimeout: 2_000,
      authEnabled: false,
      adminToken: 'admin-token-0123456789',
      encoderToken: 'encoder-token-0123456789',
      clientTokenSecret: 'client-token-secret-0123456789-abcdef',
      development: true,
      positionUpdatesPerSecond: 0,
      maxBodyBytes: 2_048,
      maxBatchOperations: 3,
      wsMaxConnectionsPerToken: 4,
      wsMaxSubscriptionsPerToken: 5,
      logLevel: 'debug',
      metricsToken: 'metrics-token-0123456789',
    });
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ PATH: '/usr/bin', NODE_ENV: 'test', HOME: '' })).toEqual(loadConfig({}));
  });

  it('never echoes a secret it rejects', () => {
    expect(() => loadConfig({ ADMIN_TOKEN: 'tooshort' })).toThrow(
      /ADMIN_TOKEN: must be at least 16/,
    );
    expect(() => loadConfig({ ADMIN_TOKEN: 'tooshort' })).not.toThrow(/tooshort/);
    expect(() => loadConfig({ CLIENT_TOKEN_SECRET: 'short-secret' })).not.toThrow(/short-secret/);
  });

  it('accepts the range limits', () => {
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65_535);
    expect(loadConfig({ SEGMENT_DURATION: '1' }).segmentDuration).toBe(1);
    expect(loadConfig({ SEGMENT_DURATION: '3600' }).segmentDuration).toBe(3_600);
    expect(loadConfig({ BATCH_SIZE: '100000', THRESHOLD: '100000' })).toMatchObject({
      batchSize: 100_000,
      threshold: 100_000,
    });
    expect(loadConfig({ THRESHOLD: '0' }).threshold).toBe(0);
    expect(loadConfig({ MAX_QUEUED_EVENTS: '1' }).maxQueuedEvents).toBe(1);
    expect(loadConfig({ MAX_QUEUED_EVENTS: '100000' }).maxQueuedEvents).toBe(100_000);
    expect(loadConfig({ BATCH_TIMEOUT: '0.01' }).batchTimeout).toBe(10);
    expect(loadConfig({ BATCH_TIMEOUT: '86400' }).batchTimeout).toBe(86_400_000);
    expect(loadConfig({ CLIENT_TIMEOUT: '86400' }).clientTimeout).toBe(86_400_000);
    expect(loadConfig({ SESSION_IDLE_TIMEOUT: '2592000' }).idleTimeout).toBe(2_592_000_000);
    expect(loadConfig({ WS_PING_INTERVAL: '3600' }).wsPingInterval).toBe(3_600_000);
    expect(loadConfig({ WS_CONNECTION_INIT_TIMEOUT: '600' }).wsConnectionInitTimeout).toBe(600_000);
    expect(loadConfig({ SHUTDOWN_TIMEOUT: '60' }).shutdownTimeout).toBe(60_000);
    expect(loadConfig({ WS_MAX_BUFFERED_BYTES: '1024' }).wsMaxBufferedBytes).toBe(1_024);
    expect(loadConfig({ WS_MAX_BUFFERED_BYTES: '1073741824' }).wsMaxBufferedBytes).toBe(
      1_073_741_824,
    );
  });

  describe('durations: seconds in the environment, milliseconds in the config', () => {
    it.each([
      ['BATCH_TIMEOUT', 'batchTimeout'],
      ['CLIENT_TIMEOUT', 'clientTimeout'],
      ['SESSION_IDLE_TIMEOUT', 'idleTimeout'],
      ['WS_PING_INTERVAL', 'wsPingInterval'],
      ['WS_CONNECTION_INIT_TIMEOUT', 'wsConnectionInitTimeout'],
      ['SHUTDOWN_TIMEOUT', 'shutdownTimeout'],
    ] as const)('%s reads whole and decimal seconds into %s', (name, field) => {
      expect(loadConfig({ [name]: '0.5' })[field]).toBe(500);
      expect(loadConfig({ [name]: '2' })[field]).toBe(2_000);
      expect(loadConfig({ [name]: '1.25' })[field]).toBe(1_250);
      expect(loadConfig({ [name]: ' 3 ' })[field]).toBe(3_000);
      // Rounded to whole milliseconds.
      expect(loadConfig({ [name]: '0.0125' })[field]).toBe(13);
      // Only that field changes.
      expect({ ...loadConfig({ [name]: '0.5' }), [field]: defaultConfig[field] }).toEqual(
        defaultConfig,
      );
    });

    it.each([
      'BATCH_TIMEOUT',
      'CLIENT_TIMEOUT',
      'SESSION_IDLE_TIMEOUT',
      'WS_PING_INTERVAL',
      'WS_CONNECTION_INIT_TIMEOUT',
      'SHUTDOWN_TIMEOUT',
    ])('%s rejects values that are not a positive number of seconds', (name) => {
      for (const value of ['abc', '-1', '0', '0.001', '1e3', '.5', '5.', '30s', '1,5']) {
        const error = configError({ [name]: value });
        expect(error.problems, `${name}=${value}`).toHaveLength(1);
        expect(error.problems[0]?.startsWith(`${name}='${value}': `), `${name}=${value}`).toBe(
          true,
        );
      }
    });

    it('rejects a duration above its maximum', () => {
      for (const [name, value] of [
        ['BATCH_TIMEOUT', '86401'],
        ['CLIENT_TIMEOUT', '86400.5'],
        ['SESSION_IDLE_TIMEOUT', '2592001'],
        ['WS_PING_INTERVAL', '3601'],
        ['WS_CONNECTION_INIT_TIMEOUT', '601'],
        ['SHUTDOWN_TIMEOUT', '61'],
      ]) {
        const error = configError({ [name as string]: value });
        expect(error.problems, `${name}=${value}`).toEqual([
          expect.stringMatching(new RegExp(`^${name}='${value}': must be at most`)),
        ]);
      }
    });

    it('explains what a duration must look like', () => {
      expect(configError({ CLIENT_TIMEOUT: 'abc' }).problems[0]).toContain('number of seconds');
      expect(configError({ CLIENT_TIMEOUT: '0' }).problems[0]).toContain('at least 0.01 seconds');
    });
  });

  describe('DEFAULT_QUALITIES: the renditions of a first batch, for sessions that name none', () => {
    it('is every quality, best first, when unset', () => {
      expect(loadConfig({}).qualities).toEqual(['1080p', '720p', '480p']);
    });

    it('reads a comma-separated list into qualities, best first, each once', () => {
      expect(loadConfig({ DEFAULT_QUALITIES: '720p' }).qualities).toEqual(['720p']);
      expect(loadConfig({ DEFAULT_QUALITIES: '480p,1080p' }).qualities).toEqual(['1080p', '480p']);
      expect(loadConfig({ DEFAULT_QUALITIES: ' 480p , 720p ,480p' }).qualities).toEqual([
        '720p',
        '480p',
      ]);
      // A trailing comma names nothing more.
      expect(loadConfig({ DEFAULT_QUALITIES: '1080p,' }).qualities).toEqual(['1080p']);
      // Only that field changes.
      expect({
        ...loadConfig({ DEFAULT_QUALITIES: '720p' }),
        qualities: defaultConfig.qualities,
      }).toEqual(defaultConfig);
    });

    it('names the values it does not know, and the ones it does', () => {
      const error = configError({ DEFAULT_QUALITIES: '1080p,4k,hd' });
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatch(/^DEFAULT_QUALITIES='1080p,4k,hd': /);
      expect(error.problems[0]).toContain("'4k', 'hd' are not qualities");
      expect(error.problems[0]).toContain('1080p, 720p, 480p');
      expect(configError({ DEFAULT_QUALITIES: '2160p' }).problems[0]).toContain(
        "'2160p' is not a quality",
      );
    });

    it('refuses a list that names no quality', () => {
      for (const value of [' ', ',', ' , ,']) {
        const error = configError({ DEFAULT_QUALITIES: value });
        expect(error.problems, JSON.stringify(value)).toEqual([
          `DEFAULT_QUALITIES='${value}': must name one or more of 1080p, 720p, 480p, separated by commas`,
        ]);
      }
    });

    it('is reported with the other bad variables', () => {
      const error = configError({ DEFAULT_QUALITIES: 'best', PORT: 'x' });
      expect(error.problems).toHaveLength(2);
      expect(error.message).toContain('DEFAULT_QUALITIES');
      expect(error.message).toContain('PORT');
    });
  });

  describe('SNAPSHOT_PATH', () => {
    it('is null when unset or empty', () => {
      expect(loadConfig({}).snapshotPath).toBeNull();
      expect(loadConfig({ SNAPSHOT_PATH: '' }).snapshotPath).toBeNull();
    });

    it('is the trimmed path when set', () => {
      expect(loadConfig({ SNAPSHOT_PATH: ' ./data/state.json ' }).snapshotPath).toBe(
        './data/state.json',
      );
    });

    it('rejects a blank path', () => {
      const error = configError({ SNAPSHOT_PATH: '   ' });
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]?.startsWith("SNAPSHOT_PATH='   ': ")).toBe(true);
    });
  });

  it('trims surrounding whitespace from numbers', () => {
    expect(loadConfig({ PORT: ' 5000 ', BATCH_SIZE: '\t30\n' })).toMatchObject({
      port: 5000,
      batchSize: 30,
    });
  });

  it('treats an empty string as unset', () => {
    expect(
      loadConfig({
        PORT: '',
        HOST: '',
        SEGMENT_DURATION: '',
        BATCH_SIZE: '',
        THRESHOLD: '',
        DEFAULT_QUALITIES: '',
        STORE: '',
        MAX_QUEUED_EVENTS: '',
        BATCH_TIMEOUT: '',
        CLIENT_TIMEOUT: '',
        SESSION_IDLE_TIMEOUT: '',
        SNAPSHOT_PATH: '',
        WS_PING_INTERVAL: '',
        WS_CONNECTION_INIT_TIMEOUT: '',
        WS_MAX_BUFFERED_BYTES: '',
        SHUTDOWN_TIMEOUT: '',
      }),
    ).toEqual(loadConfig({}));
    // An empty THRESHOLD falls back to 5, which must still fit BATCH_SIZE.
    expect(loadConfig({ THRESHOLD: '', BATCH_SIZE: '5' }).threshold).toBe(5);
    expect(configError({ THRESHOLD: '', BATCH_SIZE: '4' }).message).toContain('THRESHOLD');
  });

  it('treats undefined as unset', () => {
    expect(loadConfig({ PORT: undefined, BATCH_SIZE: undefined })).toEqual(loadConfig({}));
  });

  describe('rejects a bad value with a ConfigError naming the variable', () => {
    it.each([
      ['PORT', 'abc'],
      ['PORT', '-1'],
      ['PORT', '65536'],
      ['PORT', '80.5'],
      ['PORT', '1e3'],
      ['PORT', '0x50'],
      ['HOST', '   '],
      ['SEGMENT_DURATION', '0'],
      ['SEGMENT_DURATION', '3601'],
      ['SEGMENT_DURATION', 'six'],
      ['SEGMENT_DURATION', '2.5'],
      ['BATCH_SIZE', '0'],
      ['BATCH_SIZE', '100001'],
      ['BATCH_SIZE', '-20'],
      ['BATCH_SIZE', '99999999999999999999999'],
      ['THRESHOLD', '-1'],
      ['THRESHOLD', 'five'],
      ['DEFAULT_QUALITIES', '4k'],
      ['DEFAULT_QUALITIES', ','],
      ['DEFAULT_QUALITIES', '1080P'],
      ['REDIS_URL', 'http://127.0.0.1:6379'],
      ['REDIS_KEY_PREFIX', 'x'.repeat(65)],
      ['STORE', 'MEMORY'],
      ['MAX_QUEUED_EVENTS', '0'],
      ['MAX_QUEUED_EVENTS', '100001'],
      ['MAX_QUEUED_EVENTS', 'lots'],
      ['BATCH_TIMEOUT', 'abc'],
      ['BATCH_TIMEOUT', '-1'],
      ['BATCH_TIMEOUT', '0'],
      ['CLIENT_TIMEOUT', 'abc'],
      ['CLIENT_TIMEOUT', '-1'],
      ['CLIENT_TIMEOUT', '0'],
      ['SESSION_IDLE_TIMEOUT', 'abc'],
      ['SESSION_IDLE_TIMEOUT', '-1'],
      ['SESSION_IDLE_TIMEOUT', '0'],
      ['WS_PING_INTERVAL', '0'],
      ['WS_CONNECTION_INIT_TIMEOUT', 'soon'],
      ['SHUTDOWN_TIMEOUT', '-5'],
      ['WS_MAX_BUFFERED_BYTES', '1023'],
      ['WS_MAX_BUFFERED_BYTES', '1073741825'],
      ['WS_MAX_BUFFERED_BYTES', '4MB'],
    ])('%s=%j', (name, value) => {
      const error = configError({ [name]: value });
      expect(error.name).toBe('ConfigError');
      expect(error.message).toContain(name);
      expect(error.message).toContain(`'${value}'`);
      expect(error.problems[0]?.startsWith(`${name}='${value}': `)).toBe(true);
    });
  });

  // The THRESHOLD <= BATCH_SIZE comparison runs only once both are valid
  // numbers, so a bad BATCH_SIZE or THRESHOLD is reported alone (not also as
  // a spurious "must not exceed", blaming an unset or non-numeric THRESHOLD).
  it.each([
    [{ BATCH_SIZE: '0' }, 'BATCH_SIZE'],
    [{ BATCH_SIZE: '-20' }, 'BATCH_SIZE'],
    [{ THRESHOLD: 'five' }, 'THRESHOLD'],
    [{ BATCH_SIZE: 'x', THRESHOLD: '50' }, 'BATCH_SIZE'],
  ])('%j reports only the bad value, not a THRESHOLD/BATCH_SIZE comparison', (env, name) => {
    const error = configError(env);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(new RegExp(`^${name}=`));
    expect(error.message).not.toContain('must not exceed');
  });

  it('reports every bad variable at once', () => {
    const error = configError({ PORT: 'x', SEGMENT_DURATION: '0', STORE: 'disk' });
    expect(error.problems).toHaveLength(3);
    for (const name of ['PORT', 'SEGMENT_DURATION', 'STORE']) {
      expect(error.message).toContain(name);
    }
  });

  it('does not blame a good variable for a bad one', () => {
    const error = configError({ PORT: '8080', BATCH_SIZE: 'big' });
    expect(error.message).toContain('BATCH_SIZE');
    expect(error.message).not.toContain('PORT');
  });

  describe('THRESHOLD must not exceed BATCH_SIZE', () => {
    it('rejects THRESHOLD > BATCH_SIZE, naming THRESHOLD', () => {
      const error = configError({ BATCH_SIZE: '10', THRESHOLD: '11' });
      expect(error.message).toContain('THRESHOLD');
      expect(error.message).toContain('BATCH_SIZE');
      expect(error.problems).toHaveLength(1);
    });

    it('rejects a BATCH_SIZE below the default THRESHOLD', () => {
      const error = configError({ BATCH_SIZE: '3' });
      expect(error.message).toContain('THRESHOLD');
    });

    it('rejects a THRESHOLD above the default BATCH_SIZE', () => {
      const error = configError({ THRESHOLD: '21' });
      expect(error.message).toContain('THRESHOLD');
    });

    it('accepts THRESHOLD == BATCH_SIZE', () => {
      expect(loadConfig({ BATCH_SIZE: '10', THRESHOLD: '10' })).toMatchObject({
        batchSize: 10,
        threshold: 10,
      });
      expect(loadConfig({ THRESHOLD: '20' }).threshold).toBe(20);
    });
  });
});

/**
 * The README's configuration table, row by row: the variable, and its default
 * (the text in backticks) or null where it says `unset`.
 */
function readmeConfigurationTable(): Array<{ name: string; shown: string | null }> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Configuration\n'));
  if (section === undefined) throw new Error('README.md has no "## Configuration" section');
  return section
    .split('\n')
    .filter((line) => /^\| `/.test(line))
    .map((line) => {
      const [, name, shown] = line.split('|').map((cell) => cell.trim());
      const value = /^`([^`]*)`$/.exec(shown ?? '');
      if (value === null && shown !== 'unset') {
        throw new Error(`README.md: the default of ${name} is neither \`value\` nor unset`);
      }
      return { name: (name ?? '').replaceAll('`', ''), shown: value?.[1] ?? null };
    });
}

describe('the README configuration table', () => {
  const rows = readmeConfigurationTable();

  it('names every variable the service reads, and nothing else', () => {
    expect(rows.map((r) => r.name).sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it.each(rows)('gives the default of $name', ({ name, shown }) => {
    const check = envSchema.shape[name as keyof typeof envSchema.shape] as z.ZodType | undefined;
    expect(check, `${name} is not a variable the service reads`).toBeDefined();
    const unset = check?.parse(undefined);
    if (shown === null) {
      expect(unset, `${name} has a default; the README says unset`).toBeUndefined();
    } else {
      expect(unset, `${name} has no default; the README says ${shown}`).toBeDefined();
      // Read as the service reads it: BATCH_TIMEOUT's 120 (seconds) is 120000 ms.
      expect(check?.parse(shown)).toEqual(unset);
    }
  });
});

/**
 * The settings of `npm run encoder`, from the environment (see
 * docs/pipeline-interfaces.md), checked with zod: a bad value stops the
 * start with a message naming the variable.
 */
import { z } from 'zod';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const whole = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${name} must be a whole number`)
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, `${name} must be at least ${min}`)
        .max(max, `${name} must be at most ${max}`),
    );

const seconds = (name: string) =>
  z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, `${name} must be a number of seconds`)
    .transform(Number)
    .pipe(z.number().positive(`${name} must be above 0`));

const Env = z.object({
  COORDINATOR_URL: z
    .string()
    .trim()
    .default('http://127.0.0.1:4000/graphql')
    .refine((value) => {
      try {
        return ['http:', 'https:'].includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, 'COORDINATOR_URL must be an http(s) URL of the service, e.g. http://127.0.0.1:4000/graphql'),
  ENCODER_TOKEN: z.string().trim().optional(),
  OUTPUT_DIR: z.string().trim().min(1, 'OUTPUT_DIR must not be empty').default('./output'),
  ENCODER_CONCURRENCY: whole('ENCODER_CONCURRENCY', 1, 64).default(1),
  FFMPEG_PATH: z.string().trim().min(1, 'FFMPEG_PATH must not be empty').default('ffmpeg'),
  FFPROBE_PATH: z.string().trim().min(1).optional(),
  ENCODER_PRESET: z
    .enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow'])
    .default('veryfast'),
  SEGMENT_PORT: whole('SEGMENT_PORT', 0, 65_535).default(4100),
  SEGMENT_HOST: z.string().trim().min(1).default('127.0.0.1'),
  SEGMENT_SERVER: z
    .enum(['on', 'off'], { error: 'SEGMENT_SERVER must be on or off' })
    .default('on'),
  SEGMENT_HOLD_SECONDS: seconds('SEGMENT_HOLD_SECONDS').default(20),
  RELEASE_MARGIN: whole('RELEASE_MARGIN', 0).default(10),
  /** Seconds between renewals; BATCH_TIMEOUT / 3 when that is set, else 10. */
  RENEW_INTERVAL: seconds('RENEW_INTERVAL').optional(),
  /** The service's BATCH_TIMEOUT, when the encoder shares its environment. */
  BATCH_TIMEOUT: seconds('BATCH_TIMEOUT').optional(),
  LOG_LEVEL: z
    .enum(LOG_LEVELS, { error: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}` })
    .default('info'),
});

export type EncoderEnv = z.infer<typeof Env>;

/** The settings from the environment; an Error naming every bad variable otherwise. */
export function readEnv(env: NodeJS.ProcessEnv = process.env): EncoderEnv {
  // An empty variable counts as unset.
  const given = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = Env.safeParse(given);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? '');
    return issue.message.includes(name) ? issue.message : `${name}: ${issue.message}`;
  });
  throw new Error(`bad configuration:\n  ${problems.join('\n  ')}`);
}

/**
 * How often a batch's claim is renewed: RENEW_INTERVAL, else a third of the
 * service's BATCH_TIMEOUT when the environment has it, else 10 s (well within
 * the service's default of 120 s).
 */
export function renewIntervalMs(env: EncoderEnv): number {
  if (env.RENEW_INTERVAL !== undefined) return env.RENEW_INTERVAL * 1_000;
  if (env.BATCH_TIMEOUT !== undefined) return (env.BATCH_TIMEOUT * 1_000) / 3;
  return 10_000;
}

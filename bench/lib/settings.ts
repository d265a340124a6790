/**
 * Every knob of the benchmark, read from the environment once, so that a
 * quick run (BENCH_ROUNDS=1 BENCH_SECONDS=2) and the full one share one code path.
 */
function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name}='${raw}' is not a number`);
  return value;
}

export const settings = {
  /** Round-robin rounds over the throughput targets. */
  rounds: int('BENCH_ROUNDS', 5),
  /** Seconds of each measured window. */
  seconds: int('BENCH_SECONDS', 5),
  /** Seconds of warm-up before each measured window. */
  warmup: int('BENCH_WARMUP', 2),
  /**
   * Seconds each target is loaded once before the first round, unmeasured:
   * the slower targets get too few requests in one warm-up for V8 to
   * optimise their code, and their first round came out several times slower.
   */
  prime: int('BENCH_PRIME', 3),
  /** Load-generator connections (HTTP and WebSocket). */
  connections: int('BENCH_CONNECTIONS', 32),
  /** Operations each WebSocket connection keeps in flight. */
  wsInFlight: int('BENCH_WS_INFLIGHT', 1),
  /**
   * Player connections of the WebSocket load in the default configuration:
   * a player token authenticates one connection, so each simulated player
   * has its own; the load's `connections` × `wsInFlight` operations in
   * flight go to them in turn, at most `playerRate` a second each.
   */
  wsPlayers: int('BENCH_WS_PLAYERS', 4_000),
  /**
   * Updates a second one simulated player sends at most, under the service's
   * default per-player limit of 10, so that no update is refused.
   */
  playerRate: int('BENCH_PLAYER_RATE', 5),
  /** Stream sessions and clients per session the load spreads over. */
  sessions: int('BENCH_SESSIONS', 100),
  clientsPerSession: int('BENCH_CLIENTS_PER_SESSION', 100),
  /** Threshold crossings measured per latency configuration. */
  latencySamples: int('BENCH_LATENCY_SAMPLES', 200),
  /** Clients (and sessions, a tenth of them) of the memory and scale checks. */
  memoryClients: int('BENCH_MEMORY_CLIENTS', 100_000),
  /** Which phases to run: any of pipeline,throughput,latency,scale,memory. */
  phases: new Set(
    (process.env.BENCH_PHASES ?? 'pipeline,throughput,latency,scale,memory').split(','),
  ),
  /** Which throughput targets to run (default: all seven). */
  targets: process.env.BENCH_TARGETS?.split(',') ?? null,
};

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/** The folder of bench/, for the children's entry files. */
export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));

/**
 * Pinning to cores: servers on core 0, the load generator on core 1. Needs
 * taskset and two cores; without them everything runs unpinned, with a warning.
 */
export const pinning: { enabled: boolean; reason: string } = (() => {
  if (availableParallelism() < 2) return { enabled: false, reason: 'fewer than 2 cores' };
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return { enabled: true, reason: 'taskset' };
  } catch {
    return { enabled: false, reason: 'taskset not found' };
  }
})();

/** Pins this process and all its threads (and those it starts later) to `core`. */
export function pinSelf(core: number): void {
  if (!pinning.enabled) return;
  execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], {
    stdio: 'ignore',
  });
}

export interface Child {
  readonly process: ChildProcess;
  /** Sends a request over IPC and resolves with the child's answer of the same id. */
  ask<T = unknown>(message: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts `entry` (a .ts file under bench/) in a child node process with tsx,
 * pinned to `core`, and resolves once it says `{ type: 'ready', ... }`.
 */
export async function startChild(
  entry: string,
  options: { core: number; env?: Record<string, string>; nodeArgs?: string[] },
): Promise<{ child: Child; ready: Record<string, unknown> }> {
  const node = [process.execPath, ...(options.nodeArgs ?? []), '--import', 'tsx', entry];
  const [command, ...args] = pinning.enabled
    ? ['taskset', '-c', String(options.core), ...node]
    : node;
  const proc = spawn(command!, args, {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...options.env },
  });
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: unknown) => void }>();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`${entry} exited with ${code} before ready`)));
    proc.on('message', (message: any) => {
      if (message?.type === 'ready') resolve(message);
      else if (typeof message?.id === 'number') {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(message.error));
        else waiter?.resolve(message.result);
      }
    });
  });
  proc.on('exit', () => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${entry} exited`));
    pending.clear();
  });
  const child: Child = {
    process: proc,
    ask(message) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        proc.send({ ...message, id });
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  return { child, ready };
}

let session: Session | null = null;
function profiler(method: string): Promise<unknown> {
  session ??= new Session();
  if (method === 'Profiler.enable') session.connect();
  return new Promise((resolve, reject) =>
    session!.post(method, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

/**
 * In a child: answers the parent's IPC requests with `handlers[message.type]`,
 * and exits on SIGTERM after `onStop`.
 */
export function serveParent(
  handlers: Record<string, (message: any) => unknown>,
  onStop: () => Promise<void> | void = () => {},
): void {
  const all: Record<string, (message: any) => unknown> = {
    // CPU microseconds this process has used (user + system), to normalise throughput.
    cpu: () => {
      const { user, system } = process.cpuUsage();
      return user + system;
    },
    // A CPU profile of a chosen window only (bench/profile.ts), without start-up in it.
    profileStart: () => profiler('Profiler.enable').then(() => profiler('Profiler.start')),
    profileStop: async ({ path }: { path: string }) => {
      const { profile } = (await profiler('Profiler.stop')) as { profile: unknown };
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
    ...handlers,
  };
  process.on('message', async (message: any) => {
    const handler = all[message?.type];
    try {
      if (handler === undefined) throw new Error(`no handler for ${message?.type}`);
      process.send?.({ id: message.id, result: await handler(message) });
    } catch (error) {
      process.send?.({ id: message.id, error: String((error as Error)?.stack ?? error) });
    }
  });
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    Promise.resolve(onStop()).finally(() => process.exit(0));
  });
  // The parent's end is ours: never outlive it.
  process.on('disconnect', () => process.exit(0));
}

/**
 * `npm run demo` as a user runs it, for the demo's tests: started with
 * `args` and `env`, its output collected, stopped with SIGTERM as Ctrl-C
 * would.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { eventually } from './fixtures.js';

export interface DemoProcess {
  readonly child: ChildProcess;
  /** What it printed so far on stdout, and on stderr. */
  out(): string;
  err(): string;
  /** Resolves once stdout matches; fails with the output if it exits first or takes longer. */
  printed(pattern: RegExp, timeoutMs: number): Promise<void>;
  /**
   * SIGTERM to the demo itself (npm exits 143 when it is the one signalled;
   * it passes the script's own exit code on otherwise): resolves with its exit code.
   */
  stop(): Promise<number | null>;
}

export function startDemo(args: readonly string[], env: NodeJS.ProcessEnv): DemoProcess {
  const child = spawn('npm', ['run', 'demo', '--', ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  return {
    child,
    out: () => out,
    err: () => err,
    async printed(pattern, timeoutMs) {
      await eventually(
        () => {
          if (child.exitCode !== null) throw new Error(`the demo exited: ${out}\n${err}`);
          return pattern.test(out);
        },
        { timeout: timeoutMs },
      );
    },
    async stop() {
      // Its first JSON log line carries the pid of the demo's own process.
      const pid = out
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => (JSON.parse(line) as { pid: number }).pid)[0];
      if (pid === undefined) throw new Error(`no log line with a pid yet: ${out}`);
      process.kill(pid, 'SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';

/**
 * Child processes started by tests: every one is tracked and killed in `stopAll()` (call it from after()),
 * and every wait is bounded.
 */
const tracked = new Set<ChildProcess>();

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface Running {
  child: ChildProcess;
  /** Resolves when the process exits (never rejects). */
  exited: Promise<RunResult>;
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

/** Starts a process; output is collected (capped) and it is killed after `timeoutMs`. */
export function start(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; stdin?: 'pipe' | 'ignore' },
): Running {
  const child = spawn(cmd, args, { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  tracked.add(child);
  const cap = 1 << 20;
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout!.on('data', (d: Buffer) => {
    if (stdout.length < cap) stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < cap) stderr += d.toString();
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  const exited = new Promise<RunResult>((resolve) => {
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      tracked.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
  return {
    child,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
      const r = await exited;
      clearTimeout(killTimer);
      return r;
    },
  };
}

/** Runs a process to completion (bounded by `timeoutMs`). */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return start(cmd, args, opts).exited;
}

export async function stopAll(): Promise<void> {
  await Promise.all(
    [...tracked].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(`${dir}/${cmd}`, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * The RTMP and HTTP ports a node's start line announces (`rtmp-relay <role>: rtmp://host:port/live/<key> ...
 * http://host:port/`), once `output` holds it; undefined before.
 */
export function startLinePorts(output: string): { rtmp: number; http: number } | undefined {
  const m = /rtmp-relay \w+: rtmp:\/\/[^:]+:(\d+)\/live\/<key>.*http:\/\/[^:]+:(\d+)\//.exec(output);
  return m ? { rtmp: Number(m[1]), http: Number(m[2]) } : undefined;
}

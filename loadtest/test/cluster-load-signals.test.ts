import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * A cluster run stopped by Ctrl-C or SIGTERM takes its processes with it: a child that started a real redis-server
 * through the run's process tracking is signalled, and that Redis is gone once the child has exited. Before, the
 * signal ended the runner without its 'exit' hook and left every node, Redis and NATS of the run running.
 */

const PROCESSES = fileURLToPath(new URL('../src/cluster-load/processes.ts', import.meta.url));
const SCRIPT = `
const { RedisServer } = await import(${JSON.stringify(PROCESSES)});
const redis = await RedisServer.start();
process.stdout.write(redis.pid + '\\n');
setInterval(() => undefined, 1000); // a run in progress
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function redisPidOfChild(signal: NodeJS.Signals): Promise<{ redisPid: number; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const redisPid = Number(line.toString().trim());
    assert.ok(redisPid > 0 && alive(redisPid), `redis-server not running: ${line.toString()}`);
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    child.kill(signal);
    const [code] = await exited;
    return { redisPid, code };
  } finally {
    child.kill('SIGKILL');
  }
}

/** Until `pid` is gone (SIGKILL takes a moment to be reaped), at most `ms`. */
async function gone(pid: number, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (alive(pid) && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

describe('cluster-load processes: signals end the run with its processes', () => {
  for (const [signal, exitCode] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${signal}: the run's Redis is killed and the runner exits ${exitCode}`, { timeout: 30_000 }, async () => {
      const { redisPid, code } = await redisPidOfChild(signal);
      const dead = await gone(redisPid, 5000);
      if (!dead) process.kill(redisPid, 'SIGKILL'); // the test leaves nothing running either way
      assert.ok(dead, `redis-server ${redisPid} outlived the run`);
      assert.equal(code, exitCode);
    });
  }
});

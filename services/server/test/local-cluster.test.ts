import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { start, stopAll, waitFor, type Running } from './support/processes.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

const portOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/** argv of every child process of `pid` (from /proc). */
function childCommandLines(pid: number): string[][] {
  const out: string[][] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

describe('rtmp-relay cluster (npm run cluster)', () => {
  let cluster: Running | undefined;
  after(async () => {
    // The cluster's own redis, nats and nodes outlive it if it is killed: after a failure, stop it the way a user
    // does (SIGINT, bounded) before stopAll's SIGKILL.
    if (cluster && cluster.child.exitCode === null && cluster.child.signalCode === null) {
      cluster.child.kill('SIGINT');
      await Promise.race([cluster.exited, new Promise((resolve) => setTimeout(resolve, 20_000).unref())]);
    }
    await stopAll();
  });

  it('starts redis, nats, 2 origins and 2 edges, serves publish→origin and play←edge, and stops them all on SIGINT', async () => {
    cluster = start(
      process.execPath,
      // As `npm run cluster` starts it: with the image's Node flags, which its nodes must get (not debugger flags).
      [
        '--max-semi-space-size=8',
        '--inspect-port=0',
        CLI,
        'cluster',
        '--rtmp-port',
        '0',
        '--http-port',
        '0',
        '--log-level',
        'warn',
      ],
      { timeoutMs: 120_000 },
    );
    let out = '';
    cluster.child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the cluster to come up', () => out.includes('Ctrl-C stops everything.'), 40_000);
    const publishUrl = /publish:.* (rtmp:\/\/\S+)/.exec(out)![1]!;
    const playUrl = /play:\s+ffplay (rtmp:\/\/\S+)/.exec(out)![1]!;
    const redisPort = Number(/redis\s+redis:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const pub = ffmpegPublish(publishUrl, { seconds: 30 });
    const streamsUrl = /streams:\s+curl (\S+)/.exec(out)![1]!;
    await waitFor(
      'the stream in the cluster API',
      async () => {
        const res = await fetch(streamsUrl).catch(() => undefined);
        const body = (await res?.json().catch(() => undefined)) as { streams?: Array<{ key: string }> } | undefined;
        return body?.streams?.some((s) => s.key === 'live/demo');
      },
      15_000,
    );
    const nodes = childCommandLines(cluster.child.pid!).filter((argv) => argv.includes(CLI));
    assert.equal(nodes.length, 4, JSON.stringify(nodes));
    for (const argv of nodes) {
      assert.ok(argv.includes('--max-semi-space-size=8'), `a node runs without the image's flags: ${argv.join(' ')}`);
      assert.ok(!argv.some((a) => a.startsWith('--inspect')), `a node got a debugger flag: ${argv.join(' ')}`);
    }
    const r = await ffmpegCountFrames(playUrl, 2);
    assert.ok(r.frames >= 40, `decoded ${r.frames} frames through edge-1: ${r.stderr}`);
    await pub.stop();
    cluster.child.kill('SIGINT');
    const exit = await cluster.exited;
    assert.equal(exit.code, 0, out);
    assert.equal(await portOpen(redisPort), false, 'redis-server was stopped');
  });
});

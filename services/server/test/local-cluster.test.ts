import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { start, stopAll, waitFor } from './support/processes.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

const portOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

describe('rtmp-relay cluster (npm run cluster)', () => {
  after(stopAll);

  it('starts redis, nats, 2 origins and 2 edges, serves publish→origin and play←edge, and stops them all on SIGINT', async () => {
    const cluster = start(
      process.execPath,
      [CLI, 'cluster', '--rtmp-port', '0', '--http-port', '0', '--log-level', 'warn'],
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
    const r = await ffmpegCountFrames(playUrl, 2);
    assert.ok(r.frames >= 40, `decoded ${r.frames} frames through edge-1: ${r.stderr}`);
    await pub.stop();
    cluster.child.kill('SIGINT');
    const exit = await cluster.exited;
    assert.equal(exit.code, 0, out);
    assert.equal(await portOpen(redisPort), false, 'redis-server was stopped');
  });
});

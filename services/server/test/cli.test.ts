import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { run, start, startLinePorts, stopAll, waitFor } from './support/processes.js';

/** The built `rtmp-relay` binary, as `npm start` runs it (npm test builds first). */
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

describe('rtmp-relay CLI', () => {
  after(stopAll);

  it('--help lists the roles and exits 0', async () => {
    const r = await run(process.execPath, [CLI, '--help'], { timeoutMs: 10_000 });
    assert.equal(r.code, 0);
    for (const role of ['standalone', 'origin', 'edge', 'cluster']) assert.match(r.stdout, new RegExp(role));
  });

  it('a bad setting stops it with a readable error naming the variable and the flag (exit 2)', async () => {
    const r = await run(process.execPath, [CLI, 'standalone'], {
      timeoutMs: 10_000,
      env: { ...process.env, RTMP_PORT: 'abc' },
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /RTMP_PORT \(--rtmp-port\)/);
  });

  it('standalone serves FFmpeg publish and play, then drains and exits 0 on SIGTERM', async () => {
    const node = start(
      process.execPath,
      [
        CLI,
        'standalone',
        '--rtmp-port',
        '0',
        '--http-port',
        '0',
        '--rtmp-host',
        '127.0.0.1',
        '--http-host',
        '127.0.0.1',
        '--shutdown-timeout-ms',
        '2000',
      ],
      {
        timeoutMs: 90_000,
        env: { ...process.env, LOG_LEVEL: 'warn' },
      },
    );
    let stderr = '';
    node.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const ports = await waitFor('the start line', () => startLinePorts(stderr));
    const url = `rtmp://127.0.0.1:${ports.rtmp}/live/cli`;
    const pub = ffmpegPublish(url, { seconds: 30 });
    await waitFor(
      'the stream to be live',
      async () => {
        const res = await fetch(`http://127.0.0.1:${ports.http}/api/streams/live/cli`).catch(() => undefined);
        return res?.status === 200 && ((await res.json()) as { live: boolean }).live;
      },
      15_000,
    );
    const r = await ffmpegCountFrames(url, 2);
    assert.ok(r.frames >= 40, `decoded ${r.frames} frames: ${r.stderr}`);
    const health = await fetch(`http://127.0.0.1:${ports.http}/healthz`);
    assert.equal(health.status, 200);
    node.child.kill('SIGTERM');
    const exit = await node.exited;
    assert.equal(exit.code, 0, exit.stderr);
    const pubExit = await pub.exited;
    assert.notEqual(pubExit.timedOut, true, 'the publisher was disconnected by the shutdown');
  });
});

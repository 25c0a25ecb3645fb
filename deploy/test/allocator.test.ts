/**
 * The image runs the node on jemalloc (LD_PRELOAD): the Dockerfile installs and links it where the load tools look
 * first, and a node preloaded with it really maps it and serves FFmpeg publish and play.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { jemallocCandidates, nodeMallocEnv, RELAY_NODE_FLAGS } from '../../loadtest/src/node-flags.js';
import { ffmpegCountFrames, ffmpegPublish } from '../../services/server/test/support/media-tools.js';
import { start, startLinePorts, stopAll, waitFor } from '../../services/server/test/support/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'services/server/dist/cli.js');

/** The runtime stage of the Dockerfile, continuation lines joined. */
function runtimeStage(): string {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const at = text.search(/^FROM \S+ AS runtime$/m);
  assert.ok(at >= 0, 'the Dockerfile has a runtime stage');
  return text.slice(at);
}

describe('allocator: the node runs on jemalloc, as the image runs it', () => {
  after(stopAll);

  it('the image installs libjemalloc2, links it at the first path the load tools try, and preloads that path', () => {
    const runtime = runtimeStage();
    const preload = /^ENV .*\bLD_PRELOAD=(\S+)/m.exec(runtime)?.[1];
    assert.equal(preload, jemallocCandidates()[0], 'ENV LD_PRELOAD is the link the bench and cluster runner use');
    const run = runtime.split('\n').find((l) => /^RUN .*libjemalloc2/.test(l)) ?? '';
    assert.match(run, /apt-get install [^&]*\blibjemalloc2\b/, 'RUN installs libjemalloc2');
    assert.ok(run.includes(`ln -s "$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2)" ${preload}`), run);
    assert.ok(run.includes(`test -e ${preload}`), 'the build fails if the link points nowhere');
  });

  it('the load tools preload jemalloc for `jemalloc`, and clear an inherited LD_PRELOAD for `system`', () => {
    const found = nodeMallocEnv('jemalloc', (p) => p === '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', 'arm64');
    assert.deepEqual(found, {
      malloc: 'jemalloc',
      env: { LD_PRELOAD: '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2' },
    });
    const missing = nodeMallocEnv('jemalloc', () => false, 'x64');
    assert.equal(missing.malloc, 'system');
    assert.deepEqual(missing.env, { LD_PRELOAD: '' });
    assert.match(missing.warning ?? '', /libjemalloc2/);
    assert.deepEqual(
      nodeMallocEnv('system', () => true),
      { malloc: 'system', env: { LD_PRELOAD: '' } },
    );
  });

  it('a standalone node preloaded with jemalloc maps it and serves FFmpeg publish and play', async () => {
    const allocator = nodeMallocEnv('jemalloc', existsSync);
    assert.equal(allocator.malloc, 'jemalloc', `jemalloc is not installed here (.ci/run installs libjemalloc2)`);
    const node = start(
      process.execPath,
      [...RELAY_NODE_FLAGS, CLI, 'standalone', '--rtmp-port', '0', '--http-port', '0'],
      {
        timeoutMs: 90_000,
        env: {
          ...process.env,
          ...allocator.env,
          RTMP_HOST: '127.0.0.1',
          HTTP_HOST: '127.0.0.1',
          LOG_LEVEL: 'warn',
          SHUTDOWN_TIMEOUT_MS: '2000',
        },
      },
    );
    let stderr = '';
    node.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const ports = await waitFor('the start line', () => startLinePorts(stderr));
    const maps = readFileSync(`/proc/${node.child.pid}/maps`, 'utf8');
    assert.match(maps, /libjemalloc\.so\.2/, 'the node process has jemalloc mapped');

    const url = `rtmp://127.0.0.1:${ports.rtmp}/live/jemalloc`;
    const pub = ffmpegPublish(url, { seconds: 30 });
    await waitFor(
      'the stream to be live',
      async () => {
        const res = await fetch(`http://127.0.0.1:${ports.http}/api/streams/live/jemalloc`).catch(() => undefined);
        return res?.status === 200 && ((await res.json()) as { live: boolean }).live;
      },
      15_000,
    );
    const played = await ffmpegCountFrames(url, 2);
    assert.ok(played.frames >= 40, `decoded ${played.frames} frames: ${played.stderr}`);
    node.child.kill('SIGTERM');
    const exit = await node.exited;
    assert.equal(exit.code, 0, exit.stderr);
    await pub.exited;
  });
});

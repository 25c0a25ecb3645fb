/**
 * The test-services helper chooses its backend fast and falls back cleanly: a container runtime that answers the
 * Docker API ping means containers (testcontainers); none, a dead socket or RTMP_RELAY_TEST_SERVICES=processes means
 * local processes; =containers without a runtime is an error. Checked against real sockets (a local HTTP server that
 * answers /_ping as Docker does, a socket file nobody listens on) and this machine's own default.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  candidateEndpoints,
  decideServicesMode,
  PING_TIMEOUT_MS,
  pingDockerApi,
  servicesMode,
  type RuntimeProbe,
} from './support/container-runtime.js';
import { natsContainerPlan, redisContainerPlan, startNats, startRedis, stopAllServices } from './support/services.js';

const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-runtime-'));
const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await stopAllServices();
  rmSync(dir, { recursive: true, force: true });
});

/** A unix-socket HTTP server answering GET /_ping like the Docker API (or `status`/`body` to misbehave). */
async function fakeDockerApi(name: string, status = 200, body = 'OK'): Promise<string> {
  const socketPath = join(dir, name);
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/_ping' ? status : 404, { 'content-type': 'text/plain' });
    res.end(req.url === '/_ping' ? body : 'not found');
  });
  server.listen(socketPath);
  await once(server, 'listening');
  servers.push(server);
  return socketPath;
}

const realProbe = (env: Record<string, string | undefined>): RuntimeProbe => ({
  env: { HOME: dir, ...env },
  exists: (p) => p.startsWith(dir) || false,
  ping: pingDockerApi,
});

describe('test services backend (containers when a runtime answers, else local processes)', () => {
  it('a runtime answering /_ping at DOCKER_HOST means containers', async () => {
    const sock = await fakeDockerApi('docker.sock');
    const d = await decideServicesMode(realProbe({ DOCKER_HOST: `unix://${sock}` }));
    assert.deepEqual(d.mode, 'containers');
    assert.equal(d.dockerHost, `unix://${sock}`);
  });

  it('a socket file nobody listens on, or a wrong answer, falls back to processes within the ping bound', async () => {
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    const wrong = await fakeDockerApi('wrong.sock', 500, 'no');
    for (const host of [stale, wrong]) {
      const t0 = Date.now();
      const d = await decideServicesMode(realProbe({ DOCKER_HOST: `unix://${host}` }));
      assert.equal(d.mode, 'processes', host);
      assert.match(d.reason, /no answer from/);
      assert.ok(Date.now() - t0 < PING_TIMEOUT_MS * 2, `decided in ${Date.now() - t0} ms`);
    }
  });

  it('a runtime that never answers is given up after the ping timeout', async () => {
    const socketPath = join(dir, 'silent.sock');
    const silent = createServer(() => undefined); // accepts, never answers
    silent.listen(socketPath);
    await once(silent, 'listening');
    servers.push(silent);
    const t0 = Date.now();
    assert.equal(await pingDockerApi({ socketPath }, 200), false);
    const took = Date.now() - t0;
    assert.ok(took >= 150 && took < 1000, `gave up after ${took} ms`);
  });

  it('RTMP_RELAY_TEST_SERVICES forces a backend; containers without a runtime is an error', async () => {
    const sock = await fakeDockerApi('forced.sock');
    const forcedOff = await decideServicesMode(
      realProbe({ DOCKER_HOST: `unix://${sock}`, RTMP_RELAY_TEST_SERVICES: 'processes' }),
    );
    assert.equal(forcedOff.mode, 'processes');
    await assert.rejects(
      decideServicesMode(realProbe({ RTMP_RELAY_TEST_SERVICES: 'containers', DOCKER_HOST: `unix://${dir}/none` })),
      /RTMP_RELAY_TEST_SERVICES=containers, but/,
    );
    await assert.rejects(decideServicesMode(realProbe({ RTMP_RELAY_TEST_SERVICES: 'docker' })), /use auto/);
  });

  it('looks where Docker, Docker Desktop, Colima, Rancher Desktop and Podman put their socket', () => {
    const paths = candidateEndpoints(
      { XDG_RUNTIME_DIR: '/run/user/1000', DOCKER_HOST: 'tcp://10.0.0.5:2376' },
      '/h',
    ).map((e) => ('socketPath' in e ? e.socketPath : `${e.host}:${e.port}`));
    assert.deepEqual(paths, [
      '10.0.0.5:2376',
      '/var/run/docker.sock',
      '/run/user/1000/docker.sock',
      '/run/user/1000/podman/podman.sock',
      '/h/.docker/run/docker.sock',
      '/h/.colima/default/docker.sock',
      '/h/.rd/docker.sock',
      '/run/podman/podman.sock',
    ]);
  });

  it('options that name local files keep a local process; plain, password and flag options can be containers', () => {
    assert.deepEqual(redisContainerPlan(), { kind: 'redis' });
    assert.deepEqual(redisContainerPlan({ args: ['--requirepass', 'pw'], auth: { password: 'pw' } }), {
      kind: 'redis',
      password: 'pw',
    });
    assert.equal(redisContainerPlan({ tls: { certFile: 'c', keyFile: 'k', caFile: 'a' } }), undefined);
    assert.equal(redisContainerPlan({ args: ['--user', 'app', 'on'] }), undefined);
    assert.deepEqual(natsContainerPlan({ args: ['--auth', 't'] }), { kind: 'nats', args: ['--auth', 't'] });
    assert.equal(natsContainerPlan({ args: ['-c', '/tmp/x.conf'] }), undefined);
    assert.equal(natsContainerPlan({ args: ['--tls', '--tlscert', 'c'] }), undefined);
  });

  it('on this machine the default decision is quick, and the helper serves real Redis and NATS either way', async () => {
    const t0 = Date.now();
    const d = await servicesMode();
    const took = Date.now() - t0;
    assert.ok(took < 2000, `decided in ${took} ms (${d.reason})`);
    const redis = await startRedis();
    const nats = await startNats();
    assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
    // Each answers its protocol (Redis PING, the NATS INFO greeting) on the given port.
    const { connect } = await import('node:net');
    const first = (port: number, send?: string) =>
      new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => send && s.write(send));
        s.once('data', (b) => {
          resolve(b.toString());
          s.destroy();
        });
        s.once('error', reject);
      });
    assert.equal(await first(redis.port, 'PING\r\n'), '+PONG\r\n');
    assert.match(await first(nats.port), /^INFO \{/);
  });
});

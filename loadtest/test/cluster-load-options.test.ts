import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { edgeIndex } from '../src/cluster-load/balancer.js';
import type { NodeHandle } from '../src/cluster-load/cluster.js';
import { metricsSample } from '../src/cluster-load/existing-cluster.js';
import { compareModes, existingTarget } from '../src/cluster-load/main.js';
import { DEFAULT_OPTIONS, optionProblems, reportedOptions } from '../src/cluster-load/options.js';
import { CLI, relayNodeArgs } from '../src/cluster-load/processes.js';
import { prng } from '../src/prng.js';
import { audiencePlan } from '../src/cluster-load/runner.js';
import { checkLoopback, parseHostPort, parseHostPortList } from '../src/cluster-load/targets.js';
import { RELAY_NODE_FLAGS } from '../src/node-flags.js';

/** The cluster runner's flags and the pure parts of its load balancing (no cluster needed). */

describe('cluster-load: addresses and the loopback rule', () => {
  it('parses host:port lists, IPv6 in brackets; rejects the rest', () => {
    assert.deepEqual(parseHostPortList('127.0.0.1:1935, [::1]:1936,', '--edges-at'), [
      { host: '127.0.0.1', port: 1935 },
      { host: '::1', port: 1936 },
    ]);
    assert.throws(() => parseHostPort('127.0.0.1', '--edges-at'), /--edges-at 127\.0\.0\.1: expected host:port/);
    assert.throws(() => parseHostPort('h:70000', '--api-at'), /expected host:port/);
  });

  it('refuses non-loopback hosts unless allowed, and then warns', () => {
    const warnings: string[] = [];
    const hosts = [
      { host: '127.0.0.1', flag: '--edges-at' },
      { host: '10.1.2.3', flag: '--api-at' },
    ];
    assert.throws(
      () => checkLoopback(hosts, false, (l) => warnings.push(l)),
      /refusing to load 10\.1\.2\.3 \(--api-at\)/,
    );
    assert.deepEqual(warnings, []);
    checkLoopback(hosts, true, (l) => warnings.push(l));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /WARNING: --allow-remote: .*10\.1\.2\.3/);
    checkLoopback(
      [
        { host: 'localhost', flag: '--edges-at' },
        { host: '::1', flag: '--route-at' },
      ],
      false,
      () => assert.fail('loopback warned'),
    );
  });
});

describe('cluster-load: flags', () => {
  it('--compare-lb: bare means route and round-robin; unknown or single modes are refused', () => {
    assert.equal(compareModes(undefined), undefined);
    assert.deepEqual(compareModes(true), ['route', 'round-robin']);
    assert.deepEqual(compareModes('random,route'), ['random', 'route']);
    assert.throws(() => compareModes('route,nginx'), /expected two or more of random, round-robin, route/);
    assert.throws(() => compareModes('route'), /two or more/);
  });

  it('--*-at: none given starts a cluster; origins, edges and API addresses go together', () => {
    assert.equal(existingTarget({ clusterPrefix: 'rtmp' }), undefined);
    assert.throws(() => existingTarget({ edgesAt: '127.0.0.1:1935' }), /needs --origins-at, --edges-at and --api-at/);
    const t = existingTarget({
      originsAt: '127.0.0.1:1935',
      edgesAt: '127.0.0.1:1936,127.0.0.1:1937',
      apiAt: '127.0.0.1:8080',
      apiToken: 'tok',
      redisUrl: 'redis://:pw@127.0.0.1:6390',
    })!;
    assert.equal(t.edgesAt.length, 2);
    assert.equal(t.clusterPrefix, 'rtmp');
    assert.equal(t.allowRemote, false);
    // Restarting scenarios are refused against it; the report carries no secret.
    const o = { ...DEFAULT_OPTIONS, target: t, rolling: true, rollingEdges: true };
    assert.match(optionProblems(o).join(), /--rolling and --rolling-edges stop and start node processes/);
    assert.match(optionProblems({ ...o, cpuProfDir: '/tmp/p' }).join('\n'), /--cpu-prof-dir profiles nodes the runner/);
    assert.deepEqual(optionProblems({ ...DEFAULT_OPTIONS, cpuProfDir: '/tmp/p' }), []);
    const shown = JSON.stringify(reportedOptions(o));
    assert.ok(!shown.includes('tok') && !shown.includes(':pw@'), shown);
    assert.ok(!('log' in reportedOptions(o)));
  });
});

describe('cluster-load: load balancing pieces', () => {
  const edge = (id: string, rtmpAddr: string) => ({ id, rtmpAddr }) as NodeHandle;
  const edges = [edge('e0', '127.0.0.1:2001'), edge('e1', '127.0.0.1:2002')];

  it("maps the router's answer to an edge: by node id, then by address, then by a port only one edge has", () => {
    assert.equal(edgeIndex(edges, { nodeId: 'e1', url: 'rtmp://x:1/live/a' }), 1);
    assert.equal(edgeIndex(edges, { nodeId: '?', url: 'rtmp://127.0.0.1:2001/live/a' }), 0);
    assert.equal(edgeIndex(edges, { nodeId: '?', url: 'rtmp://pod-ip:2002/live/a' }), 1);
    assert.equal(edgeIndex(edges, { nodeId: '?', url: 'rtmp://127.0.0.1:9/live/a' }), -1);
  });

  it('the audience depends on the seed only: same seed, same plan; every stream watched', () => {
    const sizes = { streams: 4, viewers: 20, zipf: 1 };
    const a = audiencePlan(sizes, prng(9));
    assert.deepEqual(audiencePlan(sizes, prng(9)), a);
    assert.notDeepEqual(audiencePlan(sizes, prng(10)), a);
    assert.equal(a.length, 20);
    assert.deepEqual([...new Set(a)].sort(), [0, 1, 2, 3]);
  });

  it("CPU and RSS from prom-client's default process metrics; NaN when missing", () => {
    const s = metricsSample(
      '# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 104857600\n',
    );
    assert.equal(s.cpuMs, 1500);
    assert.equal(s.rssKiB, 102400);
    const none = metricsSample('rtmp_pulls_active 0\n');
    assert.ok(Number.isNaN(none.cpuMs) && Number.isNaN(none.rssKiB));
  });
});

describe('cluster-load: how it starts a node', () => {
  it('with the shipped Node flags before the CLI (as the image runs it), the profiler only when asked', () => {
    assert.ok(RELAY_NODE_FLAGS.includes('--max-semi-space-size=8'));
    assert.deepEqual(relayNodeArgs('edge', 'edge-0'), [...RELAY_NODE_FLAGS, CLI, 'edge']);
    assert.deepEqual(relayNodeArgs('origin', 'origin-1', '/tmp/p'), [
      '--cpu-prof',
      '--cpu-prof-dir=/tmp/p',
      '--cpu-prof-name=origin-1.cpuprofile',
      ...RELAY_NODE_FLAGS,
      CLI,
      'origin',
    ]);
  });
});

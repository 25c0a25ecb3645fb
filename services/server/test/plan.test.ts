import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { DEFAULT_PLAN_INPUT, MEASURED_COSTS, formatPlan, planTopology } from '../src/plan.js';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

describe('rtmp-relay plan: the sizing calculator', () => {
  it('200 streams at 3 Mbit/s for 50 000 viewers: NIC-bound edges, no parent tier', () => {
    const plan = planTopology({ ...DEFAULT_PLAN_INPUT, streams: 200, bitrateKbps: 3000, viewers: 50_000 });
    // 10 Gbit/s × 60% / 3 Mbit/s = 2000 viewers per node; CPU would allow 8 × 600 / 0.321 = 14 953.
    assert.equal(plan.viewersPerNode, 2000);
    assert.equal(plan.bound, 'nic');
    assert.equal(plan.leaves.nodes, 26); // 25 + 1 spare
    assert.equal(plan.leaves.egressGbps, 150);
    assert.equal(plan.parents, undefined);
    // The hot stream (15 000 viewers) fills 8 edges; 199 other streams one edge each: 207 origin pulls.
    assert.equal(plan.hotStreamOriginPulls, 8);
    assert.equal(plan.origins.nodes, 3); // 2 + 1 spare
    assert.equal(plan.origins.connectionsPerNode, 104);
    assert.equal(plan.origins.egressGbps, 0.62);
    // Memory per node: 8 processes × 170 MiB + connections × 25 KiB + streams held × 2 MiB (edges hold every stream,
    // each origin its share of 100): 1.328 + 0.048 + 0.391 GiB per edge, 1.328 + 0.002 + 0.195 GiB per origin.
    assert.equal(MEASURED_COSTS.rssMiBPerProcess, 170);
    assert.equal(MEASURED_COSTS.rssKiBPerViewer, 25);
    assert.equal(plan.leaves.memoryGiBPerNode, 1.77);
    assert.equal(plan.origins.memoryGiBPerNode, 1.53);
  });

  it('one very hot stream over 100 edges gets a parent tier: 1 origin pull per stream', () => {
    const plan = planTopology({
      ...DEFAULT_PLAN_INPUT,
      streams: 10,
      bitrateKbps: 3000,
      viewers: 200_000,
      hotShare: 0.8,
    });
    assert.equal(plan.leaves.nodes, 101);
    assert.ok(plan.parents, 'a parent tier');
    assert.equal(plan.hotStreamOriginPulls, 1);
    assert.equal(plan.parents!.connectionsPerNode, 54); // 80 hot leaves + 9 × 3 others = 107 pulls over 2 parents
  });

  it('CPU-bound at low NIC-cost: a 2-core node with a 25 Gbit/s NIC', () => {
    const plan = planTopology({
      ...DEFAULT_PLAN_INPUT,
      cores: 2,
      nicGbps: 25,
      streams: 1,
      bitrateKbps: 2710,
      viewers: 3000,
    });
    // 2 × 1000 ms × 60% / 0.29 ms = 4137 viewers per node.
    assert.equal(plan.bound, 'cpu');
    assert.equal(plan.viewersPerNode, Math.floor((2 * 1000 * 0.6) / MEASURED_COSTS.cpuMsPerViewerSecond));
    assert.equal(plan.leaves.nodes, 3); // the minimum of 2, + 1 spare
    // One stream: all 3000 viewers watch it, on 1 edge's worth of capacity → 1 origin pull.
    assert.equal(plan.hotStreamOriginPulls, 1);
    assert.equal(plan.leaves.egressGbps, 8.13);
  });

  it('refuses impossible input with a readable error', () => {
    assert.throws(
      () => planTopology({ ...DEFAULT_PLAN_INPUT, streams: 0, bitrateKbps: 3000, viewers: 10 }),
      /positive/,
    );
    assert.throws(
      () => planTopology({ ...DEFAULT_PLAN_INPUT, hotShare: 1.5, streams: 1, bitrateKbps: 3000, viewers: 10 }),
      /shares/,
    );
  });

  it('the CLI prints the same plan (text and JSON) and exits 2 on bad flags', () => {
    const args = ['--conditions=source', '--import', 'tsx', CLI, 'plan', '--streams', '200', '--bitrate', '3000'];
    const text = spawnSync(process.execPath, [...args, '--viewers', '50000'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(text.status, 0, text.stderr);
    const expected = formatPlan(
      planTopology({ ...DEFAULT_PLAN_INPUT, streams: 200, bitrateKbps: 3000, viewers: 50_000 }),
    );
    assert.equal(text.stdout.trim(), expected);
    const json = spawnSync(process.execPath, [...args, '--viewers', '50000', '--json'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal((JSON.parse(json.stdout) as { leaves: { nodes: number } }).leaves.nodes, 26);
    const bad = spawnSync(process.execPath, [...args, '--viewers', 'many'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /expected a positive number/);
  });
});

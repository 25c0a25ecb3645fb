import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_OPTIONS } from '../src/cluster-load/options.js';
import { runClusterLoad } from '../src/cluster-load/runner.js';
import type { CpuProfile } from '../src/cpu-profile.js';
import { formatTop, profileTop, reportWindow } from '../src/cpu-top.js';

/**
 * cpu-top: self time per function of real V8 profiles (`node --cpu-prof`), optionally inside a cluster-load steady
 * window; and cluster-load's --cpu-prof-dir, which profiles every node it starts.
 */

/** A process whose CPU goes to one named function for a bounded number of iterations. */
const BURN = `
function burnTheCpuForCpuTopTest(n) { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003; return x; }
let sum = 0;
const until = Date.now() + 3000;
for (let round = 0; round < 400 && Date.now() < until; round++) sum += burnTheCpuForCpuTopTest(200000);
console.log(sum);
`;

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

describe('cpu-top', () => {
  it('names the function a real profile spent its time in, and keeps only samples inside the window', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpu-top-'));
    try {
      const before = monoUs();
      const r = spawnSync(
        process.execPath,
        ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-name=burn.cpuprofile', '-e', BURN],
        { encoding: 'utf8', timeout: 20_000 },
      );
      const after = monoUs();
      assert.equal(r.status, 0, r.stderr);
      const file = join(dir, 'burn.cpuprofile');
      const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;

      const whole = profileTop(file, profile, 5);
      assert.ok(whole.busyMs > 100, `busy ${whole.busyMs} ms`);
      assert.match(whole.top[0]!.name, /^burnTheCpuForCpuTopTest /);
      assert.ok(whole.top[0]!.percent > 50, formatTop(whole));
      assert.match(formatTop(whole), /burn\.cpuprofile: \d+ ms busy\n +\d+\.\d % +\d+ ms {2}burnTheCpuForCpuTopTest/);

      // The profile's clock is this machine's monotonic clock: the child's run lies inside [before, after].
      const inside = profileTop(file, profile, 5, [before, after]);
      assert.ok(Math.abs(inside.busyMs - whole.busyMs) <= 1, `${inside.busyMs} vs ${whole.busyMs}`);
      const earlier = profileTop(file, profile, 5, [before - 10_000_000, before - 5_000_000]);
      assert.equal(earlier.busyMs, 0);
      assert.deepEqual(earlier.top, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the steady window of a cluster-load report, and refuses a report without one', () => {
    assert.deepEqual(reportWindow(JSON.stringify({ steadyWindowMonoUs: [10, 20] })), [10, 20]);
    assert.throws(() => reportWindow('{}'), /no steadyWindowMonoUs/);
    assert.throws(() => reportWindow(JSON.stringify({ steadyWindowMonoUs: [10, null] })), /no steadyWindowMonoUs/);
  });

  it(
    'cluster-load --cpu-prof-dir: every node it starts leaves a profile with samples in the steady window',
    { timeout: 60_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cluster-prof-'));
      const lines: string[] = [];
      try {
        const r = await runClusterLoad({
          ...DEFAULT_OPTIONS,
          origins: 1,
          edges: 1,
          streams: 2,
          viewers: 6,
          hotStreams: 0,
          rampPerSecond: 40,
          durationS: 2,
          settleMs: 500,
          probes: 0,
          leaseMs: 3000,
          pullLingerMs: 1000,
          shutdownTimeoutMs: 2000,
          timeLimitS: 45,
          progress: false,
          cpuProfDir: dir,
          log: (l) => lines.push(l),
        });
        const ctx = lines.join('\n');
        assert.equal(r.delivery.viewersMeasured, 6, ctx);
        const [from, to] = r.steadyWindowMonoUs;
        assert.ok(to - from >= 2_000_000, `window ${from}..${to}`);
        assert.deepEqual(readdirSync(dir).sort(), ['edge-0.cpuprofile', 'origin-0.cpuprofile']);
        for (const name of ['edge-0', 'origin-0']) {
          const file = join(dir, `${name}.cpuprofile`);
          const t = profileTop(file, JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, 20, r.steadyWindowMonoUs);
          // Both carried media through the window: samples there, and our own code among them (a 2 s window of a
          // tiny load: the runner's /metrics scrapes and the collector can fill the first ten places).
          assert.ok(t.busyMs > 0, formatTop(t));
          assert.ok(
            t.top.some((e) => /dist\/|cluster\/|streams\/|rtmp\//.test(e.name)),
            formatTop(t),
          );
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prng } from '../src/prng.js';
import { parseStat, parseVmRssKiB } from '../src/procstat.js';
import {
  fmt,
  jsonSafe,
  percentile,
  percentileSorted,
  ratio,
  ReasonCounter,
  Reservoir,
  round,
  roundSummary,
  SampleBuffer,
  summarize,
} from '../src/stats.js';

describe('percentiles', () => {
  it('uses nearest rank on sorted input', () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert.equal(percentileSorted(s, 50), 5);
    assert.equal(percentileSorted(s, 95), 10);
    assert.equal(percentileSorted(s, 90), 9);
    assert.equal(percentileSorted(s, 10), 1);
    assert.equal(percentileSorted(s, 0), 1);
    assert.equal(percentileSorted(s, 100), 10);
  });

  it('is NaN for no samples and rejects bad p', () => {
    assert.ok(Number.isNaN(percentileSorted([], 50)));
    assert.throws(() => percentileSorted([1], 101), RangeError);
    assert.throws(() => percentileSorted([1], -1), RangeError);
    assert.throws(() => percentileSorted([1], NaN), RangeError);
  });

  it('sorts unsorted input numerically and ignores NaN', () => {
    assert.equal(percentile([10, 9, 100, 1, NaN, 2], 50), 9);
    assert.equal(percentile(new Float64Array([3, 1, 2]), 100), 3);
    assert.equal(percentile([5], 99), 5);
  });

  it('matches a brute-force definition on random data', () => {
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(Math.random() * 200);
      const values = Array.from({ length: n }, () => Math.round(Math.random() * 1000) / 10);
      const sorted = [...values].sort((a, b) => a - b);
      for (const p of [1, 50, 95, 99]) {
        const v = percentile(values, p);
        const atOrBelow = sorted.filter((x) => x <= v).length;
        assert.ok(atOrBelow / n >= p / 100, `at least p% <= the p-th percentile (n=${n} p=${p})`);
        const below = sorted.filter((x) => x < v).length;
        assert.ok(below / n < p / 100, `fewer than p% strictly below it (n=${n} p=${p})`);
      }
    }
  });
});

describe('summarize', () => {
  it('reports count, min, mean, percentiles and max', () => {
    const s = summarize([4, 1, 3, 2]);
    assert.deepEqual(s, { count: 4, min: 1, mean: 2.5, p50: 2, p95: 4, p99: 4, max: 4 });
  });

  it('is all NaN but count for no samples, and JSON turns NaN into null', () => {
    const s = summarize([]);
    assert.equal(s.count, 0);
    assert.ok(Number.isNaN(s.p50) && Number.isNaN(s.mean) && Number.isNaN(s.max));
    assert.equal(JSON.stringify({ p50: s.p50, n: 1, inf: Infinity }, jsonSafe), '{"p50":null,"n":1,"inf":null}');
    assert.equal(
      JSON.stringify(
        {
          gapByStream: new Map([
            [3, 1200.5],
            [7, NaN],
          ]),
        },
        jsonSafe,
      ),
      '{"gapByStream":{"3":1200.5,"7":null}}',
    );
  });

  it('rounds', () => {
    assert.equal(round(1.23456, 2), 1.23);
    assert.ok(Number.isNaN(round(NaN)));
    assert.deepEqual(roundSummary(summarize([1 / 3])), {
      count: 1,
      min: 0.33,
      mean: 0.33,
      p50: 0.33,
      p95: 0.33,
      p99: 0.33,
      max: 0.33,
    });
  });
});

describe('SampleBuffer', () => {
  it('grows and views ranges', () => {
    const b = new SampleBuffer(2);
    for (let i = 0; i < 1000; i++) b.push(i);
    assert.equal(b.length, 1000);
    assert.deepEqual([...b.view(998)], [998, 999]);
    assert.deepEqual([...b.view(0, 3)], [0, 1, 2]);
    assert.equal(summarize(b.view()).p50, 499);
    b.clear();
    assert.equal(b.length, 0);
    assert.equal(b.view().length, 0);
  });
});

describe('Reservoir', () => {
  it('summarizes fewer values than its capacity exactly, like summarize', () => {
    const r = new Reservoir(100, prng(1));
    const values = [5, -0.4, 12, 7, 3];
    for (const v of values) r.push(v);
    assert.deepEqual(r.summary(), summarize(values));
  });

  it('keeps exact count, min, mean and max of a long stream, and percentiles of a bounded uniform sample', () => {
    const r = new Reservoir(10_000, prng(7));
    const n = 1_000_000;
    // A stream that rises then falls: a sample that kept only the first or the last values would miss the median.
    for (let i = 0; i < n; i++) r.push(i < n / 2 ? 2 * i : 2 * (n - i) - 1);
    const s = r.summary();
    assert.equal(s.count, n);
    assert.equal(s.min, 0);
    assert.equal(s.max, n - 1);
    assert.equal(s.mean, (n - 1) / 2);
    // Uniform over 0..n-1: a 10 000-value sample puts the median within 2 % of the range.
    assert.ok(Math.abs(s.p50 - n / 2) < 0.02 * n, `p50 ${s.p50}`);
    assert.ok(Math.abs(s.p99 - 0.99 * n) < 0.01 * n, `p99 ${s.p99}`);
  });

  it('is empty (NaN) before any value and ignores NaN', () => {
    const r = new Reservoir(4);
    r.push(NaN);
    const s = r.summary();
    assert.equal(s.count, 0);
    assert.ok(Number.isNaN(s.p50) && Number.isNaN(s.min));
  });
});

describe('ReasonCounter, fmt and ratio', () => {
  it('counts by reason, most frequent first', () => {
    const c = new ReasonCounter();
    assert.equal(c.format(), 'none');
    c.add('timeout');
    c.add('ECONNRESET', 3);
    c.add('timeout');
    assert.equal(c.total, 5);
    assert.deepEqual(Object.keys(c.toJSON()), ['ECONNRESET', 'timeout']);
    assert.equal(c.format(), 'ECONNRESET:3 timeout:2');
  });

  it('formats and divides safely', () => {
    assert.equal(fmt(1.2345, 2), '1.23');
    assert.equal(fmt(NaN), '-');
    assert.equal(fmt(undefined), '-');
    assert.equal(ratio(1, 4), 0.25);
    assert.ok(Number.isNaN(ratio(1, 0)));
    assert.ok(Number.isNaN(ratio(NaN, 1)));
  });
});

describe('procstat parsing', () => {
  it('reads utime+stime after a command name with spaces and parentheses', () => {
    const line =
      '1234 (node (worker) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
    const s = parseStat(line, 100);
    assert.equal(s.pid, 1234);
    assert.equal(s.ppid, 1);
    assert.equal(s.cpuMs, 3000);
  });

  it('reads VmRSS', () => {
    assert.equal(parseVmRssKiB('Name:\tnode\nVmPeak:\t 2000 kB\nVmRSS:\t   81234 kB\nThreads: 7\n'), 81234);
    assert.equal(parseVmRssKiB('Name:\tzombie\n'), 0);
  });

  it('parses this process', async () => {
    const { readFileSync } = await import('node:fs');
    const s = parseStat(readFileSync('/proc/self/stat', 'utf8'));
    assert.equal(s.pid, process.pid);
    assert.ok(s.cpuMs >= 0);
    assert.ok(parseVmRssKiB(readFileSync('/proc/self/status', 'utf8')) > 1000);
  });
});

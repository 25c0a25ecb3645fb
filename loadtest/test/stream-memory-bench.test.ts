import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { formatStreamMemory, frameSizes, type StreamMemoryResult } from '../src/stream-memory-bench.js';

const CLI = fileURLToPath(new URL('../dist/stream-memory-bench.js', import.meta.url));
const TIMEOUT_MS = 60_000;

describe('stream-memory-bench', () => {
  it('measures real hubs: each stream holds its GOP about once, with or without joiners', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stream-memory-'));
    try {
      const json = join(dir, 'out.json');
      const run = spawnSync(
        process.execPath,
        ['--expose-gc', CLI, '--streams', '20', '--kbps', '300,2500', '--runs', '1', '--json', json],
        { encoding: 'utf8', timeout: TIMEOUT_MS },
      );
      assert.equal(run.status, 0, run.stderr);
      const { results } = JSON.parse(readFileSync(json, 'utf8')) as { results: StreamMemoryResult[] };
      assert.deepEqual(
        results.map((r) => [r.kbps, r.joiners]),
        [
          [300, false],
          [300, true],
          [2500, false],
          [2500, true],
        ],
      );
      for (const r of results) {
        const label = `${r.kbps} kbit/s, joiners ${r.joiners}: ${r.ratio.toFixed(2)}x the GOP`;
        // Two seconds at the stream's bitrate, give or take the rounding of frame sizes.
        assert.ok(Math.abs(r.gopPayloadBytes - (r.kbps * 1000 * 2) / 8) < 0.05 * r.gopPayloadBytes, label);
        // One copy of the GOP (plus the join arena's headroom when someone joined): not a payload beside the
        // chunks (2x) or a join copy on top (3.7x at 2500, 5.6x at 300 before frames dropped their payload).
        assert.ok(r.ratio >= 1 && r.ratio <= (r.joiners ? 1.5 : 1.2), label);
      }
      assert.match(run.stdout, /^\| kbit\/s \| a joiner per GOP \|/);
      assert.equal(run.stdout.trim().split('\n').length, 2 + results.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to measure without --expose-gc, and rejects bad sizes, with a readable error', () => {
    const noGc = spawnSync(process.execPath, [CLI, '--streams', '1', '--runs', '1'], {
      encoding: 'utf8',
      timeout: TIMEOUT_MS,
    });
    assert.equal(noGc.status, 1);
    assert.match(noGc.stderr, /--expose-gc/);
    const bad = spawnSync(process.execPath, ['--expose-gc', CLI, '--kbps', '300,x'], {
      encoding: 'utf8',
      timeout: TIMEOUT_MS,
    });
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr,
      /'--kbps <list>' argument '300,x' is invalid\. expected positive integers separated by commas/,
    );
  });

  it('sizes frames so a GOP carries the bitrate, with the keyframe ten inter frames', () => {
    const f = frameSizes(2500);
    assert.equal(f.key, 10 * f.inter);
    assert.equal(f.audio, Math.round(128_000 / 8 / (48_000 / 1024)));
    const table = formatStreamMemory([
      {
        kbps: 300,
        joiners: true,
        streams: 1,
        gopPayloadBytes: 1024 * 1024,
        bytesPerStream: { median: 1.5 * 1024 * 1024, min: 1.4 * 1024 * 1024, max: 1.6 * 1024 * 1024 },
        ratio: 1.5,
      },
    ]);
    assert.equal(table.split('\n')[2], '| 300 | yes | 1.00 | 1.50 (1.40–1.60) | 1.50 |');
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { formatIngest, ingestCases, measureIngest } from '../src/ingest-bench.js';

const CLI = fileURLToPath(new URL('../dist/ingest-bench.js', import.meta.url));

describe('ingest-bench', () => {
  it('times every case, with the tag parsers under a budget and serialization reported only', () => {
    const results = measureIngest(ingestCases(), 1000, 2);
    assert.deepEqual(
      results.map((r) => r.name),
      [
        'parseVideoTag, H.264 inter frame',
        'parseVideoTag, H.264 keyframe',
        'parseAudioTag, AAC raw frame',
        'parseVideoTag, E-RTMP AV1 inter frame',
        'parseAudioTag, E-RTMP Opus frame',
        'encodeMessageChunks, 5 KB video, chunk size 4096',
      ],
    );
    for (const r of results) {
      assert.ok(r.nsPerCall.min > 0 && r.nsPerCall.min <= r.nsPerCall.median, r.name);
      assert.ok(r.nsPerCall.median <= r.nsPerCall.max, r.name);
    }
    assert.deepEqual(
      results.map((r) => r.budgetNs),
      [1000, 1000, 1000, 1000, 1000, undefined],
    );
    const table = formatIngest(results).split('\n');
    assert.equal(table.length, 2 + results.length);
    assert.match(
      table[2]!,
      /^\| parseVideoTag, H\.264 inter frame \| [\d.]+ \([\d.]+–[\d.]+\) \| 1000 (ok|\*\*over\*\*) \|$/,
    );
  });

  it('refuses to time a case whose result is wrong', () => {
    const [first] = ingestCases();
    assert.throws(() => measureIngest([{ ...first!, expect: 4 }], 10, 1), /got 5, expected 4/);
  });

  it('the CLI prints the table and writes its JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingest-bench-'));
    try {
      const file = join(dir, 'report.json');
      const out = spawnSync(process.execPath, [CLI, '--iterations', '2000', '--runs', '1', '--json', file], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(out.status, 0, out.stderr);
      assert.match(out.stdout, /\| encodeMessageChunks, 5 KB video, chunk size 4096 \| [\d.]+ /);
      assert.match(out.stderr, /2000 calls x 1 runs per case/);
      const report = JSON.parse(readFileSync(file, 'utf8')) as { iterations: number; results: unknown[] };
      assert.equal(report.iterations, 2000);
      assert.equal(report.results.length, 6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const bad = spawnSync(process.execPath, [CLI, '--runs', '0'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--runs must be a positive integer/);
  });
});

/**
 * The benchmark's edge role (`--servers ours-edge`), small: the built bench starts redis-server, nats-server, an
 * origin and the edge under test, publishes to the origin and plays 100 viewers from the edge. Every viewer must get
 * everything, through exactly one upstream pull (read from the edge's own metrics after the run).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../dist/bench.js', import.meta.url));
const RUN_LIMIT_MS = 120_000;

interface BenchJson {
  options: { allocator: { malloc: string } };
  results: Array<{
    server: string;
    error?: string;
    serverMetrics?: string[];
    report?: {
      viewers: { requested: number; everUp: number; failuresTotal: number };
      delivery: { ratio: number; minViewerRatio: number };
    };
  }>;
}

function metricValue(lines: string[], name: string): number | undefined {
  const line = lines.find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('bench: the edge role', { timeout: RUN_LIMIT_MS + 10_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-edge-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('100 viewers on an edge pulling from an origin: all up, everything delivered, one pull', async () => {
    const json = join(dir, 'bench.json');
    const child = spawn(
      process.execPath,
      [
        BENCH,
        '--quick',
        '--servers',
        'ours-edge',
        '--json',
        json,
        // A smoke run on a shared CI machine: never wait for quiet, never retry, keep noisy runs.
        '--quiet-percent',
        '200',
        '--max-noise',
        '100',
        '--retries',
        '0',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    let stderrHead = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderrHead.length < 4000) stderrHead += d.toString();
      stderr = (stderr + d.toString()).slice(-8000);
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), RUN_LIMIT_MS);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, `bench exited ${code}:\n${stderr}`);

    const doc = JSON.parse(readFileSync(json, 'utf8')) as BenchJson;
    // Our nodes run on jemalloc, as the image runs them (.ci/run installs libjemalloc2).
    assert.equal(doc.options.allocator.malloc, 'jemalloc', JSON.stringify(doc.options.allocator));
    assert.match(stderrHead, /our allocator jemalloc/);
    // The table gives the node's RSS before the viewers and at the end beside the per-viewer figure.
    assert.match(stderr, /\| -?\d+\.\d \(\d+ → \d+\) \|/, stderr);
    const result = doc.results[0];
    assert.ok(result, 'no result');
    assert.equal(result.server, 'ours-edge');
    assert.equal(result.error, undefined, result.error);
    const report = result.report!;
    assert.equal(report.viewers.requested, 100);
    assert.equal(report.viewers.everUp, 100, stderr);
    assert.equal(report.viewers.failuresTotal, 0, stderr);
    assert.ok(report.delivery.minViewerRatio >= 0.99, `a viewer got ${report.delivery.minViewerRatio} of the stream`);
    const metrics = result.serverMetrics ?? [];
    assert.equal(metricValue(metrics, 'rtmp_pull_starts_total'), 1, metrics.join('\n'));
    assert.equal(metricValue(metrics, 'rtmp_pulls_active'), 1, metrics.join('\n'));
  });
});

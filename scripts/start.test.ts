/**
 * `npm start` builds only what is missing or older than its sources, then runs the CLI in the same process: checked on
 * a scratch tree (missing, stale and fresh outputs by file times) and on this repository (a fresh build starts at once).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
// @ts-expect-error: a plain .mjs module (npm start runs it without a build).
import { CLI_REL, PARTS, staleReason } from './build-state.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const scratch = mkdtempSync(join(tmpdir(), 'rtmp-relay-start-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const FRESH_START_MS = 5000;

function touch(rel: string, when: number): void {
  const p = join(scratch, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, '');
  utimesSync(p, when / 1000, when / 1000);
}

describe('npm start', () => {
  it('builds when an output is missing or older than its sources, not when all are fresh', () => {
    const t0 = Date.now() - 60_000;
    const parts = PARTS as Array<{ output: string; sources: string[] }>;
    for (const p of parts) for (const s of p.sources) touch(s.includes('.') ? s : `${s}/a.ts`, t0);
    assert.match(staleReason(scratch), /cli\.js is missing/);
    touch(CLI_REL, t0 + 1000);
    assert.match(staleReason(scratch), /dist\/\.tsbuildinfo is missing/);
    for (const p of parts) touch(p.output, t0 + 1000);
    assert.equal(staleReason(scratch), undefined, 'every output newer than its sources');
    touch('libs/hub/src/deep/edited.ts', t0 + 2000);
    assert.match(staleReason(scratch), /libs\/hub\/src changed since libs\/hub\/dist\/\.tsbuildinfo/);
    touch('libs/hub/dist/.tsbuildinfo', t0 + 3000);
    touch('services/console/src/main.ts', t0 + 4000);
    assert.match(staleReason(scratch), /services\/console\/src changed/);
  });

  it('runs the CLI with the given arguments; a fresh build starts without building', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const start = () =>
      spawnSync(process.execPath, [join(ROOT, 'scripts/start.mjs'), '--version'], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 300_000,
      });
    const first = start(); // builds if this checkout is not built yet (npm test builds with tsc -b, not the console)
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout.trim(), version);
    const t = Date.now();
    const second = start();
    const took = Date.now() - t;
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout.trim(), version);
    assert.doesNotMatch(second.stderr, /building/, 'nothing to build the second time');
    assert.ok(took < FRESH_START_MS, `a built tree starts in ${took} ms`);
  });
});

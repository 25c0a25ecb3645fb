/**
 * The k6 scripts (plain JavaScript) type-check against @types/k6: loadtest/k6/tsconfig.json (allowJs, checkJs).
 * k6 itself is not installed here; this catches wrong k6 API use, option shapes and metric calls in CI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = fileURLToPath(new URL('../../node_modules/.bin/tsc', import.meta.url));

describe('k6 scripts', () => {
  it('type-check against @types/k6 (tsc -p loadtest/k6/tsconfig.json exits 0)', { timeout: 120_000 }, () => {
    assert.ok(existsSync(tsc), `TypeScript compiler not found at ${tsc} (npm ci)`);
    assert.ok(
      existsSync(fileURLToPath(new URL('../../node_modules/@types/k6/index.d.ts', import.meta.url))),
      '@types/k6 is not installed (npm ci)',
    );
    const r = spawnSync(tsc, ['-p', 'loadtest/k6/tsconfig.json', '--pretty', 'false'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 110_000,
    });
    assert.equal(r.status, 0, `tsc reported:\n${r.stdout}${r.stderr}`);
  });
});

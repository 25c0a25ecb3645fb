/**
 * The public CI workflows (.github/workflows): each validates against the GitHub Actions workflow schema
 * (@action-validator/cli), CI runs exactly what the project's own CI runs (`bash .ci/run`, which runs `npm test`),
 * and a version tag publishes a multi-arch image with an SBOM and the chart as an OCI artifact.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { ROOT } from './support/k8s.js';

const WORKFLOWS = join(ROOT, '.github/workflows');
const VALIDATOR = join(ROOT, 'node_modules/@action-validator/cli/cli.mjs');
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

function validate(file: string): { ok: boolean; output: string } {
  const r = spawnSync(process.execPath, [VALIDATOR, file], { encoding: 'utf8', timeout: 60_000 });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Workflow {
  on: Record<string, any>;
  jobs: Record<string, { steps: Step[]; needs?: string | string[]; strategy?: any }>;
}
const workflow = (name: string) => parseYaml(read(`.github/workflows/${name}`)) as Workflow;

describe('GitHub workflows (.github/workflows)', () => {
  it('every workflow validates against the workflow schema, and the validator catches a broken one', () => {
    const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
    assert.deepEqual(files.sort(), ['ci.yml', 'release.yml']);
    for (const f of files) {
      const r = validate(join(WORKFLOWS, f));
      assert.ok(r.ok, `${f}:\n${r.output}`);
    }
    const broken = join(mkdtempSync(join(tmpdir(), 'rtmp-relay-workflow-')), 'broken.yml');
    writeFileSync(broken, 'on: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    stepz: []\n');
    assert.equal(validate(broken).ok, false, 'a misspelled key is refused');
  });

  it('CI runs .ci/run, which runs exactly the README test command, on every supported Node version', () => {
    const ci = workflow('ci.yml');
    assert.ok(ci.on.push && 'pull_request' in ci.on);
    const job = ci.jobs.test!;
    const runs = job.steps.filter((s) => s.run).map((s) => s.run!.trim());
    assert.deepEqual(runs, ['bash .ci/run']);
    assert.equal(job.steps.find((s) => s.run)!.env?.RTMP_RELAY_TEST_SERVICES, 'containers', 'testcontainers on CI');
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const majors = [...engines.matchAll(/\^(\d+)\./g)].map((m) => Number(m[1]));
    assert.deepEqual(job.strategy.matrix.node, majors, 'the matrix is engines.node');
    const script = read('.ci/run');
    const commands = script.split('\n').filter((l) => /^\s*npm (test|run test|t)\b/.test(l));
    assert.deepEqual(commands, ['npm test'], '.ci/run calls exactly `npm test`');
    assert.match(read('README.md'), /npm test/);
  });

  it('a version tag tests, then pushes a multi-arch image with an SBOM, then the chart to an OCI registry', () => {
    const rel = workflow('release.yml');
    assert.deepEqual(Object.keys(rel.on), ['push']);
    assert.ok((rel.on.push.tags as string[]).some((t) => t.startsWith('v')));
    assert.equal(rel.jobs.image!.needs, 'test');
    assert.equal(rel.jobs.chart!.needs, 'image');
    assert.deepEqual(
      rel.jobs.test!.steps.filter((s) => s.run).map((s) => s.run!.trim()),
      ['bash .ci/run'],
    );
    const build = rel.jobs.image!.steps.find((s) => s.uses?.startsWith('docker/build-push-action'))!;
    assert.equal(build.with!.platforms, 'linux/amd64,linux/arm64');
    assert.equal(build.with!.push, true);
    assert.equal(build.with!.sbom, true);
    for (const arg of ['VERSION', 'REVISION', 'SOURCE', 'CREATED'])
      assert.match(String(build.with!['build-args']), new RegExp(`^\\s*${arg}=`, 'm'), `build arg ${arg}`);
    assert.ok(
      rel.jobs.image!.steps.some((s) => s.uses?.startsWith('anchore/sbom-action')),
      'an SPDX SBOM file',
    );
    const chartRuns = rel.jobs.chart!.steps.map((s) => s.run ?? '').join('\n');
    assert.match(chartRuns, /helm lint --strict/);
    assert.match(chartRuns, /helm package/);
    assert.match(chartRuns, /helm push .* "oci:\/\//);
  });
});

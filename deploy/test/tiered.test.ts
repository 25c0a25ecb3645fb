/**
 * The two-tier layouts (docs/ARCHITECTURE.md, "Tiered edges and routing"): the kustomize overlay overlays/tiered and
 * the chart with helm/examples/values-tiered.yaml render a parent-tier edge Deployment (EDGE_TIER=parent, its own
 * component label and selector, a disruption budget) beside the leaf edges (EDGE_UPSTREAM=parents); every object
 * validates against the Kubernetes schemas, and every env value parses as the node would (loadConfig).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../services/server/src/config.js';
import { renderChart } from './support/helm.js';
import { ROOT, kustomizeBuild, validateSchemas, type K8sObject } from './support/k8s.js';

const COMPONENT = 'app.kubernetes.io/component';

function deployment(objs: readonly K8sObject[], component: string): any {
  const found = objs.filter(
    (o) => o.kind === 'Deployment' && (o as any).spec.selector.matchLabels[COMPONENT] === component,
  );
  assert.equal(found.length, 1, `one ${component} Deployment: ${found.map((o) => o.metadata.name)}`);
  return found[0];
}

const envOf = (d: any): Record<string, string | undefined> =>
  Object.fromEntries((d.spec.template.spec.containers[0].env ?? []).map((e: any) => [e.name, e.value]));

function checkTiers(objs: readonly K8sObject[], where: string): void {
  const parent = deployment(objs, 'parent-edge');
  const leaf = deployment(objs, 'edge');
  assert.equal(parent.spec.template.metadata.labels[COMPONENT], 'parent-edge', `${where}: pod label matches selector`);
  assert.equal(parent.spec.template.spec.containers[0].args[0], 'edge', `${where}: a parent runs the edge role`);
  assert.equal(envOf(parent).EDGE_TIER, 'parent', where);
  assert.equal(envOf(leaf).EDGE_UPSTREAM, 'parents', where);
  assert.notEqual(envOf(leaf).EDGE_TIER, 'parent', `${where}: leaves stay leaves`);
  assert.ok(parent.spec.replicas >= 2, `${where}: at least 2 parents (failover)`);
  const pdb = objs.find(
    (o) => o.kind === 'PodDisruptionBudget' && (o as any).spec.selector.matchLabels[COMPONENT] === 'parent-edge',
  );
  assert.ok(pdb, `${where}: parents have a disruption budget`);
  // The parent's settings parse as the node would (EDGE_TIER and the rest; secrets stubbed).
  for (const d of [parent, leaf]) {
    const env: Record<string, string> = { CLUSTER_SECRET: 'x'.repeat(32), API_TOKEN: 'x'.repeat(32) };
    for (const [k, v] of Object.entries(envOf(d))) if (v !== undefined) env[k] = v;
    try {
      loadConfig({ env });
    } catch (err) {
      if (err instanceof ConfigError) assert.fail(`${where} ${d.metadata.name}: ${err.message}`);
      throw err;
    }
  }
}

describe('two-tier edge layouts', () => {
  it('kustomize overlays/tiered: parent-edge Deployment and PDB beside the leaf edges; schemas validate', async () => {
    const objs = kustomizeBuild(join(ROOT, 'deploy/k8s/overlays/tiered'));
    checkTiers(objs, 'kustomize overlays/tiered');
    assert.deepEqual(await validateSchemas(objs, 'kustomize overlays/tiered'), []);
    // Same config and auth as the other relay pods (the generated, hashed names are resolved in the parents too).
    const parent = deployment(objs, 'parent-edge');
    const names = parent.spec.template.spec.containers[0].envFrom.map(
      (e: any) => e.configMapRef?.name ?? e.secretRef?.name,
    );
    for (const n of names)
      assert.ok(
        objs.some((o) => o.metadata.name === n),
        `${n} exists`,
      );
  });

  it('helm with values-tiered.yaml: parent-edge Deployment and PDB; disabled by default', async () => {
    const objs = renderChart({ valuesFiles: [join(ROOT, 'helm/examples/values-tiered.yaml')] });
    checkTiers(objs, 'helm values-tiered.yaml');
    assert.deepEqual(await validateSchemas(objs, 'helm values-tiered.yaml'), []);
    const defaults = renderChart();
    assert.ok(!defaults.some((o) => o.metadata.name.endsWith('parent-edge')), 'no parents unless enabled');
  });
});

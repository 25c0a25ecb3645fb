/**
 * A Kubernetes API server just large enough for `helm template --dry-run=server`: discovery for the kinds the chart
 * renders, GET and LIST of a fixed set of objects (what `lookup` finds on an upgrade), 404 for everything else.
 * Loopback only, port 0; the kubeconfig it writes points helm at it.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { K8sObject } from './k8s.js';

/** group/version -> [plural, kind, namespaced] */
const RESOURCES: Record<string, Array<[string, string, boolean]>> = {
  v1: [
    ['secrets', 'Secret', true],
    ['configmaps', 'ConfigMap', true],
    ['services', 'Service', true],
    ['serviceaccounts', 'ServiceAccount', true],
    ['pods', 'Pod', true],
    ['namespaces', 'Namespace', false],
  ],
  'apps/v1': [
    ['deployments', 'Deployment', true],
    ['statefulsets', 'StatefulSet', true],
  ],
  'policy/v1': [['poddisruptionbudgets', 'PodDisruptionBudget', true]],
  'autoscaling/v2': [['horizontalpodautoscalers', 'HorizontalPodAutoscaler', true]],
  'networking.k8s.io/v1': [
    ['networkpolicies', 'NetworkPolicy', true],
    ['ingresses', 'Ingress', true],
  ],
  'monitoring.coreos.com/v1': [
    ['podmonitors', 'PodMonitor', true],
    ['prometheusrules', 'PrometheusRule', true],
  ],
};
const KUBE_VERSION = { major: '1', minor: '33', gitVersion: 'v1.33.0' };

export interface FakeKubeApi {
  kubeconfig: string;
  close(): Promise<void>;
}

export async function startFakeKubeApi(objects: K8sObject[], dir: string): Promise<FakeKubeApi> {
  const send = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const notFound = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 };
  const groups = Object.keys(RESOURCES).filter((gv) => gv.includes('/'));
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://api').pathname;
    if (path === '/version') return send(res, 200, KUBE_VERSION);
    if (path === '/api') return send(res, 200, { kind: 'APIVersions', versions: ['v1'] });
    if (path === '/apis')
      return send(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: groups.map((gv) => {
          const [name, version] = gv.split('/') as [string, string];
          return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
        }),
      });
    const m = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))(?:\/namespaces\/([^/]+))?(?:\/([^/]+)(?:\/([^/]+))?)?$/.exec(path);
    if (!m) return send(res, 404, notFound);
    const gv = (m[1] ?? m[2])!;
    const table = RESOURCES[gv];
    if (!table) return send(res, 404, notFound);
    if (!m[4])
      return send(res, 200, {
        kind: 'APIResourceList',
        groupVersion: gv,
        resources: table.map(([name, kind, namespaced]) => ({
          name,
          singularName: '',
          namespaced,
          kind,
          verbs: ['get', 'list', 'create', 'update', 'delete'],
        })),
      });
    const kind = table.find(([plural]) => plural === m[4])?.[1];
    const matches = objects.filter(
      (o) => o.apiVersion === gv && o.kind === kind && (!m[3] || (o.metadata.namespace ?? '') === m[3]),
    );
    if (req.method !== 'GET') return send(res, 404, notFound);
    if (m[5]) {
      const found = matches.find((o) => o.metadata.name === m[5]);
      return found ? send(res, 200, found) : send(res, 404, notFound);
    }
    return send(res, 200, { kind: `${kind}List`, apiVersion: gv, metadata: { resourceVersion: '1' }, items: matches });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const kubeconfig = join(dir, 'kubeconfig.json');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: `http://127.0.0.1:${port}` } }],
      users: [{ name: 'fake', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    }),
  );
  return {
    kubeconfig,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

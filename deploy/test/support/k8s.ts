/**
 * Kubernetes manifests for tests, without a cluster: build kustomize overlays (`kubectl kustomize`), validate every
 * object against the Kubernetes schemas, and check what a schema cannot: probes, ports, selectors, settings,
 * security, drain timing.
 *
 * Two independent schema checks:
 * - kubernetes-models 4.5.1: JSON-Schema validators generated from the Kubernetes 1.33 OpenAPI spec (required
 *   fields, types, formats, enums), plus @kubernetes-models/prometheus-operator for PodMonitor and PrometheusRule;
 * - kubernetes-types 1.30.0 through the TypeScript compiler: each object is type-checked as an object literal, so an
 *   unknown or misspelled field anywhere (`readinesProbe`), a field newer than 1.30 or a wrong type is an error
 *   (the "strict" part that the OpenAPI schemas, which allow extra fields, do not catch).
 * An object must pass both: the manifests target Kubernetes >= 1.30.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { kubectlBin } from './kube-tools.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const KUBE_TARGET = 'Kubernetes >= 1.30 (kubernetes-types 1.30.0; kubernetes-models 4.5.1 = OpenAPI 1.33)';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

export const id = (o: K8sObject): string => `${o.kind}/${o.metadata?.name ?? '?'}`;

/** Parses a YAML stream of manifests; empty documents are skipped, syntax errors throw with `source`. */
export function parseManifests(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    const o = value as K8sObject;
    if (typeof o !== 'object' || !o.apiVersion || !o.kind || !o.metadata?.name)
      throw new Error(
        `${source}: a document without apiVersion, kind or metadata.name: ${JSON.stringify(value).slice(0, 200)}`,
      );
    out.push(o);
  }
  return out;
}

/** `kubectl kustomize <dir>` (kustomize v5 built into kubectl; the kubectl of kube-tools.ts). */
export function kustomizeBuild(dir: string): K8sObject[] {
  const r = spawnSync(kubectlBin(), ['kustomize', dir], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`kubectl kustomize ${dir}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return parseManifests(r.stdout, `kustomize ${dir}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Schema validation (kubernetes-models)

async function modelFor(o: K8sObject): Promise<(new (data: unknown) => { validate(): void }) | undefined> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  let spec: string;
  if (group === 'monitoring.coreos.com') spec = `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`;
  else
    spec = group === '' ? `kubernetes-models/${version}/${o.kind}` : `kubernetes-models/${group}/${version}/${o.kind}`;
  try {
    const mod = (await import(spec)) as Record<string, unknown>;
    return mod[o.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  } catch {
    return undefined;
  }
}

/** Errors of every object against its Kubernetes (or Prometheus Operator) schema; an unknown kind is an error. */
export async function validateSchemas(objs: readonly K8sObject[], where: string): Promise<string[]> {
  const errors: string[] = [];
  for (const o of objs) {
    const Model = await modelFor(o);
    if (!Model) {
      errors.push(`${where} ${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(structuredClone(o)).validate();
    } catch (err) {
      errors.push(`${where} ${id(o)}: ${(err as Error).message}`);
    }
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------------------------
// Strict structural check (kubernetes-types 1.30 through tsc)

const TYPE_OF: Record<string, { module: string; type: string }> = {};
for (const [apiVersion, module, kinds] of [
  ['v1', 'kubernetes-types/core/v1', ['Namespace', 'ServiceAccount', 'ConfigMap', 'Secret', 'Service', 'Pod']],
  ['apps/v1', 'kubernetes-types/apps/v1', ['Deployment', 'StatefulSet', 'DaemonSet']],
  ['autoscaling/v2', 'kubernetes-types/autoscaling/v2', ['HorizontalPodAutoscaler']],
  ['policy/v1', 'kubernetes-types/policy/v1', ['PodDisruptionBudget']],
  ['networking.k8s.io/v1', 'kubernetes-types/networking/v1', ['NetworkPolicy', 'Ingress']],
] as const) {
  for (const kind of kinds) TYPE_OF[`${apiVersion} ${kind}`] = { module, type: kind };
}
for (const kind of ['PodMonitor', 'ServiceMonitor', 'PrometheusRule']) {
  TYPE_OF[`monitoring.coreos.com/v1 ${kind}`] = {
    module: `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`,
    type: `I${kind}`,
  };
}

/**
 * Type-checks every object as a literal of its Kubernetes type: unknown fields, wrong types and missing required
 * fields are reported with the object and the field. One compiler run for all objects.
 */
export function strictTypeCheck(entries: ReadonlyArray<{ where: string; obj: K8sObject }>): string[] {
  const errors: string[] = [];
  const imports = new Map<string, string>();
  const lines: string[] = [];
  const owners: Array<{ from: number; to: number; label: string }> = [];
  const body: string[] = [];
  entries.forEach(({ where, obj }, i) => {
    const t = TYPE_OF[`${obj.apiVersion} ${obj.kind}`];
    if (!t) {
      errors.push(`${where} ${id(obj)}: no Kubernetes 1.30 type for ${obj.apiVersion} ${obj.kind}`);
      return;
    }
    let alias = imports.get(t.module);
    if (!alias) imports.set(t.module, (alias = `m${imports.size}`));
    const json = JSON.stringify(obj, null, 2).split('\n');
    const from = body.length;
    body.push(`export const o${i}: ${alias}.${t.type} = ${json[0]}`, ...json.slice(1));
    owners.push({ from, to: body.length, label: `${where} ${id(obj)}` });
  });
  for (const [module, alias] of imports) lines.push(`import type * as ${alias} from '${module}';`);
  const offset = lines.length;
  const source = [...lines, ...body, ''].join('\n');
  const fileName = join(ROOT, 'deploy/test/__deploy_typecheck__.ts');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) =>
    name === fileName ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, onError, create);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  const program = ts.createProgram([fileName], options, host);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.file.fileName !== fileName || d.start === undefined) {
      errors.push(`type check: ${message}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line - offset;
    const owner = owners.find((o) => line >= o.from && line < o.to);
    const text = body[line]?.trim() ?? '';
    errors.push(`${owner?.label ?? 'type check'}: ${message.split('\n').slice(-1)[0]} (at ${text.slice(0, 120)})`);
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------------------------
// Structure helpers

export interface PodTemplateRef {
  owner: K8sObject;
  namespace: string | undefined;
  labels: Record<string, string>;
  spec: any;
}

/** Pod templates of Deployments, StatefulSets, DaemonSets, and bare Pods. */
export function podTemplates(objs: readonly K8sObject[]): PodTemplateRef[] {
  const out: PodTemplateRef[] = [];
  for (const o of objs) {
    if (['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind)) {
      out.push({
        owner: o,
        namespace: o.metadata.namespace,
        labels: o.spec?.template?.metadata?.labels ?? {},
        spec: o.spec?.template?.spec ?? {},
      });
    } else if (o.kind === 'Pod') {
      out.push({ owner: o, namespace: o.metadata.namespace, labels: o.metadata.labels ?? {}, spec: o.spec ?? {} });
    }
  }
  return out;
}

export function matchesSelector(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/** A label selector (matchLabels + matchExpressions In/NotIn/Exists/DoesNotExist). */
export function matchesLabelSelector(sel: any, labels: Record<string, string>): boolean {
  if (!matchesSelector(sel?.matchLabels, labels)) return false;
  for (const e of sel?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

export function findObject(
  objs: readonly K8sObject[],
  kind: string,
  name: string,
  namespace?: string,
): K8sObject | undefined {
  return objs.find(
    (o) =>
      o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace),
  );
}

function decodeSecret(o: K8sObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, string>))
    out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries((o.stringData ?? {}) as Record<string, string>)) out[k] = v;
  return out;
}

export interface ResolvedEnv {
  /** Name -> value as the container sees it (fieldRefs from `fieldRefs`; secrets created outside: absent). */
  env: Record<string, string>;
  /** Every variable name the container gets, with where it comes from. */
  sources: Array<{ name: string; from: string }>;
  /** envFrom / secretKeyRef / configMapKeyRef targets not among the objects (created outside the manifests). */
  external: string[];
}

/** The environment a container gets: envFrom (ConfigMaps, Secrets) in order, then env (which wins). */
export function resolveEnv(
  objs: readonly K8sObject[],
  namespace: string | undefined,
  container: any,
  fieldRefs: Record<string, string>,
): ResolvedEnv {
  const env: Record<string, string> = {};
  const sources: ResolvedEnv['sources'] = [];
  const external: string[] = [];
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
    const o = findObject(objs, kind, ref.name, namespace);
    if (!o) {
      external.push(`${kind}/${ref.name}`);
      continue;
    }
    const data = kind === 'Secret' ? decodeSecret(o) : ((o.data ?? {}) as Record<string, string>);
    for (const [k, v] of Object.entries(data)) {
      env[(from.prefix ?? '') + k] = v;
      sources.push({ name: (from.prefix ?? '') + k, from: `${kind}/${ref.name}` });
    }
  }
  for (const e of container.env ?? []) {
    sources.push({ name: e.name, from: 'env' });
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef) {
      const v = fieldRefs[e.valueFrom.fieldRef.fieldPath];
      if (v === undefined) throw new Error(`no test value for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef || e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef;
      const kind = e.valueFrom.secretKeyRef ? 'Secret' : 'ConfigMap';
      const o = findObject(objs, kind, ref.name, namespace);
      if (!o) external.push(`${kind}/${ref.name}`);
      else {
        const data = kind === 'Secret' ? decodeSecret(o) : ((o.data ?? {}) as Record<string, string>);
        if (data[ref.key] !== undefined) env[e.name] = data[ref.key]!;
        else if (!ref.optional) throw new Error(`${kind}/${ref.name} has no key ${ref.key}`);
      }
    } else delete env[e.name];
  }
  return { env, sources, external };
}

/** Keys of ConfigMaps/Secrets a container consumes through envFrom (what each key will be named). */
export function envFromKeys(objs: readonly K8sObject[], namespace: string | undefined, container: any): string[] {
  return resolveEnv(objs, namespace, container, new Proxy({}, { get: () => 'x' })).sources.map((s) => s.name);
}

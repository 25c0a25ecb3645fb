/**
 * The Helm chart through the real helm (v4, see kube-tools.ts):
 * - `renderChart()` / `renderChartText()`: `helm template` (hooks included, as an install would create them);
 * - `renderNotes()`: NOTES.txt, from `helm install --dry-run=client -o json`;
 * - `renderUpgrade()`: `helm template --dry-run=server` against a fake API server holding given objects, so
 *   `lookup` finds them (an upgrade);
 * - `helmLint()`, `helmPackage()`;
 * - `valuesReferences()`: every `.Values.x.y` path the templates read, statically, including through variables
 *   (`$r := index $root.Values $role` with the roles the chart iterates over);
 * - `schemaHasPath()`, `valuesHasPath()`, `leafPaths()`: walk values.yaml and values.schema.json.
 */
import { execFile, spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { startFakeKubeApi } from './fake-kube-api.js';
import { helmBin } from './kube-tools.js';
import { ROOT, parseManifests, type K8sObject } from './k8s.js';

export const CHART = join(ROOT, 'helm/rtmp-relay');
const HELM_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 64 << 20;

export interface RenderOptions {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
}

/** helm's state (repositories, cache, registry config) in a throw-away place, never the user's. */
function helmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const home = join(tmpdir(), `rtmp-relay-helm-home-${process.getuid?.() ?? 0}`);
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
    KUBECONFIG: '/dev/null',
    ...extra,
  };
}

function releaseArgs(o: RenderOptions): string[] {
  const args = [o.release ?? 'relay', CHART, '--namespace', o.namespace ?? 'streaming'];
  for (const f of o.valuesFiles ?? []) args.push('-f', f);
  return args;
}

/** Runs helm; throws with its stderr. */
export function helm(args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(helmBin(), args, {
    encoding: 'utf8',
    timeout: HELM_TIMEOUT_MS,
    maxBuffer: MAX_OUTPUT,
    env: helmEnv(env),
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `helm template`: the manifests as text; throws with helm's error (schema, `required`, `fail`). */
export function renderChartText(o: RenderOptions = {}): string {
  return helm(['template', ...releaseArgs(o)]);
}

const parseRendered = (text: string, o: RenderOptions): K8sObject[] => {
  const objs = parseManifests(text, `helm ${(o.valuesFiles ?? []).map((f) => basename(f)).join(' ') || 'defaults'}`);
  // Like `helm install`, objects without a namespace land in the release's.
  for (const x of objs) x.metadata.namespace ??= o.namespace ?? 'streaming';
  return objs;
};

export function renderChart(o: RenderOptions = {}): K8sObject[] {
  return parseRendered(renderChartText(o), o);
}

/** NOTES.txt as an install prints it. */
export function renderNotes(o: RenderOptions = {}): string {
  const release = JSON.parse(helm(['install', ...releaseArgs(o), '--dry-run=client', '-o', 'json'])) as {
    info: { notes: string };
  };
  return release.info.notes;
}

/** An upgrade: `helm template --dry-run=server` with `lookup` answered from `existing` (a fake API server). */
export async function renderUpgrade(existing: K8sObject[], o: RenderOptions = {}): Promise<K8sObject[]> {
  const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-helm-upgrade-'));
  const api = await startFakeKubeApi(existing, dir);
  try {
    const args = ['template', ...releaseArgs(o), '--dry-run=server', '--disable-openapi-validation'];
    const { stdout } = await promisify(execFile)(helmBin(), args, {
      encoding: 'utf8',
      timeout: HELM_TIMEOUT_MS,
      maxBuffer: MAX_OUTPUT,
      env: helmEnv({ KUBECONFIG: api.kubeconfig }),
    });
    return parseRendered(stdout, o);
  } finally {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `helm lint --strict` with these values files: the findings (empty when clean, INFO lines excluded). */
export function helmLint(valuesFiles: string[] = []): string[] {
  const args = ['lint', '--strict', CHART, ...valuesFiles.flatMap((f) => ['-f', f])];
  const r = spawnSync(helmBin(), args, { encoding: 'utf8', timeout: HELM_TIMEOUT_MS, env: helmEnv() });
  if (r.error) throw r.error;
  const findings = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^\[(WARNING|ERROR)\]|^Error/.test(l.trim()));
  if (r.status !== 0 && findings.length === 0) findings.push(`helm lint exited ${r.status}: ${r.stderr}`);
  return findings;
}

/** `helm package` into `dest`: the archive's path. */
export function helmPackage(dest: string): string {
  const out = helm(['package', CHART, '--destination', dest]);
  const m = /saved it to: (\S+)/.exec(out);
  if (!m) throw new Error(`helm package: ${out}`);
  return m[1]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Static analysis of the templates

export interface ValuesReference {
  file: string;
  path: string[];
}

/** Every template file of the chart (templates/**), by relative path. */
export function chartTemplates(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (lstatSync(p).isDirectory()) walk(p, `${rel}${name}/`);
      else out.set(`${rel}${name}`, readFileSync(p, 'utf8'));
    }
  };
  walk(join(CHART, 'templates'), 'templates/');
  return out;
}

const ACTION = /\{\{-?([\s\S]*?)-?\}\}/g;
const VALUES_PATH = /(?:^|[\s(|])(?:\$|\$root|\$\.)?\.?Values((?:\.[A-Za-z_][A-Za-z0-9_]*)*)/g;

/**
 * `.Values` paths read by the templates. Variables bound to a part of .Values are followed:
 *   `$a := .Values.edge.autoscaling` ... `$a.minReplicas`            -> edge.autoscaling.minReplicas
 *   `$r := index $root.Values $role` ... `$r.resources`              -> origin.resources and edge.resources
 *   `$svc := (index $.Values $role).service` ... `$svc.port`        -> origin.service.port, edge.service.port
 * where `$role` takes the strings of the `range $role := list "..."` that binds it, or, bound by `$role := .role`
 * in a template given its role as an argument, those of every `"role" "..."` argument in the chart.
 */
export function valuesReferences(templates: Map<string, string>): ValuesReference[] {
  const refs: ValuesReference[] = [];
  const roleArgs = new Set<string>();
  for (const text of templates.values())
    for (const m of text.matchAll(/"role"\s+"([A-Za-z0-9_]+)"/g)) roleArgs.add(m[1]!);
  const split = (p: string): string[] => p.split('.').filter(Boolean);
  for (const [file, text] of templates) {
    /** loop/argument variable name -> the strings it takes */
    const domains = new Map<string, Set<string>>();
    const domain = (name: string): Set<string> => domains.get(name) ?? new Set();
    for (const m of text.matchAll(/\$(\w+)\s*:=\s*list((?:\s+"[A-Za-z0-9_]+")+)/g)) {
      const set = domains.get(m[1]!) ?? new Set<string>();
      for (const s of m[2]!.matchAll(/"([A-Za-z0-9_]+)"/g)) set.add(s[1]!);
      domains.set(m[1]!, set);
    }
    for (const m of text.matchAll(/\$(\w+)\s*:=\s*\.role\b/g))
      domains.set(m[1]!, new Set([...domain(m[1]!), ...roleArgs]));
    /** variable name -> possible base paths */
    const vars = new Map<string, string[][]>();
    for (const action of text.matchAll(ACTION)) {
      const body = action[1]!.replace(/"(?:[^"\\]|\\.)*"/g, '""');
      // Direct references.
      for (const m of body.matchAll(VALUES_PATH)) {
        const path = split(m[1]!);
        if (path.length > 0) refs.push({ file, path });
      }
      // Bindings: $x := .Values.a.b | $x := index <root>.Values $y | $x := (index <root>.Values $y).a.b
      const direct = /\$([A-Za-z_]\w*)\s*:=\s*(?:\$|\$root|\$\.)?\.?Values((?:\.[A-Za-z_]\w*)+)\s*$/.exec(body.trim());
      if (direct) vars.set(direct[1]!, [split(direct[2]!)]);
      const indexed =
        /\$([A-Za-z_]\w*)\s*:=\s*\(?\s*index\s+(?:\$|\$root|\$\.)?\.?Values\s+\$(\w+)\s*\)?((?:\.[A-Za-z_]\w*)*)\s*$/.exec(
          body.trim(),
        );
      if (indexed)
        vars.set(
          indexed[1]!,
          [...domain(indexed[2]!)].map((l) => [l, ...split(indexed[3]!)]),
        );
      // (index $.Values $x).a.b used inline
      for (const m of body.matchAll(/\(\s*index\s+(?:\$|\$root|\$\.)?\.?Values\s+\$(\w+)\s*\)((?:\.[A-Za-z_]\w*)+)/g))
        for (const l of domain(m[1]!)) refs.push({ file, path: [l, ...split(m[2]!)] });
      // Uses of bound variables.
      for (const m of body.matchAll(/\$([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)+)/g)) {
        const bases = vars.get(m[1]!);
        if (!bases) continue;
        for (const base of bases) refs.push({ file, path: [...base, ...split(m[2]!)] });
      }
    }
  }
  return refs;
}

/** values.yaml has this path (a key that exists, even with an empty value). */
export function valuesHasPath(values: unknown, path: string[]): boolean {
  let cur: unknown = values;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, key)) return false;
    cur = (cur as Record<string, unknown>)[key];
  }
  return true;
}

/** The schema declares this path through `properties` (a map's additionalProperties ends the walk successfully). */
export function schemaHasPath(schema: any, path: string[]): boolean {
  let cur = schema;
  for (const key of path) {
    if (cur?.properties && Object.hasOwn(cur.properties, key)) cur = cur.properties[key];
    else if (cur?.additionalProperties && typeof cur.additionalProperties === 'object') return true;
    else if (cur?.type === 'object' && cur.additionalProperties === undefined && !cur.properties) return true;
    else return false;
  }
  return true;
}

/** Every path of a values tree that ends in a non-object (or an empty object). */
export function leafPaths(v: unknown, prefix: string[] = []): string[][] {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.keys(v).length === 0) return [prefix];
  return Object.entries(v).flatMap(([k, x]) => leafPaths(x, [...prefix, k]));
}

/** Every property path the schema declares (not into maps). */
export function schemaPaths(schema: any, prefix: string[] = []): string[][] {
  if (!schema?.properties) return [prefix];
  return Object.entries(schema.properties).flatMap(([k, s]) => schemaPaths(s, [...prefix, k]));
}

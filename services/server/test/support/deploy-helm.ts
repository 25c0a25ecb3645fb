/**
 * The Helm chart without the helm binary:
 * - `renderChart()`: renders with deploy/tools/helm-render (Go's text/template + Sprig, the engine Helm uses), built
 *   here from Debian's golang-go, golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v{2,3}-dev;
 * - `valuesReferences()`: every `.Values.x.y` path the templates read, statically, including through variables
 *   (`$r := index $root.Values $role` with the roles the chart iterates over);
 * - `schemaHasPath()`, `valuesHasPath()`, `leafPaths()`: walk values.yaml and values.schema.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ROOT, parseManifests, type K8sObject } from './deploy-k8s.js';

export const CHART = join(ROOT, 'helm/rtmp-relay');
const TOOL_SRC = join(ROOT, 'deploy/tools/helm-render/main.go');
const GOCODE = '/usr/share/gocode/src';
const DEBIAN_PACKAGES =
  'golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev golang-gopkg-yaml.v3-dev';

let built: string | undefined;

/** Why the renderer cannot be built here, or undefined when it can. */
export function rendererUnavailable(): string | undefined {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0)
    return `no Go toolchain (apt-get install ${DEBIAN_PACKAGES})`;
  for (const dir of ['github.com/Masterminds/sprig', 'gopkg.in/yaml.v2', 'gopkg.in/yaml.v3'])
    if (!existsSync(join(GOCODE, dir))) return `no ${dir} in ${GOCODE} (apt-get install ${DEBIAN_PACKAGES})`;
  return undefined;
}

/**
 * Builds helm-render offline against Debian's Go sources: a GOPATH of symlinks, where the /v3 import paths Sprig
 * uses point at Debian's unversioned directories.
 */
export function buildRenderer(): string {
  if (built) return built;
  const why = rendererUnavailable();
  if (why) throw new Error(`cannot build deploy/tools/helm-render: ${why}`);
  const work = join(tmpdir(), `rtmp-relay-helm-render-${process.getuid?.() ?? 0}`);
  const gopath = join(work, 'gopath');
  rmSync(gopath, { recursive: true, force: true });
  const src = join(gopath, 'src');
  mkdirSync(join(src, 'github.com/Masterminds/sprig'), { recursive: true });
  mkdirSync(join(src, 'github.com/Masterminds/semver'), { recursive: true });
  for (const top of readdirSync(GOCODE)) if (top !== 'github.com') symlinkSync(join(GOCODE, top), join(src, top));
  for (const owner of readdirSync(join(GOCODE, 'github.com'))) {
    if (owner === 'Masterminds') continue;
    symlinkSync(join(GOCODE, 'github.com', owner), join(src, 'github.com', owner));
  }
  for (const name of readdirSync(join(GOCODE, 'github.com/Masterminds'))) {
    const from = join(GOCODE, 'github.com/Masterminds', name);
    if (!lstatSync(from).isDirectory()) continue;
    if (name === 'sprig' || name === 'semver') symlinkSync(from, join(src, 'github.com/Masterminds', name, 'v3'));
    else symlinkSync(from, join(src, 'github.com/Masterminds', name));
  }
  const out = join(work, 'helm-render');
  const r = spawnSync('go', ['build', '-o', out, TOOL_SRC], {
    encoding: 'utf8',
    timeout: 240_000,
    env: {
      ...process.env,
      GO111MODULE: 'off',
      GOPATH: gopath,
      GOCACHE: join(work, 'gocache'),
      GOFLAGS: '',
      CGO_ENABLED: '0',
    },
  });
  if (r.status !== 0)
    throw new Error(`go build deploy/tools/helm-render failed:\n${r.stderr}${r.error?.message ?? ''}`);
  built = out;
  return out;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
  notes?: boolean;
  /** A YAML stream of the objects `lookup` finds (the cluster of an upgrade); default none, as `helm template`. */
  existingObjectsFile?: string;
}

/** `helm template`: the manifests (or NOTES.txt with notes: true); throws with the renderer's error. */
export function renderChartText(o: RenderOptions = {}): string {
  const tool = buildRenderer();
  const args = ['-release', o.release ?? 'relay', '-namespace', o.namespace ?? 'streaming'];
  for (const f of o.valuesFiles ?? []) args.push('-f', f);
  if (o.existingObjectsFile) args.push('-existing', o.existingObjectsFile);
  if (o.notes) args.push('-notes');
  args.push(CHART);
  const r = spawnSync(tool, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`helm-render ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export function renderChart(o: RenderOptions = {}): K8sObject[] {
  const objs = parseManifests(
    renderChartText(o),
    `helm ${(o.valuesFiles ?? []).map((f) => basename(f)).join(' ') || 'defaults'}`,
  );
  // Like `helm install`, objects without a namespace land in the release's.
  for (const x of objs) x.metadata.namespace ??= o.namespace ?? 'streaming';
  return objs;
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

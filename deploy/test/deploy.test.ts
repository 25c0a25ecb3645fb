/**
 * Deployment kit: the container image, the kustomize topology (deploy/k8s), the Helm chart (helm/rtmp-relay) and
 * the observability kit (dashboard, alerts, autoscaling metrics), checked without Docker, Kubernetes or helm:
 *
 * - kustomize overlays build with `kubectl kustomize`; the chart is linted (`helm lint --strict`), rendered
 *   (`helm template`) and packaged (`helm package`) by the real helm 4 (deploy/tools/install-kube-tools.mjs); every object validates against the Kubernetes schemas (kubernetes-models,
 *   OpenAPI 1.33) and type-checks strictly against Kubernetes 1.30 (kubernetes-types: no unknown fields);
 * - probes, ports, selectors, env names (SETTINGS), values (loadConfig), security and drain timing are cross-checked
 *   against the code, so a renamed setting or endpoint breaks this test;
 * - the dashboard, the alerts and the autoscaling metrics name only metrics a live /metrics scrape exports;
 * - the pod lifecycle runs for real: Redis, NATS, an origin and an edge started exactly as their containers would be
 *   (the image's entry point and the manifests' args and environment), FFmpeg publishing and playing, SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { RELAY_NODE_FLAGS } from '../../loadtest/src/node-flags.js';
import { ConfigError, loadConfig, SETTINGS } from '../../services/server/src/config.js';
import { checkManifests, FIELD_REFS, relayContainers, type Expectations } from './support/manifest-checks.js';
import {
  CHART,
  chartTemplates,
  leafPaths,
  renderChart,
  renderChartText,
  helmLint,
  helmPackage,
  renderNotes,
  renderUpgrade,
  schemaHasPath,
  schemaPaths,
  valuesHasPath,
  valuesReferences,
} from './support/helm.js';
import {
  findObject,
  id,
  kustomizeBuild,
  podTemplates,
  resolveEnv,
  ROOT,
  strictTypeCheck,
  validateSchemas,
  type K8sObject,
} from './support/k8s.js';
import {
  dashboardQueries,
  parseExposition,
  promqlMetricNames,
  promqlSelectors,
  type Exposition,
} from './support/promql.js';
import { ffmpegCountFrames, ffmpegPublish } from '../../services/server/test/support/media-tools.js';
import { startTestNode } from '../../services/server/test/support/node-under-test.js';
import {
  hasCommand,
  run,
  start,
  stopAll,
  waitFor,
  type Running,
} from '../../services/server/test/support/processes.js';
import {
  freePort,
  startNats,
  startRedis,
  stopAllServices,
  type ServiceHandle,
} from '../../services/server/test/support/services.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');
const CLI_REL = 'services/server/dist/cli.js';
/** The OpenTelemetry SDK's own variables the node reads besides SETTINGS (services/server/src/tracing.ts). */
const OTEL_ENV = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_SERVICE_NAME'];
const SETTING_NAMES = new Set([...SETTINGS.map((s) => s.env), ...OTEL_ENV]);
const DEFAULTS: Record<string, string> = Object.fromEntries(SETTINGS.map((s) => [s.env, s.defaultText]));
const ROLES = new Set(['standalone', 'origin', 'edge']);

function configProblem(env: Record<string, string>): string | undefined {
  try {
    loadConfig({ env });
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

/** What the Secrets created outside the manifests hold (docs/DEPLOY.md tells operators to create them so). */
const EXTERNAL_SECRET_ENV = {
  API_TOKEN: 'x'.repeat(32),
  CLUSTER_SECRET: 'x'.repeat(32),
  PUBLISH_SECRET: 'x'.repeat(32),
  PLAY_SECRET: 'x'.repeat(32),
  REDIS_URL: 'rediss://:pw@redis.internal:6380',
};

const expectations = (where: string, externalRefs: string[] = []): Expectations => ({
  where,
  externalEnv: EXTERNAL_SECRET_ENV,
  settings: SETTING_NAMES,
  defaults: DEFAULTS,
  roles: ROLES,
  endpoints: { liveness: '/healthz', readiness: '/readyz' },
  externalRefs: new Set(externalRefs),
  validateConfig: configProblem,
});

/** Every object of every kustomize build and Helm rendering, for the strict type check at the end. */
const allObjects: Array<{ where: string; obj: K8sObject }> = [];

function assertNoErrors(errors: string[], what: string): void {
  assert.deepEqual(errors, [], `${what}:\n  ${errors.join('\n  ')}`);
}

/** The built CLI is fresh (the image runs dist/, not sources): rebuild with tsc -b when a source is newer. */
function ensureBuilt(): void {
  const cli = join(ROOT, CLI_REL);
  const newest = (dir: string): number => {
    let t = 0;
    for (const name of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, name.name);
      t = Math.max(t, name.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  const sources = ['libs/rtmp/src', 'libs/hub/src', 'services/server/src'].map((d) => newest(join(ROOT, d)));
  if (existsSync(cli) && statSync(cli).mtimeMs >= Math.max(...sources)) return;
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', 'services/server'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, `tsc -b services/server failed:\n${r.stdout}${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
  stage: string;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = '';
  const logical = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of logical) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op!.toUpperCase() === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? `stage${out.length}`;
    out.push({ op: op!.toUpperCase(), args, stage });
  }
  return out;
}

function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          re += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
          i += pattern[i + 2] === '/' ? 2 : 1;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (path: string) => {
    const parts = path.split('/');
    let ignored = false;
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      for (const r of rules) if (r.re.test(prefix)) ignored = !r.negate;
    }
    return ignored;
  };
}

function jsonArray(args: string): string[] {
  return JSON.parse(args) as string[];
}

function workspaces(): string[] {
  return (JSON.parse(read('package.json')) as { workspaces: string[] }).workspaces;
}

/** The @rtmp-relay/* packages services/server needs at run time (transitively), as workspace directories. */
function serverWorkspaceClosure(): string[] {
  const byName = new Map<string, string>();
  for (const w of workspaces()) byName.set((JSON.parse(read(`${w}/package.json`)) as { name: string }).name, w);
  const out = new Set<string>();
  const visit = (dir: string) => {
    if (out.has(dir)) return;
    out.add(dir);
    const deps =
      (JSON.parse(read(`${dir}/package.json`)) as { dependencies?: Record<string, string> }).dependencies ?? {};
    for (const name of Object.keys(deps)) if (byName.has(name)) visit(byName.get(name)!);
  };
  visit('services/server');
  return [...out];
}

function filesUnder(rel: string): string[] {
  const abs = join(ROOT, rel);
  if (!existsSync(abs)) return [];
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) =>
    e.name === 'node_modules' || e.name === 'dist' ? [] : filesUnder(`${rel}/${e.name}`),
  );
}

describe('container image (Dockerfile)', () => {
  const steps = parseDockerfile(read('Dockerfile'));
  const ignored = dockerignoreMatcher(read('.dockerignore'));
  const runtime = steps.filter((s) => s.stage === steps.at(-1)!.stage);

  it('every COPY source exists in the build context and is not excluded by .dockerignore', () => {
    const problems: string[] = [];
    for (const s of steps.filter((x) => x.op === 'COPY' && !x.args.includes('--from='))) {
      const parts = s.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        if (!existsSync(join(ROOT, src))) problems.push(`${s.stage}: COPY ${src}: no such file`);
        else if (ignored(src)) problems.push(`${s.stage}: COPY ${src}: excluded by .dockerignore`);
      }
    }
    // What the build needs inside the copied directories: every workspace's sources and tsconfig.
    for (const w of workspaces())
      for (const f of [...filesUnder(`${w}/src`), `${w}/package.json`, `${w}/tsconfig.json`].filter((f) =>
        existsSync(join(ROOT, f)),
      ))
        if (ignored(f)) problems.push(`${f} is needed by the build but excluded by .dockerignore`);
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.base.json'])
      if (ignored(f)) problems.push(`${f} excluded by .dockerignore`);
    assertNoErrors(problems, 'Dockerfile sources');
  });

  it('each npm ci sees every workspace manifest and the lock file (npm ci fails on a missing workspace)', () => {
    const problems: string[] = [];
    for (const s of steps.filter((x) => x.op === 'RUN' && /\bnpm ci\b/.test(x.args))) {
      const copied = steps
        .filter((x) => x.stage === s.stage && x.op === 'COPY' && steps.indexOf(x) < steps.indexOf(s))
        .flatMap((x) =>
          x.args
            .split(/\s+/)
            .filter((p) => !p.startsWith('--'))
            .slice(0, -1),
        );
      for (const f of ['package.json', 'package-lock.json', ...workspaces().map((w) => `${w}/package.json`)])
        if (!copied.includes(f)) problems.push(`stage ${s.stage}: ${f} is not copied before npm ci`);
    }
    const prod = steps.find((x) => x.op === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(x.args));
    if (!prod) problems.push('no production install (npm ci --omit=dev)');
    assertNoErrors(problems, 'npm ci inputs');
  });

  it('the runtime stage holds the built output of the server, of every workspace it depends on, and the console', () => {
    const copiedDist = runtime
      .filter((s) => s.op === 'COPY' && /--from=build/.test(s.args))
      .map((s) => s.args.split(/\s+/).at(-1)!.replace(/\/$/, ''));
    // The node serves the console's built files from the directory console.ts names (relative to services/server/dist).
    const consoleDir = /new URL\('\.\.\/\.\.\/([^']+)'/.exec(read('services/server/src/console.ts'))?.[1];
    assert.ok(consoleDir, 'services/server/src/console.ts no longer says where the console is');
    const served = `services/${consoleDir.replace(/\/$/, '')}`;
    for (const f of ['index.html', 'assets'])
      assert.ok(
        copiedDist.includes(`${served}/${f}`) || copiedDist.includes(served),
        `runtime stage lacks ${served}/${f} (the console at /console/)`,
      );
    for (const w of serverWorkspaceClosure()) {
      const tsconfig = JSON.parse(read(`${w}/tsconfig.json`)) as { compilerOptions?: { outDir?: string } };
      const outDir = `${w}/${(tsconfig.compilerOptions?.outDir ?? 'dist').replace(/^\.\//, '')}`;
      assert.ok(
        copiedDist.includes(outDir),
        `runtime stage lacks COPY --from=build ... ${outDir} (copied: ${copiedDist.join(', ')})`,
      );
    }
  });

  it('ENTRYPOINT is tini + the real CLI; CMD is a role the CLI runs; non-root; ports and healthcheck match the node', async () => {
    ensureBuilt();
    const entry = jsonArray(runtime.find((s) => s.op === 'ENTRYPOINT')!.args);
    const cmd = jsonArray(runtime.find((s) => s.op === 'CMD')!.args);
    assert.deepEqual(entry.slice(0, 2), ['/usr/bin/tini', '--'], 'tini is PID 1 and forwards signals');
    assert.deepEqual(entry.slice(2), ['node', ...RELAY_NODE_FLAGS, CLI_REL]);
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };
    assert.equal(pkg.bin['rtmp-relay'], CLI_REL, 'the image runs what `rtmp-relay` is');
    // The node runs with the same V8 flags from the image, `npm start` and the benchmarks (which measure what ships).
    assert.equal(pkg.scripts['start'], ['node', ...RELAY_NODE_FLAGS, 'scripts/start.mjs'].join(' '));
    // `npm run cluster`: its nodes get the flags it runs with (local-cluster.ts passes process.execArgv on).
    assert.equal(pkg.scripts['cluster'], ['node', ...RELAY_NODE_FLAGS, CLI_REL, 'cluster'].join(' '));
    assert.ok(
      RELAY_NODE_FLAGS.length > 0 &&
        RELAY_NODE_FLAGS.every((f) => process.allowedNodeEnvironmentFlags.has(f.split('=')[0]!)),
      'each flag is one NODE_OPTIONS accepts too, so a custom launch can set it there',
    );
    assert.ok(existsSync(join(ROOT, 'services/server/src/cli.ts')) && existsSync(join(ROOT, CLI_REL)));
    const workdir = runtime.filter((s) => s.op === 'WORKDIR').at(-1)!.args;
    assert.equal(
      workdir,
      '/app',
      'the entry point path is relative to /app, where the runtime stage puts the repository layout',
    );

    const help = await run(process.execPath, [join(ROOT, CLI_REL), '--help'], { timeoutMs: 20_000 });
    assert.equal(help.code, 0, help.stderr);
    const commands = new Set([...help.stdout.matchAll(/^\s{2}([a-z]+)\b/gm)].map((m) => m[1]!));
    for (const role of ROLES)
      assert.ok(commands.has(role), `the CLI has no "${role}" command (has ${[...commands].join(', ')})`);
    assert.equal(cmd.length, 1);
    assert.ok(ROLES.has(cmd[0]!), `CMD ${cmd[0]} is not a role`);

    const user = runtime.filter((s) => s.op === 'USER').at(-1)?.args ?? '';
    assert.match(user, /^[1-9]\d*(:[1-9]\d*)?$/, 'USER is a numeric non-root uid (Kubernetes can verify runAsNonRoot)');
    const exposed = runtime.filter((s) => s.op === 'EXPOSE').flatMap((s) => s.args.split(/\s+/));
    assert.ok(
      exposed.includes(DEFAULTS.RTMP_PORT!) && exposed.includes(DEFAULTS.HTTP_PORT!),
      `EXPOSE ${exposed} vs RTMP_PORT/HTTP_PORT defaults`,
    );
    const env = runtime
      .filter((s) => s.op === 'ENV')
      .map((s) => s.args)
      .join(' ');
    for (const name of env.matchAll(/\b([A-Z][A-Z0-9_]*)=/g))
      if (name[1] !== 'NODE_ENV' && name[1] !== 'LD_PRELOAD')
        assert.ok(SETTING_NAMES.has(name[1]!), `ENV ${name[1]} is not a setting`);
    const health = runtime.find((s) => s.op === 'HEALTHCHECK')?.args ?? '';
    assert.match(health, /\/healthz/);
  });

  it('the base is a supported Node.js LTS pinned by digest; OCI labels carry source and revision', () => {
    const from = steps.filter((s) => s.op === 'FROM').map((s) => s.args.split(/\s+/)[0]);
    assert.ok(
      from.every((f) => f === '${NODE_IMAGE}'),
      `every stage FROM \${NODE_IMAGE}: ${from}`,
    );
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(read('Dockerfile'))?.[1] ?? '';
    const m = /^node:(\d+)-slim@sha256:[0-9a-f]{64}$/.exec(image);
    assert.ok(m, `NODE_IMAGE ${image}: node:<major>-slim@sha256:<digest of the multi-arch index>`);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const supported = [...engines.matchAll(/\^(\d+)\./g)].map((x) => Number(x[1]));
    assert.deepEqual(supported, [20, 22, 24], `engines.node ${engines}`);
    assert.equal(Number(m[1]), Math.max(...supported), 'the image runs the newest supported LTS');
    const labels = runtime
      .filter((s) => s.op === 'LABEL')
      .map((s) => s.args)
      .join(' ');
    for (const [label, arg] of [
      ['org.opencontainers.image.source', 'SOURCE'],
      ['org.opencontainers.image.revision', 'REVISION'],
      ['org.opencontainers.image.version', 'VERSION'],
      ['org.opencontainers.image.created', 'CREATED'],
    ]) {
      assert.match(labels, new RegExp(`${label.replaceAll('.', '\\.')}="\\$\\{${arg}\\}"`), label);
      assert.ok(
        runtime.some((s) => s.op === 'ARG' && s.args.split('=')[0] === arg),
        `ARG ${arg} in the runtime stage`,
      );
    }
  });

  it('only the server workspace is in the image: no load tester, no other workspace manifest or link', () => {
    const fromDeps = runtime.filter((s) => s.op === 'COPY' && /--from=deps/.test(s.args));
    const sources = fromDeps.map((s) => s.args.split(/\s+/).filter((p) => !p.startsWith('--'))[0]!);
    const closure = serverWorkspaceClosure();
    const allowed = new Set([
      '/app/package.json',
      '/app/node_modules',
      ...closure.map((w) => `/app/${w}/package.json`),
    ]);
    for (const src of sources) assert.ok(allowed.has(src), `runtime COPY --from=deps ${src}`);
    const built = steps
      .filter((s) => s.stage === 'build' && s.op === 'RUN')
      .map((s) => s.args)
      .join('\n');
    assert.doesNotMatch(built, /npm run build\b/, 'the build stage compiles the server, not every workspace');
    assert.ok(
      !steps.some((s) => s.op === 'COPY' && /^loadtest\s/.test(s.args)),
      "the load tester's sources stay out of the build context",
    );
    const prod = steps.find((x) => x.op === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(x.args))!;
    assert.match(prod.args, /--workspace=@rtmp-relay\/server/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// kustomize

describe('kustomize (deploy/k8s)', () => {
  const builds = new Map<string, K8sObject[]>();
  /** Every kustomization: the bases, components' users and every overlay there is (new ones are checked too). */
  const dirs = [
    'base',
    'backends',
    'monitoring',
    ...readdirSync(join(ROOT, 'deploy/k8s/overlays')).map((d) => `overlays/${d}`),
  ];
  before(() => {
    for (const dir of dirs) {
      const objs = kustomizeBuild(join(ROOT, 'deploy/k8s', dir));
      builds.set(dir, objs);
      for (const obj of objs) allObjects.push({ where: `kustomize ${dir}`, obj });
    }
  });

  it('every object of every build validates against the Kubernetes schemas', async () => {
    const errors: string[] = [];
    for (const [dir, objs] of builds) errors.push(...(await validateSchemas(objs, `kustomize ${dir}`)));
    assertNoErrors(errors, 'schema validation');
  });

  it('the overlays have origins, edges, their Services, autoscaling, disruption budgets and network policies', () => {
    for (const overlay of ['overlays/dev', 'overlays/production']) {
      const objs = builds.get(overlay)!;
      const ns = objs.find((o) => o.kind === 'Namespace')!.metadata.name;
      for (const [kind, name] of [
        ['Deployment', 'rtmp-relay-origin'],
        ['Deployment', 'rtmp-relay-edge'],
        ['Service', 'rtmp-relay-origin'],
        ['Service', 'rtmp-relay-edge'],
        ['Service', 'rtmp-relay-api'],
        ['HorizontalPodAutoscaler', 'rtmp-relay-edge'],
        ['PodDisruptionBudget', 'rtmp-relay-edge'],
        ['PodDisruptionBudget', 'rtmp-relay-origin'],
        ['NetworkPolicy', 'rtmp-relay'],
      ] as const)
        assert.ok(findObject(objs, kind, name, ns), `${overlay}: no ${kind}/${name} in namespace ${ns}`);
      for (const o of objs)
        if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, ns, `${overlay} ${id(o)} outside ${ns}`);
      for (const o of objs)
        assert.equal(
          o.metadata.labels?.['app.kubernetes.io/part-of'],
          'rtmp-relay',
          `${overlay} ${id(o)} lacks app.kubernetes.io/part-of`,
        );
    }
    const prod = builds.get('overlays/production')!;
    for (const name of ['rtmp-relay-origin', 'rtmp-relay-edge'])
      assert.equal(findObject(prod, 'Service', name)!.spec.type, 'LoadBalancer');
    for (const kind of ['PodMonitor', 'PrometheusRule'])
      assert.ok(
        prod.some((o) => o.kind === kind),
        `production has no ${kind}`,
      );
    const dev = builds.get('overlays/dev')!;
    for (const name of ['rtmp-relay-redis', 'rtmp-relay-nats'])
      assert.ok(findObject(dev, 'Deployment', name), `dev has no ${name}`);
    assert.ok(
      !prod.some((o) => /redis|nats/.test(o.metadata.name) && o.kind === 'Deployment'),
      'production bundles no Redis/NATS',
    );
  });

  it('probes, ports, selectors, env names (SETTINGS), values (loadConfig), security and drain timing are right', () => {
    assertNoErrors(checkManifests(builds.get('overlays/dev')!, expectations('kustomize overlays/dev')), 'dev');
    // Production's auth Secret is created by the operator (never committed): the only reference allowed outside.
    assertNoErrors(
      checkManifests(
        builds.get('overlays/production')!,
        expectations('kustomize overlays/production', ['Secret/rtmp-relay-auth']),
      ),
      'production',
    );
  });

  it('dev: REDIS_URL and NATS_URL name the bundled Services and their ports; NetworkPolicies admit only the relay', () => {
    const objs = builds.get('overlays/dev')!;
    const origin = findObject(objs, 'Deployment', 'rtmp-relay-origin')!;
    const { env } = resolveEnv(objs, origin.metadata.namespace, origin.spec.template.spec.containers[0], FIELD_REFS);
    for (const name of ['REDIS_URL', 'NATS_URL']) {
      const u = new URL(env[name]!);
      const svc = findObject(objs, 'Service', u.hostname, origin.metadata.namespace);
      assert.ok(svc, `${name}=${env[name]}: no Service ${u.hostname}`);
      assert.ok(
        svc.spec.ports.some((p: any) => p.port === Number(u.port)),
        `${name}: Service ${u.hostname} has no port ${u.port}`,
      );
      const np = objs.find(
        (o) =>
          o.kind === 'NetworkPolicy' &&
          podTemplates(objs).some(
            (t) =>
              t.owner.metadata.name === svc.metadata.name &&
              Object.entries(o.spec.podSelector.matchLabels).every(([k, v]) => t.labels[k] === v),
          ),
      );
      assert.ok(np, `no NetworkPolicy protects ${u.hostname}`);
      const from = np.spec.ingress.flatMap((r: any) => r.from ?? []);
      assert.ok(
        from.length > 0 &&
          from.every((f: any) => f.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'rtmp-relay'),
        `${id(np)} admits more than the relay`,
      );
    }
  });

  it('secure defaults: required API token and cluster secret, production requires a publish secret, admin port internal', () => {
    const prod = builds.get('overlays/production')!;
    for (const name of ['rtmp-relay-origin', 'rtmp-relay-edge']) {
      const c = findObject(prod, 'Deployment', name)!.spec.template.spec.containers[0];
      const ref = c.env.find((e: any) => e.name === 'PUBLISH_SECRET')?.valueFrom?.secretKeyRef;
      assert.deepEqual(ref, { name: 'rtmp-relay-auth', key: 'PUBLISH_SECRET' }, `${name}: PUBLISH_SECRET required`);
    }
    // The committed dev Secret holds placeholders only, never something that looks like a real secret.
    const devSecret = builds.get('overlays/dev')!.find((o) => o.kind === 'Secret')!;
    for (const [k, v] of Object.entries(devSecret.data as Record<string, string>))
      assert.match(Buffer.from(v, 'base64').toString(), /^dev-[a-z-]+$/, `dev ${k}`);
    for (const [dir, objs] of builds) {
      const api = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'rtmp-relay-api');
      if (api) {
        assert.equal(api.spec.type, 'ClusterIP', dir);
        assert.deepEqual(
          api.spec.ports.map((p: any) => p.targetPort),
          ['admin'],
          dir,
        );
      }
      const pm = objs.find((o) => o.kind === 'PodMonitor');
      if (pm)
        assert.deepEqual(
          pm.spec.podMetricsEndpoints.map((e: any) => e.port),
          ['admin'],
          `${dir} PodMonitor`,
        );
    }
  });

  it('the RTMPS component adds the TLS listener, the mounted certificate and the Service ports', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-kustomize-'));
    const rel = (p: string) => relative(dir, join(ROOT, p));
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${rel('deploy/k8s/overlays/production')}`,
        'components:',
        `  - ${rel('deploy/k8s/components/rtmps')}`,
        '',
      ].join('\n'),
    );
    const objs = kustomizeBuild(dir);
    for (const obj of objs) allObjects.push({ where: 'kustomize production + components/rtmps', obj });
    assertNoErrors(await validateSchemas(objs, 'kustomize production + rtmps'), 'schema validation');
    assertNoErrors(
      checkManifests(objs, expectations('kustomize production + rtmps', ['Secret/rtmp-relay-auth'])),
      'production + rtmps',
    );
    for (const name of ['rtmp-relay-origin', 'rtmp-relay-edge']) {
      const dep = findObject(objs, 'Deployment', name)!;
      const c = dep.spec.template.spec.containers[0];
      const env = Object.fromEntries(c.env.filter((e: any) => e.value).map((e: any) => [e.name, e.value]));
      assert.equal(env.TLS_CERT_FILE, '/etc/rtmp-relay/tls/tls.crt');
      assert.equal(env.TLS_KEY_FILE, '/etc/rtmp-relay/tls/tls.key');
      assert.ok(c.ports.some((p: any) => p.name === 'rtmps' && String(p.containerPort) === env.RTMPS_PORT));
      const vol = dep.spec.template.spec.volumes.find((v: any) => v.name === 'rtmps-tls');
      assert.equal(vol.secret.secretName, 'rtmp-relay-tls');
      assert.ok(findObject(objs, 'Service', name)!.spec.ports.some((p: any) => p.name === 'rtmps' && p.port === 443));
    }
  });

  it('the production edge HPA scales on CPU and on a custom metric that prometheus-adapter serves', () => {
    const hpa = findObject(builds.get('overlays/production')!, 'HorizontalPodAutoscaler', 'rtmp-relay-edge')!;
    const adapter = parseYaml(read('deploy/k8s/monitoring/prometheus-adapter-values.yaml')) as {
      rules: { custom: Array<{ name: { as: string } }> };
    };
    const served = new Set(adapter.rules.custom.map((r) => r.name.as));
    assert.ok(hpa.spec.metrics.some((m: any) => m.type === 'Resource' && m.resource.name === 'cpu'));
    const pods = hpa.spec.metrics.filter((m: any) => m.type === 'Pods');
    assert.ok(pods.length > 0, 'no streaming metric');
    for (const m of pods)
      assert.ok(
        served.has(m.pods.metric.name),
        `HPA metric ${m.pods.metric.name} is not served by the adapter rules (${[...served]})`,
      );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Helm

describe('Helm chart (helm/rtmp-relay)', () => {
  const values = parseYaml(read('helm/rtmp-relay/values.yaml')) as Record<string, unknown>;
  const schema = JSON.parse(read('helm/rtmp-relay/values.schema.json')) as Record<string, any>;
  const examples = readdirSync(join(ROOT, 'helm/examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(ROOT, 'helm/examples', f));
  const ajv = addFormats(new Ajv({ allErrors: true, strict: true, strictTypes: false }));
  const validate = ajv.compile(schema);
  const schemaErrors = (v: unknown) =>
    validate(v)
      ? []
      : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
  /** Helm coalesces values.yaml with -f files like this (maps merge, null deletes). */
  const merged = (file: string): Record<string, unknown> => {
    const mergeInto = (dst: any, src: any): any => {
      for (const [k, v] of Object.entries(src ?? {})) {
        if (v === null) delete dst[k];
        else if (
          v &&
          typeof v === 'object' &&
          !Array.isArray(v) &&
          dst[k] &&
          typeof dst[k] === 'object' &&
          !Array.isArray(dst[k])
        )
          mergeInto(dst[k], v);
        else dst[k] = v;
      }
      return dst;
    };
    return mergeInto(structuredClone(values), parseYaml(readFileSync(file, 'utf8')));
  };

  it('Chart.yaml is a valid apiVersion v2 chart whose appVersion is the image the repository builds', () => {
    const chart = parseYaml(read('helm/rtmp-relay/Chart.yaml')) as Record<string, unknown>;
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'rtmp-relay');
    assert.match(String(chart.name), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.match(
      String(chart.version),
      /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/,
      'version is SemVer 2',
    );
    assert.equal(typeof chart.appVersion, 'string');
    assert.equal(chart.appVersion, (JSON.parse(read('services/server/package.json')) as { version: string }).version);
    assert.ok(['application', 'library'].includes(String(chart.type ?? 'application')));
    assert.match(String(chart.kubeVersion), /^>=\s*1\.\d+/);
    assert.ok(String(chart.description).length > 10);
    const known = new Set([
      'apiVersion',
      'name',
      'version',
      'kubeVersion',
      'description',
      'type',
      'keywords',
      'home',
      'sources',
      'dependencies',
      'maintainers',
      'icon',
      'appVersion',
      'deprecated',
      'annotations',
    ]);
    for (const k of Object.keys(chart)) assert.ok(known.has(k), `Chart.yaml: unknown field ${k}`);
    const base = parseYaml(read('deploy/k8s/base/kustomization.yaml')) as {
      images: Array<{ newTag: string; newName: string }>;
    };
    assert.equal(base.images[0]!.newTag, chart.appVersion, 'kustomize and Helm deploy the same version');
    assert.equal(base.images[0]!.newName, values.image && (values.image as { repository: string }).repository);
  });

  it('values.yaml and every example validate against values.schema.json, which rejects typos', () => {
    assert.ok(examples.length >= 2, 'examples for small and large setups');
    assertNoErrors(schemaErrors(values), 'values.yaml');
    for (const f of examples) assertNoErrors(schemaErrors(merged(f)), f);
    // The schema has teeth: a misspelled key, a wrong type and a bad enum are refused.
    const typo = structuredClone(values) as any;
    typo.edge.autoscaling.maxReplica = 5;
    assert.ok(
      schemaErrors(typo).some((e) => e.includes('maxReplica')),
      'a misspelled key is refused',
    );
    const wrong = structuredClone(values) as any;
    wrong.origin.replicaCount = 'two';
    assert.ok(schemaErrors(wrong).length > 0);
    const badEnum = structuredClone(values) as any;
    badEnum.config.logLevel = 'verbose';
    assert.ok(schemaErrors(badEnum).length > 0);
  });

  it('every .Values path the templates read exists in values.yaml and in the schema (and the schema documents no phantom keys)', () => {
    const refs = valuesReferences(chartTemplates());
    assert.ok(refs.length > 50, `found only ${refs.length} references: the scanner is broken`);
    const problems: string[] = [];
    for (const r of refs) {
      if (!valuesHasPath(values, r.path)) problems.push(`${r.file}: .Values.${r.path.join('.')} is not in values.yaml`);
      if (!schemaHasPath(schema, r.path))
        problems.push(`${r.file}: .Values.${r.path.join('.')} is not in values.schema.json`);
    }
    for (const p of leafPaths(values))
      if (!schemaHasPath(schema, p)) problems.push(`values.yaml ${p.join('.')} is not in the schema`);
    for (const p of schemaPaths(schema))
      if (p[0] !== 'global' && !valuesHasPath(values, p))
        problems.push(`schema property ${p.join('.')} has no default in values.yaml`);
    // Every key of values.yaml is read by some template (no dead settings).
    const readPaths = new Set(refs.map((r) => r.path.join('.')));
    for (const p of leafPaths(values))
      if (
        ![...readPaths].some(
          (r) => p.join('.') === r || p.join('.').startsWith(`${r}.`) || r.startsWith(`${p.join('.')}.`),
        )
      )
        problems.push(`values.yaml ${p.join('.')} is read by no template`);
    assertNoErrors(problems, 'values paths');
    // The scanner finds what it must: a path through `index .Values $role`.
    assert.ok(refs.some((r) => r.path.join('.') === 'edge.terminationGracePeriodSeconds'));
  });

  const scenarios: Array<{ name: string; files: string[]; external?: string[]; extra?: Record<string, unknown> }> = [];
  const renderings = new Map<string, K8sObject[]>();
  before(() => {
    const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-helm-'));
    const extra = (name: string, v: Record<string, unknown>): string => {
      const p = join(dir, `${name}.yaml`);
      writeFileSync(p, JSON.stringify(v));
      return p;
    };
    scenarios.push({ name: 'defaults', files: [] });
    for (const f of examples) {
      /** Objects an example expects the cluster to hold already (its comments say so). */
      const external: Record<string, string[]> = {
        'values-large.yaml': ['Secret/relay-auth', 'Secret/relay-redis'],
        'values-hardened.yaml': [
          'Secret/relay-redis-auth',
          'Secret/relay-nats-auth',
          'Secret/relay-hooks',
          'ConfigMap/relay-edge-tuning',
        ],
      };
      const name = f.split('/').at(-1)!;
      scenarios.push({ name, files: [f], ...(external[name] ? { external: external[name] } : {}) });
    }
    scenarios.push({
      name: 'RTMPS, external Redis and NATS with credentials and TLS',
      files: [
        extra('secure-backends', {
          rtmps: { enabled: true, tlsSecret: 'relay-tls' },
          redis: { enabled: false },
          nats: { enabled: false },
          externalRedis: {
            url: 'rediss://redis.internal:6380',
            username: 'relay',
            passwordSecret: 'relay-redis-auth',
            tls: { caConfigMap: 'redis-ca', caKey: 'ca.pem' },
          },
          externalNats: {
            url: 'tls://nats.internal:4222',
            userKey: 'user',
            passwordSecret: 'relay-nats-auth',
            tokenSecret: 'relay-nats-token',
            credsSecret: 'relay-nats-creds',
            tls: { caSecret: 'nats-ca', clientSecret: 'nats-client' },
          },
        }),
      ],
      external: ['Secret/relay-redis-auth', 'Secret/relay-nats-auth', 'Secret/relay-nats-token'],
    });
    scenarios.push({
      name: 'external redis/nats by URL, egress autoscaling, monitoring, no network policy',
      files: [
        extra('toggles', {
          redis: { enabled: false },
          nats: { enabled: false },
          externalRedis: { url: 'rediss://:secret@redis.internal:6380' },
          externalNats: { url: 'nats://nats.nats.svc:4222' },
          edge: {
            autoscaling: { targetViewersPerPod: 2000, targetEgressBitsPerPod: 4000000000 },
            service: { type: 'NodePort', port: 1935, nodePort: 30935 },
          },
          auth: { apiToken: 't', publishSecret: 'p', playSecret: 'q', requirePlayToken: true },
          hooks: { onPublish: 'http://hooks.internal/publish', failOpen: true },
          config: { extraEnv: { GOP_CACHE_MAX_BYTES: 1048576, WRITE_BATCH_MS: '20' } },
          origin: { extraEnv: { MAX_CONNECTIONS: '500' }, service: { type: 'ClusterIP', port: 1935 } },
          networkPolicy: { enabled: false },
          metrics: { podMonitor: { enabled: true }, prometheusRule: { enabled: true }, dashboard: { enabled: true } },
          tests: { enabled: false },
        }),
      ],
    });
    for (const s of scenarios) {
      const objs = renderChart({ valuesFiles: s.files });
      renderings.set(s.name, objs);
      for (const obj of objs) allObjects.push({ where: `helm ${s.name}`, obj });
    }
  });

  it('renders with helm template for the defaults, every example and the toggles', () => {
    for (const s of scenarios) {
      const objs = renderings.get(s.name)!;
      assert.ok(objs.filter((o) => o.kind === 'Deployment').length >= 2, `${s.name}: ${objs.map(id)}`);
    }
    // Optional parts come and go with their values.
    const toggles = renderings.get(scenarios.at(-1)!.name)!;
    assert.ok(!toggles.some((o) => o.kind === 'NetworkPolicy' || /redis|nats/.test(o.metadata.name)));
    assert.ok(['PodMonitor', 'PrometheusRule'].every((k) => toggles.some((o) => o.kind === k)));
    const hpa = toggles.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    assert.deepEqual(
      hpa.spec.metrics.map((m: any) => m.pods?.metric.name ?? m.resource.name),
      ['cpu', 'rtmp_viewers', 'rtmp_egress_bits_per_second'],
    );
    assert.equal(
      hpa.spec.metrics[2].pods.target.averageValue,
      '4000000000',
      'large integers survive Helm-style float values',
    );
    const defaults = renderings.get('defaults')!;
    assert.ok(
      !defaults.some((o) => o.kind === 'PodMonitor'),
      'monitoring CRDs are opt-in (they need the Prometheus Operator)',
    );
    assert.ok(
      defaults.some((o) => o.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test'),
      'a helm test hook pod',
    );
  });

  it('helm lint --strict passes for the defaults, every example and every scenario (missing values are errors)', () => {
    for (const s of scenarios) assert.deepEqual(helmLint(s.files), [], `helm lint --strict ${s.name}`);
  });

  it('the README parameter tables are generated from values.yaml and up to date (npm run chart:readme)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-readme-'));
    const copy = join(dir, 'README.md');
    writeFileSync(copy, read('helm/rtmp-relay/README.md'));
    const r = spawnSync(
      process.execPath,
      [
        join(ROOT, 'node_modules/@bitnami/readme-generator-for-helm/bin/index.js'),
        '--values',
        join(CHART, 'values.yaml'),
        '--readme',
        copy,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, `readme-generator: every value needs a ## @param (or @skip):\n${r.stdout}${r.stderr}`);
    assert.equal(readFileSync(copy, 'utf8'), read('helm/rtmp-relay/README.md'), 'run `npm run chart:readme`');
    const readme = read('helm/rtmp-relay/README.md');
    for (const p of [
      'edge.autoscaling.maxReplicas',
      'ingress.enabled',
      'networkPolicy.allowExternalEgress',
      'probes.liveness.periodSeconds',
    ])
      assert.ok(readme.includes(`| \`${p}\``), `${p} in the parameter table`);
  });

  it('helm package makes the chart archive with the Chart.yaml version', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-helm-package-'));
    const chart = parseYaml(read('helm/rtmp-relay/Chart.yaml')) as { version: string };
    const archive = helmPackage(dir);
    assert.equal(archive, join(dir, `rtmp-relay-${chart.version}.tgz`));
    const listing = spawnSync('tar', ['tzf', archive], { encoding: 'utf8' }).stdout.split('\n');
    for (const f of [
      'Chart.yaml',
      'values.yaml',
      'values.schema.json',
      'README.md',
      'icon.svg',
      'templates/_helpers.tpl',
    ])
      assert.ok(listing.includes(`rtmp-relay/${f}`), `${f} in the package`);
  });

  it('every rendered object validates against the Kubernetes schemas', async () => {
    const errors: string[] = [];
    for (const [name, objs] of renderings) errors.push(...(await validateSchemas(objs, `helm ${name}`)));
    assertNoErrors(errors, 'schema validation');
  });

  it('probes, ports, selectors, env names (SETTINGS), values (loadConfig), security and drain timing are right', () => {
    const errors: string[] = [];
    for (const s of scenarios)
      errors.push(...checkManifests(renderings.get(s.name)!, expectations(`helm ${s.name}`, s.external)));
    assertNoErrors(errors, 'consistency');
  });

  it('standard labels everywhere, and config or secret changes roll the pods (checksum annotations)', () => {
    const objs = renderings.get('defaults')!;
    for (const o of objs)
      for (const l of [
        'app.kubernetes.io/name',
        'app.kubernetes.io/instance',
        'app.kubernetes.io/managed-by',
        'helm.sh/chart',
      ])
        assert.ok(o.metadata.labels?.[l], `${id(o)} lacks label ${l}`);
    const checksums = (o: K8sObject[]) =>
      podTemplates(o)
        .filter((t) => relayContainers(t, ROLES).length > 0)
        .map(
          (t) =>
            `${t.owner.spec.template.metadata.annotations['checksum/config']}/${t.owner.spec.template.metadata.annotations['checksum/auth']}`,
        );
    const before = checksums(objs);
    assert.equal(before.length, 2);
    const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-helm-'));
    writeFileSync(join(dir, 'a.yaml'), 'config:\n  logLevel: debug\n');
    writeFileSync(join(dir, 'b.yaml'), 'auth:\n  apiToken: changed\n');
    const afterConfig = checksums(renderChart({ valuesFiles: [join(dir, 'a.yaml')] }));
    const afterAuth = checksums(renderChart({ valuesFiles: [join(dir, 'b.yaml')] }));
    for (let i = 0; i < 2; i++) {
      assert.notEqual(
        afterConfig[i]!.split('/')[0],
        before[i]!.split('/')[0],
        'a config change changes checksum/config',
      );
      assert.notEqual(afterAuth[i]!.split('/')[1], before[i]!.split('/')[1], 'a secret change changes checksum/auth');
    }
  });

  it('refuses values that cannot work (grace period shorter than the drain, no Redis, play tokens without a secret)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtmp-relay-helm-'));
    const cases: Array<[string, string, RegExp]> = [
      [
        'grace',
        'edge:\n  terminationGracePeriodSeconds: 20\n',
        /edge.terminationGracePeriodSeconds \(20\) must exceed .* = 32/,
      ],
      [
        'origin-grace',
        // 40 s was the origin default before the drain's stream moves (2 x 5 s) were counted: 2 + (5000 + 25000 + 10000) / 1000 = 42.
        'origin:\n  terminationGracePeriodSeconds: 40\n',
        /origin.terminationGracePeriodSeconds \(40\) must exceed .*the origin's stream moves.* = 42/,
      ],
      ['redis', 'redis:\n  enabled: false\n', /Redis is required/],
      ['play', 'auth:\n  requirePlayToken: true\n', /requirePlayToken needs/],
      // Anonymous publishing is an explicit choice, never the result of leaving a value out.
      [
        'publish',
        'auth:\n  generatePublishSecret: false\n',
        /publishing needs a credential: .*allowAnonymousPublish: true/,
      ],
      [
        'contradiction',
        'auth:\n  allowAnonymousPublish: true\n  publishSecret: p\n',
        /allowAnonymousPublish: true contradicts auth.publishSecret/,
      ],
      ['rtmps', 'rtmps:\n  enabled: true\n', /rtmps.enabled needs rtmps.tlsSecret/],
      [
        'min-max',
        'edge:\n  autoscaling:\n    minReplicas: 10\n    maxReplicas: 5\n',
        /edge.autoscaling.minReplicas \(10\) must not exceed edge.autoscaling.maxReplicas \(5\)/,
      ],
      [
        'stuck-rollout',
        'origin:\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 0\n',
        /origin.strategy.rollingUpdate: maxSurge and maxUnavailable cannot both be 0/,
      ],
      [
        'recreate-with-rolling',
        'edge:\n  strategy:\n    type: Recreate\n    rollingUpdate:\n      maxSurge: 1\n',
        /rollingUpdate/,
      ],
      ['ingress-no-http', 'ingress:\n  enabled: true\nedge:\n  service:\n    httpPort: 0\n', /edge\/service\/httpPort/],
      ['ingress-no-hosts', 'ingress:\n  enabled: true\n  hosts: []\n', /hosts/],
      ['liveness-success', 'probes:\n  liveness:\n    successThreshold: 2\n', /successThreshold/],
      ['env-from-nothing', 'edge:\n  extraEnv:\n    LOG_LEVEL: {}\n', /extraEnv/],
      [
        'nats-user',
        'nats:\n  enabled: false\nexternalNats:\n  url: nats://n:4222\n  user: relay\n',
        /needs externalNats.passwordSecret/,
      ],
      ['bundled-auth', 'externalRedis:\n  passwordSecret: r\n', /disable the bundled redis/],
    ];
    for (const [name, yaml, message] of cases) {
      writeFileSync(join(dir, `${name}.yaml`), yaml);
      assert.throws(() => renderChartText({ valuesFiles: [join(dir, `${name}.yaml`)] }), message);
    }
  });

  it('hardened example: egress only to DNS, the relay, the backends and extraEgress; Ingress to the edge HTTP port; extras land', () => {
    const objs = renderings.get('values-hardened.yaml')!;
    const egress = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name.endsWith('-egress'))!;
    assert.deepEqual(egress.spec.policyTypes, ['Egress']);
    const rules = egress.spec.egress as any[];
    assert.deepEqual(
      rules[0].ports.map((p: any) => `${p.port}/${p.protocol}`),
      ['53/UDP', '53/TCP'],
      'DNS first',
    );
    assert.equal(rules[1].to[0].podSelector.matchLabels['app.kubernetes.io/name'], 'rtmp-relay', 'edges reach origins');
    assert.deepEqual(
      rules.slice(2).map((r) => r.ports.map((p: any) => p.port).join()),
      ['6380', '4222', '4318'],
      'external Redis, NATS, OTLP from extraEgress',
    );
    assert.ok(
      !renderings.get('defaults')!.some((o) => o.metadata.name.endsWith('-egress')),
      'egress is open by default (allowExternalEgress: true)',
    );
    const ingress = objs.find((o) => o.kind === 'Ingress')!;
    const edgeSvc = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'relay-rtmp-relay-edge')!;
    const backend = ingress.spec.rules[0].http.paths[0].backend.service;
    assert.equal(backend.name, edgeSvc.metadata.name);
    assert.ok(edgeSvc.spec.ports.some((p: any) => p.name === backend.port.name && p.targetPort === 'http'));
    assert.equal(ingress.spec.ingressClassName, 'nginx');
    assert.equal(edgeSvc.spec.loadBalancerClass, 'service.k8s.aws/nlb');
    for (const o of objs) assert.equal(o.metadata.labels?.team, 'video-platform', `${id(o)}: commonLabels`);
    const edge = objs.find((o) => o.kind === 'Deployment' && o.metadata.name.endsWith('-edge'))!;
    const pod = edge.spec.template.spec;
    const relay = pod.containers.find((c: any) => c.name === 'rtmp-relay');
    assert.deepEqual(
      pod.containers.map((c: any) => c.name),
      ['rtmp-relay', 'log-shipper'],
      'the sidecar',
    );
    assert.ok(
      pod.volumes.some((v: any) => v.name === 'shipper-config'),
      'extraVolumes',
    );
    assert.deepEqual(relay.env.find((e: any) => e.name === 'HOOK_ON_PLAY').valueFrom, {
      secretKeyRef: { name: 'relay-hooks', key: 'onPlayUrl' },
    });
    assert.ok(
      relay.envFrom.some((e: any) => e.configMapRef?.name === 'relay-edge-tuning'),
      'extraEnvFrom',
    );
    assert.equal(relay.startupProbe.failureThreshold, 60, 'probe timings from values');
    assert.equal(relay.startupProbe.httpGet.path, '/healthz', "probe endpoints stay the node's");
    assert.deepEqual(relay.lifecycle.preStop.exec.command, ['sleep', '2'], 'the preStop sleep stays');
  });

  /** The relay's origin and edge Deployments' containers of a rendering. */
  const relayOf = (objs: K8sObject[]) =>
    podTemplates(objs)
      .filter((t) => relayContainers(t, ROLES).length > 0)
      .map((t) => ({ owner: t.owner, spec: t.spec, container: relayContainers(t, ROLES)[0] }));
  const envEntry = (container: any, name: string) => (container.env ?? []).find((e: any) => e.name === name);
  const secretData = (secret: K8sObject) =>
    Object.fromEntries(
      Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
  const MIN_GENERATED_LENGTH = 32;
  const tmpValues = (name: string, v: Record<string, unknown>): string => {
    const p = join(mkdtempSync(join(tmpdir(), 'rtmp-relay-helm-')), `${name}.yaml`);
    writeFileSync(p, JSON.stringify(v));
    return p;
  };

  it('secure by default: a generated API token, cluster secret and publish secret, required by the pods', () => {
    const objs = renderings.get('defaults')!;
    const secrets = objs.filter((o) => o.kind === 'Secret');
    assert.equal(secrets.length, 1, 'one auth Secret');
    const secret = secrets[0]!;
    const data = secretData(secret);
    for (const key of ['API_TOKEN', 'CLUSTER_SECRET', 'PUBLISH_SECRET'])
      assert.ok(
        (data[key] ?? '').length >= MIN_GENERATED_LENGTH,
        `${key} is generated (got ${JSON.stringify(data[key])})`,
      );
    assert.notEqual(data.API_TOKEN, data.CLUSTER_SECRET, 'independent secrets');
    assert.equal(data.PLAY_SECRET, undefined, 'no play secret unless given');
    const relay = relayOf(objs);
    assert.equal(relay.length, 2);
    for (const { owner, container } of relay) {
      for (const name of ['API_TOKEN', 'CLUSTER_SECRET', 'PUBLISH_SECRET']) {
        const ref = envEntry(container, name)?.valueFrom?.secretKeyRef;
        assert.deepEqual(
          ref,
          { name: secret.metadata.name, key: name },
          `${id(owner)} ${name} from the Secret, required`,
        );
      }
      assert.equal(envEntry(container, 'PLAY_SECRET').valueFrom.secretKeyRef.optional, true);
      // No envFrom of the auth Secret: the keys the pods get are exactly the documented ones.
      assert.ok(!(container.envFrom ?? []).some((e: any) => e.secretRef), `${id(owner)}: envFrom a Secret`);
    }
    // Random per install: two renderings (two installs) differ.
    const again = secretData(renderChart().find((o) => o.kind === 'Secret')!);
    for (const key of ['API_TOKEN', 'CLUSTER_SECRET', 'PUBLISH_SECRET']) assert.notEqual(again[key], data[key], key);
  });

  it('an upgrade keeps the generated secrets (lookup of the existing Secret); given values win', async () => {
    const first = renderChart().find((o) => o.kind === 'Secret')!;
    // As helm left it in the cluster: owned by the release (helm refuses to adopt an object it does not own).
    const inNamespace = (ns: string) => [
      {
        ...first,
        metadata: {
          ...first.metadata,
          namespace: ns,
          annotations: { 'meta.helm.sh/release-name': 'relay', 'meta.helm.sh/release-namespace': ns },
        },
      },
    ];
    const secretOf = (objs: K8sObject[]) => secretData(objs.find((o) => o.kind === 'Secret')!);
    const upgraded = secretOf(await renderUpgrade(inNamespace('streaming')));
    assert.deepEqual(upgraded, secretData(first), 'the upgrade kept every generated value');
    // A Secret of another namespace (another release) is not read.
    const other = secretOf(await renderUpgrade(inNamespace('elsewhere')));
    assert.notEqual(other.API_TOKEN, secretData(first).API_TOKEN);
    // A value set in values replaces the kept one.
    const given = secretOf(
      await renderUpgrade(inNamespace('streaming'), {
        valuesFiles: [tmpValues('given', { auth: { apiToken: 'operator-chosen-token' } })],
      }),
    );
    assert.equal(given.API_TOKEN, 'operator-chosen-token');
    assert.equal(given.CLUSTER_SECRET, secretData(first).CLUSTER_SECRET);
  });

  it('existingSecret: nothing generated, the pods read the documented keys from it', () => {
    const objs = renderChart({ valuesFiles: [tmpValues('existing', { auth: { existingSecret: 'my-auth' } })] });
    assert.ok(!objs.some((o) => o.kind === 'Secret'), 'no Secret rendered');
    for (const { owner, container } of relayOf(objs))
      for (const [name, optional] of [
        ['API_TOKEN', undefined],
        ['CLUSTER_SECRET', undefined],
        ['PUBLISH_SECRET', undefined],
        ['PLAY_SECRET', true],
      ] as const)
        assert.deepEqual(
          envEntry(container, name)?.valueFrom?.secretKeyRef,
          { name: 'my-auth', key: name, ...(optional ? { optional } : {}) },
          `${id(owner)} ${name}`,
        );
    assert.match(read('docs/DEPLOY.md'), /CLUSTER_SECRET/, 'docs/DEPLOY.md documents the keys of existingSecret');
    assert.match(
      read('helm/rtmp-relay/values.yaml'),
      /existingSecret[\s\S]*API_TOKEN[\s\S]*CLUSTER_SECRET[\s\S]*PUBLISH_SECRET/,
    );
  });

  it('anonymous publishing only when asked for; a publish hook replaces the generated publish secret', () => {
    const anonymous = renderChart({ valuesFiles: [tmpValues('anon', { auth: { allowAnonymousPublish: true } })] });
    const data = secretData(anonymous.find((o) => o.kind === 'Secret')!);
    assert.equal(data.PUBLISH_SECRET, undefined);
    assert.ok(data.API_TOKEN && data.CLUSTER_SECRET, 'the API and the cluster stay protected');
    for (const { container } of relayOf(anonymous)) assert.equal(envEntry(container, 'PUBLISH_SECRET'), undefined);
    assert.match(
      renderNotes({ valuesFiles: [tmpValues('anon', { auth: { allowAnonymousPublish: true } })] }),
      /WARNING: auth.allowAnonymousPublish/,
    );

    const hooked = renderChart({
      valuesFiles: [tmpValues('hook', { hooks: { onPublish: 'http://auth.internal/publish' } })],
    });
    assert.equal(secretData(hooked.find((o) => o.kind === 'Secret')!).PUBLISH_SECRET, undefined);
    for (const { container } of relayOf(hooked))
      assert.equal(envEntry(container, 'PUBLISH_SECRET').valueFrom.secretKeyRef.optional, true);
    const cm = hooked.find((o) => o.kind === 'ConfigMap' && o.data?.HOOK_ON_PUBLISH)!;
    assert.equal(cm.data.HOOK_ON_PUBLISH, 'http://auth.internal/publish');
    assert.equal(cm.data.ALLOW_TAKEOVER, 'true', 'takeover stays configurable (and needs publish credentials)');
    const noTakeover = renderChart({ valuesFiles: [tmpValues('takeover', { config: { allowTakeover: false } })] });
    assert.equal(
      noTakeover.find((o) => o.kind === 'ConfigMap' && o.data?.ALLOW_TAKEOVER)!.data.ALLOW_TAKEOVER,
      'false',
    );
  });

  it('/api and /metrics only on the admin port: in the ClusterIP api Service and the PodMonitor, on no public Service', () => {
    for (const [name, objs] of renderings) {
      const relay = relayOf(objs);
      for (const { owner, container } of relay) {
        const admin = container.ports.find((p: any) => p.name === 'admin');
        assert.ok(admin, `${name} ${id(owner)}: no admin port`);
        assert.equal(envEntry(container, 'ADMIN_PORT').value, String(admin.containerPort));
      }
      for (const svc of objs.filter(
        (o) =>
          o.kind === 'Service' &&
          o.metadata.labels?.['app.kubernetes.io/component'] !== 'redis' &&
          o.metadata.labels?.['app.kubernetes.io/component'] !== 'nats',
      )) {
        const targets = svc.spec.ports.map((p: any) => p.targetPort);
        if (svc.metadata.name.endsWith('-api')) {
          assert.equal(svc.spec.type, 'ClusterIP', `${name}: the api Service is cluster-internal`);
          assert.deepEqual(targets, ['admin'], `${name}: the api Service targets the admin port`);
        } else assert.ok(!targets.includes('admin'), `${name} ${id(svc)} exposes the admin port: ${targets}`);
      }
      const pm = objs.find((o) => o.kind === 'PodMonitor');
      if (pm)
        assert.deepEqual(
          pm.spec.podMetricsEndpoints.map((e: any) => e.port),
          ['admin'],
          `${name}: PodMonitor`,
        );
      const np = objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'relay-rtmp-relay');
      if (!np) continue;
      // Only the rtmp/rtmps rule is open to anyone; admin is limited to this namespace and the listed ones.
      for (const rule of np.spec.ingress) {
        const ports = rule.ports.map((p: any) => p.port);
        if (!rule.from)
          assert.ok(
            ports.every((p: string) => p === 'rtmp' || p === 'rtmps'),
            `${name}: open rule ${ports}`,
          );
        if (ports.includes('admin'))
          assert.deepEqual(rule.from, [
            { podSelector: {} },
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
          ]);
      }
    }
    // The PodMonitor scenario exists (the checker ran on one).
    assert.ok([...renderings.values()].some((objs) => objs.some((o) => o.kind === 'PodMonitor')));
    // checkManifests catches an admin port on a public Service and a PodMonitor scraping the HTTP port.
    const mutant = structuredClone(renderings.get(scenarios.at(-1)!.name)!);
    const edgeSvc = mutant.find((o) => o.kind === 'Service' && o.metadata.name === 'relay-rtmp-relay-edge')!;
    edgeSvc.spec.ports.push({ name: 'admin', port: 9090, targetPort: 'admin', protocol: 'TCP' });
    mutant.find((o) => o.kind === 'PodMonitor')!.spec.podMetricsEndpoints[0].port = 'http';
    const errors = checkManifests(mutant, expectations('mutant'));
    assert.ok(
      errors.some((e) => e.includes('exposes the admin port')),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => e.includes('/metrics is on ADMIN_PORT')),
      errors.join('\n'),
    );
  });

  it('RTMPS: the TLS Secret mounted read-only (no subPath: renewals reach the node), TLS_CERT_FILE/TLS_KEY_FILE, the port on both Services', () => {
    const objs = renderings.get('RTMPS, external Redis and NATS with credentials and TLS')!;
    for (const { owner, spec, container } of relayOf(objs)) {
      const port = container.ports.find((p: any) => p.name === 'rtmps');
      assert.ok(port, `${id(owner)}: no rtmps port`);
      assert.equal(envEntry(container, 'RTMPS_PORT').value, String(port.containerPort));
      const mount = container.volumeMounts.find((m: any) => m.name === 'rtmps-tls');
      assert.deepEqual(mount, { name: 'rtmps-tls', mountPath: '/etc/rtmp-relay/tls', readOnly: true });
      assert.equal(envEntry(container, 'TLS_CERT_FILE').value, '/etc/rtmp-relay/tls/tls.crt');
      assert.equal(envEntry(container, 'TLS_KEY_FILE').value, '/etc/rtmp-relay/tls/tls.key');
      const vol = spec.volumes.find((v: any) => v.name === 'rtmps-tls');
      assert.equal(vol.secret.secretName, 'relay-tls');
    }
    for (const role of ['origin', 'edge']) {
      const svc = findObject(objs, 'Service', `relay-rtmp-relay-${role}`)!;
      assert.ok(
        svc.spec.ports.some((p: any) => p.name === 'rtmps' && p.port === 443 && p.targetPort === 'rtmps'),
        role,
      );
    }
    const np = findObject(objs, 'NetworkPolicy', 'relay-rtmp-relay')!;
    assert.deepEqual(
      np.spec.ingress[0].ports.map((p: any) => p.port),
      ['rtmp', 'rtmps'],
    );
    // Off by default.
    for (const { container } of relayOf(renderings.get('defaults')!)) {
      assert.equal(envEntry(container, 'TLS_CERT_FILE'), undefined);
      assert.ok(!container.ports.some((p: any) => p.name === 'rtmps'));
    }
  });

  it('external Redis and NATS credentials come from Secrets (valueFrom), CA bundles, creds file and client certificate from mounts', () => {
    const objs = renderings.get('RTMPS, external Redis and NATS with credentials and TLS')!;
    for (const { owner, spec, container } of relayOf(objs)) {
      const from = (name: string) => envEntry(container, name)?.valueFrom?.secretKeyRef;
      assert.equal(envEntry(container, 'REDIS_USERNAME').value, 'relay');
      assert.deepEqual(from('REDIS_PASSWORD'), { name: 'relay-redis-auth', key: 'password' });
      assert.deepEqual(from('NATS_USER'), { name: 'relay-nats-auth', key: 'user' });
      assert.deepEqual(from('NATS_PASSWORD'), { name: 'relay-nats-auth', key: 'password' });
      assert.deepEqual(from('NATS_TOKEN'), { name: 'relay-nats-token', key: 'token' });
      const files: Record<string, [string, string, string]> = {
        REDIS_TLS_CA_FILE: ['redis-ca', 'configMap', 'ca.pem'],
        NATS_TLS_CA_FILE: ['nats-ca', 'secret', 'ca.crt'],
        NATS_CREDS_FILE: ['relay-nats-creds', 'secret', 'nats.creds'],
        NATS_TLS_CERT_FILE: ['nats-client', 'secret', 'tls.crt'],
        NATS_TLS_KEY_FILE: ['nats-client', 'secret', 'tls.key'],
      };
      for (const [name, [source, kind, key]] of Object.entries(files)) {
        const path = envEntry(container, name)?.value as string;
        assert.ok(path, `${id(owner)}: ${name} not set`);
        const mount = container.volumeMounts.find((m: any) => path.startsWith(`${m.mountPath}/`));
        assert.ok(mount?.readOnly, `${id(owner)}: ${name}=${path} is on no read-only mount`);
        const vol = spec.volumes.find((v: any) => v.name === mount.name);
        const ref = kind === 'secret' ? vol.secret?.secretName : vol.configMap?.name;
        assert.equal(ref, source, `${id(owner)}: ${name} from ${kind} ${source}`);
        const file = path.slice(mount.mountPath.length + 1);
        assert.ok(
          (vol[kind].items as any[]).some((i) => i.key === key && i.path === file),
          `${id(owner)}: ${name}: key ${key} projected to ${file}`,
        );
      }
    }
    // The bundled ones get none of this.
    for (const { container } of relayOf(renderings.get('defaults')!))
      for (const name of ['REDIS_PASSWORD', 'NATS_TOKEN', 'NATS_CREDS_FILE'])
        assert.equal(envEntry(container, name), undefined);
  });

  it('NOTES.txt tells how to publish and play for each setup; the helm test pod calls the api Service', () => {
    for (const s of scenarios) {
      const notes = renderNotes({ valuesFiles: s.files });
      assert.match(notes, /ffmpeg .*-f flv rtmp:\/\/\$ADDR\/live\/mystream/, s.name);
      assert.match(notes, /ffplay rtmp:\/\/\$ADDR\/live\/mystream/, s.name);
      assert.match(notes, /OBS/, s.name);
      assert.doesNotMatch(notes, /<no value>|map\[/, s.name);
    }
    const objs = renderings.get('defaults')!;
    const testPod = objs.find((o) => o.kind === 'Pod')!;
    const script = testPod.spec.containers[0].args[0] as string;
    const m = /http:\/\/([a-z0-9-]+):(\d+)/.exec(script)!;
    const svc = findObject(objs, 'Service', m[1]!)!;
    assert.ok(svc, `the test pod calls ${m[1]}, which is not a Service`);
    assert.ok(svc.spec.ports.some((p: any) => p.port === Number(m[2])));
    const paths = [.../for \(const path of \[([^\]]+)\]/.exec(script)![1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]);
    assert.deepEqual(paths, ['/api/node', '/api/streams', '/metrics'], 'the test pod checks the API and metrics');
    assert.match(
      script,
      /without a token[\s\S]*!== 401/,
      'the test pod checks that /api refuses a request without the token',
    );
    assert.equal(svc.spec.type, 'ClusterIP');
    assert.ok(
      svc.spec.ports.every((p: any) => p.targetPort === 'admin'),
      'the api Service targets the admin port',
    );
    // The test pod is not one of the relay's pods: no Service, PDB or NetworkPolicy selects it as such.
    assert.ok(!podTemplates(objs).some((t) => t.owner === testPod && relayContainers(t, ROLES).length > 0));
    assert.ok(!matches(svc.spec.selector, testPod.metadata.labels));
  });

  it('the chart ships the same dashboard and alert rules as deploy/k8s/monitoring', () => {
    assert.equal(read('helm/rtmp-relay/files/dashboard.json'), read('deploy/k8s/monitoring/dashboard.json'));
    // The same rules; kustomize's runbook links are absolute with the chart's default runbookBaseUrl.
    const base = (values as any).metrics.prometheusRule.runbookBaseUrl as string;
    const k8sRule = parseYaml(read('deploy/k8s/monitoring/prometheusrule.yaml')) as { spec: unknown };
    assert.deepEqual(
      parseYaml(
        read('helm/rtmp-relay/files/alerts.yaml').replaceAll('"docs/OPERATIONS.md#', `"${base}/docs/OPERATIONS.md#`),
      ),
      k8sRule.spec,
    );
    const rendered = renderings.get(scenarios.at(-1)!.name)!;
    const rule = rendered.find((o) => o.kind === 'PrometheusRule')!;
    const urls = rule.spec.groups.flatMap((g: any) => g.rules.map((r: any) => r.annotations.runbook_url));
    assert.ok(
      urls.every((u: string) => u.startsWith('https://') && u.includes('/docs/OPERATIONS.md#')),
      urls.join(' '),
    );
    const dash = rendered.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard'))!;
    assert.deepEqual(
      JSON.parse(dash.data['rtmp-relay.json']),
      JSON.parse(read('deploy/k8s/monitoring/dashboard.json')),
    );
  });
});

function matches(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

describe('every object, strictly (Kubernetes 1.30 types: no unknown or misspelled fields)', () => {
  it('type-checks every kustomize and Helm object', () => {
    assert.ok(allObjects.length > 50, `only ${allObjects.length} objects collected`);
    assertNoErrors(strictTypeCheck(allObjects), 'strict type check');
  });

  it('the strict check catches a misspelled field and a wrong type (it is not vacuous)', () => {
    const dep = structuredClone(allObjects.find((e) => e.obj.kind === 'Deployment')!.obj);
    dep.spec.template.spec.containers[0].readinesProbe = dep.spec.template.spec.containers[0].readinessProbe;
    dep.spec.template.spec.terminationGracePeriodSeconds = '40';
    const errors = strictTypeCheck([{ where: 'mutant', obj: dep }]);
    assert.ok(
      errors.some((e) => e.includes('readinesProbe')),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => e.includes('terminationGracePeriodSeconds')),
      errors.join('\n'),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Running nodes: live scrape (observability kit) and the pod lifecycle

interface Cluster {
  redis: ServiceHandle;
  nats: ServiceHandle;
  origin: Running & { http: number; rtmp: number; admin: number; output: () => string };
  edge: Running & { http: number; rtmp: number; admin: number; output: () => string };
  grace: { edge: number; preStop: number };
  publisher: Running;
}

/** The image's entry point (tini when installed here, as in the image) + a Deployment's container args. */
function containerCommand(args: string[]): { cmd: string; argv: string[] } {
  const entry = jsonArray(parseDockerfile(read('Dockerfile')).find((s) => s.op === 'ENTRYPOINT')!.args);
  let argv = [...entry, ...args];
  if (!existsSync(argv[0]!)) argv = argv.slice(2); // no tini on this machine: node directly
  const cmd = argv[0] === 'node' ? process.execPath : argv[0]!;
  return { cmd, argv: argv.slice(1).map((a) => (a === 'node' ? process.execPath : a)) };
}

/**
 * Stops a container-like process as the kubelet would: SIGTERM (tini forwards it), then after the grace period
 * SIGKILL to the whole tree (here tini's child would outlive a SIGKILLed tini, unlike in a container).
 */
async function stopContainer(p: Running, graceMs = 40_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([p.exited, timer])) !== 'timeout') return;
  const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(p.child.pid)], { encoding: 'utf8' })
    .stdout.split(/\s+/)
    .filter(Boolean);
  for (const pid of children) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  p.child.kill('SIGKILL');
  await p.exited;
}

/** Every process started by startAsContainer (stopped in after(), even when before() failed half-way). */
const containers: Running[] = [];

/** Starts a role exactly as its container would: same command, same environment (but free local ports). */
async function startAsContainer(
  objs: K8sObject[],
  name: string,
  overrides: Record<string, string>,
): Promise<Cluster['origin']> {
  const dep = findObject(objs, 'Deployment', name)!;
  const container = dep.spec.template.spec.containers[0];
  const { env } = resolveEnv(objs, dep.metadata.namespace, container, { ...FIELD_REFS, 'status.podIP': '127.0.0.1' });
  const http = await freePort();
  const rtmp = await freePort();
  const admin = await freePort();
  const finalEnv = {
    ...env,
    RTMP_PORT: String(rtmp),
    HTTP_PORT: String(http),
    ADMIN_PORT: String(admin),
    ...overrides,
  };
  const { cmd, argv } = containerCommand(container.args);
  const proc = start(cmd, argv, {
    timeoutMs: 5 * 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...finalEnv },
  });
  containers.push(proc);
  let out = '';
  proc.child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  proc.child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  const node = Object.assign(proc, { http, rtmp, admin, output: () => out });
  await waitFor(
    `${name} to be ready (${cmd} ${argv.join(' ')})`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`${name} exited ${proc.child.exitCode}:\n${out}`);
      const res = await fetch(`http://127.0.0.1:${http}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(
        () => undefined,
      );
      return res?.status === 200;
    },
    20_000,
    100,
  );
  return node;
}

describe('running nodes: live /metrics and the pod lifecycle', () => {
  let cluster: Cluster | undefined;
  const scrapes: Exposition = { names: new Set(), labels: new Map() };

  before(async () => {
    ensureBuilt();
    assert.ok(hasCommand('ffmpeg'), 'ffmpeg is needed');
    // The dev overlay: the manifests with everything they reference (config, the dev Secret).
    const objs = kustomizeBuild(join(ROOT, 'deploy/k8s/overlays/dev'));
    const redis = await startRedis();
    const nats = await startNats();
    const backends = { REDIS_URL: redis.url, NATS_URL: nats.url, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info' };
    const origin = await startAsContainer(objs, 'rtmp-relay-origin', backends);
    const edge = await startAsContainer(objs, 'rtmp-relay-edge', backends);
    const edgeDep = findObject(objs, 'Deployment', 'rtmp-relay-edge')!;
    const preStop = Number(edgeDep.spec.template.spec.containers[0].lifecycle.preStop.exec.command[1]);
    const publisher = ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmp}/live/lifecycle`, { seconds: 60 });
    cluster = {
      redis,
      nats,
      origin,
      edge,
      publisher,
      grace: { edge: edgeDep.spec.template.spec.terminationGracePeriodSeconds, preStop },
    };
    await waitFor(
      'the stream to be live on the origin',
      async () => {
        const res = await fetch(`http://127.0.0.1:${origin.admin}/api/streams/live/lifecycle`, {
          headers: { authorization: 'Bearer dev-api-token' },
        }).catch(() => undefined);
        return res?.status === 200 && ((await res.json()) as { live?: boolean }).live;
      },
      20_000,
      100,
    );
  });

  after(async () => {
    await cluster?.publisher.stop('SIGKILL');
    await Promise.all(containers.map((p) => stopContainer(p)));
    await stopAll();
    await stopAllServices();
  });

  it('the dashboard, the alerts and the autoscaling rules name only metrics the nodes export (live scrapes)', async () => {
    // A standalone node in this process, plus the origin and the edge (cluster metrics) while a stream is pulled.
    const node = await startTestNode();
    try {
      parseExposition(await (await node.http('/metrics')).text(), scrapes);
      assert.equal((await node.http('/healthz')).status, 200);
      assert.equal((await node.http('/readyz')).status, 200);
    } finally {
      await node.shutdown('test');
    }
    const c = cluster!;
    const probe = ffmpegCountFrames(`rtmp://127.0.0.1:${c.edge.rtmp}/live/lifecycle`, 3);
    await waitFor(
      'the edge to pull',
      async () =>
        (await (await fetch(`http://127.0.0.1:${c.edge.admin}/metrics`)).text()).match(/^rtmp_pulls_active 1/m),
      15_000,
      100,
    );
    for (const n of [c.origin, c.edge]) {
      parseExposition(await (await fetch(`http://127.0.0.1:${n.admin}/metrics`)).text(), scrapes);
      // The public HTTP port (the one a LoadBalancer exposes) serves neither /metrics nor /api, even with the token.
      for (const path of ['/metrics', '/api/node']) {
        const res = await fetch(`http://127.0.0.1:${n.http}${path}`, {
          headers: { authorization: 'Bearer dev-api-token' },
        });
        await res.arrayBuffer();
        assert.notEqual(res.status, 200, `${path} answers on the public HTTP port ${n.http}`);
      }
    }
    assert.ok((await probe).frames > 0);
    for (const must of ['rtmp_viewers', 'rtmp_bytes_out_total', 'rtmp_pulls_active', 'rtmp_redis_up', 'rtmp_nats_up'])
      assert.ok(scrapes.names.has(must), `the scrape lacks ${must}`);

    const targetLabels = new Set(['namespace', 'pod', 'role', 'node', 'job', 'instance', 'container', 'endpoint']);
    // Series that come from elsewhere than the node, with the labels their exporter gives them: Prometheus' own
    // per-target `up`, and kube-state-metrics (which the kube-prometheus-stack installs).
    const KSM_HPA = ['namespace', 'horizontalpodautoscaler'];
    const outside = new Map<string, Set<string>>([
      ['up', new Set()],
      ['kube_horizontalpodautoscaler_status_current_replicas', new Set(KSM_HPA)],
      ['kube_horizontalpodautoscaler_spec_max_replicas', new Set(KSM_HPA)],
      ['kube_pod_container_status_restarts_total', new Set(['namespace', 'pod', 'container', 'uid'])],
    ]);
    const problems: string[] = [];
    const checkExpr = (where: string, expr: string) => {
      const selectors = promqlSelectors(expr);
      if (!selectors.some((s) => s.metric)) problems.push(`${where}: no metric in ${expr}`);
      for (const s of selectors) {
        if (!s.metric) continue;
        const external = outside.get(s.metric);
        if (!scrapes.names.has(s.metric) && !(where.startsWith('alert') && external))
          problems.push(`${where}: ${s.metric} is not exported`);
        const known = scrapes.labels.get(s.metric) ?? external;
        for (const l of s.labels)
          if (!targetLabels.has(l) && known && !known.has(l))
            problems.push(`${where}: ${s.metric} has no label ${l} (has ${[...known]})`);
      }
    };
    const dashboard = JSON.parse(read('deploy/k8s/monitoring/dashboard.json')) as unknown;
    const queries = dashboardQueries(dashboard);
    assert.ok(queries.length >= 20);
    for (const q of queries) checkExpr(`dashboard ${q.where}`, q.expr);
    const rules = (
      parseYaml(read('deploy/k8s/monitoring/prometheusrule.yaml')) as {
        spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
      }
    ).spec.groups.flatMap((g) => g.rules);
    for (const r of rules) checkExpr(`alert ${r.alert}`, r.expr);
    // The node's own series the alerts on it read are in the live scrape, with the values a healthy node has, so
    // the alert conditions are false on it (1 == up).
    for (const m of ['rtmp_redis_up', 'rtmp_nats_up']) {
      const seen = scrapes.values?.get(m) ?? [];
      assert.ok(seen.length >= 2 && seen.every((v) => v === 1), `${m} on the healthy origin and edge: ${seen}`);
    }
    const adapter = parseYaml(read('deploy/k8s/monitoring/prometheus-adapter-values.yaml')) as {
      rules: { custom: Array<{ seriesQuery: string; name: { matches: string } }> };
    };
    for (const r of adapter.rules.custom) {
      checkExpr('prometheus-adapter seriesQuery', r.seriesQuery);
      assert.ok(
        [...scrapes.names].some((n) => new RegExp(r.name.matches).test(n)),
        `adapter rule ${r.name.matches} matches no exported metric`,
      );
    }
    assertNoErrors(problems, 'PromQL names');
    // The checker is not vacuous.
    assert.deepEqual(
      promqlMetricNames('sum by (pod) (rate(rtmp_nope_total{role="edge"}[5m])) / on(pod) group_left sum(rtmp_viewers)'),
      ['rtmp_nope_total', 'rtmp_viewers'],
    );
  });

  it('every alert has a runbook in docs/OPERATIONS.md and covers the required failure modes', () => {
    const ops = read('docs/OPERATIONS.md');
    const anchors = new Set(
      [...ops.matchAll(/^#{2,4} (.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    const rules = (
      parseYaml(read('deploy/k8s/monitoring/prometheusrule.yaml')) as { spec: { groups: Array<{ rules: any[] }> } }
    ).spec.groups.flatMap((g) => g.rules);
    for (const r of rules) {
      const anchor = String(r.annotations.runbook_url).split('#')[1]!;
      assert.equal(anchor, r.alert.toLowerCase(), `${r.alert}: runbook anchor`);
      assert.ok(anchors.has(anchor), `docs/OPERATIONS.md has no section "${r.alert}"`);
      assert.ok(['critical', 'warning', 'info'].includes(r.labels.severity), `${r.alert}: severity`);
      assert.ok(r.annotations.summary && r.annotations.description, `${r.alert}: summary and description`);
    }
    const names = rules.map((r) => r.alert).join(' ');
    for (const topic of [
      /Lease/,
      /Pull/,
      /Saturated/,
      /NoPublishers/,
      /NatsDisconnected/,
      /RedisDisconnected/,
      /TargetDown/,
      /AutoscalerAtMax/,
      /ContainerRestarting/,
      /RedisUnreachable/,
      /NatsUnreachable/,
    ])
      assert.match(names, topic);
    for (const r of rules)
      assert.match(
        String(r.annotations.runbook_url),
        /^https:\/\/[^ ]+\/docs\/OPERATIONS\.md#/,
        `${r.alert}: absolute runbook_url`,
      );
  });

  /** The kubelet's probe timeout (the chart's timeoutSeconds is larger); how often we probe (10x the chart's). */
  const LIVENESS_TIMEOUT_MS = 1000;
  const LIVENESS_PROBE_EVERY_MS = 100;
  /** The last steps of a shutdown: the HTTP listener closes, then the process exits. */
  const LISTENER_CLOSE_TO_EXIT_MS = 250;

  it('pod lifecycle: SIGTERM turns the edge not-ready at once, its viewers keep playing through the drain, /healthz stays 200 until exit, it exits 0 in the grace period', async () => {
    const c = cluster!;
    const url = `rtmp://127.0.0.1:${c.edge.rtmp}/live/lifecycle`;
    const seconds = 10;
    const viewer = ffmpegCountFrames(url, seconds);
    await waitFor(
      'the viewer to play through the edge',
      async () => {
        const m = /^rtmp_viewers\{protocol="rtmp"\} (\d+)/m.exec(
          await (await fetch(`http://127.0.0.1:${c.edge.admin}/metrics`)).text(),
        );
        return m && Number(m[1]) >= 1;
      },
      15_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 2000));

    // A client in the middle of a request (headers not finished) must not hold the shutdown with the listener
    // closed (probes refused) until its headers timeout.
    const slow = connect(c.edge.http, '127.0.0.1');
    await once(slow, 'connect');
    slow.on('error', () => undefined);
    slow.write('GET /console/ HTTP/1.1\r\nHost: edge\r\n');

    const t0 = Date.now();
    c.edge.child.kill('SIGTERM');
    const ready = await waitFor(
      '/readyz to turn 503',
      async () => {
        const res = await fetch(`http://127.0.0.1:${c.edge.http}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(
          () => undefined,
        );
        return res?.status === 503 ? Date.now() - t0 : undefined;
      },
      5000,
      20,
    );
    assert.ok(ready < 1000, `not-ready after ${ready} ms`);
    // Alive for the liveness probe (a restart would cut every viewer) until the process exits: probe as the kubelet
    // does (a new connection each time) through the whole drain.
    const probes: Array<{ at: number; status: number | string }> = [];
    let exitedAt = 0;
    void c.edge.exited.then(() => (exitedAt = Date.now()));
    const prober = (async () => {
      while (!exitedAt) {
        const at = Date.now();
        const res = await fetch(`http://127.0.0.1:${c.edge.http}/healthz`, {
          headers: { connection: 'close' },
          signal: AbortSignal.timeout(LIVENESS_TIMEOUT_MS),
        }).catch((err: Error) => ({ status: String((err.cause as Error | undefined)?.message ?? err.message) }));
        probes.push({ at, status: res.status });
        await new Promise((r) => setTimeout(r, LIVENESS_PROBE_EVERY_MS));
      }
    })();

    const played = await viewer;
    const fps = 30;
    assert.equal(played.code, 0, played.stderr);
    assert.ok(
      played.frames >= seconds * fps * 0.8,
      `the viewer got ${played.frames} frames in ${seconds} s: cut during the drain?`,
    );
    const drainedFor = Date.now() - t0;

    const exit = await c.edge.exited;
    const total = (Date.now() - t0) / 1000;
    await prober;
    const failed = probes.filter((p) => p.status !== 200 && p.at < exitedAt - LISTENER_CLOSE_TO_EXIT_MS);
    assert.ok(probes.length > 20, `${probes.length} liveness probes during the drain`);
    assert.deepEqual(failed, [], 'liveness answered 200 until the process exited');
    slow.destroy();
    assert.equal(exit.code, 0, `exit ${exit.code} ${exit.signal}:\n${c.edge.output().slice(-4000)}`);
    assert.ok(
      total < c.grace.edge - c.grace.preStop,
      `exited after ${total} s, the grace period leaves ${c.grace.edge - c.grace.preStop} s after preStop`,
    );
    assert.ok(drainedFor > 5000, 'the viewer outlived DRAIN_DELAY_MS');
    // The origin and its publisher were not disturbed.
    const res = await fetch(`http://127.0.0.1:${c.origin.http}/readyz`);
    assert.equal(res.status, 200);
  });
});

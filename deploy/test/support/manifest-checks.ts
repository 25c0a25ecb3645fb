/**
 * What a schema cannot check about the relay's manifests (kustomize builds and Helm renderings alike): each check
 * returns readable errors naming the object, so one test reports everything wrong at once.
 */
import {
  id,
  matchesLabelSelector,
  matchesSelector,
  podTemplates,
  resolveEnv,
  type K8sObject,
  type PodTemplateRef,
} from './k8s.js';

/** services/server/src/node.ts DRAIN_RECONNECT_WAIT_MS: an origin's drain waits up to this for moves, twice at most. */
const ORIGIN_DRAIN_MOVE_WAIT_MS = 5000;

export interface Expectations {
  /** Label of the rendering in messages ("kustomize overlays/dev", "helm values-large.yaml"). */
  where: string;
  /** Environment variable names the services read (SETTINGS). */
  settings: ReadonlySet<string>;
  /** SETTINGS defaults by env name ('' when computed). */
  defaults: Readonly<Record<string, string>>;
  /** CLI subcommands that run a node (`standalone`, `origin`, `edge`). */
  roles: ReadonlySet<string>;
  /** Paths the node serves: liveness and startup on /healthz, readiness on /readyz. */
  endpoints: { liveness: string; readiness: string };
  /** References allowed to point outside the manifests (`Secret/rtmp-relay-auth` in production). */
  externalRefs: ReadonlySet<string>;
  /** What those outside objects are documented to provide (e.g. PLAY_SECRET), for validating the configuration. */
  externalEnv?: Readonly<Record<string, string>>;
  /** Parses a container's environment as the node would (loadConfig); returns the error text or undefined. */
  validateConfig(env: Record<string, string>): string | undefined;
}

/** Values used for downward-API fields when resolving a container's environment. */
export const FIELD_REFS: Record<string, string> = {
  'status.podIP': '10.1.2.3',
  'metadata.name': 'rtmp-relay-edge-7d9f8-abcde',
  'metadata.namespace': 'rtmp-relay',
  'spec.nodeName': 'node-1',
};

/** Secrets every relay container needs: the API's bearer token, and the cluster secret of edge-to-origin pulls. */
export const REQUIRED_SECRETS = ['API_TOKEN', 'CLUSTER_SECRET'] as const;

/** Containers of the relay itself: the first argument is a role of the CLI. */
export function relayContainers(t: PodTemplateRef, roles: ReadonlySet<string>): any[] {
  return (t.spec.containers ?? []).filter((c: any) => roles.has(String(c.args?.[0] ?? '')));
}

function portOf(container: any, port: string | number): number | undefined {
  if (typeof port === 'number') return port;
  return (container.ports ?? []).find((p: any) => p.name === port)?.containerPort;
}

function preStopSeconds(container: any): number {
  const cmd = container.lifecycle?.preStop?.exec?.command as string[] | undefined;
  if (cmd && cmd[0] === 'sleep') return Number(cmd[1]);
  if (container.lifecycle?.preStop?.sleep) return Number(container.lifecycle.preStop.sleep.seconds);
  return 0;
}

export function checkManifests(objs: readonly K8sObject[], x: Expectations): string[] {
  const errors: string[] = [];
  const err = (o: K8sObject, msg: string) => errors.push(`${x.where} ${id(o)}: ${msg}`);
  const templates = podTemplates(objs);
  let relayPods = 0;
  /** ADMIN_PORT of each relay pod template. */
  const adminPorts = new Map<PodTemplateRef, number>();

  // Unique names per kind and namespace.
  const seen = new Set<string>();
  for (const o of objs) {
    const key = `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(key)) err(o, 'defined twice');
    seen.add(key);
  }

  for (const t of templates) {
    const o = t.owner;
    // Workload selectors select their own pods.
    if (o.kind !== 'Pod' && !matchesLabelSelector(o.spec.selector, t.labels))
      err(o, `selector ${JSON.stringify(o.spec.selector)} does not match its pod labels`);

    // Pod Security Standard "restricted", resources, no service account token.
    const podSc = t.spec.securityContext ?? {};
    if (t.spec.automountServiceAccountToken !== false)
      err(o, 'mounts a service account token (automountServiceAccountToken: false)');
    for (const c of [...(t.spec.initContainers ?? []), ...(t.spec.containers ?? [])]) {
      const sc = c.securityContext ?? {};
      const where = `container ${c.name}`;
      if (sc.allowPrivilegeEscalation !== false) err(o, `${where}: allowPrivilegeEscalation must be false`);
      if (sc.privileged === true) err(o, `${where}: privileged`);
      if (sc.readOnlyRootFilesystem !== true) err(o, `${where}: readOnlyRootFilesystem must be true`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) err(o, `${where}: must drop ALL capabilities`);
      if ((sc.capabilities?.add ?? []).length > 0) err(o, `${where}: adds capabilities`);
      if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) err(o, `${where}: runAsNonRoot must be true`);
      const uid = sc.runAsUser ?? podSc.runAsUser;
      if (uid === 0) err(o, `${where}: runs as uid 0`);
      if ((sc.seccompProfile?.type ?? podSc.seccompProfile?.type) !== 'RuntimeDefault')
        err(o, `${where}: seccompProfile must be RuntimeDefault`);
      if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory)
        err(o, `${where}: needs cpu and memory requests`);
      if (!c.resources?.limits?.memory) err(o, `${where}: needs a memory limit`);
      if (o.kind !== 'Pod' && !c.readinessProbe) err(o, `${where}: no readiness probe`);
    }

    for (const c of relayContainers(t, x.roles)) {
      relayPods++;
      const where = `container ${c.name} (${c.args[0]})`;
      if ((c.args ?? []).length !== 1)
        err(o, `${where}: args must be just the role, settings go in the environment: ${JSON.stringify(c.args)}`);
      if (c.command) err(o, `${where}: overrides the image's entry point (command)`);

      // Environment: every name is a setting the services read, and the values parse.
      let resolved;
      try {
        resolved = resolveEnv(objs, t.namespace, c, FIELD_REFS);
      } catch (e) {
        err(o, `${where}: ${(e as Error).message}`);
        continue;
      }
      for (const ext of resolved.external)
        if (!x.externalRefs.has(ext)) err(o, `${where}: references ${ext}, which is not in the manifests`);
      for (const s of resolved.sources)
        if (!x.settings.has(s.name)) err(o, `${where}: ${s.name} (from ${s.from}) is not a setting the services read`);
      const problem = x.validateConfig(
        resolved.external.length > 0 ? { ...x.externalEnv, ...resolved.env } : resolved.env,
      );
      if (problem) err(o, `${where}: the node would refuse this configuration: ${problem}`);
      const env = (name: string) => resolved.env[name] ?? x.defaults[name] ?? '';

      // Ports: the named ports are the ones the node listens on.
      const rtmpPort = Number(env('RTMP_PORT'));
      const httpPort = Number(env('HTTP_PORT'));
      if (portOf(c, 'rtmp') !== rtmpPort)
        err(o, `${where}: port "rtmp" is ${portOf(c, 'rtmp')}, the node listens on RTMP_PORT ${rtmpPort}`);
      if (portOf(c, 'http') !== httpPort)
        err(o, `${where}: port "http" is ${portOf(c, 'http')}, the node listens on HTTP_PORT ${httpPort}`);

      // The admin port (/metrics, /api) is separate from the public HTTP port, and named "admin".
      const adminPort = Number(env('ADMIN_PORT'));
      if (!adminPort) err(o, `${where}: ADMIN_PORT is not set: /metrics and /api would be on the public HTTP port`);
      else if (adminPort === httpPort) err(o, `${where}: ADMIN_PORT equals HTTP_PORT ${httpPort}`);
      else if (portOf(c, 'admin') !== adminPort)
        err(o, `${where}: port "admin" is ${portOf(c, 'admin')}, the node serves /metrics and /api on ${adminPort}`);
      adminPorts.set(t, adminPort);

      // Secrets the node cannot run safely without come from a required Secret key (a missing key stops the pod).
      for (const name of REQUIRED_SECRETS) {
        const e = (c.env ?? []).find((x: any) => x.name === name);
        const ref = e?.valueFrom?.secretKeyRef;
        if (!ref || ref.optional) err(o, `${where}: ${name} must come from a required secretKeyRef`);
      }

      // RTMPS: the certificate files live on a read-only mount without subPath (kubelet then swaps in renewed
      // certificates, which the node reloads), and the "rtmps" port is RTMPS_PORT.
      for (const name of ['TLS_CERT_FILE', 'TLS_KEY_FILE']) {
        const file = resolved.env[name];
        if (!file) continue;
        const mount = (c.volumeMounts ?? []).find((m: any) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
        if (!mount) err(o, `${where}: ${name}=${file} is on no volume mount`);
        else if (mount.readOnly !== true || mount.subPath)
          err(o, `${where}: ${name}: mount ${mount.name} must be readOnly and without subPath (certificate reload)`);
        else if (!(t.spec.volumes ?? []).some((v: any) => v.name === mount.name && v.secret?.secretName))
          err(o, `${where}: ${name}: volume ${mount.name} is not a Secret`);
      }
      if (resolved.env.TLS_CERT_FILE && portOf(c, 'rtmps') !== Number(env('RTMPS_PORT')))
        err(o, `${where}: port "rtmps" is ${portOf(c, 'rtmps')}, the node listens on RTMPS_PORT ${env('RTMPS_PORT')}`);

      // Probes: the paths the node serves, on its HTTP port.
      const probes: Array<[string, string]> = [
        ['livenessProbe', x.endpoints.liveness],
        ['readinessProbe', x.endpoints.readiness],
        ['startupProbe', x.endpoints.liveness],
      ];
      for (const [name, path] of probes) {
        const p = c[name];
        if (!p) {
          err(o, `${where}: no ${name}`);
          continue;
        }
        if (p.httpGet?.path !== path) err(o, `${where}: ${name} path is ${p.httpGet?.path}, expected ${path}`);
        if (portOf(c, p.httpGet?.port) !== httpPort)
          err(o, `${where}: ${name} port ${p.httpGet?.port} is not HTTP_PORT ${httpPort}`);
      }

      // Drain: the grace period covers preStop + DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS, and on an origin the stream
      // moves before the connections' wait (paced ReconnectRequests, then the wait for moves: at most 2 x min(
      // SHUTDOWN_TIMEOUT_MS, 5 s)).
      const shutdownMs = Number(env('SHUTDOWN_TIMEOUT_MS'));
      const movesMs = c.args[0] === 'origin' ? 2 * Math.min(shutdownMs, ORIGIN_DRAIN_MOVE_WAIT_MS) : 0;
      const needed = preStopSeconds(c) + (Number(env('DRAIN_DELAY_MS')) + shutdownMs + movesMs) / 1000;
      const grace = t.spec.terminationGracePeriodSeconds ?? 30;
      if (!(grace > needed))
        err(
          o,
          `${where}: terminationGracePeriodSeconds ${grace} must exceed preStop + DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS${movesMs ? ' + the origin drain' : ''} = ${needed} s`,
        );
      if (Number(env('DRAIN_DELAY_MS')) <= 0)
        err(o, `${where}: DRAIN_DELAY_MS is 0: the pod would stop accepting before endpoints drop it`);

      // Origins advertise their pod IP: edges pull from the owning pod.
      if (c.args[0] === 'origin') {
        const adv = (c.env ?? []).find((e: any) => e.name === 'ADVERTISE_HOST');
        if (adv?.valueFrom?.fieldRef?.fieldPath !== 'status.podIP')
          err(o, `${where}: ADVERTISE_HOST must come from the downward API status.podIP`);
      }
    }
  }
  if (relayPods === 0) errors.push(`${x.where}: no relay container found (args[0] one of ${[...x.roles].join(', ')})`);

  const selected = (sel: (t: PodTemplateRef) => boolean, ns: string | undefined) =>
    templates.filter((t) => t.namespace === ns && sel(t));
  for (const o of objs) {
    const ns = o.metadata.namespace;
    if (o.kind === 'Service') {
      const pods = selected((t) => matchesSelector(o.spec.selector, t.labels), ns);
      if (!o.spec.selector || pods.length === 0)
        err(o, `selector ${JSON.stringify(o.spec.selector)} matches no pod template`);
      // Public Services never carry the admin port (/api, /metrics).
      if (o.spec.type === 'LoadBalancer' || o.spec.type === 'NodePort')
        for (const t of pods)
          for (const p of o.spec.ports ?? []) {
            const target = p.targetPort ?? p.port;
            const admin = adminPorts.get(t);
            const n = (t.spec.containers ?? [])
              .map((c: any) => portOf(c, target))
              .find((x: unknown) => x !== undefined);
            if (admin !== undefined && n === admin)
              err(o, `${o.spec.type} port ${p.name ?? p.port} exposes the admin port ${admin} (/api, /metrics)`);
          }
      for (const t of pods) {
        for (const p of o.spec.ports ?? []) {
          const target = p.targetPort ?? p.port;
          const ok = (t.spec.containers ?? []).some(
            (c: any) =>
              portOf(c, target) !== undefined &&
              (typeof target === 'string' || (c.ports ?? []).some((q: any) => q.containerPort === target)),
          );
          if (!ok) err(o, `port ${p.name ?? p.port}: target ${target} is not a port of ${id(t.owner)}`);
        }
      }
    }
    if (o.kind === 'PodDisruptionBudget' || o.kind === 'NetworkPolicy' || o.kind === 'PodMonitor') {
      const sel = o.kind === 'NetworkPolicy' ? o.spec.podSelector : o.spec.selector;
      const pods = selected((t) => matchesLabelSelector(sel, t.labels) && t.owner.kind !== 'Pod', ns);
      if (pods.length === 0) err(o, `selector ${JSON.stringify(sel)} matches no workload`);
      const named: string[] =
        o.kind === 'NetworkPolicy'
          ? (o.spec.ingress ?? [])
              .flatMap((r: any) => (r.ports ?? []).map((p: any) => p.port))
              .filter((p: unknown) => typeof p === 'string')
          : o.kind === 'PodMonitor'
            ? (o.spec.podMetricsEndpoints ?? []).map((e: any) => e.port)
            : [];
      for (const t of pods)
        for (const name of named)
          if (!(t.spec.containers ?? []).some((c: any) => portOf(c, name) !== undefined))
            err(o, `port "${name}" is not a port of ${id(t.owner)}`);
      // Prometheus scrapes /metrics where the node serves it: the admin port.
      if (o.kind === 'PodMonitor')
        for (const t of pods)
          for (const e of o.spec.podMetricsEndpoints ?? []) {
            const n = (t.spec.containers ?? [])
              .map((c: any) => portOf(c, e.port))
              .find((x: unknown) => x !== undefined);
            if (adminPorts.has(t) && n !== adminPorts.get(t))
              err(o, `scrapes port ${e.port} (${n}) of ${id(t.owner)}, /metrics is on ADMIN_PORT ${adminPorts.get(t)}`);
          }
    }
    if (o.kind === 'HorizontalPodAutoscaler') {
      const target = objs.find(
        (t) =>
          t.kind === o.spec.scaleTargetRef.kind &&
          t.metadata.name === o.spec.scaleTargetRef.name &&
          t.metadata.namespace === ns,
      );
      if (!target) err(o, `scaleTargetRef ${o.spec.scaleTargetRef.kind}/${o.spec.scaleTargetRef.name} does not exist`);
      else if (target.spec.replicas !== undefined)
        err(o, `${id(target)} sets spec.replicas: every apply would fight the autoscaler`);
      if (o.spec.minReplicas > o.spec.maxReplicas) err(o, 'minReplicas > maxReplicas');
      for (const t of templates.filter((t) => t.owner === target))
        for (const c of t.spec.containers ?? [])
          if (!c.resources?.requests?.cpu && (o.spec.metrics ?? []).some((m: any) => m.resource?.name === 'cpu'))
            err(o, `CPU utilization needs cpu requests on ${c.name}`);
    }
  }
  return errors;
}

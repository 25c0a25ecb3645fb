#!/usr/bin/env node
/**
 * The `rtmp-relay` command. Every subcommand accepts every setting as a flag generated from SETTINGS, so flag and env
 * names can't drift: `--rtmp-port 1936` or `RTMP_PORT=1936`. Flags win over env, env over defaults.
 * Exit codes: 0 clean shutdown, 1 runtime failure or second signal, 2 usage or configuration error.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig, SETTINGS, type Config } from './config.js';
import type { Role } from './roles.js';
import { DEFAULT_PLAN_INPUT, formatPlan, planTopology } from './plan.js';
import { VERSION } from './version.js';

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function nonNegativeNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}

function settingOptions(): Option[] {
  return SETTINGS.map((s) => {
    const dflt = s.defaultText === '' ? '' : `, default: ${s.defaultText}`;
    const flags = s.boolean ? `--${s.flag} [bool]` : `--${s.flag} <value>`;
    return new Option(flags, `${s.description} [env ${s.env}${dflt}]`);
  });
}

/** commander's camelCase option values -> kebab flags for loadConfig (only those given on the command line). */
function flagsFrom(cmd: Command): Record<string, string | boolean | undefined> {
  const values = cmd.opts<Record<string, string | boolean | undefined>>();
  const flags: Record<string, string | boolean | undefined> = {};
  for (const s of SETTINGS) {
    const name = s.flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (values[name] !== undefined) flags[s.flag] = values[name];
  }
  return flags;
}

function configOrExit(cmd: Command): Config {
  try {
    return loadConfig({ env: process.env, flags: flagsFrom(cmd) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`rtmp-relay ${cmd.name()}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

function urlHost(host: string): string {
  if (host === '::' || host === '0.0.0.0' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

async function run(role: Role, cmd: Command): Promise<void> {
  const config = configOrExit(cmd);
  const { startNode } = await import('./node.js');
  const { setupTracingFromEnv } = await import('./tracing.js');
  const stopTracing = await setupTracingFromEnv(`rtmp-relay-${role}`);
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    node = await startNode(config, { role });
  } catch (err) {
    process.stderr.write(`rtmp-relay ${role}: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.stderr.write(
    `rtmp-relay ${role}: rtmp://${urlHost(config.rtmpHost)}:${node.rtmpPort}/live/<key> (publish and play), ` +
      `http://${urlHost(config.httpHost)}:${node.httpPort}/ (metrics, health)\n`,
  );

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`rtmp-relay ${role}: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`rtmp-relay ${role}: ${signal}, shutting down (send again to exit at once)\n`);
    node.shutdown('signal').then(
      async () => {
        await stopTracing?.().catch(() => undefined);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(
          `rtmp-relay ${role}: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function localCluster(cmd: Command): Promise<void> {
  const config = configOrExit(cmd);
  const { runLocalCluster } = await import('./cluster/local-cluster.js');
  let cluster: Awaited<ReturnType<typeof runLocalCluster>>;
  try {
    cluster = await runLocalCluster(config, (line) => process.stderr.write(`${line}\n`));
  } catch (err) {
    process.stderr.write(`rtmp-relay cluster: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (why: string, code: number): void => {
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`rtmp-relay cluster: ${why}, stopping every process\n`);
    cluster.stop().then(
      () => process.exit(code),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT', 0));
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  void cluster.exited.then((what) => {
    if (!stopping) stop(what, 1); // during an orderly stop children exit as asked
  });
}

export function buildProgram(): Command {
  const program = new Command('rtmp-relay')
    .description('RTMP edge/origin relay: publish and play RTMP streams, fan out to many viewers')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride((err: CommanderError) => {
      // --help and --version exit 0; usage errors exit 2 like configuration errors.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });

  const sub = (name: string, description: string, action: (cmd: Command) => void | Promise<void>): void => {
    const cmd = program.command(name).description(description);
    for (const opt of settingOptions()) cmd.addOption(opt);
    cmd.action(async (_opts: unknown, self: Command) => action(self));
  };
  sub('standalone', 'one node: accepts publishers and serves viewers (origin and edge in one process)', (c) =>
    run('standalone', c),
  );
  sub('origin', 'cluster origin: owns the streams published to it (REDIS_URL, NATS_URL)', (c) => run('origin', c));
  sub('edge', 'cluster edge: pulls streams from origins on demand, serves viewers (REDIS_URL, NATS_URL)', (c) =>
    run('edge', c),
  );
  program
    .command('plan')
    .description('size a deployment: origins, parent edges and edges for an audience (docs/SIZING.md)')
    .requiredOption('--streams <n>', 'live streams at the peak', positiveNumber)
    .requiredOption('--bitrate <kbps>', 'average stream bitrate in kbit/s', positiveNumber)
    .requiredOption('--viewers <n>', 'concurrent viewers at the peak', positiveNumber)
    .option(
      '--hot-share <0-1>',
      'share of viewers on the most watched stream',
      positiveNumber,
      DEFAULT_PLAN_INPUT.hotShare,
    )
    .option('--cores <n>', 'cores per node', positiveNumber, DEFAULT_PLAN_INPUT.cores)
    .option('--nic-gbps <n>', 'NIC bandwidth per node in Gbit/s', positiveNumber, DEFAULT_PLAN_INPUT.nicGbps)
    .option(
      '--utilization <0-1>',
      'plan nodes to this share of CPU and NIC',
      positiveNumber,
      DEFAULT_PLAN_INPUT.utilization,
    )
    .option(
      '--max-origin-pulls <n>',
      'edges one stream may pull from origins directly before a parent tier is used',
      positiveNumber,
      DEFAULT_PLAN_INPUT.maxOriginPullsPerStream,
    )
    .option('--spare <n>', 'spare nodes per tier (N+k)', nonNegativeNumber, DEFAULT_PLAN_INPUT.spare)
    .option('--json', 'print the plan as JSON')
    .action((o: Record<string, number | boolean>) => {
      try {
        const plan = planTopology({
          streams: o['streams'] as number,
          bitrateKbps: o['bitrate'] as number,
          viewers: o['viewers'] as number,
          hotShare: o['hotShare'] as number,
          cores: o['cores'] as number,
          nicGbps: o['nicGbps'] as number,
          utilization: o['utilization'] as number,
          maxOriginPullsPerStream: o['maxOriginPulls'] as number,
          spare: o['spare'] as number,
        });
        process.stdout.write(`${o['json'] ? JSON.stringify(plan, null, 2) : formatPlan(plan)}\n`);
      } catch (err) {
        process.stderr.write(`rtmp-relay plan: ${(err as Error).message}\n`);
        process.exit(2);
      }
    });
  sub('cluster', 'a local cluster: redis-server, nats-server, 2 origins and 2 edges on this machine', (c) =>
    localCluster(c),
  );
  return program;
}

await buildProgram().parseAsync(process.argv);

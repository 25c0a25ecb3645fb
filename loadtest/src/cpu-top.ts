#!/usr/bin/env node
/**
 * The functions a node spent its CPU in, from the V8 CPU profiles `CLUSTER_LOAD_CPU_PROF_DIR` (or `node --cpu-prof`)
 * writes: self time per function, largest first, optionally only inside the steady window a cluster-load JSON report
 * names (`steadyWindowMonoUs`), so the ramp, probes and shutdown do not blur the picture.
 *
 *   npm run cpu-top -- <file.cpuprofile>... [--report cluster-load.json] [--top 25]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Command } from 'commander';
import { topSelfTime, type CpuProfile, type SelfTimeEntry } from './cpu-profile.js';
import { positiveInt } from './cli-args.js';
import { isMainModule } from './main-module.js';

export interface ProfileTop {
  file: string;
  /** Busy (non-idle) ms inside the window. */
  busyMs: number;
  top: SelfTimeEntry[];
}

/** The steady window of a cluster-load report, if it has one. */
export function reportWindow(reportJson: string): [number, number] {
  const report = JSON.parse(reportJson) as { steadyWindowMonoUs?: unknown };
  const w = report.steadyWindowMonoUs;
  if (!Array.isArray(w) || w.length !== 2 || !w.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw new Error(
      'the report has no steadyWindowMonoUs [from, to] (written by cluster-load since this tool existed)',
    );
  return [w[0] as number, w[1] as number];
}

export function profileTop(file: string, profile: CpuProfile, top: number, window?: [number, number]): ProfileTop {
  const all = topSelfTime(profile, Number.MAX_SAFE_INTEGER, window);
  const busyMs = all.reduce((sum, e) => sum + e.selfMs, 0);
  return { file, busyMs, top: all.slice(0, top) };
}

export function formatTop(t: ProfileTop): string {
  const lines = [`${basename(t.file)}: ${t.busyMs} ms busy`];
  for (const e of t.top)
    lines.push(`  ${e.percent.toFixed(1).padStart(5)} %  ${String(e.selfMs).padStart(7)} ms  ${e.name}`);
  return lines.join('\n');
}

function main(): void {
  const cmd = new Command('cpu-top')
    .description('self time per function in V8 CPU profiles, optionally inside a cluster-load steady window')
    .argument('<profiles...>', '.cpuprofile files')
    .option('--report <json>', 'a cluster-load JSON report: keep only samples inside its steady window')
    .option('--top <n>', 'functions listed per profile', positiveInt, 25)
    .parse();
  const opts = cmd.opts<{ report?: string; top: number }>();
  const window = opts.report ? reportWindow(readFileSync(opts.report, 'utf8')) : undefined;
  if (window) console.log(`steady window: ${((window[1] - window[0]) / 1e6).toFixed(1)} s`);
  for (const file of cmd.args) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    console.log(formatTop(profileTop(file, profile, opts.top, window)));
  }
}

if (isMainModule(import.meta.url)) {
  try {
    main();
  } catch (err) {
    console.error(`cpu-top: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

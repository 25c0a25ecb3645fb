#!/usr/bin/env node
// `npm start [-- <role> <options>]`: runs the relay (default role: standalone), building first only what is missing
// or older than its sources (a fresh checkout after `npm ci`, or edited sources); an up-to-date build starts at once.
// The CLI then runs in this same process, so Ctrl-C and SIGTERM reach it directly (graceful drain).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLI_REL, staleReason } from './build-state.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, CLI_REL);

const why = staleReason(ROOT);
if (why) {
  process.stderr.write(`npm start: building (${why}): npm run build\n`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // The build's output goes to stderr: stdout is the CLI's (e.g. `npm start -- plan --json`).
  const r = spawnSync(npm, ['run', 'build'], { cwd: ROOT, stdio: [0, 2, 2] });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const args = process.argv.slice(2);
process.argv = [process.argv[0], CLI, ...(args.length > 0 ? args : ['standalone'])];
await import(pathToFileURL(CLI).href);

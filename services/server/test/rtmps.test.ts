import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { MessageType, parseRtmpUrl, parseVideoTag, RtmpClient } from '@rtmp-relay/rtmp';
import { createLogger } from '../src/logger.js';
import { startTlsListener, type TlsListener } from '../src/rtmp/tls-listener.js';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { run, stopAll, waitFor, type Running } from './support/processes.js';
import { makeCa, makeServerCert, SecretVolume, type ServerCert, type TestCa } from './support/tls-certs.js';

/**
 * RTMPS: RTMP over TLS 1.2+ beside plain RTMP, with FFmpeg and our client, certificate reload without a restart.
 */

const STREAM = 'live/secure';
const PROBE_TIMEOUT_MS = 5000;
/** The listener polls the files every second and settles 250 ms: a reload shows well within this. */
const RELOAD_WAIT_MS = 10_000;

interface PeerInfo {
  commonName: string;
  fingerprint256: string;
  protocol: string | null;
}

/** Opens one TLS connection, reads the server certificate and protocol, closes. */
function tlsPeer(port: number, opts: ConnectionOptions = {}): Promise<PeerInfo> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ...opts });
    socket.setTimeout(PROBE_TIMEOUT_MS, () => socket.destroy(new Error('tls probe timed out')));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      resolve({
        commonName: String(cert.subject?.CN ?? ''),
        fingerprint256: cert.fingerprint256,
        protocol: socket.getProtocol(),
      });
      // end(), not destroy(): our TLS 1.3 Finished must reach the server, or it sees a reset, not a handshake.
      socket.end();
    });
    socket.once('error', reject);
  });
}

function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Counts video messages an RtmpClient receives; the first must be the AVC sequence header. */
async function playVideo(
  url: string,
  tls: { ca?: string; rejectUnauthorized?: boolean } | undefined,
): Promise<{ client: RtmpClient; frames: () => number; firstIsHeader: () => boolean | undefined }> {
  const client = await RtmpClient.connect(url, { connectTimeoutMs: PROBE_TIMEOUT_MS, ...(tls ? { tls } : {}) });
  let frames = 0;
  let firstIsHeader: boolean | undefined;
  client.on('media', (m) => {
    if (m.type !== MessageType.Video) return;
    firstIsHeader ??= parseVideoTag(m.payload).isSequenceHeader;
    frames++;
  });
  await client.play();
  return { client, frames: () => frames, firstIsHeader: () => firstIsHeader };
}

describe('RTMPS: a node with TLS_CERT_FILE / TLS_KEY_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtmps-'));
  let ca: TestCa;
  let first: ServerCert;
  let volume: SecretVolume;
  let node: NodeUnderTest;
  let publisher: Running | undefined;
  const clients: RtmpClient[] = [];
  const rtmpsUrl = (path: string): string => `rtmps://127.0.0.1:${node.rtmpsPort}/${path}`;

  before(async () => {
    ca = await makeCa(dir);
    first = await makeServerCert(dir, ca, 'rtmps-first');
    volume = await SecretVolume.create(join(dir, 'secret'), first);
    node = await startTestNode({
      RTMPS_HOST: '127.0.0.1',
      RTMPS_PORT: '0',
      TLS_CERT_FILE: volume.certFile,
      TLS_KEY_FILE: volume.keyFile,
    });
    assert.ok(node.rtmpsPort, 'the node reports its bound RTMPS port');
  });
  after(async () => {
    for (const c of clients) c.close();
    await publisher?.stop();
    await stopAll();
    await node?.shutdown('test');
    rmSync(dir, { recursive: true, force: true });
  });

  it('FFmpeg supports rtmps:// here', async () => {
    const r = await run('ffmpeg', ['-hide_banner', '-protocols'], { timeoutMs: 10_000 });
    assert.match(r.stdout, /^\s*rtmps\s*$/m);
  });

  it('FFmpeg publishes over rtmps://', async () => {
    publisher = ffmpegPublish(rtmpsUrl(STREAM), { seconds: 120 });
    await waitLive(node, STREAM);
    const stream = await node.json<{ live: boolean }>(`/api/streams/${STREAM}`);
    assert.equal(stream.live, true);
  });

  it('FFmpeg plays over rtmps:// and decodes ~3 s of video', async () => {
    const r = await ffmpegCountFrames(rtmpsUrl(STREAM), 3);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames >= 60, `decoded ${r.frames} frames`);
  });

  it('RtmpClient plays over rtmps:// trusting the test CA', async () => {
    const viewer = await playVideo(rtmpsUrl(STREAM), { ca: ca.pem });
    clients.push(viewer.client);
    await waitFor('30 video frames over rtmps', () => viewer.frames() >= 30, 10_000);
    assert.equal(viewer.firstIsHeader(), true, 'the first video message is the AVC sequence header');
    assert.equal(parseRtmpUrl(rtmpsUrl(STREAM)).secure, true);
    const socket = viewer.client.connection.socket as TLSSocket;
    assert.equal(socket.encrypted, true, 'the RTMP connection runs over TLS');
    assert.equal(socket.authorized, true, 'the server certificate was verified against the CA');
  });

  it('RtmpClient refuses the server when verification is on and the CA is unknown', async () => {
    await assert.rejects(
      RtmpClient.connect(rtmpsUrl(STREAM), { connectTimeoutMs: PROBE_TIMEOUT_MS }),
      // The client classifies it as a closed connection; the TLS verification error is its cause.
      (err: Error & { cause?: NodeJS.ErrnoException }) =>
        /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE/.test(
          err.cause?.code ?? err.message,
        ),
    );
    // ... and connects when verification is explicitly off.
    const c = await RtmpClient.connect(rtmpsUrl(STREAM), {
      connectTimeoutMs: PROBE_TIMEOUT_MS,
      tls: { rejectUnauthorized: false },
    });
    c.close();
  });

  it('plain RTMP still works beside RTMPS, on the same stream', async () => {
    const viewer = await playVideo(node.rtmpUrl(STREAM), undefined);
    clients.push(viewer.client);
    await waitFor('30 video frames over plain rtmp', () => viewer.frames() >= 30, 10_000);
    assert.equal(viewer.firstIsHeader(), true);
  });

  it('refuses TLS 1.0 and 1.1 clients; TLS 1.2 is accepted, 1.3 preferred', async () => {
    assert.equal((await tlsPeer(node.rtmpsPort!, { ca: ca.pem })).protocol, 'TLSv1.3');
    const port = String(node.rtmpsPort);
    // SECLEVEL=0 lets this OpenSSL client offer the old versions at all: the refusal must come from the server.
    for (const version of ['-tls1', '-tls1_1']) {
      const r = await run(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${port}`, version, '-cipher', 'DEFAULT@SECLEVEL=0'],
        { timeoutMs: 10_000 },
      );
      assert.notEqual(r.code, 0, `${version} handshake must fail`);
      assert.match(r.stdout + r.stderr, /alert protocol version|unsupported protocol/i, `${version}: ${r.stderr}`);
    }
    const ok = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-CAfile', ca.certFile], {
      timeoutMs: 10_000,
    });
    assert.match(ok.stdout, /Protocol\s*:\s*TLSv1\.2/, ok.stderr);
    assert.match(ok.stdout, /Verify return code: 0 \(ok\)/);
    await assert.rejects(
      tlsPeer(node.rtmpsPort!, {
        ca: ca.pem,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
      }),
      /protocol version|unsupported protocol/i,
    );
  });

  it('a rotated certificate (Secret-style symlink swap) is served to new connections without a restart', async () => {
    const before = await tlsPeer(node.rtmpsPort!, { ca: ca.pem });
    assert.equal(before.commonName, 'rtmps-first');
    assert.equal(before.fingerprint256, fingerprintOf(first.cert));
    // A viewer on the old certificate keeps playing through the rotation.
    const viewer = await playVideo(rtmpsUrl(STREAM), { ca: ca.pem });
    clients.push(viewer.client);
    await waitFor('frames before rotation', () => viewer.frames() >= 10, 10_000);

    const second = await makeServerCert(dir, ca, 'rtmps-second');
    await volume.update(second);
    const after = await waitFor(
      'the new certificate on a new TLS connection',
      async () => {
        const peer = await tlsPeer(node.rtmpsPort!, { ca: ca.pem });
        return peer.commonName === 'rtmps-second' ? peer : undefined;
      },
      RELOAD_WAIT_MS,
      200,
    );
    assert.equal(after.fingerprint256, fingerprintOf(second.cert));
    const framesAtRotation = viewer.frames();
    await waitFor('frames after rotation', () => viewer.frames() >= framesAtRotation + 30, 10_000);
    assert.equal(viewer.client.closed, false, 'the existing viewer stayed connected');
    // New RTMPS sessions work with the new certificate.
    const r = await ffmpegCountFrames(rtmpsUrl(STREAM), 2);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames >= 40, `decoded ${r.frames} frames after rotation`);
  });
});

describe('RTMPS listener: reload and handshake failures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtmps-listener-'));
  const logs: string[] = [];
  const errors: string[] = [];
  let reloads = 0;
  let handedOver = 0;
  let listener: TlsListener;
  let ca: TestCa;
  let first: ServerCert;
  let certFile: string;
  let keyFile: string;

  before(async () => {
    ca = await makeCa(dir);
    first = await makeServerCert(dir, ca, 'listener-first');
    certFile = join(dir, 'server.crt');
    keyFile = join(dir, 'server.key');
    await writeFile(certFile, first.cert);
    await writeFile(keyFile, first.key);
    listener = await startTlsListener({
      host: '127.0.0.1',
      port: 0,
      certFile,
      keyFile,
      log: createLogger('debug', {}, { write: (line: string) => void logs.push(line) }),
      onSocket: (socket) => {
        handedOver++;
        socket.destroy();
      },
      observer: { tlsError: (reason) => void errors.push(reason), reloaded: () => void reloads++ },
    });
  });
  after(async () => {
    await listener?.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start on a key that does not match the certificate', async () => {
    const other = await makeServerCert(dir, ca, 'listener-other');
    const badKey = join(dir, 'mismatched.key');
    await writeFile(badKey, other.key);
    await assert.rejects(
      startTlsListener({
        host: '127.0.0.1',
        port: 0,
        certFile,
        keyFile: badKey,
        log: createLogger('silent'),
        onSocket: (s) => s.destroy(),
      }),
      /key values mismatch|private key/i,
    );
  });

  it('hands sockets over after the TLS handshake', async () => {
    const peer = await tlsPeer(listener.port, { ca: ca.pem });
    assert.equal(peer.commonName, 'listener-first');
    await waitFor('the socket handed over', () => handedOver >= 1, PROBE_TIMEOUT_MS);
  });

  it('counts handshake failures by reason: plain RTMP on the TLS port, TLS 1.1', async () => {
    const before = handedOver;
    // An RTMP C0+C1 (version 3) where a TLS ClientHello is expected.
    await new Promise<void>((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port: listener.port }, () => s.write(Buffer.alloc(1537, 3)));
      s.resume(); // read the server's alert, so the end of the stream (and 'close') is seen
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.setTimeout(PROBE_TIMEOUT_MS, () => reject(new Error('plain RTMP socket not closed by the TLS listener')));
    });
    await waitFor('not_tls counted', () => errors.includes('not_tls'), PROBE_TIMEOUT_MS);
    await assert.rejects(
      tlsPeer(listener.port, { ca: ca.pem, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
    );
    await waitFor('protocol_version counted', () => errors.includes('protocol_version'), PROBE_TIMEOUT_MS);
    assert.equal(handedOver, before, 'failed handshakes are never handed to the RTMP server');
  });

  it('keeps the old certificate when the new pair is bad, then loads a good one', async () => {
    const other = await makeServerCert(dir, ca, 'listener-other2');
    const loggedBefore = logs.length;
    // New certificate, old key: the pair does not match.
    await writeFile(certFile, other.cert);
    await waitFor(
      'the failed reload logged',
      () => logs.slice(loggedBefore).some((l) => l.includes('tls certificate reload failed')),
      RELOAD_WAIT_MS,
    );
    assert.equal(reloads, 0);
    assert.equal((await tlsPeer(listener.port, { ca: ca.pem })).commonName, 'listener-first');
    // The matching key arrives: the new pair loads.
    await writeFile(keyFile, other.key);
    await waitFor('the reload', () => reloads === 1, RELOAD_WAIT_MS);
    const peer = await tlsPeer(listener.port, { ca: ca.pem });
    assert.equal(peer.commonName, 'listener-other2');
    assert.equal(peer.fingerprint256, fingerprintOf(await readFile(certFile, 'utf8')));
  });
});

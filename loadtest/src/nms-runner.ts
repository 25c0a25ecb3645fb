#!/usr/bin/env node
/**
 * Runs Node-Media-Server (the npm package installed in this workspace) for the benchmark:
 *   node nms-runner.js <rtmpPort> <workDir> [logLevel]
 * RTMP on 127.0.0.1:<rtmpPort>; HTTP, RTMPS, HTTPS, the web admin and recording are off or on unused ports.
 * Prints `nms-runner ready <version>` on stdout once the RTMP port accepts connections.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { join } from 'node:path';
import { isMainModule } from './main-module.js';

const require = createRequire(import.meta.url);

export function nmsVersion(): string {
  const pkgPath = require.resolve('node-media-server/package.json');
  return (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  const dir = process.argv[3];
  const level = process.argv[4] ?? 'warn';
  if (!Number.isInteger(port) || port <= 0 || !dir) {
    process.stderr.write('usage: nms-runner <rtmpPort> <workDir> [logLevel]\n');
    process.exit(2);
  }
  mkdirSync(join(dir, 'data'), { recursive: true });
  const version = nmsVersion();
  const major = Number(version.split('.')[0]);
  type Nms = { run(): unknown; stop?(): unknown };
  const NodeMediaServer = require('node-media-server') as new (config: unknown, configPath?: string) => Nms;
  let nms: Nms;
  if (major >= 4) {
    const config = {
      bind: '127.0.0.1',
      rtmp: { port },
      http: { port: 0 },
      webadmin: { enable: false },
      store: { path: join(dir, 'data') },
      record: { auto: false, path: join(dir, 'record') },
      notify: { url: '' },
      auth: { play: false, publish: false, secret: 'bench' },
    };
    // v4 has no HTTP-less mode; port 0 makes its HTTP listener skip (it checks `http?.port`).
    nms = new NodeMediaServer(config, join(dir, 'config.json'));
    // The constructor forces debug logging; lower it like our server's LOG_LEVEL.
    const logger = require('node-media-server/src/core/logger.js') as { level: string };
    logger.level = level;
  } else {
    const config = {
      logType: level === 'debug' ? 3 : level === 'info' ? 2 : 1,
      rtmp: { port, chunk_size: 60000, gop_cache: true, ping: 30, ping_timeout: 60 },
    };
    nms = new NodeMediaServer(config);
  }
  nms.run();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      process.stderr.write('nms-runner: RTMP port never opened\n');
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(`nms-runner ready ${version}\n`);
  const stop = (): void => {
    void Promise.resolve(nms.stop?.()).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (isMainModule(import.meta.url)) void main();

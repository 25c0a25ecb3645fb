/**
 * The web console's static files (services/console, built by `npm run build`) at /console/ on a node's HTTP port.
 *
 * - /console redirects to /console/; /console/ is index.html; /console/assets/* are the bundle, stylesheet and
 *   source maps. Nothing else of the directory is served (no listing, no path walking: only files found at load).
 * - Caching: index.html is `no-cache` (revalidated by ETag on every load, so a new build is picked up at once);
 *   assets have content hashes in their names and are `immutable` for a year.
 * - Files are read once, on the first request, and kept in memory with a strong ETag and a gzip copy (sent when the
 *   client accepts gzip). A node whose console was not built answers 503 with how to build it, and reads again on
 *   the next request, so building while the node runs is enough.
 * - index.html gets a Content-Security-Policy that allows scripts and styles of this origin only, blob: media (Media
 *   Source Extensions), and connections to this origin (API polling) and to other nodes over http(s)/ws(s): a play
 *   through /play/ is redirected to an edge, which is another origin (it answers with CORS).
 * The console's data comes from /api/*, which the API token (when set) protects; these files carry no data.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface ConsoleOptions {
  /** The built console (index.html and assets/). Default: services/console/dist of this repository. */
  dir?: string;
}

/** services/server/{src,dist}/console.{ts,js} -> services/console/dist */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.map', '.json', '.txt', '.svg']);

const CACHE_HTML = 'no-cache';
const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self' http: https: ws: wss:",
  "media-src 'self' blob:",
  "img-src 'self' data:",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
  cacheControl: string;
  html: boolean;
}

/** Reads index.html and assets/** of `dir` into memory; undefined when the console is not built there. */
export function loadConsoleAssets(dir: string): Map<string, Asset> | undefined {
  const files = new Map<string, Asset>();
  const add = (abs: string): void => {
    const rel = relative(dir, abs).split(sep).join('/');
    const ext = extname(abs).toLowerCase();
    const body = readFileSync(abs);
    const gzip = COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined;
    const html = ext === '.html';
    files.set(rel, {
      body,
      gzip: gzip && gzip.length < body.length ? gzip : undefined,
      type: CONTENT_TYPES[ext] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      cacheControl: html ? CACHE_HTML : CACHE_IMMUTABLE,
      html,
    });
  };
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const abs = join(d, entry.name);
      if (entry.isDirectory()) walk(abs);
      else if (entry.isFile()) add(abs);
    }
  };
  try {
    if (!statSync(join(dir, 'index.html')).isFile()) return undefined;
    add(join(dir, 'index.html'));
    walk(join(dir, 'assets'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return files;
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}

/** Whether Accept-Encoding allows gzip (named, or `*`, with a non-zero q). */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const q = new Map<string, number>();
  for (const part of (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    q.set(name, qp ? Number(qp.slice(2)) || 0 : 1);
  }
  const g = q.get('gzip') ?? q.get('x-gzip') ?? q.get('*');
  return g !== undefined && g > 0;
}

/** GET/HEAD /console and /console/* on `app`. */
export function registerConsole(app: FastifyInstance, opts: ConsoleOptions = {}): void {
  const dir = opts.dir ?? DEFAULT_CONSOLE_DIR;
  let assets: Map<string, Asset> | undefined;
  const load = (): Map<string, Asset> | undefined => (assets ??= loadConsoleAssets(dir));

  app.get('/console', async (req, reply) => {
    const q = req.url.indexOf('?');
    return reply.redirect(`/console/${q >= 0 ? req.url.slice(q) : ''}`, 301);
  });

  app.get('/console/*', async (req: FastifyRequest, reply: FastifyReply) => {
    const files = load();
    if (!files) {
      return reply
        .code(503)
        .header('cache-control', 'no-store')
        .type('text/plain; charset=utf-8')
        .send(`The web console is not built on this node (no ${join(dir, 'index.html')}). Run: npm run build\n`);
    }
    const path = (req.params as Record<string, string | undefined>)['*'] ?? '';
    const asset = files.get(path === '' ? 'index.html' : path);
    if (!asset || path === 'index.html') {
      return reply.code(404).header('cache-control', 'no-store').send({ error: 'not found', path: req.url });
    }
    reply
      .header('etag', asset.etag)
      .header('cache-control', asset.cacheControl)
      .header('x-content-type-options', 'nosniff');
    if (asset.gzip) reply.header('vary', 'accept-encoding');
    if (asset.html) {
      reply
        .header('content-security-policy', CSP)
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY');
    }
    if (etagMatches(req.headers['if-none-match'], asset.etag)) return reply.code(304).send();
    reply.type(asset.type);
    const gzip = asset.gzip !== undefined && acceptsGzip(req.headers['accept-encoding']);
    if (gzip) reply.header('content-encoding', 'gzip');
    const body = gzip ? asset.gzip! : asset.body;
    return reply.header('content-length', body.length).send(body);
  });
}

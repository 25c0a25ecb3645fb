/**
 * HLS responses written straight to Node's ServerResponse: headers are built once per playlist rendering and per
 * media file (ETag, length, cache policy, CORS) as flat [name, value, ...] lists that `writeHead` takes as they
 * are, and shared by every viewer; errors are small JSON bodies like Fastify's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A response's headers for 200 and for 304 (If-None-Match matched its ETag). */
export interface PreparedHeaders {
  etag: string;
  ok: string[];
  notModified: string[];
}

/** Playlists without a blocking request: a CDN may serve one for a second. */
export const PLAYLIST_CACHE = 'public, max-age=1';
/** Media URIs never name two contents. */
export const MEDIA_CACHE = 'public, max-age=31536000, immutable';
/** A blocking request's URL names the part it awaited: its answer is cached for twice the longest wait. */
export const blockingPlaylistCache = (targetDuration: number, longestWaitTargetDurations: number): string =>
  `public, max-age=${longestWaitTargetDurations * 2 * targetDuration}`;

const CORS = ['access-control-allow-origin', '*', 'access-control-expose-headers', 'etag, content-length'];
const JSON_TYPE = 'application/json; charset=utf-8';

export function prepareHeaders(
  contentType: string,
  cacheControl: string,
  etag: string,
  length: number,
): PreparedHeaders {
  const notModified = [...CORS, 'content-type', contentType, 'cache-control', cacheControl, 'etag', etag];
  return { etag, ok: [...notModified, 'content-length', String(length)], notModified };
}

/**
 * 200 with `body` (headers only for HEAD), or 304 when the request's If-None-Match is the ETag. Returns the status
 * and the body bytes sent. A response whose client went away while it waited is not written.
 */
export function sendPrepared(
  req: IncomingMessage,
  res: ServerResponse,
  headers: PreparedHeaders,
  body: Buffer,
): { status: 200 | 304; bytes: number } {
  if (req.headers['if-none-match'] === headers.etag) {
    if (!res.destroyed) res.writeHead(304, headers.notModified).end();
    return { status: 304, bytes: 0 };
  }
  if (res.destroyed) return { status: 200, bytes: 0 };
  res.writeHead(200, headers.ok);
  if (req.method === 'HEAD') {
    res.end();
    return { status: 200, bytes: 0 };
  }
  res.end(body);
  return { status: 200, bytes: body.length };
}

/** An error status with a JSON body, CORS, never cached. */
export function sendError(res: ServerResponse, status: number, body: object): void {
  if (res.destroyed) return;
  const json = JSON.stringify(body);
  res
    .writeHead(status, [
      ...CORS,
      'cache-control',
      'no-store',
      'content-type',
      JSON_TYPE,
      'content-length',
      String(Buffer.byteLength(json)),
    ])
    .end(json);
}

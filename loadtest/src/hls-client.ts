/**
 * A light LL-HLS viewer for benchmarks: follows `/<app>/<stream>/index.m3u8` with blocking reloads
 * (`_HLS_msn`/`_HLS_part`: the part after the newest listed) and fetches every new part over one kept-alive
 * connection (node:http with a keep-alive agent of one socket: cheaper for the load generator than fetch, and it
 * counts the connections it opened), like hls.js in low-latency mode but without decoding. For each part it records when it was complete
 * here and the decode time of its first video sample (tfdt), so a caller that knows when the publisher wrote that
 * frame gets publish-to-view latency; and the part's program date time, to compare with the publisher's clock.
 */
import { Agent, request as httpRequest } from 'node:http';

export interface HlsPartSeen {
  /** performance.now() when the part's body was fully received. */
  receivedAt: number;
  /** First video sample's decode time in ms (tfdt / 90), or undefined (audio only). */
  videoMs: number | undefined;
  /** Program date time of the part's start (epoch ms), when the playlist gives one. */
  programDateTime: number | undefined;
  bytes: number;
}

export interface HlsClientStats {
  requests: number;
  playlistRequests: number;
  bytes: number;
  errors: number;
  /** TCP connections opened (1 while keep-alive holds). */
  connections: number;
  parts: HlsPartSeen[];
}

interface ListedPart {
  uri: string;
  msn: number;
  index: number;
  independent: boolean;
  pdt: number | undefined;
}

/** The parts of a playlist with their segment numbers and start times; the next blocking request. */
export function listParts(text: string): { parts: ListedPart[]; next: { msn: number; part: number } | undefined } {
  const parts: ListedPart[] = [];
  let msn = 0;
  let index = 0;
  let pdt: number | undefined;
  let ended = false;
  let lastComplete = -1;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) msn = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-SKIP:')) msn += Number(/SKIPPED-SEGMENTS=(\d+)/.exec(line)?.[1] ?? 0);
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = Date.parse(line.slice(25));
    else if (line.startsWith('#EXT-X-PART:')) {
      const uri = /URI="([^"]+)"/.exec(line)?.[1];
      const duration = Number(/DURATION=([\d.]+)/.exec(line)?.[1] ?? 0);
      if (uri) parts.push({ uri, msn, index, independent: line.includes('INDEPENDENT=YES'), pdt });
      index++;
      if (pdt !== undefined) pdt += duration * 1000;
    } else if (line.length > 0 && !line.startsWith('#')) {
      lastComplete = msn;
      msn++;
      index = 0;
      pdt = undefined;
    } else if (line === '#EXT-X-ENDLIST') ended = true;
  }
  if (ended) return { parts, next: undefined };
  const last = parts.at(-1);
  const next =
    last && last.msn > lastComplete ? { msn: last.msn, part: last.index + 1 } : { msn: lastComplete + 1, part: 0 };
  return { parts, next };
}

const VIDEO_TRACK_ID = 1;
/** A part's first bytes kept by the viewer: its moof (with the tfdt read for latency) is well within them. */
const PART_HEAD_BYTES = 16 * 1024;
const VIDEO_TIMESCALE_PER_MS = 90;

/** The tfdt of track 1's first traf in a CMAF fragment, in ms. */
export function firstVideoDecodeMs(fragment: Buffer): number | undefined {
  const walk = (from: number, to: number, want: string): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    for (let pos = from; pos + 8 <= to;) {
      const size = fragment.readUInt32BE(pos);
      if (size < 8 || pos + size > to) break;
      if (fragment.toString('latin1', pos + 4, pos + 8) === want) out.push([pos + 8, pos + size]);
      pos += size;
    }
    return out;
  };
  for (const [ms, me] of walk(0, fragment.length, 'moof')) {
    for (const [ts, te] of walk(ms, me, 'traf')) {
      const tfhd = walk(ts, te, 'tfhd')[0];
      const tfdt = walk(ts, te, 'tfdt')[0];
      if (!tfhd || !tfdt || fragment.readUInt32BE(tfhd[0] + 4) !== VIDEO_TRACK_ID) continue;
      const v1 = fragment[tfdt[0]] === 1;
      const ticks = v1 ? Number(fragment.readBigUInt64BE(tfdt[0] + 4)) : fragment.readUInt32BE(tfdt[0] + 4);
      return ticks / VIDEO_TIMESCALE_PER_MS;
    }
  }
  return undefined;
}

/** Follows one LL-HLS stream until `stop()`. */
export class LightHlsViewer {
  readonly stats: HlsClientStats = {
    requests: 0,
    playlistRequests: 0,
    bytes: 0,
    errors: 0,
    connections: 0,
    parts: [],
  };
  private stopped = false;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly sockets = new WeakSet<object>();
  private inFlight: ReturnType<typeof httpRequest> | undefined;

  constructor(private readonly playlistUrl: string) {}

  stop(): void {
    this.stopped = true;
    this.inFlight?.destroy();
    this.agent.destroy();
  }

  private url(uri: string): string {
    return new URL(uri, this.playlistUrl).href;
  }

  /**
   * GET `url`; the body, or (with `keepBytes`) only its first `keepBytes` bytes: a part's moof comes first, and
   * copying every part whole would make the load generator, not the server, the bottleneck.
   */
  private get(url: string, keepBytes = Infinity): Promise<Buffer | undefined> {
    this.stats.requests++;
    return new Promise((resolve) => {
      let settled = false;
      const done = (body: Buffer | undefined): void => {
        if (settled) return;
        settled = true;
        if (!body && !this.stopped) this.stats.errors++;
        resolve(body);
      };
      const fail = (): void => done(undefined);
      const req = httpRequest(url, { agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        let received = 0;
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (kept >= keepBytes) return;
          chunks.push(c);
          kept += c.length;
        });
        res.on('error', fail);
        res.on('end', () => {
          this.stats.bytes += received;
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          done(res.statusCode === 200 ? body : undefined);
        });
        res.on('close', fail); // cut before its end (after it: already settled)
      });
      req.on('socket', (socket) => {
        if (this.sockets.has(socket)) return;
        this.sockets.add(socket);
        this.stats.connections++;
      });
      req.on('error', fail);
      this.inFlight = req;
      req.end();
    });
  }

  async run(): Promise<void> {
    const seen = new Set<string>();
    let url = this.playlistUrl;
    let initDone = false;
    while (!this.stopped) {
      this.stats.playlistRequests++;
      const body = await this.get(url);
      if (!body) {
        if (this.stopped) return;
        await new Promise((r) => setTimeout(r, 500));
        url = this.playlistUrl;
        continue;
      }
      const text = body.toString('utf8');
      if (!initDone) {
        const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1];
        if (map && (await this.get(this.url(map)))) initDone = true;
      }
      const { parts, next } = listParts(text);
      if (seen.size === 0) {
        // Join at the newest independent part, like a low-latency player.
        let start = parts.length - 1;
        while (start > 0 && !parts[start]!.independent) start--;
        for (let i = 0; i < start; i++) seen.add(parts[i]!.uri);
      }
      for (const p of parts) {
        if (seen.has(p.uri) || this.stopped) continue;
        seen.add(p.uri);
        const before = this.stats.bytes;
        const head = await this.get(this.url(p.uri), PART_HEAD_BYTES);
        if (!head) continue;
        this.stats.parts.push({
          receivedAt: performance.now(),
          videoMs: firstVideoDecodeMs(head),
          programDateTime: p.pdt,
          bytes: this.stats.bytes - before,
        });
      }
      if (!next) return;
      const u = new URL(this.playlistUrl);
      u.searchParams.set('_HLS_msn', String(next.msn));
      u.searchParams.set('_HLS_part', String(next.part));
      url = u.href;
    }
  }
}

// LL-HLS viewer logic of the k6 HLS suite (hls-viewers.js): playlist parsing, what to request next (blocking
// reloads, parts, segments) and the metric math (stalls, live edge distance). Plain JavaScript with no k6 imports:
// the Node tests import it too (loadtest/test/hls-k6-stats.test.ts).

/**
 * @typedef {{ uri: string, duration: number, independent: boolean }} HlsPart
 * @typedef {{ msn: number, uri: string | undefined, duration: number, complete: boolean,
 *             programDateTime: number | undefined, parts: HlsPart[] }} HlsSegment
 * @typedef {{ targetDuration: number, partTarget: number | undefined, mediaSequence: number,
 *             canBlockReload: boolean, partHoldBack: number | undefined, skipped: number, map: string | undefined,
 *             segments: HlsSegment[], preloadHint: string | undefined, ended: boolean }} HlsPlaylist
 */

/**
 * Attributes of a tag line (`KEY=VALUE,KEY="quoted, value"`).
 * @param {string} text
 * @returns {Record<string, string>}
 */
export function parseAttributes(text) {
  /** @type {Record<string, string>} */
  const out = {};
  const re = /([A-Z0-9-]+)=("[^"]*"|[^,]*)/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    const v = m[2];
    out[m[1]] = v.startsWith('"') ? v.slice(1, -1) : v;
  }
  return out;
}

/**
 * A media playlist (RFC 8216bis with LL-HLS tags). Segments in progress (parts but no EXTINF yet) are listed with
 * `complete: false`.
 * @param {string} text
 * @returns {HlsPlaylist}
 */
export function parsePlaylist(text) {
  if (!text.startsWith('#EXTM3U')) throw new Error('not an HLS playlist (no #EXTM3U)');
  /** @type {HlsPlaylist} */
  const pl = {
    targetDuration: 0,
    partTarget: undefined,
    mediaSequence: 0,
    canBlockReload: false,
    partHoldBack: undefined,
    skipped: 0,
    map: undefined,
    segments: [],
    preloadHint: undefined,
    ended: false,
  };
  /** @type {HlsSegment | undefined} */
  let open;
  const current = () => {
    if (!open) {
      open = {
        msn: pl.mediaSequence + pl.skipped + pl.segments.length,
        uri: undefined,
        duration: 0,
        complete: false,
        programDateTime: undefined,
        parts: [],
      };
      pl.segments.push(open);
    }
    return open;
  };
  let extinf = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (!line.startsWith('#')) {
      const s = current();
      s.uri = line;
      s.duration = extinf;
      s.complete = true;
      open = undefined;
      continue;
    }
    const colon = line.indexOf(':');
    const tag = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1);
    if (tag === '#EXT-X-TARGETDURATION') pl.targetDuration = Number(value);
    else if (tag === '#EXT-X-MEDIA-SEQUENCE') pl.mediaSequence = Number(value);
    else if (tag === '#EXT-X-PART-INF') pl.partTarget = Number(parseAttributes(value)['PART-TARGET']);
    else if (tag === '#EXT-X-SERVER-CONTROL') {
      const a = parseAttributes(value);
      pl.canBlockReload = a['CAN-BLOCK-RELOAD'] === 'YES';
      if (a['PART-HOLD-BACK'] !== undefined) pl.partHoldBack = Number(a['PART-HOLD-BACK']);
    } else if (tag === '#EXT-X-SKIP') pl.skipped = Number(parseAttributes(value)['SKIPPED-SEGMENTS']);
    else if (tag === '#EXT-X-MAP') pl.map = parseAttributes(value).URI;
    else if (tag === '#EXT-X-PROGRAM-DATE-TIME') current().programDateTime = Date.parse(value);
    else if (tag === '#EXTINF') extinf = Number(value.split(',')[0]);
    else if (tag === '#EXT-X-PART') {
      const a = parseAttributes(value);
      current().parts.push({ uri: a.URI, duration: Number(a.DURATION), independent: a.INDEPENDENT === 'YES' });
    } else if (tag === '#EXT-X-PRELOAD-HINT') {
      const a = parseAttributes(value);
      if (a.TYPE === 'PART') pl.preloadHint = a.URI;
    } else if (tag === '#EXT-X-ENDLIST') pl.ended = true;
  }
  // A PDT applies to its segment; segments without one continue from the previous.
  for (let i = 1; i < pl.segments.length; i++) {
    const prev = pl.segments[i - 1];
    const s = pl.segments[i];
    if (s.programDateTime === undefined && prev.programDateTime !== undefined)
      s.programDateTime = prev.programDateTime + segmentSpan(prev) * 1000;
  }
  return pl;
}

/**
 * A segment's media duration so far: EXTINF when complete, else the sum of its parts.
 * @param {HlsSegment} s
 */
export function segmentSpan(s) {
  return s.complete ? s.duration : s.parts.reduce((n, p) => n + p.duration, 0);
}

/**
 * The blocking reload that waits for the part after the newest one listed (RFC 8216bis 6.2.5.2).
 * @param {HlsPlaylist} pl
 * @returns {{ msn: number, part: number } | undefined}
 */
export function nextBlockingRequest(pl) {
  const last = pl.segments[pl.segments.length - 1];
  if (!last || pl.ended) return undefined;
  if (pl.partTarget === undefined) return { msn: last.complete ? last.msn + 1 : last.msn, part: 0 };
  if (last.complete) return { msn: last.msn + 1, part: 0 };
  return { msn: last.msn, part: last.parts.length };
}

/**
 * `base` (the playlist URL) + a relative URI.
 * @param {string} base
 * @param {string} uri
 */
export function resolveUri(base, uri) {
  if (/^[a-z]+:\/\//i.test(uri)) return uri;
  const q = base.indexOf('?');
  const path = q < 0 ? base : base.slice(0, q);
  return path.slice(0, path.lastIndexOf('/') + 1) + uri;
}

/**
 * The playlist URL with blocking-reload parameters added.
 * @param {string} url
 * @param {{ msn: number, part: number } | undefined} next
 * @param {boolean} withParts
 */
export function blockingUrl(url, next, withParts) {
  if (!next) return url;
  const sep = url.includes('?') ? '&' : '?';
  return `${url}${sep}_HLS_msn=${next.msn}${withParts ? `&_HLS_part=${next.part}` : ''}`;
}

/**
 * The media to fetch from a playlist, in order, that were not fetched yet: LL clients take every part from where
 * they joined; plain clients take complete segments. `seen` holds URIs already fetched (mutated).
 * A joiner starts at the newest independent part (LL) or the third segment from the end (plain).
 * @param {HlsPlaylist} pl
 * @param {Set<string>} seen
 * @param {boolean} lowLatency
 * @returns {Array<{ uri: string, duration: number, programDateTime: number | undefined }>}
 */
export function newMedia(pl, seen, lowLatency) {
  /** @type {Array<{ uri: string, duration: number, programDateTime: number | undefined }>} */
  const all = [];
  for (const s of pl.segments) {
    if (lowLatency && s.parts.length > 0) {
      let at = s.programDateTime;
      for (const p of s.parts) {
        all.push({ uri: p.uri, duration: p.duration, programDateTime: at });
        if (at !== undefined) at += p.duration * 1000;
      }
    } else if (!lowLatency && s.complete && s.uri) {
      all.push({ uri: s.uri, duration: s.duration, programDateTime: s.programDateTime });
    }
  }
  if (seen.size === 0) {
    let start = lowLatency ? -1 : Math.max(0, all.length - 3);
    if (lowLatency) {
      const parts = pl.segments.flatMap((s) => s.parts);
      for (let i = parts.length - 1; i >= 0; i--) {
        if (parts[i].independent) {
          start = all.findIndex((m) => m.uri === parts[i].uri);
          break;
        }
      }
      if (start < 0) start = Math.max(0, all.length - 1);
    }
    for (let i = 0; i < start; i++) seen.add(all[i].uri);
  }
  const fresh = all.filter((m) => !seen.has(m.uri));
  for (const m of fresh) seen.add(m.uri);
  return fresh;
}

/**
 * One viewer's playback model: media received against wall time. Playback starts with the first media and never
 * skips, so a stall is time when the media received so far is all played out.
 */
export class HlsViewerStats {
  /** @param {number} [stallThresholdMs] shorter shortfalls (request jitter) are not stalls */
  constructor(stallThresholdMs = 0) {
    this.stallThresholdMs = stallThresholdMs;
    /** @type {number | undefined} */
    this.startedAt = undefined;
    this.mediaS = 0;
    this.stallMs = 0;
    this.stalls = 0;
    this.bytes = 0;
    /** @type {number[]} */
    this.edgeDistancesMs = [];
  }

  /**
   * Media of `durationS` arrived at `now` (ms); `endPdt`: program date time of its end (ms), if known.
   * @param {number} durationS
   * @param {number} bytes
   * @param {number} now
   * @param {number | undefined} endPdt
   */
  onMedia(durationS, bytes, now, endPdt) {
    if (this.startedAt === undefined) this.startedAt = now;
    const playedOutAt = this.startedAt + this.stallMs + this.mediaS * 1000;
    if (now - playedOutAt > this.stallThresholdMs) {
      this.stallMs += now - playedOutAt;
      this.stalls++;
    }
    this.mediaS += durationS;
    this.bytes += bytes;
    if (endPdt !== undefined) this.edgeDistancesMs.push(Math.max(0, now - endPdt));
  }

  /**
   * Stalled time until `now` (media ran out before the session ended counts too).
   * @param {number} now
   */
  stallTimeAt(now) {
    if (this.startedAt === undefined) return 0;
    const playedOutAt = this.startedAt + this.stallMs + this.mediaS * 1000;
    const tail = now - playedOutAt;
    return this.stallMs + (tail > this.stallThresholdMs ? tail : 0);
  }
}

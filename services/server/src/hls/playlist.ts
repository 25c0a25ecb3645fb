/**
 * The LL-HLS media playlist (RFC 8216bis, with Low-Latency HLS): rendered from a packager's window. Pure: the same
 * window, options and query give the same bytes, so a rendering can be cached and shared by every viewer.
 *
 * URIs are relative to the playlist (`/<app>/<stream>/index.m3u8`): `init-<gen>-<v>.mp4`, `seg-<gen>-<msn>.m4s`,
 * `part-<gen>-<msn>-<i>.m4s`. `<gen>` names one run of the packager, so a URI never names two different contents
 * (immutable caching holds across packager restarts). The viewer's auth query is appended to every URI.
 */
import type { Segment } from './packager.js';

export interface PlaylistSource {
  gen: string;
  targetDuration: number;
  partTarget: number;
  discontinuitySequence: number;
  segments: readonly Segment[];
  nextPart: { msn: number; index: number } | undefined;
  ended: boolean;
}

/** Apple: PART-HOLD-BACK at least 2 part targets (3 recommended); 2 keeps glass-to-glass low. */
export const PART_HOLD_BACK_PARTS = 2;
/** CAN-SKIP-UNTIL: at least 6 target durations (RFC 8216bis 4.4.3.8). */
export const SKIP_TARGET_DURATIONS = 6;
/** Parts are listed for segments within this many target durations of the live edge (RFC 8216bis 4.4.4.9). */
export const PART_LIST_TARGET_DURATIONS = 3;
/** EXT-X-SKIP needs protocol version 9; it's the version of every playlist here, delta or not. */
const VERSION = 9;

export const initUri = (gen: string, version: number): string => `init-${gen}-${version}.mp4`;
export const segmentUri = (gen: string, msn: number): string => `seg-${gen}-${msn}.m4s`;
export const partUri = (gen: string, msn: number, index: number): string => `part-${gen}-${msn}-${index}.m4s`;

/** What a media URI names. */
export type MediaName =
  | { type: 'init'; gen: string; version: number }
  | { type: 'segment'; gen: string; msn: number }
  | { type: 'part'; gen: string; msn: number; index: number };

/** Media URI names → what they are (undefined for anything else). */
export function parseMediaName(name: string): MediaName | undefined {
  let m = /^init-([a-z0-9]+)-(\d{1,9})\.mp4$/.exec(name);
  if (m) return { type: 'init', gen: m[1]!, version: Number(m[2]) };
  m = /^seg-([a-z0-9]+)-(\d{1,12})\.m4s$/.exec(name);
  if (m) return { type: 'segment', gen: m[1]!, msn: Number(m[2]) };
  m = /^part-([a-z0-9]+)-(\d{1,12})-(\d{1,6})\.m4s$/.exec(name);
  if (m) return { type: 'part', gen: m[1]!, msn: Number(m[2]), index: Number(m[3]) };
  return undefined;
}

function seconds(s: number): string {
  return s.toFixed(5);
}

export function canSkipUntil(targetDuration: number): number {
  return SKIP_TARGET_DURATIONS * targetDuration;
}

/** How many leading segments a delta playlist skips: the oldest ones, while what is left spans CAN-SKIP-UNTIL. */
export function skippableSegments(src: PlaylistSource): number {
  const limit = canSkipUntil(src.targetDuration);
  let remaining = src.segments.reduce((n, s) => n + s.duration, 0);
  let skip = 0;
  for (const s of src.segments) {
    if (!s.complete || remaining - s.duration < limit) break;
    remaining -= s.duration;
    skip++;
  }
  return skip;
}

export function renderPlaylist(src: PlaylistSource, opts: { skip: boolean; query: string }): string {
  const q = opts.query ? `?${opts.query}` : '';
  const segs = src.segments;
  const first = segs[0];
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${VERSION}`,
    `#EXT-X-TARGETDURATION:${src.targetDuration}`,
    `#EXT-X-MEDIA-SEQUENCE:${first?.msn ?? src.nextPart?.msn ?? 0}`,
  ];
  if (src.discontinuitySequence > 0) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${src.discontinuitySequence}`);
  lines.push(
    '#EXT-X-INDEPENDENT-SEGMENTS',
    `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=${seconds(canSkipUntil(src.targetDuration))},PART-HOLD-BACK=${seconds(PART_HOLD_BACK_PARTS * src.partTarget)}`,
    `#EXT-X-PART-INF:PART-TARGET=${seconds(src.partTarget)}`,
  );
  const skipped = opts.skip ? skippableSegments(src) : 0;
  if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);
  const total = segs.reduce((n, s) => n + s.duration, 0);
  let before = 0;
  let mapVersion = -1;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    const startsAt = before;
    before += s.duration;
    if (i < skipped) continue;
    if (s.parts.length === 0) continue;
    if (s.discontinuity && i > 0) lines.push('#EXT-X-DISCONTINUITY');
    if (s.initVersion !== mapVersion) {
      lines.push(`#EXT-X-MAP:URI="${initUri(src.gen, s.initVersion)}${q}"`);
      mapVersion = s.initVersion;
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateTime).toISOString()}`);
    const listParts = !s.complete || total - startsAt - s.duration < PART_LIST_TARGET_DURATIONS * src.targetDuration;
    if (listParts) {
      for (const p of s.parts) {
        lines.push(
          `#EXT-X-PART:DURATION=${seconds(p.duration)},URI="${partUri(src.gen, s.msn, p.index)}${q}"${p.independent ? ',INDEPENDENT=YES' : ''}`,
        );
      }
    }
    if (s.complete) lines.push(`#EXTINF:${seconds(s.duration)},`, `${segmentUri(src.gen, s.msn)}${q}`);
  }
  if (src.nextPart)
    lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${partUri(src.gen, src.nextPart.msn, src.nextPart.index)}${q}"`);
  if (src.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

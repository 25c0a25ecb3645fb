import { payloadOf, type HubMessage, type MediaKind } from './hub-message.js';

/** The codec of a legacy (non-ExHeader) header or frame. */
const LEGACY_CODEC = 'legacy';

export interface HeaderCacheLimits {
  /** Cached headers per stream, audio and video together (codec × packet type × tracks). */
  maxEntries: number;
  /** Bytes they may retain (payload plus its pre-chunked copy). */
  maxBytes: number;
}

export interface HeaderPutResult {
  /** False when the header was identical to the cached one (nothing to do, not even a fan-out). */
  changed: boolean;
  /** The header could not be cached: the cache is full of headers in use, or it alone exceeds maxBytes. */
  refused: boolean;
  /** Older headers dropped to make room. */
  evicted: HubMessage[];
}

interface Entry {
  m: HubMessage;
  bytes: number;
  codec: string;
  /** Last update; the smallest is evicted first. */
  seq: number;
}

const retainedBytes = (m: HubMessage): number => (m.keptPayload?.length ?? 0) + m.chunks.length;
const codecOf = (m: HubMessage): string => m.fourCc ?? LEGACY_CODEC;

/**
 * Sequence headers for late joiners, one per kind + header slot (codec / packet type / tracks), bounded: a publisher
 * cycling through codec ids must not grow a stream's memory past the cap. When full, the least recently updated
 * header of a codec that is not in use (no coded frame of that kind since) makes room; headers of the codecs being
 * played are never evicted, and a newcomer that still doesn't fit is refused (it still goes to current viewers).
 */
export class HeaderCache {
  private readonly entries = new Map<string, Entry>(); // insertion order = join order, kept across updates
  private bytes = 0;
  private seq = 0;
  /** Codec of the last coded frame, by kind. */
  private readonly inUse: Record<MediaKind, string | undefined> = {
    audio: undefined,
    video: undefined,
    data: undefined,
  };

  constructor(private readonly limits: HeaderCacheLimits) {}

  get size(): number {
    return this.entries.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /** A coded (non-header) frame: its codec's headers are in use. */
  noteFrame(m: HubMessage): void {
    this.inUse[m.kind] = codecOf(m);
  }

  /** Headers of one kind in join order. */
  *values(kind: MediaKind): IterableIterator<HubMessage> {
    for (const e of this.entries.values()) if (e.m.kind === kind) yield e.m;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
    this.inUse.audio = this.inUse.video = this.inUse.data = undefined;
  }

  put(key: string, m: HubMessage): HeaderPutResult {
    const slot = `${m.kind}|${key}`;
    const existing = this.entries.get(slot);
    if (existing && payloadOf(existing.m).equals(payloadOf(m))) return { changed: false, refused: false, evicted: [] };
    const bytes = retainedBytes(m);
    const victims = this.victimsFor(slot, existing, bytes);
    if (!victims) {
      // A stale header would be wrong for joiners: without room for its update, drop it too.
      const evicted = existing ? [this.remove(slot, existing)] : [];
      return { changed: true, refused: true, evicted };
    }
    const evicted = victims.map(([k, e]) => this.remove(k, e));
    const entry: Entry = { m, bytes, codec: codecOf(m), seq: this.seq++ };
    if (existing) this.bytes -= existing.bytes;
    this.entries.set(slot, entry); // an update keeps its place in the join order
    this.bytes += bytes;
    return { changed: true, refused: false, evicted };
  }

  /** Entries to evict so that `bytes` fit in `slot` (replacing `existing`), or undefined if they can't. */
  private victimsFor(slot: string, existing: Entry | undefined, bytes: number): Array<[string, Entry]> | undefined {
    if (bytes > this.limits.maxBytes) return undefined;
    let entries = this.entries.size + (existing ? 0 : 1);
    let total = this.bytes - (existing?.bytes ?? 0) + bytes;
    if (entries <= this.limits.maxEntries && total <= this.limits.maxBytes) return [];
    const candidates = [...this.entries]
      .filter(([k, e]) => k !== slot && e.codec !== this.inUse[e.m.kind])
      .sort((a, b) => a[1].seq - b[1].seq);
    const victims: Array<[string, Entry]> = [];
    for (const c of candidates) {
      if (entries <= this.limits.maxEntries && total <= this.limits.maxBytes) break;
      victims.push(c);
      entries--;
      total -= c[1].bytes;
    }
    return entries <= this.limits.maxEntries && total <= this.limits.maxBytes ? victims : undefined;
  }

  private remove(slot: string, e: Entry): HubMessage {
    this.entries.delete(slot);
    this.bytes -= e.bytes;
    return e.m;
  }
}

/**
 * Shared AMF value model, decode limits and the byte reader/writer used by the AMF0 (amf0.ts) and AMF3 (amf3.ts)
 * codecs.
 *
 * Value model (both formats decode into the same JavaScript values):
 * - number, boolean, string, null, undefined, Date: themselves. AMF0 long strings and XML documents, AMF3 XML and
 *   XMLDocument decode to plain strings.
 * - AMF0 anonymous object (0x03) / AMF3 anonymous object: a plain object ({@link AmfObject}).
 * - AMF0 ECMA array (0x08): {@link AmfEcmaArray}; AMF3 arrays with an associative part also decode to it.
 * - AMF0 strict array (0x0A) / dense AMF3 array / AMF3 vectors: a JavaScript array.
 * - AMF0 typed object (0x10) / AMF3 object with a class name: {@link AmfTypedObject}.
 * - AMF3 ByteArray: a Buffer (a copy, never a view of the input). AMF3 Dictionary: a Map.
 *
 * Prototype safety: decoded objects are ordinary objects (prototype Object.prototype) so that normal property access,
 * spreading and `assert.deepStrictEqual({...}, decoded)` work. A key named "__proto__" is stored as an own data
 * property with Object.defineProperty (see {@link setAmfProperty}), so it can never replace the prototype or reach
 * Object.prototype. Keys such as "constructor" or "toString" become ordinary own properties. Consumers that look up
 * peer-chosen keys must still use `Object.hasOwn(obj, key)` rather than `key in obj` / `obj[key] !== undefined`,
 * because an absent key resolves through Object.prototype.
 */

import { RtmpProtocolError } from './errors.js';

/** Values that only AMF3 can carry (AMF0 encoding wraps them in the 0x11 avmplus switch). */
export type Amf3Value = Buffer | AmfDictionary;

/** AMF3 Dictionary (0x11): keys may be any AMF value. */
export type AmfDictionary = Map<AmfValue, AmfValue>;

export type AmfValue =
  | number
  | boolean
  | string
  | null
  | undefined
  | Date
  | AmfValue[]
  | AmfObject
  | AmfEcmaArray
  | AmfTypedObject
  | Amf3Value;

/** Anonymous object. Decoded objects have Object.prototype; "__proto__" keys are own data properties. */
export interface AmfObject {
  [key: string]: AmfValue;
}

/** AMF0 ECMA array (associative array, marker 0x08). Encodes back as 0x08 with the entry count as the hint. */
export class AmfEcmaArray {
  constructor(public readonly entries: Record<string, AmfValue> = {}) {}
}

/** AMF0 typed object (0x10) or AMF3 object whose traits carry a non-empty class name. */
export class AmfTypedObject {
  constructor(
    public readonly className: string,
    public readonly props: AmfObject = {},
  ) {}
}

export interface AmfLimits {
  /** Maximum nesting of containers (objects, arrays, ECMA arrays, vectors, dictionaries); top-level container = 1. */
  maxDepth: number;
  /** Maximum entries per object/array/dictionary, and maximum number of top-level values in one message. */
  maxItems: number;
  /** Maximum byte length of one string, XML document or ByteArray. */
  maxStringBytes: number;
  /**
   * Maximum decoded size of one decode call, counting 1 per value plus the UTF-8 bytes of every string and key and
   * the bytes of every ByteArray, with values reached through references (AMF0 0x07, AMF3 reference tables) counted
   * again in full. Without references the decoded size never exceeds the input length, so the effective limit is
   * max(maxDecodedSize, input length): this only bounds reference amplification ("billion laughs"). Optional so that
   * three-field limit objects stay valid.
   */
  maxDecodedSize?: number;
}

/** Defaults: depth 32, 1024 items per container, strings up to 1 MiB, references may expand to 4 MiB. */
export const DEFAULT_AMF_LIMITS: Readonly<Required<AmfLimits>> = Object.freeze({
  maxDepth: 32,
  maxItems: 1024,
  maxStringBytes: 1024 * 1024,
  maxDecodedSize: 4 * 1024 * 1024,
});

/**
 * Hard ceiling for maxDepth (configured values are clamped to it) and the nesting limit of the encoders. Keeps the
 * recursive codecs far away from the JavaScript stack limit whatever the configuration.
 */
export const AMF_MAX_SUPPORTED_DEPTH = 512;

/** Upper bound on every reference table (AMF0 complex values; AMF3 strings, objects, traits) of one decode call. */
const AMF_MAX_REFERENCE_TABLE_SIZE = 65536;

/** The property bag of an object-like value (anonymous object, ECMA array, typed object), else undefined. */
export function amfProperties(value: AmfValue): AmfObject | undefined {
  if (value instanceof AmfEcmaArray) return value.entries;
  if (value instanceof AmfTypedObject) return value.props;
  return isAmfObject(value) ? value : undefined;
}

/** True for anonymous objects (not null, arrays, Date, Buffer, Map, AmfEcmaArray or AmfTypedObject). */
export function isAmfObject(value: AmfValue): value is AmfObject {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Date) &&
    !(value instanceof AmfEcmaArray) &&
    !(value instanceof AmfTypedObject) &&
    !(value instanceof Uint8Array) &&
    !(value instanceof Map)
  );
}

/**
 * Stores a peer-chosen key as an own enumerable data property. Plain assignment would invoke the Object.prototype
 * "__proto__" setter for that one key (replacing the object's prototype), so it goes through defineProperty; every
 * other key is a data property or absent on Object.prototype, where assignment creates an own property.
 */
export function setAmfProperty(target: Record<string, AmfValue>, key: string, value: AmfValue): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

function fail(reason: string, message: string): never {
  throw new RtmpProtocolError(reason, message);
}

/** @internal An entry of a reference table: a complex value plus what resolving a reference to it costs. */
export interface RefEntry {
  value: AmfValue;
  /** Container levels inside the value (0 for leaves such as dates or strings). */
  height: number;
  /** Decoded size of the value (see AmfLimits.maxDecodedSize). */
  weight: number;
  /** False while the value is still being decoded: a reference to it would create a cycle. */
  done: boolean;
  /** Bookkeeping while open. */
  depth: number;
  savedDeepest: number;
  sizeStart: number;
}

/**
 * @internal Bounds-checked big-endian reader over one message plus the per-call decode state: limits, decoded
 * size, depth bookkeeping and the AMF0 reference table (AMF3 tables live per avmplus switch, see amf3.ts).
 */
export class AmfReader {
  pos: number;
  readonly maxDepth: number;
  readonly maxItems: number;
  readonly maxStringBytes: number;
  private readonly maxDecodedSize: number;
  /** Decoded size so far. */
  private size = 0;
  /** Deepest container level reached inside the innermost open container. */
  private deepest = 0;
  /** AMF0 reference table (anonymous/typed objects, ECMA and strict arrays, in the order they start). */
  readonly amf0Refs: RefEntry[] = [];

  constructor(
    readonly buf: Buffer,
    offset: number,
    limits: Partial<AmfLimits> | undefined,
  ) {
    if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) {
      throw new RangeError(`AMF offset ${offset} outside buffer of ${buf.length} bytes`);
    }
    this.pos = offset;
    const l = limits === undefined ? DEFAULT_AMF_LIMITS : { ...DEFAULT_AMF_LIMITS, ...stripUndefined(limits) };
    this.maxDepth = Math.min(l.maxDepth, AMF_MAX_SUPPORTED_DEPTH);
    this.maxItems = l.maxItems;
    this.maxStringBytes = l.maxStringBytes;
    this.maxDecodedSize = Math.max(l.maxDecodedSize, buf.length - offset);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** Decoded size so far (see AmfLimits.maxDecodedSize). */
  get decodedSize(): number {
    return this.size;
  }

  private need(n: number): void {
    if (n > this.buf.length - this.pos) {
      fail('amf_truncated', `AMF value truncated: need ${n} bytes at offset ${this.pos}, have ${this.remaining}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  peekU8(): number {
    this.need(1);
    return this.buf[this.pos]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** Length is checked against the remaining bytes first, then against maxStringBytes. Counts n decoded bytes. */
  utf8(n: number): string {
    this.checkLength(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A copy of the next n bytes (so a decoded ByteArray never pins the whole message buffer). */
  bytes(n: number): Buffer {
    this.checkLength(n);
    const b = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return b;
  }

  private checkLength(n: number): void {
    this.need(n);
    if (n > this.maxStringBytes) fail('amf_too_large', `AMF string of ${n} bytes exceeds ${this.maxStringBytes}`);
    this.addSize(n);
  }

  /** A declared element count: each element takes at least minBytes, so it can be checked before any allocation. */
  checkCount(count: number, minBytes: number): void {
    if (count * minBytes > this.remaining) {
      fail('amf_truncated', `AMF count ${count} exceeds the ${this.remaining} remaining bytes`);
    }
    this.checkItems(count);
  }

  checkItems(count: number): void {
    if (count > this.maxItems) fail('amf_too_many_items', `AMF container with more than ${this.maxItems} items`);
  }

  addSize(n: number): void {
    this.size += n;
    if (this.size > this.maxDecodedSize) {
      fail('amf_too_large', `AMF decoded size exceeds ${this.maxDecodedSize} (reference amplification?)`);
    }
  }

  /**
   * Starts a container at nesting level `depth` (top level = 1) and appends it to `table` (its reference index is
   * assigned before its children are read, as the specs require). Counts 1 decoded unit for the container itself.
   */
  openContainer(depth: number, value: AmfValue, table: RefEntry[]): RefEntry {
    if (depth > this.maxDepth) fail('amf_depth', `AMF nesting deeper than ${this.maxDepth}`);
    const entry: RefEntry = {
      value,
      height: 0,
      weight: 0,
      done: false,
      depth,
      savedDeepest: this.deepest,
      sizeStart: this.size,
    };
    pushBounded(table, entry);
    this.addSize(1);
    this.deepest = depth;
    return entry;
  }

  closeContainer(entry: RefEntry): void {
    entry.height = this.deepest - entry.depth + 1;
    entry.weight = this.size - entry.sizeStart;
    entry.done = true;
    if (entry.savedDeepest > this.deepest) this.deepest = entry.savedDeepest;
  }

  /** Records a leaf (date, XML, ByteArray) whose decoding already counted `weight`. */
  addLeaf(value: AmfValue, weight: number, table: RefEntry[]): void {
    pushBounded(table, { value, height: 0, weight, done: true, depth: 0, savedDeepest: 0, sizeStart: 0 });
  }

  /** Resolves a reference appearing at nesting level `depth`: bounded by depth and decoded size, never cyclic. */
  resolve(table: RefEntry[], index: number, depth: number): AmfValue {
    const entry = table[index];
    if (entry === undefined) fail('amf_bad_reference', `AMF reference ${index} outside table of ${table.length}`);
    if (!entry.done) fail('amf_bad_reference', `AMF reference ${index} to a value still being decoded (cycle)`);
    if (entry.height > 0) {
      const reached = depth + entry.height - 1;
      if (reached > this.maxDepth) fail('amf_depth', `AMF nesting through reference deeper than ${this.maxDepth}`);
      if (reached > this.deepest) this.deepest = reached;
    }
    this.addSize(entry.weight);
    return entry.value;
  }
}

function stripUndefined(limits: Partial<AmfLimits>): Partial<AmfLimits> {
  const out: Partial<AmfLimits> = {};
  for (const key of ['maxDepth', 'maxItems', 'maxStringBytes', 'maxDecodedSize'] as const) {
    const v = limits[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** @internal Appends to a reference table, failing once it holds AMF_MAX_REFERENCE_TABLE_SIZE entries. */
export function pushBounded<T>(table: T[], entry: T): void {
  if (table.length >= AMF_MAX_REFERENCE_TABLE_SIZE) {
    fail('amf_too_many_items', `AMF reference table exceeds ${AMF_MAX_REFERENCE_TABLE_SIZE} entries`);
  }
  table.push(entry);
}

/** @internal Growable big-endian byte writer. */
export class ByteWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initialCapacity = 256) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.len);
    this.len += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.len);
    this.len += 8;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Writes a string whose UTF-8 length the caller already computed with Buffer.byteLength. */
  utf8(s: string, byteLength: number): void {
    this.ensure(byteLength);
    this.len += this.buf.write(s, this.len, byteLength, 'utf8');
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** @internal Guard shared by both encoders against cyclic or absurdly deep values. */
export function checkEncodeDepth(depth: number): void {
  if (depth > AMF_MAX_SUPPORTED_DEPTH) {
    throw new RangeError(`AMF value nested deeper than ${AMF_MAX_SUPPORTED_DEPTH} levels (cyclic?)`);
  }
}

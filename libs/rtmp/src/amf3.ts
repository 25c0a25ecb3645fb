/**
 * AMF3 codec [AMF3 spec, section 3]. In RTMP, AMF3 appears inside AMF0 after the avmplus marker 0x11, in command
 * (type 17) and data (type 15) messages; see decodeAmf3MessagePayload in amf0.ts.
 *
 * Reference tables (strings, objects, traits) are scoped to one top-level AMF3 value: every avmplus switch and every
 * decodeAmf3 call starts with empty tables. References to values still being decoded (cycles) are rejected; other
 * references return the same JavaScript object (shared, not copied) and are charged their full depth and decoded
 * size (see AmfLimits). Externalizable objects cannot be decoded without class-specific code: 'amf3_externalizable'.
 *
 * Decoding: Vector.<int|uint|Number|Object> decode to JavaScript arrays, Dictionary to a Map. Arrays with an
 * associative part decode to AmfEcmaArray (dense elements appear as keys "0", "1", ...), purely dense arrays to a
 * JavaScript array. Encoding writes anonymous and typed objects as dynamic objects with inline traits (an empty key,
 * which AMF3 uses as the end of dynamic members, is written as the one sealed member), integers in
 * [-2^28, 2^28) as U29 integers and every other number as a double, and uses the string reference table.
 */

import {
  AmfEcmaArray,
  AmfReader,
  AmfTypedObject,
  ByteWriter,
  checkEncodeDepth,
  pushBounded,
  setAmfProperty,
  type AmfLimits,
  type AmfObject,
  type AmfValue,
  type RefEntry,
} from './amf.js';
import { RtmpProtocolError } from './errors.js';

/** AMF3 type markers [AMF3 3.1]. */
const Amf3Marker = {
  Undefined: 0x00,
  Null: 0x01,
  False: 0x02,
  True: 0x03,
  Integer: 0x04,
  Double: 0x05,
  String: 0x06,
  XmlDocument: 0x07,
  Date: 0x08,
  Array: 0x09,
  Object: 0x0a,
  Xml: 0x0b,
  ByteArray: 0x0c,
  VectorInt: 0x0d,
  VectorUint: 0x0e,
  VectorDouble: 0x0f,
  VectorObject: 0x10,
  Dictionary: 0x11,
} as const;

/** U29 range: 29-bit unsigned; AMF3 integers are its signed interpretation. */
const U29_MAX = 0x1fffffff;
const INT29_MIN = -0x10000000;
const INT29_MAX = 0x0fffffff;
const INT29_SIGN_BIT = 0x10000000;
/** Low bit of a U29 header: 1 = inline value, 0 = reference (index in the remaining bits). */
const U29_INLINE = 0x01;
/** U29O-traits flags (after the inline bit): inline traits, externalizable, dynamic; sealed count from bit 4. */
const TRAITS_INLINE = 0x02;
const TRAITS_EXTERNALIZABLE = 0x04;
const TRAITS_DYNAMIC = 0x08;
const TRAITS_SEALED_SHIFT = 4;
/** The empty string: an inline string of length 0 (never stored in or read from the string table). */
const EMPTY_STRING = 0x01;

interface Traits {
  className: string;
  sealed: string[];
  dynamic: boolean;
  /** Decoded size charged again for every object reusing these traits: class name and member name bytes. */
  keyBytes: number;
}

/** @internal Reference tables of one top-level AMF3 value. */
interface Amf3Tables {
  strings: string[];
  stringBytes: number[];
  objects: RefEntry[];
  traits: Traits[];
}

/** @internal */
export function newAmf3Tables(): Amf3Tables {
  return { strings: [], stringBytes: [], objects: [], traits: [] };
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes one AMF3 value (no leading 0x11) at `offset` with fresh reference tables.
 * Throws RtmpProtocolError on malformed, truncated or over-limit input.
 */
export function decodeAmf3(
  buf: Buffer,
  offset: number,
  limits?: Partial<AmfLimits>,
): { value: AmfValue; offset: number } {
  const r = new AmfReader(buf, offset, limits);
  const value = readAmf3Value(r, 1, newAmf3Tables());
  return { value, offset: r.pos };
}

/** Variable-length unsigned 29-bit integer: 1-3 bytes of 7 bits with a continuation bit, then a full 4th byte. */
function readU29(r: AmfReader): number {
  let b = r.u8();
  if (b < 0x80) return b;
  let v = (b & 0x7f) << 7;
  b = r.u8();
  if (b < 0x80) return v | b;
  v = (v | (b & 0x7f)) << 7;
  b = r.u8();
  if (b < 0x80) return v | b;
  v = (v | (b & 0x7f)) << 8;
  return v | r.u8();
}

/**
 * @internal Reads one AMF3 value whose containers (if any) sit at nesting level `depth` (top level = 1).
 */
export function readAmf3Value(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const marker = r.u8();
  switch (marker) {
    case Amf3Marker.Undefined:
      r.addSize(1);
      return undefined;
    case Amf3Marker.Null:
      r.addSize(1);
      return null;
    case Amf3Marker.False:
      r.addSize(1);
      return false;
    case Amf3Marker.True:
      r.addSize(1);
      return true;
    case Amf3Marker.Integer: {
      r.addSize(1);
      const v = readU29(r);
      return v & INT29_SIGN_BIT ? v - (U29_MAX + 1) : v;
    }
    case Amf3Marker.Double:
      r.addSize(1);
      return r.f64();
    case Amf3Marker.String:
      r.addSize(1);
      return readStringVr(r, t);
    case Amf3Marker.XmlDocument:
    case Amf3Marker.Xml:
      return readXml(r, depth, t);
    case Amf3Marker.Date:
      return readDate(r, depth, t);
    case Amf3Marker.Array:
      return readArray(r, depth, t);
    case Amf3Marker.Object:
      return readObject(r, depth, t);
    case Amf3Marker.ByteArray:
      return readByteArray(r, depth, t);
    case Amf3Marker.VectorInt:
      return readNumberVector(r, depth, t, () => r.i32());
    case Amf3Marker.VectorUint:
      return readNumberVector(r, depth, t, () => r.u32());
    case Amf3Marker.VectorDouble:
      return readNumberVector(r, depth, t, () => r.f64(), 8);
    case Amf3Marker.VectorObject:
      return readObjectVector(r, depth, t);
    case Amf3Marker.Dictionary:
      return readDictionary(r, depth, t);
    default:
      throw new RtmpProtocolError('amf_bad_marker', `unknown AMF3 marker 0x${marker.toString(16)}`);
  }
}

/** UTF-8-vr: inline string (added to the string table unless empty) or a string-table reference. */
function readStringVr(r: AmfReader, t: Amf3Tables): string {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) {
    const index = header >>> 1;
    const s = t.strings[index];
    if (s === undefined) {
      throw new RtmpProtocolError('amf_bad_reference', `AMF3 string reference ${index} of ${t.strings.length}`);
    }
    r.addSize(t.stringBytes[index]!);
    return s;
  }
  const length = header >>> 1;
  if (length === 0) return '';
  const s = r.utf8(length);
  pushBounded(t.strings, s);
  t.stringBytes.push(length);
  return s;
}

function readXml(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  const length = header >>> 1;
  r.addSize(1);
  const s = r.utf8(length);
  r.addLeaf(s, 1 + length, t.objects);
  return s;
}

function readDate(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  r.addSize(1);
  const date = new Date(r.f64());
  r.addLeaf(date, 1, t.objects);
  return date;
}

function readByteArray(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  const length = header >>> 1;
  r.addSize(1);
  const bytes = r.bytes(length);
  r.addLeaf(bytes, 1 + length, t.objects);
  return bytes;
}

function readArray(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  const denseCount = header >>> 1;
  r.checkCount(denseCount, 1);
  // The array takes its table index now; its final JavaScript shape is known only after the associative part.
  const entry = r.openContainer(depth, null, t.objects);
  let assoc: Record<string, AmfValue> | undefined;
  let items = denseCount;
  for (;;) {
    const key = readStringVr(r, t);
    if (key === '') break;
    r.checkItems(++items);
    assoc ??= {};
    setAmfProperty(assoc, key, readAmf3Value(r, depth + 1, t));
  }
  let value: AmfValue;
  if (assoc === undefined) {
    const dense: AmfValue[] = [];
    for (let i = 0; i < denseCount; i++) dense.push(readAmf3Value(r, depth + 1, t));
    value = dense;
  } else {
    for (let i = 0; i < denseCount; i++) setAmfProperty(assoc, String(i), readAmf3Value(r, depth + 1, t));
    value = new AmfEcmaArray(assoc);
  }
  entry.value = value;
  r.closeContainer(entry);
  return value;
}

function readObject(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  // Take the table index first so that the class and member names count towards this object's decoded size.
  const entry = r.openContainer(depth, null, t.objects);
  let traits: Traits;
  if ((header & TRAITS_INLINE) === 0) {
    const index = header >>> 2;
    const found = t.traits[index];
    if (found === undefined) {
      throw new RtmpProtocolError('amf_bad_reference', `AMF3 traits reference ${index} of ${t.traits.length}`);
    }
    traits = found;
    r.addSize(traits.keyBytes);
  } else if ((header & TRAITS_EXTERNALIZABLE) !== 0) {
    throw new RtmpProtocolError('amf3_externalizable', 'AMF3 externalizable objects are not supported');
  } else {
    traits = readTraits(r, t, header);
  }
  const props: AmfObject = {};
  const value = traits.className === '' ? props : new AmfTypedObject(traits.className, props);
  entry.value = value;
  for (const name of traits.sealed) setAmfProperty(props, name, readAmf3Value(r, depth + 1, t));
  if (traits.dynamic) {
    let items = traits.sealed.length;
    for (;;) {
      const key = readStringVr(r, t);
      if (key === '') break;
      r.checkItems(++items);
      setAmfProperty(props, key, readAmf3Value(r, depth + 1, t));
    }
  }
  r.closeContainer(entry);
  return value;
}

function readTraits(r: AmfReader, t: Amf3Tables, header: number): Traits {
  const sizeBefore = r.decodedSize;
  const className = readStringVr(r, t);
  const sealedCount = header >>> TRAITS_SEALED_SHIFT;
  r.checkCount(sealedCount, 2); // every sealed member needs a name and a value, at least 1 byte each
  const sealed: string[] = [];
  for (let i = 0; i < sealedCount; i++) sealed.push(readStringVr(r, t));
  const traits: Traits = {
    className,
    sealed,
    dynamic: (header & TRAITS_DYNAMIC) !== 0,
    keyBytes: r.decodedSize - sizeBefore,
  };
  pushBounded(t.traits, traits);
  return traits;
}

function readNumberVector(r: AmfReader, depth: number, t: Amf3Tables, readItem: () => number, itemBytes = 4): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  const count = header >>> 1;
  r.u8(); // fixed-length flag: irrelevant once decoded
  r.checkCount(count, itemBytes);
  const items: number[] = [];
  const entry = r.openContainer(depth, items, t.objects);
  r.addSize(count);
  for (let i = 0; i < count; i++) items.push(readItem());
  r.closeContainer(entry);
  return items;
}

function readObjectVector(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  const count = header >>> 1;
  r.u8(); // fixed-length flag
  const items: AmfValue[] = [];
  const entry = r.openContainer(depth, items, t.objects);
  readStringVr(r, t); // element type name ("" or "*" for Object): not kept
  r.checkCount(count, 1);
  for (let i = 0; i < count; i++) items.push(readAmf3Value(r, depth + 1, t));
  r.closeContainer(entry);
  return items;
}

function readDictionary(r: AmfReader, depth: number, t: Amf3Tables): AmfValue {
  const header = readU29(r);
  if ((header & U29_INLINE) === 0) return r.resolve(t.objects, header >>> 1, depth);
  const count = header >>> 1;
  r.u8(); // weak-keys flag
  r.checkCount(count, 2);
  const map = new Map<AmfValue, AmfValue>();
  const entry = r.openContainer(depth, map, t.objects);
  for (let i = 0; i < count; i++) {
    const key = readAmf3Value(r, depth + 1, t);
    map.set(key, readAmf3Value(r, depth + 1, t));
  }
  r.closeContainer(entry);
  return map;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Encodes one AMF3 value (without the AMF0 avmplus marker). Throws TypeError/RangeError for unencodable values. */
export function encodeAmf3(value: AmfValue): Buffer {
  const w = new ByteWriter();
  writeAmf3Value(w, value, 1);
  return w.toBuffer();
}

/** @internal Writes one AMF3 value with a fresh string table (used by the AMF0 encoder after 0x11). */
export function writeAmf3Value(w: ByteWriter, value: AmfValue, depth: number): void {
  new Amf3Writer(w).value(value, depth);
}

function writeU29(w: ByteWriter, v: number): void {
  if (v < 0x80) {
    w.u8(v);
  } else if (v < 0x4000) {
    w.u8((v >>> 7) | 0x80);
    w.u8(v & 0x7f);
  } else if (v < 0x200000) {
    w.u8((v >>> 14) | 0x80);
    w.u8(((v >>> 7) & 0x7f) | 0x80);
    w.u8(v & 0x7f);
  } else if (v <= U29_MAX) {
    w.u8((v >>> 22) | 0x80);
    w.u8(((v >>> 15) & 0x7f) | 0x80);
    w.u8(((v >>> 8) & 0x7f) | 0x80);
    w.u8(v & 0xff);
  } else {
    throw new RangeError(`AMF3 length or count ${v} exceeds the U29 range`);
  }
}

/** U29 header of an inline value carrying a length or count. */
function writeInlineHeader(w: ByteWriter, n: number): void {
  if (n > U29_MAX >>> 1) throw new RangeError(`AMF3 length or count ${n} exceeds the U29 range`);
  writeU29(w, n * 2 + U29_INLINE);
}

class Amf3Writer {
  private readonly strings = new Map<string, number>();

  constructor(private readonly w: ByteWriter) {}

  value(v: AmfValue, depth: number): void {
    const w = this.w;
    switch (typeof v) {
      case 'undefined':
        w.u8(Amf3Marker.Undefined);
        return;
      case 'boolean':
        w.u8(v ? Amf3Marker.True : Amf3Marker.False);
        return;
      case 'number':
        if (Number.isInteger(v) && v >= INT29_MIN && v <= INT29_MAX && !Object.is(v, -0)) {
          w.u8(Amf3Marker.Integer);
          writeU29(w, v & U29_MAX);
        } else {
          w.u8(Amf3Marker.Double);
          w.f64(v);
        }
        return;
      case 'string':
        w.u8(Amf3Marker.String);
        this.stringVr(v);
        return;
      case 'object':
        if (v === null) {
          w.u8(Amf3Marker.Null);
          return;
        }
        checkEncodeDepth(depth);
        if (Array.isArray(v)) return this.denseArray(v, depth);
        if (v instanceof Date) {
          w.u8(Amf3Marker.Date);
          w.u8(U29_INLINE);
          w.f64(v.getTime());
          return;
        }
        if (v instanceof Uint8Array) {
          w.u8(Amf3Marker.ByteArray);
          writeInlineHeader(w, v.length);
          w.bytes(v);
          return;
        }
        if (v instanceof Map) return this.dictionary(v, depth);
        if (v instanceof AmfEcmaArray) return this.associativeArray(v.entries, depth);
        if (v instanceof AmfTypedObject) return this.object(v.className, v.props, depth);
        return this.object('', v, depth);
      default:
        throw new TypeError(`cannot encode a ${typeof v} as AMF3`);
    }
  }

  private stringVr(s: string): void {
    const w = this.w;
    if (s === '') {
      w.u8(EMPTY_STRING);
      return;
    }
    const index = this.strings.get(s);
    if (index !== undefined) {
      writeU29(w, index * 2); // reference: inline bit clear
      return;
    }
    const n = Buffer.byteLength(s, 'utf8');
    writeInlineHeader(w, n);
    w.utf8(s, n);
    this.strings.set(s, this.strings.size);
  }

  private denseArray(items: AmfValue[], depth: number): void {
    this.w.u8(Amf3Marker.Array);
    writeInlineHeader(this.w, items.length);
    this.w.u8(EMPTY_STRING); // no associative part
    for (let i = 0; i < items.length; i++) this.value(items[i], depth + 1);
  }

  private associativeArray(entries: Record<string, AmfValue>, depth: number): void {
    this.w.u8(Amf3Marker.Array);
    writeInlineHeader(this.w, 0);
    for (const key of Object.keys(entries)) {
      if (key === '') throw new RangeError('AMF3 cannot encode an empty key in an associative array');
      this.stringVr(key);
      this.value(entries[key], depth + 1);
    }
    this.w.u8(EMPTY_STRING);
  }

  private object(className: string, props: AmfObject, depth: number): void {
    const w = this.w;
    const keys = Object.keys(props);
    const sealed = Object.hasOwn(props, '') ? [''] : [];
    w.u8(Amf3Marker.Object);
    writeU29(w, (sealed.length << TRAITS_SEALED_SHIFT) | TRAITS_DYNAMIC | TRAITS_INLINE | U29_INLINE);
    this.stringVr(className);
    for (const name of sealed) this.stringVr(name);
    for (const name of sealed) this.value(props[name], depth + 1);
    for (const key of keys) {
      if (key === '') continue;
      this.stringVr(key);
      this.value(props[key], depth + 1);
    }
    w.u8(EMPTY_STRING);
  }

  private dictionary(map: Map<AmfValue, AmfValue>, depth: number): void {
    this.w.u8(Amf3Marker.Dictionary);
    writeInlineHeader(this.w, map.size);
    this.w.u8(0); // weak keys: no
    for (const [key, value] of map) {
      this.value(key, depth + 1);
      this.value(value, depth + 1);
    }
  }
}

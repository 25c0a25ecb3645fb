/**
 * AMF0 codec [AMF0 spec, section 2], the encoding of RTMP command (type 20) and data (type 18) messages, plus the
 * decoder for AMF3-flavoured messages (types 15/17: format byte 0x00, then AMF0 values that may switch to AMF3).
 *
 * Decoding rules (see amf.ts for the value model and AmfLimits):
 * - Every container (object, ECMA array, strict array, typed object) counts one nesting level; deeper than
 *   maxDepth fails with 'amf_depth' before recursing further, so hostile 70 000-level inputs fail in microseconds.
 * - Declared lengths and counts are checked against the remaining bytes before anything is allocated.
 * - The ECMA array count is only a hint (as in FFmpeg): entries are read until the 00 00 09 end marker. If the
 *   buffer ends exactly where the next key (or the end marker's 09) would start, the ECMA array is closed there, as
 *   FFmpeg's parser does; this never reads past the buffer.
 * - 0x07 references resolve against the complex values (objects, typed objects, ECMA and strict arrays) decoded
 *   earlier in the same decode call, in the order they started. A reference returns the same JavaScript object,
 *   is charged its full depth and decoded size, and may not point at a value still being decoded (no cycles).
 * - 0x0D unsupported decodes to undefined; 0x0C long strings and 0x0F XML documents decode to strings; the date
 *   time-zone field is ignored; 0x04 movieclip, 0x0E recordset, 0x09 outside an object and unknown markers fail
 *   with 'amf_bad_marker'.
 *
 * Encoding: numbers as 0x00, strings as 0x02 (0x0C above 65535 UTF-8 bytes), arrays as strict arrays, Date as 0x0B
 * (time zone 0), AmfEcmaArray as 0x08, AmfTypedObject as 0x10, other objects as anonymous 0x03 objects; Buffer and
 * Map (AMF3-only types), and objects or ECMA arrays with a key or class name longer than 65535 UTF-8 bytes (only AMF3 can carry
 * them), are written as 0x11 followed by the AMF3 value: whatever the decoders return re-encodes as AMF0.
 * Unencodable values (bigint, symbol, function) throw TypeError; nesting beyond AMF_MAX_SUPPORTED_DEPTH (cycles)
 * throws RangeError.
 */

import {
  AmfEcmaArray,
  AmfReader,
  AmfTypedObject,
  ByteWriter,
  checkEncodeDepth,
  setAmfProperty,
  type AmfLimits,
  type AmfObject,
  type AmfValue,
} from './amf.js';
import { newAmf3Tables, readAmf3Value, writeAmf3Value } from './amf3.js';
import { RtmpProtocolError } from './errors.js';

/** AMF0 type markers [AMF0 2.1]. */
const Amf0Marker = {
  Number: 0x00,
  Boolean: 0x01,
  String: 0x02,
  Object: 0x03,
  MovieClip: 0x04, // reserved, not supported
  Null: 0x05,
  Undefined: 0x06,
  Reference: 0x07,
  EcmaArray: 0x08,
  ObjectEnd: 0x09,
  StrictArray: 0x0a,
  Date: 0x0b,
  LongString: 0x0c,
  Unsupported: 0x0d,
  RecordSet: 0x0e, // reserved, not supported
  XmlDocument: 0x0f,
  TypedObject: 0x10,
  AvmPlus: 0x11, // switch to AMF3 for one value
} as const;

/** Longest string that fits the u16 length of 0x02 strings and object keys. */
const MAX_SHORT_STRING_BYTES = 0xffff;
const MAX_LONG_STRING_BYTES = 0xffffffff;
/** The byte that starts type 15/17 payloads. */
const AMF3_MESSAGE_FORMAT_BYTE = 0x00;

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/** Decodes all AMF0 values until the end of `buf` (one reference table for the whole message). */
export function decodeAmf0(buf: Buffer, limits?: Partial<AmfLimits>): AmfValue[] {
  return readSequence(new AmfReader(buf, 0, limits));
}

/** Decodes one AMF0 value at `offset` (with its own reference table); returns it and the offset after it. */
export function decodeAmf0Value(
  buf: Buffer,
  offset: number,
  limits?: Partial<AmfLimits>,
): { value: AmfValue; offset: number } {
  const r = new AmfReader(buf, offset, limits);
  const value = readAmf0Value(r, 1);
  return { value, offset: r.pos };
}

/**
 * Decodes a type 15 (data AMF3) or 17 (command AMF3) payload: skips the leading format byte when it is 0x00, then
 * decodes AMF0 values (each of which may be an avmplus 0x11 switch to one AMF3 value) until the end of `buf`.
 * A payload not starting with 0x00 is decoded as plain AMF0 (commands and data start with a 0x02 string).
 */
export function decodeAmf3MessagePayload(buf: Buffer, limits?: Partial<AmfLimits>): AmfValue[] {
  const start = buf.length > 0 && buf[0] === AMF3_MESSAGE_FORMAT_BYTE ? 1 : 0;
  return readSequence(new AmfReader(buf, start, limits));
}

function readSequence(r: AmfReader): AmfValue[] {
  const values: AmfValue[] = [];
  while (r.remaining > 0) {
    r.checkItems(values.length + 1);
    values.push(readAmf0Value(r, 1));
  }
  return values;
}

/** Reads one AMF0 value whose containers (if any) sit at nesting level `depth` (top level = 1). */
function readAmf0Value(r: AmfReader, depth: number): AmfValue {
  const marker = r.u8();
  switch (marker) {
    case Amf0Marker.Number:
      r.addSize(1);
      return r.f64();
    case Amf0Marker.Boolean:
      r.addSize(1);
      return r.u8() !== 0;
    case Amf0Marker.String:
      r.addSize(1);
      return r.utf8(r.u16());
    case Amf0Marker.LongString:
    case Amf0Marker.XmlDocument:
      r.addSize(1);
      return r.utf8(r.u32());
    case Amf0Marker.Null:
      r.addSize(1);
      return null;
    case Amf0Marker.Undefined:
    case Amf0Marker.Unsupported:
      r.addSize(1);
      return undefined;
    case Amf0Marker.Date: {
      r.addSize(1);
      const ms = r.f64();
      r.skip(2); // time zone (s16 minutes): reserved, ignored
      return new Date(ms);
    }
    case Amf0Marker.Reference:
      return r.resolve(r.amf0Refs, r.u16(), depth);
    case Amf0Marker.Object: {
      const props: AmfObject = {};
      const entry = r.openContainer(depth, props, r.amf0Refs);
      readProperties(r, depth, props, false);
      r.closeContainer(entry);
      return props;
    }
    case Amf0Marker.TypedObject: {
      const entry = r.openContainer(depth, null, r.amf0Refs);
      const props: AmfObject = {};
      const value = new AmfTypedObject(r.utf8(r.u16()), props);
      entry.value = value;
      readProperties(r, depth, props, false);
      r.closeContainer(entry);
      return value;
    }
    case Amf0Marker.EcmaArray: {
      r.skip(4); // entry count: a hint only, never trusted or used to allocate
      const value = new AmfEcmaArray({});
      const entry = r.openContainer(depth, value, r.amf0Refs);
      readProperties(r, depth, value.entries, true);
      r.closeContainer(entry);
      return value;
    }
    case Amf0Marker.StrictArray: {
      const count = r.u32();
      r.checkCount(count, 1);
      const items: AmfValue[] = [];
      const entry = r.openContainer(depth, items, r.amf0Refs);
      for (let i = 0; i < count; i++) items.push(readAmf0Value(r, depth + 1));
      r.closeContainer(entry);
      return items;
    }
    case Amf0Marker.AvmPlus:
      return readAmf3Value(r, depth, newAmf3Tables());
    default:
      throw new RtmpProtocolError('amf_bad_marker', `unexpected AMF0 marker 0x${marker.toString(16)}`);
  }
}

/** Key/value pairs until the empty key followed by 0x09. */
function readProperties(r: AmfReader, depth: number, target: AmfObject, tolerateMissingEnd: boolean): void {
  let items = 0;
  for (;;) {
    if (tolerateMissingEnd && atTruncatedEnd(r)) return;
    const keyLength = r.u16();
    if (keyLength === 0 && r.peekU8() === Amf0Marker.ObjectEnd) {
      r.skip(1);
      return;
    }
    const key = r.utf8(keyLength);
    r.checkItems(++items);
    setAmfProperty(target, key, readAmf0Value(r, depth + 1));
  }
}

/**
 * FFmpeg's tolerance for ECMA arrays that lack their end marker at the end of the message: its u16 key-length read
 * yields 0 at the end of the buffer and it stops. Accept nothing left, or exactly a trailing 00 00 without the 09.
 */
function atTruncatedEnd(r: AmfReader): boolean {
  const left = r.remaining;
  if (left === 0) return true;
  if (left === 2 && r.buf[r.pos] === 0 && r.buf[r.pos + 1] === 0) {
    r.skip(2);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Encodes the values one after another (e.g. a command: name, transaction id, command object, arguments). */
export function encodeAmf0(...values: AmfValue[]): Buffer {
  const w = new ByteWriter();
  for (const v of values) writeAmf0Value(w, v, 1);
  return w.toBuffer();
}

function writeAmf0Value(w: ByteWriter, v: AmfValue, depth: number): void {
  switch (typeof v) {
    case 'number':
      w.u8(Amf0Marker.Number);
      w.f64(v);
      return;
    case 'boolean':
      w.u8(Amf0Marker.Boolean);
      w.u8(v ? 1 : 0);
      return;
    case 'string': {
      const n = Buffer.byteLength(v, 'utf8');
      if (n <= MAX_SHORT_STRING_BYTES) {
        w.u8(Amf0Marker.String);
        w.u16(n);
      } else if (n <= MAX_LONG_STRING_BYTES) {
        w.u8(Amf0Marker.LongString);
        w.u32(n);
      } else {
        throw new RangeError(`AMF0 string of ${n} bytes is too long`);
      }
      w.utf8(v, n);
      return;
    }
    case 'undefined':
      w.u8(Amf0Marker.Undefined);
      return;
    case 'object':
      if (v === null) {
        w.u8(Amf0Marker.Null);
        return;
      }
      checkEncodeDepth(depth);
      if (Array.isArray(v)) {
        w.u8(Amf0Marker.StrictArray);
        w.u32(v.length);
        for (let i = 0; i < v.length; i++) writeAmf0Value(w, v[i], depth + 1);
        return;
      }
      if (v instanceof Date) {
        w.u8(Amf0Marker.Date);
        w.f64(v.getTime());
        w.u16(0); // time zone
        return;
      }
      if (v instanceof AmfEcmaArray) {
        const keys = Object.keys(v.entries);
        if (!fitsShortStrings(keys, '')) return writeAvmPlus(w, v, depth);
        w.u8(Amf0Marker.EcmaArray);
        w.u32(keys.length);
        writeProperties(w, v.entries, keys, depth);
        return;
      }
      if (v instanceof Uint8Array || v instanceof Map) return writeAvmPlus(w, v, depth);
      if (v instanceof AmfTypedObject) {
        const keys = Object.keys(v.props);
        if (!fitsShortStrings(keys, v.className)) return writeAvmPlus(w, v, depth);
        w.u8(Amf0Marker.TypedObject);
        writeKey(w, v.className);
        writeProperties(w, v.props, keys, depth);
        return;
      }
      {
        const keys = Object.keys(v);
        if (!fitsShortStrings(keys, '')) return writeAvmPlus(w, v, depth);
        w.u8(Amf0Marker.Object);
        writeProperties(w, v, keys, depth);
        return;
      }
    default:
      throw new TypeError(`cannot encode a ${typeof v} as AMF0`);
  }
}

/** One value in AMF3 after the 0x11 switch (AMF3-only types, or objects whose keys do not fit AMF0). */
function writeAvmPlus(w: ByteWriter, v: AmfValue, depth: number): void {
  w.u8(Amf0Marker.AvmPlus);
  writeAmf3Value(w, v, depth);
}

/**
 * Whether every key (and the class name) fits a u16 length. Objects decoded from AMF3 may carry longer keys; they
 * are written through the avmplus switch instead, so that anything the decoders return can be re-encoded as AMF0.
 * A UTF-16 unit takes at most 3 UTF-8 bytes, so only keys longer than 21845 units need measuring.
 */
function fitsShortStrings(keys: string[], className: string): boolean {
  const fits = (s: string) =>
    s.length <= MAX_SHORT_STRING_BYTES / 3 || Buffer.byteLength(s, 'utf8') <= MAX_SHORT_STRING_BYTES;
  return fits(className) && keys.every(fits);
}

/** UTF-8 with a u16 length and no marker: object keys and typed-object class names. */
function writeKey(w: ByteWriter, key: string): void {
  const n = Buffer.byteLength(key, 'utf8');
  if (n > MAX_SHORT_STRING_BYTES) throw new RangeError(`AMF0 key of ${n} bytes exceeds 65535`);
  w.u16(n);
  w.utf8(key, n);
}

function writeProperties(w: ByteWriter, props: AmfObject, keys: string[], depth: number): void {
  for (const key of keys) {
    writeKey(w, key);
    writeAmf0Value(w, props[key], depth + 1);
  }
  w.u16(0);
  w.u8(Amf0Marker.ObjectEnd);
}

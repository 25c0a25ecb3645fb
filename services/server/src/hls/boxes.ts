/**
 * ISO BMFF (ISO/IEC 14496-12) box writing: a box is a 32-bit size, a FourCC and its payload; a full box adds a
 * version byte and 24 bits of flags. Payloads are built from small big-endian field writers. Everything here is
 * pure: bytes in, bytes out.
 */

/** One payload piece: raw bytes, or a nested box already written. */
export type BoxPart = Buffer | Uint8Array;

/** A box: size (header included), type, then the parts in order. */
export function box(type: string, ...parts: readonly BoxPart[]): Buffer {
  let size = 8;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(size, 0);
  out.write(type, 4, 4, 'latin1');
  let pos = 8;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** A full box: version (8 bits) and flags (24 bits) before the parts. */
export function fullBox(type: string, version: number, flags: number, ...parts: readonly BoxPart[]): Buffer {
  return box(type, u8(version), u24(flags), ...parts);
}

export function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}

export function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v & 0xffff, 0);
  return b;
}

export function u24(v: number): Buffer {
  const b = Buffer.allocUnsafe(3);
  b.writeUIntBE(v & 0xffffff, 0, 3);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

export function i32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v | 0, 0);
  return b;
}

/** 64-bit unsigned (media times past 2^32 ticks: 90 kHz wraps after 13 hours). */
export function u64(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(v))), 0);
  return b;
}

export function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}

/** A FourCC or other fixed ASCII field. */
export function ascii(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** 16.16 fixed point. */
export function fixed16(v: number): Buffer {
  return u32(Math.round(v * 0x10000));
}

/** The unity transformation matrix of mvhd/tkhd. */
export const UNITY_MATRIX: Buffer = Buffer.concat(
  [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000].map((v) => u32(v)),
);

/** Byte-level helpers for data messages: publishers send `@setDataFrame onMetaData {...}`, players get `onMetaData {...}`. */

const AMF0_STRING_MARKER = 0x02;

function amf0StringAt(payload: Buffer, offset: number): { value: string; end: number } | undefined {
  if (payload.length < offset + 3 || payload[offset] !== AMF0_STRING_MARKER) return undefined;
  const len = payload.readUInt16BE(offset + 1);
  const end = offset + 3 + len;
  if (end > payload.length) return undefined;
  return { value: payload.toString('utf8', offset + 3, end), end };
}

/** Removes a leading `@setDataFrame` string without re-encoding the rest (a subarray, no copy). */
export function stripSetDataFrame(payload: Buffer): Buffer {
  const first = amf0StringAt(payload, 0);
  return first?.value === '@setDataFrame' ? payload.subarray(first.end) : payload;
}

export function isClearDataFrame(payload: Buffer): boolean {
  return amf0StringAt(payload, 0)?.value === '@clearDataFrame';
}

export function isMetadataPayload(payload: Buffer): boolean {
  return amf0StringAt(payload, 0)?.value === 'onMetaData';
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { decodeAmf0, decodeAmf0Value, decodeAmf3MessagePayload, encodeAmf0 } from '../src/amf0.js';
import { decodeAmf3, encodeAmf3 } from '../src/amf3.js';
import {
  AMF_MAX_SUPPORTED_DEPTH,
  AmfEcmaArray,
  AmfTypedObject,
  DEFAULT_AMF_LIMITS,
  amfProperties,
  isAmfObject,
  type AmfValue,
} from '../src/amf.js';
import { RtmpProtocolError } from '../src/errors.js';

const hex = (...parts: string[]): Buffer => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');

/** Asserts that fn throws an RtmpProtocolError, with the given reason when one is given. */
function throwsProtocol(fn: () => unknown, reason?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RtmpProtocolError, `expected RtmpProtocolError, got ${String(err)}`);
    if (reason !== undefined) assert.equal(err.reason, reason, err.message);
    return true;
  });
}

/** Runs fn and rethrows anything that is not an RtmpProtocolError. Returns the result or undefined. */
function onlyProtocolErrors<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RtmpProtocolError) return undefined;
    throw err;
  }
}

function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-exact fixtures (hex built independently of the encoder, from the AMF0 grammar)

/** FFmpeg 5.1 player connect (gen_connect for input): connect(1, {app, flashVer, tcUrl, fpad, capabilities, ...}). */
const FFMPEG_PLAY_CONNECT = hex(
  '020007636f6e6e656374003ff00000000000000300036170700200046c6976650008666c61736856657202000d4c4e58',
  '20392c302c3132342c320005746355726c02001a72746d703a2f2f6c6f63616c686f73743a313933352f6c6976650004',
  '667061640100000c6361706162696c697469657300402e000000000000000b617564696f436f646563730040afce0000',
  '000000000b766964656f436f6465637300406f800000000000000d766964656f46756e6374696f6e003ff00000000000',
  '00000009',
);
const FFMPEG_PLAY_CONNECT_VALUES: AmfValue[] = [
  'connect',
  1,
  {
    app: 'live',
    flashVer: 'LNX 9,0,124,2',
    tcUrl: 'rtmp://localhost:1935/live',
    fpad: false,
    capabilities: 15,
    audioCodecs: 4071,
    videoCodecs: 252,
    videoFunction: 1,
  },
];

const CONNECT_RESULT = hex(
  '0200075f726573756c74003ff0000000000000030006666d7356657202000d464d532f332c302c312c313233000c6361',
  '706162696c697469657300403f00000000000000046d6f6465003ff00000000000000000090300056c6576656c020006',
  '7374617475730004636f646502001d4e6574436f6e6e656374696f6e2e436f6e6e6563742e53756363657373000b6465',
  '736372697074696f6e020015436f6e6e656374696f6e207375636365656465642e000e6f626a656374456e636f64696e',
  '67000000000000000000000009',
);
const CONNECT_RESULT_VALUES: AmfValue[] = [
  '_result',
  1,
  { fmsVer: 'FMS/3,0,1,123', capabilities: 31, mode: 1 },
  {
    level: 'status',
    code: 'NetConnection.Connect.Success',
    description: 'Connection succeeded.',
    objectEncoding: 0,
  },
];

/** FFmpeg flvenc-style "@setDataFrame" onMetaData with a 13-entry ECMA array. */
const ON_METADATA = hex(
  '02000d40736574446174614672616d6502000a6f6e4d65746144617461080000000d00086475726174696f6e00000000',
  '0000000000000577696474680040940000000000000006686569676874004086800000000000000d766964656f646174',
  '61726174650040a388000000000000096672616d657261746500403e000000000000000c766964656f636f6465636964',
  '00401c000000000000000d617564696f6461746172617465004060000000000000000f617564696f73616d706c657261',
  '74650040e5888000000000000f617564696f73616d706c6573697a65004030000000000000000673746572656f010100',
  '0c617564696f636f64656369640040240000000000000007656e636f64657202000d4c61766635392e32372e31303000',
  '0866696c6573697a65000000000000000000000009',
);
const ON_METADATA_VALUES: AmfValue[] = [
  '@setDataFrame',
  'onMetaData',
  new AmfEcmaArray({
    duration: 0,
    width: 1280,
    height: 720,
    videodatarate: 2500,
    framerate: 30,
    videocodecid: 7,
    audiodatarate: 128,
    audiosamplerate: 44100,
    audiosamplesize: 16,
    stereo: true,
    audiocodecid: 10,
    encoder: 'Lavf59.27.100',
    filesize: 0,
  }),
];

const AMF0_FIXTURES: Array<[string, Buffer, AmfValue[]]> = [
  ['FFmpeg play connect', FFMPEG_PLAY_CONNECT, FFMPEG_PLAY_CONNECT_VALUES],
  ['connect _result', CONNECT_RESULT, CONNECT_RESULT_VALUES],
  ['@setDataFrame onMetaData', ON_METADATA, ON_METADATA_VALUES],
];

describe('AMF0 fixtures', () => {
  for (const [name, bytes, values] of AMF0_FIXTURES) {
    it(`${name}: decodes and encodes byte-exactly`, () => {
      assert.deepStrictEqual(decodeAmf0(bytes), values);
      assert.deepStrictEqual(encodeAmf0(...values), bytes);
    });
  }

  it('decodeAmf0Value walks values by offset', () => {
    const out: AmfValue[] = [];
    let offset = 0;
    while (offset < CONNECT_RESULT.length) {
      const r = decodeAmf0Value(CONNECT_RESULT, offset);
      out.push(r.value);
      offset = r.offset;
    }
    assert.deepStrictEqual(out, CONNECT_RESULT_VALUES);
    assert.equal(offset, CONNECT_RESULT.length);
  });

  it('scalar markers', () => {
    assert.deepStrictEqual(decodeAmf0(hex('00 3ff8000000000000 0101 0100 05 06 0d')), [
      1.5,
      true,
      false,
      null,
      undefined,
      undefined,
    ]);
    assert.deepStrictEqual(encodeAmf0(1.5, true, false, null, undefined), hex('00 3ff8000000000000 0101 0100 05 06'));
    assert.deepStrictEqual(decodeAmf0(hex('0c 00000002 6869 0f 00000004 3c612f3e')), ['hi', '<a/>']);
    // date: f64 ms + s16 time zone (ignored)
    assert.deepStrictEqual(decodeAmf0(hex('0b 0000000000000000 ffc4')), [new Date(0)]);
    assert.deepStrictEqual(encodeAmf0(new Date(0)), hex('0b 0000000000000000 0000'));
    assert.deepStrictEqual(encodeAmf0(-0, NaN), hex('00 8000000000000000 00 7ff8000000000000'));
  });

  it('strict array, typed object, ECMA array', () => {
    const bytes = hex(
      '0a 00000002 0200016105',
      '10 0003 466f6f 0001 78 003ff0000000000000 000009',
      '08 00000000 000009',
    );
    const values = [['a', null], new AmfTypedObject('Foo', { x: 1 }), new AmfEcmaArray()];
    assert.deepStrictEqual(decodeAmf0(bytes), values);
    assert.deepStrictEqual(encodeAmf0(...values), bytes);
  });

  it('long strings switch to 0x0C above 65535 bytes', () => {
    const s = 'x'.repeat(70_000);
    const bytes = encodeAmf0(s);
    assert.equal(bytes[0], 0x0c);
    assert.equal(bytes.readUInt32BE(1), 70_000);
    assert.deepStrictEqual(decodeAmf0(bytes), [s]);
    assert.equal(encodeAmf0('y'.repeat(65_535))[0], 0x02);
    assert.equal(encodeAmf0('é'.repeat(32_768))[0], 0x0c); // 65536 UTF-8 bytes
  });

  it('empty key with a value is a property, empty key with 09 ends the object', () => {
    const bytes = hex('03 0000 0101 0000 09');
    assert.deepStrictEqual(decodeAmf0(bytes), [{ '': true }]);
    assert.deepStrictEqual(encodeAmf0({ '': true }), bytes);
  });

  it('references resolve to the same object', () => {
    // [ {a:1}, ref 1 ]: the strict array is entry 0, the object entry 1
    const bytes = hex('0a 00000002 03 0001 61 003ff0000000000000 000009 07 0001');
    const [arr] = decodeAmf0(bytes) as [AmfValue[]];
    assert.deepStrictEqual(arr, [{ a: 1 }, { a: 1 }]);
    assert.equal(arr[0], arr[1]);
  });

  it('avmplus 0x11 switches one value to AMF3', () => {
    const bytes = hex('02 0001 61', '11 0a 0b 01 03 62 04 05 01', '05');
    assert.deepStrictEqual(decodeAmf0(bytes), ['a', { b: 5 }, null]);
  });

  it('Buffer and Map are encoded through the avmplus switch', () => {
    const values: AmfValue[] = [{ data: Buffer.from([1, 2, 3]), dict: new Map<AmfValue, AmfValue>([['k', 1]]) }];
    const bytes = encodeAmf0(...values);
    assert.deepStrictEqual(bytes.subarray(0, 10), hex('03 0004 64617461 11 0c 07'));
    assert.deepStrictEqual(decodeAmf0(bytes), values);
  });

  it('onMetaData: the ECMA count is only a hint', () => {
    const lying = Buffer.from(ON_METADATA);
    const countAt = ON_METADATA.indexOf(hex('08 0000000d'));
    lying.writeUInt32BE(0xffffffff, countAt + 1);
    assert.deepStrictEqual(decodeAmf0(lying), ON_METADATA_VALUES);
    lying.writeUInt32BE(0, countAt + 1);
    assert.deepStrictEqual(decodeAmf0(lying), ON_METADATA_VALUES);
  });

  it('onMetaData: a missing ECMA end marker at the end of the message is tolerated (FFmpeg)', () => {
    assert.deepStrictEqual(decodeAmf0(ON_METADATA.subarray(0, -3)), ON_METADATA_VALUES);
    assert.deepStrictEqual(decodeAmf0(ON_METADATA.subarray(0, -1)), ON_METADATA_VALUES);
    // but not for anonymous objects, and not in the middle of a key or value
    throwsProtocol(() => decodeAmf0(FFMPEG_PLAY_CONNECT.subarray(0, -3)), 'amf_truncated');
    throwsProtocol(() => decodeAmf0(ON_METADATA.subarray(0, -2)), 'amf_truncated');
    throwsProtocol(() => decodeAmf0(ON_METADATA.subarray(0, -4)), 'amf_truncated');
  });

  it('amfProperties and isAmfObject accept both 0x08 and 0x03 metadata', () => {
    const meta = ON_METADATA_VALUES[2]!;
    assert.equal(amfProperties(meta)?.width, 1280);
    assert.equal(amfProperties({ width: 1 })?.width, 1);
    assert.equal(amfProperties(new AmfTypedObject('T', { width: 2 }))?.width, 2);
    assert.equal(amfProperties([1]), undefined);
    assert.equal(amfProperties(null), undefined);
    assert.ok(isAmfObject({}));
    for (const v of [null, [], new Date(0), meta, Buffer.alloc(0), new Map(), 'x', 1] as AmfValue[]) {
      assert.ok(!isAmfObject(v));
    }
  });

  it('encoding refuses cycles and unencodable types with programming errors', () => {
    const cyclic: Record<string, AmfValue> = {};
    cyclic.self = cyclic;
    assert.throws(() => encodeAmf0(cyclic), RangeError);
    assert.throws(() => encodeAmf3(cyclic), RangeError);
    assert.throws(() => encodeAmf0(10n as unknown as AmfValue), TypeError);
    assert.throws(() => encodeAmf3((() => 1) as unknown as AmfValue), TypeError);
  });

  it('objects with keys beyond 65535 bytes (AMF3-decoded) re-encode through the avmplus switch', () => {
    const longKey = 'k'.repeat(65_536);
    for (const v of [{ [longKey]: 1 }, new AmfTypedObject(longKey, { a: 1 }), new AmfEcmaArray({ [longKey]: 1 })]) {
      const bytes = encodeAmf0(v);
      assert.equal(bytes[0], 0x11);
      assert.deepStrictEqual(decodeAmf0(bytes), [v]);
    }
    assert.equal(encodeAmf0({ ['k'.repeat(65_535)]: 1 })[0], 0x03);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// AMF3

describe('AMF3 fixtures', () => {
  it('U29 integers at every length boundary, doubles outside the 29-bit range', () => {
    const cases: Array<[number, string]> = [
      [0, '04 00'],
      [1, '04 01'],
      [127, '04 7f'],
      [128, '04 8100'],
      [16_383, '04 ff7f'],
      [16_384, '04 818000'],
      [2_097_151, '04 ffff7f'],
      [2_097_152, '04 80c08000'],
      [268_435_455, '04 bfffffff'],
      [-1, '04 ffffffff'],
      [-268_435_456, '04 c0808000'],
      [268_435_456, '05 41b0000000000000'],
      [-268_435_457, '05 c1b0000001000000'],
      [-0, '05 8000000000000000'],
      [0.5, '05 3fe0000000000000'],
    ];
    for (const [n, h] of cases) {
      assert.deepStrictEqual(encodeAmf3(n), hex(h), `encode ${n}`);
      assert.deepStrictEqual(decodeAmf3(hex(h), 0), { value: n, offset: hex(h).length }, `decode ${n}`);
    }
  });

  it('simple markers, strings and the string reference table', () => {
    assert.deepStrictEqual(
      encodeAmf3(['foo', 'foo', '', null, undefined, true, false]),
      hex('09 0f 01 0607666f6f 0600 0601 01 00 03 02'),
    );
    assert.deepStrictEqual(decodeAmf3(hex('09 0f 01 0607666f6f 0600 0601 01 00 03 02'), 0).value, [
      'foo',
      'foo',
      '',
      null,
      undefined,
      true,
      false,
    ]);
  });

  it('anonymous dynamic object', () => {
    assert.deepStrictEqual(encodeAmf3({ a: 1 }), hex('0a 0b 01 0361 0401 01'));
    assert.deepStrictEqual(decodeAmf3(hex('0a 0b 01 0361 0401 01'), 0).value, { a: 1 });
  });

  it('sealed typed objects with a traits reference', () => {
    const bytes = hex('09 05 01', '0a 23 0350 0378 0379 0401 0402', '0a 01 0403 0404');
    assert.deepStrictEqual(decodeAmf3(bytes, 0).value, [
      new AmfTypedObject('P', { x: 1, y: 2 }),
      new AmfTypedObject('P', { x: 3, y: 4 }),
    ]);
  });

  it('object references return the same object', () => {
    const { value } = decodeAmf3(hex('09 05 01 0a0b0103610401 01 0a 02'), 0);
    const arr = value as AmfValue[];
    assert.deepStrictEqual(arr, [{ a: 1 }, { a: 1 }]);
    assert.equal(arr[0], arr[1]);
  });

  it('date, xml, xml-doc, byte array (copied), and their references', () => {
    const bytes = hex(
      '09 0d 01',
      '08 01 0000000000000000',
      '0b 09 3c612f3e',
      '07 03 78',
      '0c 07 010203',
      '08 02',
      '0c 08',
    );
    const value = decodeAmf3(bytes, 0).value as AmfValue[];
    assert.deepStrictEqual(value, [
      new Date(0),
      '<a/>',
      'x',
      Buffer.from([1, 2, 3]),
      new Date(0),
      Buffer.from([1, 2, 3]),
    ]);
    assert.equal(value[4], value[0]);
    assert.equal(value[5], value[3]);
    bytes.fill(0);
    assert.deepStrictEqual(value[3], Buffer.from([1, 2, 3]), 'the ByteArray is a copy of the input');
    assert.deepStrictEqual(encodeAmf3(new Date(0)), hex('08 01 0000000000000000'));
    assert.deepStrictEqual(encodeAmf3(Buffer.from([1, 2, 3])), hex('0c 07 010203'));
  });

  it('mixed arrays decode to AmfEcmaArray; associative arrays encode as AMF3 arrays', () => {
    // dense ["hi"], associative {a: 2}
    assert.deepStrictEqual(
      decodeAmf3(hex('09 03 0361 0402 01 06 05 6869'), 0).value,
      new AmfEcmaArray({ a: 2, 0: 'hi' }),
    );
    assert.deepStrictEqual(encodeAmf3(new AmfEcmaArray({ k: 1 })), hex('09 01 036b 0401 01'));
    assert.throws(() => encodeAmf3(new AmfEcmaArray({ '': 1 })), RangeError);
  });

  it('vectors decode to arrays, dictionaries to Map', () => {
    assert.deepStrictEqual(decodeAmf3(hex('0d 05 00 00000001 ffffffff'), 0).value, [1, -1]);
    assert.deepStrictEqual(decodeAmf3(hex('0e 03 01 ffffffff'), 0).value, [4_294_967_295]);
    assert.deepStrictEqual(decodeAmf3(hex('0f 03 00 3ff8000000000000'), 0).value, [1.5]);
    assert.deepStrictEqual(decodeAmf3(hex('10 05 00 01 0401 060361'), 0).value, [1, 'a']);
    assert.deepStrictEqual(decodeAmf3(hex('11 03 00 06036b 0405'), 0).value, new Map([['k', 5]]));
    assert.deepStrictEqual(encodeAmf3(new Map<AmfValue, AmfValue>([['k', 5]])), hex('11 03 00 06036b 0405'));
  });

  it('an empty key is encoded as the sealed member', () => {
    const bytes = encodeAmf3({ '': 1, b: 2 });
    assert.deepStrictEqual(bytes, hex('0a 1b 01 01 0401 0362 0402 01'));
    assert.deepStrictEqual(decodeAmf3(bytes, 0).value, { '': 1, b: 2 });
  });

  it('externalizable objects are rejected', () => {
    throwsProtocol(() => decodeAmf3(hex('0a 07 07 616263 00'), 0), 'amf3_externalizable');
  });

  it('decodeAmf3MessagePayload: type 17 connect with an AMF3 command object', () => {
    const payload = hex('00', '02 0007 636f6e6e656374', '00 3ff0000000000000', '11 0a 0b 01 07617070 06096c697665 01');
    assert.deepStrictEqual(decodeAmf3MessagePayload(payload), ['connect', 1, { app: 'live' }]);
    // without the format byte, and with an AMF0 number first after the format byte
    assert.deepStrictEqual(decodeAmf3MessagePayload(payload.subarray(1)), ['connect', 1, { app: 'live' }]);
    assert.deepStrictEqual(decodeAmf3MessagePayload(hex('00 00 3ff0000000000000')), [1]);
    assert.deepStrictEqual(decodeAmf3MessagePayload(Buffer.alloc(0)), []);
    // type 15 onMetaData as plain AMF0 after the format byte
    assert.deepStrictEqual(decodeAmf3MessagePayload(Buffer.concat([hex('00'), ON_METADATA])), ON_METADATA_VALUES);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Hostile inputs

const nestedStrictArrays = (levels: number): Buffer => hex('0a00000001'.repeat(levels) + '05');
const nestedObjects = (levels: number): Buffer => hex('03000161'.repeat(levels) + '05' + '000009'.repeat(levels));
const nestedEcma = (levels: number): Buffer => hex('0800000001000161'.repeat(levels) + '05' + '000009'.repeat(levels));
const nestedTyped = (levels: number): Buffer => hex('1000015400016b'.repeat(levels) + '05' + '000009'.repeat(levels));
const nestedAmf3Arrays = (levels: number): Buffer => hex('090301'.repeat(levels) + '01');
const nestedAmf3Objects = (levels: number): Buffer => hex('0a0b010361'.repeat(levels) + '01' + '01'.repeat(levels));
const nestedAmf3Dictionaries = (levels: number): Buffer => hex('110300 01'.repeat(levels) + '01');

describe('AMF hostile inputs: depth', () => {
  const amf0Shapes: Array<[string, (n: number) => Buffer]> = [
    ['strict arrays', nestedStrictArrays],
    ['objects', nestedObjects],
    ['ECMA arrays', nestedEcma],
    ['typed objects', nestedTyped],
    ['AMF3 arrays behind 0x11', (n) => Buffer.concat([hex('11'), nestedAmf3Arrays(n)])],
  ];
  for (const [name, build] of amf0Shapes) {
    it(`AMF0 ${name}: depth 32 accepted, 33 and 65 rejected`, () => {
      assert.equal(decodeAmf0(build(DEFAULT_AMF_LIMITS.maxDepth)).length, 1);
      throwsProtocol(() => decodeAmf0(build(DEFAULT_AMF_LIMITS.maxDepth + 1)), 'amf_depth');
      throwsProtocol(() => decodeAmf0(build(65)), 'amf_depth');
      assert.equal(decodeAmf0(build(65), { maxDepth: 65 }).length, 1);
    });
  }

  const amf3Shapes: Array<[string, (n: number) => Buffer]> = [
    ['arrays', nestedAmf3Arrays],
    ['objects', nestedAmf3Objects],
    ['dictionaries', nestedAmf3Dictionaries],
  ];
  for (const [name, build] of amf3Shapes) {
    it(`AMF3 ${name}: depth 32 accepted, 33 and 65 rejected`, () => {
      decodeAmf3(build(32), 0);
      throwsProtocol(() => decodeAmf3(build(33), 0), 'amf_depth');
      throwsProtocol(() => decodeAmf3(build(65), 0), 'amf_depth');
    });
  }

  it('70 000 levels are rejected fast, without stack overflow, even with a huge configured maxDepth', () => {
    const inputs = [
      nestedStrictArrays(70_000),
      nestedObjects(70_000),
      nestedEcma(70_000),
      Buffer.concat([hex('11'), nestedAmf3Arrays(70_000)]),
      Buffer.concat([hex('11'), nestedAmf3Objects(70_000)]),
    ];
    for (const input of inputs) {
      const ms = timed(() => throwsProtocol(() => decodeAmf0(input), 'amf_depth'));
      assert.ok(ms < 250, `took ${ms} ms`);
      throwsProtocol(() => decodeAmf0(input, { maxDepth: 1_000_000 }), 'amf_depth');
    }
    throwsProtocol(() => decodeAmf3(nestedAmf3Arrays(70_000), 0, { maxDepth: 1_000_000 }), 'amf_depth');
    assert.equal(decodeAmf0(nestedStrictArrays(AMF_MAX_SUPPORTED_DEPTH), { maxDepth: 1e9 }).length, 1);
  });

  it('depth is shared across the AMF0 -> AMF3 switch', () => {
    const mixed = (amf0Levels: number, amf3Levels: number): Buffer =>
      Buffer.concat([hex('0a00000001'.repeat(amf0Levels)), hex('11'), nestedAmf3Arrays(amf3Levels)]);
    assert.equal(decodeAmf0(mixed(16, 16)).length, 1);
    throwsProtocol(() => decodeAmf0(mixed(16, 17)), 'amf_depth');
  });

  it('depth counts through AMF0 references', () => {
    // value 0: 20 nested arrays (height 20); value 1: k nested arrays whose innermost element references value 0
    const withRef = (k: number): Buffer => hex('0a00000001'.repeat(20) + '05' + '0a00000001'.repeat(k) + '070000');
    const values = decodeAmf0(withRef(12)); // reference at depth 13: 13 + 20 - 1 = 32
    let inner: AmfValue = values[1];
    for (let i = 0; i < 12; i++) inner = (inner as AmfValue[])[0];
    assert.equal(inner, values[0]);
    throwsProtocol(() => decodeAmf0(withRef(13)), 'amf_depth');
  });

  it('depth counts through AMF3 object references', () => {
    // [ <20 nested arrays>, <k nested arrays containing a reference to object 1> ]
    const withRef = (k: number): Buffer => hex('0905 01' + '090301'.repeat(20) + '01' + '090301'.repeat(k) + '0902');
    decodeAmf3(withRef(11), 0); // reference at depth 2 + 11 = 13: 13 + 20 - 1 = 32
    throwsProtocol(() => decodeAmf3(withRef(12), 0), 'amf_depth');
  });
});

describe('AMF hostile inputs: counts, lengths, references, limits', () => {
  it('strict array with a huge count fails before allocating', () => {
    const ms = timed(() => throwsProtocol(() => decodeAmf0(hex('0a ffffffff 05 05')), 'amf_truncated'));
    assert.ok(ms < 50);
    throwsProtocol(
      () => decodeAmf0(Buffer.concat([hex('0a 00000401'), Buffer.alloc(1025, 0x05)])),
      'amf_too_many_items',
    );
    assert.equal(
      (decodeAmf0(Buffer.concat([hex('0a 00000400'), Buffer.alloc(1024, 0x05)]))[0] as AmfValue[]).length,
      1024,
    );
  });

  it('AMF3 declared counts are checked against the remaining bytes', () => {
    throwsProtocol(() => decodeAmf3(hex('09 bfffffff 01 01'), 0), 'amf_truncated'); // dense count 2^27-1
    throwsProtocol(() => decodeAmf3(hex('0d 83ffff7f 00 00000001'), 0), 'amf_truncated'); // int vector
    throwsProtocol(() => decodeAmf3(hex('0f 07 00 0000000000000000 00'), 0), 'amf_truncated'); // 3 doubles, 9 bytes
    throwsProtocol(() => decodeAmf3(hex('10 bfffffff 00 01 01'), 0), 'amf_truncated');
    throwsProtocol(() => decodeAmf3(hex('11 bfffffff 00 01 01'), 0), 'amf_truncated');
    throwsProtocol(() => decodeAmf3(hex('0a bfffffe3 01 01 01'), 0), 'amf_truncated'); // sealed member count
    throwsProtocol(
      () => decodeAmf3(Buffer.concat([hex('09 9003 01'), Buffer.alloc(2100, 1)]), 0),
      'amf_too_many_items',
    );
  });

  it('objects with more than maxItems keys are rejected', () => {
    const obj = (n: number): Buffer => {
      const parts = [hex('03')];
      for (let i = 0; i < n; i++) parts.push(hex('0002'), Buffer.from(i.toString(36).padStart(2, '0')), hex('05'));
      parts.push(hex('000009'));
      return Buffer.concat(parts);
    };
    assert.equal(Object.keys(decodeAmf0(obj(1024))[0] as object).length, 1024);
    throwsProtocol(() => decodeAmf0(obj(1025)), 'amf_too_many_items');
    throwsProtocol(() => decodeAmf0(obj(11), { maxItems: 10 }), 'amf_too_many_items');
    throwsProtocol(() => decodeAmf0(Buffer.alloc(1025, 0x05)), 'amf_too_many_items'); // top-level values
  });

  it('string lengths beyond the buffer or the limit', () => {
    throwsProtocol(() => decodeAmf0(hex('02 ffff 6161')), 'amf_truncated');
    throwsProtocol(() => decodeAmf0(hex('0c ffffffff 6161')), 'amf_truncated');
    throwsProtocol(() => decodeAmf0(hex('0f 7fffffff')), 'amf_truncated');
    throwsProtocol(() => decodeAmf0(hex('03 ffff 61')), 'amf_truncated');
    throwsProtocol(() => decodeAmf3(hex('06 ffffff7f 61'), 0), 'amf_truncated');
    throwsProtocol(() => decodeAmf3(hex('0c ffffff7f 61'), 0), 'amf_truncated');
    throwsProtocol(() => decodeAmf0(hex('02 000b 6161616161616161616161'), { maxStringBytes: 10 }), 'amf_too_large');
    throwsProtocol(() => decodeAmf3(hex('0c 17 6161616161616161616161'), 0, { maxStringBytes: 10 }), 'amf_too_large');
    const big = Buffer.alloc(5 + DEFAULT_AMF_LIMITS.maxStringBytes + 1, 0x61);
    big.writeUInt8(0x0c, 0);
    big.writeUInt32BE(DEFAULT_AMF_LIMITS.maxStringBytes + 1, 1);
    throwsProtocol(() => decodeAmf0(big), 'amf_too_large');
  });

  it('bad and cyclic references', () => {
    throwsProtocol(() => decodeAmf0(hex('07 0000')), 'amf_bad_reference');
    throwsProtocol(() => decodeAmf0(hex('0a00000000 07 0001')), 'amf_bad_reference');
    throwsProtocol(() => decodeAmf0(hex('03 0001 61 07 0000 000009')), 'amf_bad_reference'); // self reference
    throwsProtocol(() => decodeAmf3(hex('09 05 01 0603 61 0602'), 0), 'amf_bad_reference'); // string ref 1
    throwsProtocol(() => decodeAmf3(hex('0a 02'), 0), 'amf_bad_reference'); // object ref 1
    throwsProtocol(() => decodeAmf3(hex('0a 05 0401'), 0), 'amf_bad_reference'); // traits ref 1
    throwsProtocol(() => decodeAmf3(hex('09 03 01 09 00'), 0), 'amf_bad_reference'); // array containing itself
    throwsProtocol(() => decodeAmf3(hex('08 00'), 0), 'amf_bad_reference');
    // AMF3 tables do not survive from one avmplus switch to the next
    throwsProtocol(() => decodeAmf0(hex('11 0603 61 11 0600')), 'amf_bad_reference');
  });

  it('reference amplification is bounded by the decoded size', () => {
    const big = 'x'.repeat(60_000);
    // AMF0: [[big]], then an array of 100 references to it: 6 MB when expanded
    const amf0 = Buffer.concat([encodeAmf0([big]), hex('0a 00000064' + '070000'.repeat(100))]);
    throwsProtocol(() => decodeAmf0(amf0), 'amf_too_large');
    assert.equal(decodeAmf0(amf0, { maxDecodedSize: 10_000_000 }).length, 2);
    // AMF3: the same string sent once and referenced 100 times
    const amf3 = Buffer.concat([hex('09 814b 01'), encodeAmf3(big), hex('0600'.repeat(100))]);
    throwsProtocol(() => decodeAmf3(amf3, 0), 'amf_too_large');
    assert.equal((decodeAmf3(amf3, 0, { maxDecodedSize: 10_000_000 }).value as AmfValue[]).length, 101);
  });

  it('reference tables are bounded', () => {
    const many = Buffer.concat([Buffer.alloc(1), Buffer.from('0a00000000'.repeat(65_537), 'hex')]).subarray(1);
    throwsProtocol(() => decodeAmf0(many, { maxItems: 100_000 }), 'amf_too_many_items');
  });

  it('unknown and misplaced markers', () => {
    for (const m of ['04', '09', '0e', '12', 'ff']) throwsProtocol(() => decodeAmf0(hex(m)), 'amf_bad_marker');
    for (const m of ['12', 'ff']) throwsProtocol(() => decodeAmf3(hex(m), 0), 'amf_bad_marker');
  });

  it('truncated and out-of-range offsets', () => {
    assert.deepStrictEqual(decodeAmf0(Buffer.alloc(0)), []);
    throwsProtocol(() => decodeAmf0Value(Buffer.alloc(0), 0), 'amf_truncated');
    throwsProtocol(() => decodeAmf3(Buffer.alloc(0), 0), 'amf_truncated');
    assert.throws(() => decodeAmf0Value(Buffer.alloc(1), 2), RangeError);
  });

  it('"__proto__" and other special keys never pollute prototypes', () => {
    const evil = { ['__proto__']: { polluted: true }, constructor: 'c', toString: 1 } as Record<string, AmfValue>;
    assert.equal(Object.getPrototypeOf(evil), Object.prototype);
    const decodedList: AmfValue[] = [
      decodeAmf0(hex('03 0009 5f5f70726f746f5f5f 03 0008 706f6c6c75746564 0101 000009 000009'))[0],
      decodeAmf0(encodeAmf0(evil))[0],
      amfProperties(decodeAmf0(encodeAmf0(new AmfEcmaArray(evil)))[0]),
      amfProperties(decodeAmf0(encodeAmf0(new AmfTypedObject('T', evil)))[0]),
      decodeAmf3(encodeAmf3(evil), 0).value,
      amfProperties(decodeAmf3(encodeAmf3(new AmfEcmaArray(evil)), 0).value),
      // AMF3 sealed member named __proto__
      decodeAmf3(hex('0a 13 01 135f5f70726f746f5f5f 0a0b01 1170 6f6c6c75746564 03 01'), 0).value,
    ];
    for (const decoded of decodedList) {
      const obj = decoded as Record<string, AmfValue>;
      assert.equal(Object.getPrototypeOf(obj), Object.prototype);
      assert.ok(Object.hasOwn(obj, '__proto__'));
      assert.deepStrictEqual(Object.getOwnPropertyDescriptor(obj, '__proto__')?.value, { polluted: true });
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal((obj as { polluted?: unknown }).polluted, undefined);
    }
    assert.deepStrictEqual(decodedList[1], evil);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties

const key = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', '', '0', '1'),
);
const leaf = fc.oneof(
  fc.double(),
  fc.integer({ min: -(2 ** 29), max: 2 ** 29 }),
  fc.boolean(),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
) as fc.Arbitrary<AmfValue>;
const dictionary = fc
  .array(fc.tuple(fc.oneof(fc.string({ maxLength: 4 }), fc.integer()), leaf), { maxLength: 4 })
  .map((entries) => new Map<AmfValue, AmfValue>(entries));

/**
 * Arbitrary AMF values. `amf3` restricts to what AMF3 represents identically: typed objects need a class name and
 * associative arrays a non-empty key set without the empty key (AMF3 has no empty associative array).
 */
function amfValue(amf3: boolean): fc.Arbitrary<AmfValue> {
  const ecmaKey = amf3 ? key.filter((k) => k !== '') : key;
  return fc.letrec<{ value: AmfValue }>((tie) => ({
    value: fc.oneof(
      { maxDepth: 5, depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(key, tie('value'), { maxKeys: 5, noNullPrototype: true }),
      fc
        .dictionary(ecmaKey, tie('value'), { minKeys: amf3 ? 1 : 0, maxKeys: 5, noNullPrototype: true })
        .map((entries) => new AmfEcmaArray(entries)),
      fc
        .tuple(
          fc.string({ minLength: amf3 ? 1 : 0, maxLength: 10 }),
          fc.dictionary(key, tie('value'), { maxKeys: 4, noNullPrototype: true }),
        )
        .map(([name, props]) => new AmfTypedObject(name, props)),
      dictionary,
    ),
  })).value;
}

const amf0Values = fc.array(amfValue(false), { maxLength: 4 });
const amf3Value = amfValue(true);

/** Every strict prefix decodes to fewer values, or throws RtmpProtocolError (or closes a trailing ECMA array). */
function checkPrefixes(bytes: Buffer, values: AmfValue[]): void {
  const step = bytes.length > 400 ? Math.ceil(bytes.length / 400) : 1;
  for (let len = 0; len < bytes.length; len += step) {
    const decoded = onlyProtocolErrors(() => decodeAmf0(bytes.subarray(0, len)));
    if (decoded === undefined) continue;
    assert.ok(decoded.length <= values.length, `prefix ${len} decoded more values`);
    if (decoded.length === values.length) {
      // only possible through the FFmpeg tolerance for an ECMA array closed by the end of the message
      assert.ok(containsEcma(values[values.length - 1]), `prefix ${len} decoded as complete`);
    }
  }
}

function containsEcma(v: AmfValue): boolean {
  if (v instanceof AmfEcmaArray) return true;
  if (Array.isArray(v)) return v.some(containsEcma);
  const props = amfProperties(v);
  return props !== undefined && Object.values(props).some(containsEcma);
}

describe('AMF properties (fast-check)', () => {
  it('AMF0 round trip: decode(encode(values)) deep-equals values', () => {
    fc.assert(
      fc.property(amf0Values, (values) => {
        assert.deepStrictEqual(decodeAmf0(encodeAmf0(...values)), values);
      }),
      { numRuns: 500 },
    );
  });

  it('AMF3 round trip, alone and inside a type 17 payload', () => {
    fc.assert(
      fc.property(amf3Value, fc.array(amf3Value, { maxLength: 3 }), (value, more) => {
        const bytes = encodeAmf3(value);
        assert.deepStrictEqual(decodeAmf3(bytes, 0), { value, offset: bytes.length });
        const payload = Buffer.concat([
          hex('00'),
          encodeAmf0('cmd', 3),
          ...more.map((v) => Buffer.concat([hex('11'), encodeAmf3(v)])),
        ]);
        assert.deepStrictEqual(decodeAmf3MessagePayload(payload), ['cmd', 3, ...more]);
      }),
      { numRuns: 500 },
    );
  });

  it('AMF0: every prefix of a valid encoding throws RtmpProtocolError or decodes fewer values', () => {
    for (const [, bytes, values] of AMF0_FIXTURES) checkPrefixes(bytes, values);
    fc.assert(
      fc.property(amf0Values, (values) => checkPrefixes(encodeAmf0(...values), values)),
      { numRuns: 200 },
    );
  });

  it('AMF3: every strict prefix of a valid encoding throws RtmpProtocolError', () => {
    fc.assert(
      fc.property(amf3Value, (value) => {
        const bytes = encodeAmf3(value);
        for (let len = 0; len < bytes.length; len++) throwsProtocol(() => decodeAmf3(bytes.subarray(0, len), 0));
      }),
      { numRuns: 200 },
    );
  });

  it('random bytes only ever throw RtmpProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (raw) => {
        const buf = Buffer.from(raw);
        onlyProtocolErrors(() => decodeAmf0(buf));
        onlyProtocolErrors(() => decodeAmf3MessagePayload(buf));
        if (buf.length > 0) onlyProtocolErrors(() => decodeAmf3(buf, 0));
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated valid encodings only ever throw RtmpProtocolError', () => {
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(amf0Values, amf3Value, mutation, (values, value, edits) => {
        for (const original of [encodeAmf0(...values), encodeAmf3(value)]) {
          if (original.length === 0) continue;
          const buf = Buffer.from(original);
          for (const [at, byte] of edits) buf[at % buf.length] = byte;
          const decoded = onlyProtocolErrors(() => decodeAmf0(buf));
          if (decoded !== undefined) encodeAmf0(...decoded); // whatever decodes must re-encode
          const amf3 = onlyProtocolErrors(() => decodeAmf3(buf, 0));
          if (amf3 !== undefined) encodeAmf0(amf3.value);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

import { decodeAmf0, encodeAmf0, decodeAmf3MessagePayload } from '../src/amf0.js';
import { decodeAmf3, encodeAmf3 } from '../src/amf3.js';
import { RtmpProtocolError } from '../src/errors.js';
import fc from 'fast-check';
const connect = encodeAmf0('connect', 1, { app: 'live', flashVer: 'LNX 9,0,124,2', tcUrl: 'rtmp://localhost:1935/live', fpad: false, capabilities: 15, audioCodecs: 4071, videoCodecs: 252, videoFunction: 1 });
let t = performance.now();
for (let i = 0; i < 200_000; i++) decodeAmf0(connect);
console.log('decode connect us/op', ((performance.now() - t) * 1000) / 200_000);
t = performance.now();
for (let i = 0; i < 200_000; i++) encodeAmf0('_result', 1, { fmsVer: 'FMS/3,0,1,123', capabilities: 31, mode: 1 }, { level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.', objectEncoding: 0 });
console.log('encode result us/op', ((performance.now() - t) * 1000) / 200_000);
// heavy fuzz
const check = (f: () => unknown) => { try { f(); } catch (e) { if (!(e instanceof RtmpProtocolError)) { throw e; } } };
let n = 0;
fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }).map(a => Buffer.from(a)), (b) => { n++; check(() => decodeAmf0(b)); check(() => decodeAmf3MessagePayload(b)); if (b.length) check(() => decodeAmf3(b, 0)); }), { numRuns: 300_000 });
// biased: small alphabet of interesting bytes
const interesting = fc.constantFrom(0, 1, 2, 3, 5, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x0f, 0x10, 0x11, 0x80, 0xff, 0x7f);
fc.assert(fc.property(fc.array(interesting, { maxLength: 80 }).map(a => Buffer.from(a)), (b) => { check(() => { const v = decodeAmf0(b); encodeAmf0(...v); }); check(() => decodeAmf3MessagePayload(b)); if (b.length) check(() => { const v = decodeAmf3(b, 0).value; encodeAmf3(v); }); }), { numRuns: 300_000 });
console.log('fuzz ok');

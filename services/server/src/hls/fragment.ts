/**
 * One CMAF fragment (a partial segment): moof (mfhd, one traf per track with tfhd, tfdt, trun) + mdat. Each trun
 * carries per-sample duration, size, flags and composition offset (version 1: signed), so no defaults need to
 * match between the init segment and the fragments. Sample data is copied once, into the fragment's own Buffer.
 */
import { box, fullBox, u32, u64 } from './boxes.js';

/** One sample as the fragment writes it; times in the track's timescale. */
export interface FragmentSample {
  duration: number;
  /** Composition time offset (pts - dts). */
  cts: number;
  keyframe: boolean;
  data: Buffer;
}

export interface FragmentTrack {
  id: number;
  /** Decode time of the first sample (tfdt). */
  baseDecodeTime: number;
  samples: readonly FragmentSample[];
}

const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
const TRUN_DATA_OFFSET = 0x000001;
const TRUN_DURATION = 0x000100;
const TRUN_SIZE = 0x000200;
const TRUN_FLAGS = 0x000400;
const TRUN_CTS = 0x000800;
const TRUN_FIELDS = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_CTS;
/** sample_depends_on = 2 (an I frame: depends on nothing). */
const SYNC_SAMPLE_FLAGS = 0x02000000;
/** sample_depends_on = 1, sample_is_non_sync_sample = 1. */
const NON_SYNC_SAMPLE_FLAGS = 0x01010000;
const TRUN_SAMPLE_BYTES = 16;
const MDAT_HEADER_BYTES = 8;

/** moof + mdat for the given tracks (tracks without samples are left out). */
export function fragment(sequenceNumber: number, tracks: readonly FragmentTrack[]): Buffer {
  const present = tracks.filter((t) => t.samples.length > 0);
  // trun data offsets are from the moof's first byte: the moof size must be known first, and it doesn't depend on
  // the offsets' values, so build once with zeros, then with the real offsets.
  const build = (offsets: number[]): Buffer =>
    box(
      'moof',
      fullBox('mfhd', 0, 0, u32(sequenceNumber)),
      ...present.map((t, i) =>
        box(
          'traf',
          fullBox('tfhd', 0, TFHD_DEFAULT_BASE_IS_MOOF, u32(t.id)),
          fullBox('tfdt', 1, 0, u64(t.baseDecodeTime)),
          trun(t.samples, offsets[i] ?? 0),
        ),
      ),
    );
  const moofSize = build([]).length;
  const offsets: number[] = [];
  let offset = moofSize + MDAT_HEADER_BYTES;
  for (const t of present) {
    offsets.push(offset);
    for (const s of t.samples) offset += s.data.length;
  }
  const moof = build(offsets);
  const mdat = box('mdat', ...present.flatMap((t) => t.samples.map((s) => s.data)));
  return Buffer.concat([moof, mdat]);
}

function trun(samples: readonly FragmentSample[], dataOffset: number): Buffer {
  const body = Buffer.allocUnsafe(8 + samples.length * TRUN_SAMPLE_BYTES);
  body.writeUInt32BE(samples.length, 0);
  body.writeInt32BE(dataOffset, 4);
  let pos = 8;
  for (const s of samples) {
    body.writeUInt32BE(s.duration >>> 0, pos);
    body.writeUInt32BE(s.data.length, pos + 4);
    body.writeUInt32BE(s.keyframe ? SYNC_SAMPLE_FLAGS : NON_SYNC_SAMPLE_FLAGS, pos + 8);
    body.writeInt32BE(s.cts | 0, pos + 12);
    pos += TRUN_SAMPLE_BYTES;
  }
  return fullBox('trun', 1, TRUN_FIELDS, body);
}

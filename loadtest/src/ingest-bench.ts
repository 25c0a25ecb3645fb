#!/usr/bin/env node
/**
 * Per-message ingest cost: what every media message pays once on a node (not per viewer), whatever its audience.
 * Tag classification runs at least twice per message (the hub and the stream stats) and chunk serialization once; on
 * a node carrying hundreds of streams these add up to a share of a core. Prints ns per call, median of `--runs` with
 * min–max; each case checks its own result, so a broken parser fails the bench instead of timing garbage.
 *
 *   node loadtest/dist/ingest-bench.js [--iterations 1000000] [--runs 5] [--json file]
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { MessageType, encodeMessageChunks, parseAudioTag, parseVideoTag } from '@rtmp-relay/rtmp';
import { isMainModule } from './main-module.js';
import { summarize } from './stats.js';

/** A tag classification costing more than this per call is flagged: a tag header is a few bytes to read. */
const PARSE_BUDGET_NS = 1000;
const CHUNK_SIZE = 4096;
const VIDEO_CSID = 6;

export interface IngestCase {
  name: string;
  /** One call; returns a number derived from the result (checked against `expect`, and keeps the call alive). */
  run(): number;
  expect: number;
  /** Flag the case when its median is above this (none: reported only). */
  budgetNs?: number;
}

export interface IngestCaseResult {
  name: string;
  nsPerCall: { median: number; min: number; max: number };
  budgetNs: number | undefined;
  slow: boolean;
}

/** The message kinds a node ingests most: legacy H.264/AAC and Enhanced RTMP (AV1, Opus), plus serialization. */
export function ingestCases(): IngestCase[] {
  const avcInter = Buffer.concat([Buffer.from([0x27, 0x01, 0x00, 0x00, 0x21]), Buffer.alloc(5000, 0x11)]);
  const avcKey = Buffer.concat([Buffer.from([0x17, 0x01, 0x00, 0x00, 0x00]), Buffer.alloc(60_000, 0x22)]);
  const aacRaw = Buffer.concat([Buffer.from([0xaf, 0x01]), Buffer.alloc(370, 0x33)]);
  // ExVideoTagHeader: IsExHeader, FrameType 2 (inter), PacketType 1 (CodedFrames); FourCC; AV1 has no CTS.
  const av1Inter = Buffer.concat([Buffer.from([0x80 | (2 << 4) | 1]), Buffer.from('av01'), Buffer.alloc(4000)]);
  // ExAudioTagHeader: SoundFormat 9 (ExHeader), PacketType 1 (CodedFrames); FourCC.
  const opus = Buffer.concat([Buffer.from([(9 << 4) | 1]), Buffer.from('Opus'), Buffer.alloc(160)]);
  const message = { type: MessageType.Video, streamId: 1, timestamp: 123_456, payload: avcInter };
  const parse = (name: string, run: () => number, expect: number): IngestCase => ({
    name,
    run,
    expect,
    budgetNs: PARSE_BUDGET_NS,
  });
  return [
    parse('parseVideoTag, H.264 inter frame', () => parseVideoTag(avcInter).payloadOffset, 5),
    parse('parseVideoTag, H.264 keyframe', () => (parseVideoTag(avcKey).isKeyframe ? 1 : 0), 1),
    parse('parseAudioTag, AAC raw frame', () => parseAudioTag(aacRaw).payloadOffset, 2),
    parse('parseVideoTag, E-RTMP AV1 inter frame', () => parseVideoTag(av1Inter).payloadOffset, 5),
    parse('parseAudioTag, E-RTMP Opus frame', () => parseAudioTag(opus).payloadOffset, 5),
    {
      // Once per message for all viewers; mostly the allocation of the message's Buffer (a copy alone is ~65 ns).
      name: 'encodeMessageChunks, 5 KB video, chunk size 4096',
      run: () => encodeMessageChunks(message, VIDEO_CSID, CHUNK_SIZE).length,
      expect: encodeMessageChunks(message, VIDEO_CSID, CHUNK_SIZE).length,
    },
  ];
}

/** Times each case: a warm-up pass, then `runs` timed passes of `iterations` calls. */
export function measureIngest(cases: IngestCase[], iterations: number, runs: number): IngestCaseResult[] {
  return cases.map((c) => {
    const got = c.run();
    if (got !== c.expect) throw new Error(`${c.name}: got ${got}, expected ${c.expect}`);
    let sink = 0;
    for (let i = 0; i < Math.min(iterations, 100_000); i++) sink += c.run();
    const samples: number[] = [];
    for (let r = 0; r < runs; r++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < iterations; i++) sink += c.run();
      samples.push(Number(process.hrtime.bigint() - start) / iterations);
    }
    if (sink === -1) console.log(sink); // never: keeps the calls from being optimized away
    const { p50, min, max } = summarize(samples);
    const nsPerCall = { median: p50, min, max };
    const budgetNs = c.budgetNs;
    return { name: c.name, nsPerCall, budgetNs, slow: budgetNs !== undefined && nsPerCall.median > budgetNs };
  });
}

export function formatIngest(results: IngestCaseResult[]): string {
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${r.nsPerCall.median.toFixed(1)} (${r.nsPerCall.min.toFixed(1)}–${r.nsPerCall.max.toFixed(1)})` +
      ` | ${r.budgetNs === undefined ? '–' : `${r.budgetNs}${r.slow ? ' **over**' : ' ok'}`} |`,
  );
  return ['| case | ns per call, median (min–max) | budget ns |', '|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<void> {
  const program = new Command()
    .name('ingest-bench')
    .description('per-message ingest cost: tag classification and chunk serialization, ns per call')
    .option('--iterations <n>', 'calls per timed run', '1000000')
    .option('--runs <n>', 'timed runs per case (the median is reported)', '5')
    .option('--json <file>', 'write the results as JSON')
    .parse();
  const opts = program.opts<{ iterations: string; runs: string; json?: string }>();
  const iterations = Number(opts.iterations);
  const runs = Number(opts.runs);
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error('--iterations must be a positive integer');
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  console.error(`ingest-bench: ${iterations} calls x ${runs} runs per case, node ${process.version}`);
  const results = measureIngest(ingestCases(), iterations, runs);
  console.log(formatIngest(results));
  if (opts.json)
    writeFileSync(opts.json, JSON.stringify({ node: process.version, iterations, runs, results }, null, 2));
  const slow = results.filter((r) => r.slow).map((r) => r.name);
  if (slow.length > 0) console.error(`ingest-bench: over budget: ${slow.join('; ')}`);
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`ingest-bench: ${(err as Error).message}`);
    process.exit(1);
  });
}

#!/usr/bin/env node
/**
 * Memory per live stream: what a node keeps for each stream it carries, whatever its audience. Runs real StreamHubs
 * in this process, fed synthetic H.264/AAC streams in fast-forward (timestamps advance, the clock doesn't), with one
 * live viewer per stream and, optionally, a joiner per GOP (a late joiner makes the hub build its shared join bytes).
 * After a forced full collection it reads the Buffer memory still held (`process.memoryUsage().arrayBuffers`) and
 * divides by the streams: the node's floor per stream, against the GOP cache's payload (what any relay must hold).
 *
 *   node --expose-gc loadtest/dist/stream-memory-bench.js [--streams 100] [--kbps 300,2500] [--runs 3] [--json file]
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { DEFAULT_HUB_OPTIONS, StreamHub, type HubPublisher, type HubViewer } from '@rtmp-relay/hub';
import { MessageType, type RtmpMessage } from '@rtmp-relay/rtmp';
import { positiveInt, positiveIntList } from './cli-args.js';
import { isMainModule } from './main-module.js';
import { summarize } from './stats.js';

const VIDEO_FPS = 30;
/** AAC at 48 kHz: 1024 samples per frame. */
const AUDIO_FRAMES_PER_S = 48_000 / 1024;
const AUDIO_KBPS = 128;
const GOP_SECONDS = 2;
/** A keyframe is this many times an inter frame (typical of x264 at these bitrates). */
const KEYFRAME_WEIGHT = 10;
/** GOPs fed before measuring, so every hub has been through keyframe resets and holds one full GOP. */
const WARM_GOPS = 3;
const MIB = 1024 * 1024;

export interface StreamMemoryCase {
  kbps: number;
  joiners: boolean;
}

export interface StreamMemoryResult extends StreamMemoryCase {
  streams: number;
  /** Payload bytes of the GOP each stream's cache holds when measured: the floor any relay has to keep. */
  gopPayloadBytes: number;
  /** Buffer memory held per stream after a full collection, median of the runs with min–max. */
  bytesPerStream: { median: number; min: number; max: number };
  /** bytesPerStream.median / gopPayloadBytes. */
  ratio: number;
}

const nullPublisher: HubPublisher = { id: 'bench-publisher', kick: () => undefined };

/** A viewer whose socket takes everything at once: writes are dropped, so only what the hub keeps stays alive. */
function nullViewer(id: string): HubViewer {
  return {
    id,
    streamId: 1,
    format: 'rtmp',
    acceptsFourCc: () => true,
    write: () => undefined,
    backlogBytes: () => 0,
    cork: () => undefined,
    uncork: () => undefined,
    disconnect: () => undefined,
    streamEnded: () => undefined,
    streamRestarted: () => undefined,
  };
}

/** A payload as the chunk reader hands it over: its own allocation, as for a message completed from several chunks. */
function payload(header: readonly number[], size: number, fillByte: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size);
  out.set(header, 0);
  out.fill(fillByte, header.length);
  return out;
}

/** Frame sizes for a stream of `kbps` total: inter frames and a keyframe KEYFRAME_WEIGHT times as large. */
export function frameSizes(kbps: number): { key: number; inter: number; audio: number } {
  const videoBytesPerGop = (Math.max(kbps - AUDIO_KBPS, 50) * 1000 * GOP_SECONDS) / 8;
  const framesPerGop = VIDEO_FPS * GOP_SECONDS;
  const inter = Math.round(videoBytesPerGop / (framesPerGop - 1 + KEYFRAME_WEIGHT));
  return { key: inter * KEYFRAME_WEIGHT, inter, audio: Math.round((AUDIO_KBPS * 1000) / 8 / AUDIO_FRAMES_PER_S) };
}

/** One GOP of messages in timestamp order, starting at `t0` ms. */
function gopMessages(kbps: number, t0: number, seq: number): RtmpMessage[] {
  const sizes = frameSizes(kbps);
  const out: Array<{ at: number; msg: RtmpMessage }> = [];
  const framesPerGop = VIDEO_FPS * GOP_SECONDS;
  for (let i = 0; i < framesPerGop; i++) {
    const at = t0 + Math.round((i * 1000) / VIDEO_FPS);
    const key = i === 0;
    const body = key ? payload([0x17, 0x01, 0, 0, 0], sizes.key, seq) : payload([0x27, 0x01, 0, 0, 0], sizes.inter, i);
    out.push({ at, msg: { type: MessageType.Video, streamId: 1, timestamp: at, payload: body } });
  }
  const audioFrames = Math.round(AUDIO_FRAMES_PER_S * GOP_SECONDS);
  for (let i = 0; i < audioFrames; i++) {
    const at = t0 + Math.round((i * 1000) / AUDIO_FRAMES_PER_S);
    out.push({
      at,
      msg: { type: MessageType.Audio, streamId: 1, timestamp: at, payload: payload([0xaf, 0x01], sizes.audio, i) },
    });
  }
  return out.sort((a, b) => a.at - b.at).map((x) => x.msg);
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run node with --expose-gc (the bench reads memory after a full collection)');
  gc();
  gc();
}

/** One measurement: `streams` hubs fed WARM_GOPS GOPs plus part of one, memory per stream after a full collection. */
export function measureOnce(c: StreamMemoryCase, streams: number): { bytesPerStream: number; gopPayloadBytes: number } {
  collect();
  const before = process.memoryUsage().arrayBuffers;
  const hubs: StreamHub[] = [];
  for (let s = 0; s < streams; s++) {
    const hub = new StreamHub(`live/bench-${s}`, { ...DEFAULT_HUB_OPTIONS, audioCoalesceMs: 0, unpublishGraceMs: 0 });
    hub.attachPublisher(nullPublisher);
    hub.push({
      type: MessageType.Video,
      streamId: 1,
      timestamp: 0,
      payload: Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff]),
    });
    hub.push({ type: MessageType.Audio, streamId: 1, timestamp: 0, payload: Buffer.from([0xaf, 0x00, 0x12, 0x10]) });
    hub.addViewer(nullViewer(`live-${s}`));
    hubs.push(hub);
  }
  let gopPayloadBytes = 0;
  for (let g = 0; g < WARM_GOPS; g++) {
    const t0 = g * GOP_SECONDS * 1000;
    for (let s = 0; s < streams; s++) {
      const hub = hubs[s]!;
      const msgs = gopMessages(c.kbps, t0, g);
      // The joiner arrives mid-GOP, as late joiners do; it leaves at once (the join bytes stay with the GOP).
      const joinAt = msgs.length >> 1;
      msgs.forEach((m, i) => {
        hub.push(m);
        if (c.joiners && i === joinAt) {
          const joiner = nullViewer(`join-${s}-${g}`);
          hub.addViewer(joiner);
          hub.removeViewer(joiner);
        }
      });
      if (s === 0 && g === WARM_GOPS - 1) gopPayloadBytes = msgs.reduce((n, m) => n + m.payload.length, 0);
    }
  }
  collect();
  const held = process.memoryUsage().arrayBuffers - before;
  for (const hub of hubs) hub.close('bench');
  return { bytesPerStream: held / streams, gopPayloadBytes };
}

export function measureStreamMemory(cases: StreamMemoryCase[], streams: number, runs: number): StreamMemoryResult[] {
  return cases.map((c) => {
    const samples: number[] = [];
    let gopPayloadBytes = 0;
    for (let r = 0; r < runs; r++) {
      const one = measureOnce(c, streams);
      samples.push(one.bytesPerStream);
      gopPayloadBytes = one.gopPayloadBytes;
    }
    const { p50, min, max } = summarize(samples);
    return {
      ...c,
      streams,
      gopPayloadBytes,
      bytesPerStream: { median: p50, min, max },
      ratio: p50 / gopPayloadBytes,
    };
  });
}

export function formatStreamMemory(results: StreamMemoryResult[]): string {
  const mib = (b: number): string => (b / MIB).toFixed(2);
  const rows = results.map(
    (r) =>
      `| ${r.kbps} | ${r.joiners ? 'yes' : 'no'} | ${mib(r.gopPayloadBytes)} | ` +
      `${mib(r.bytesPerStream.median)} (${mib(r.bytesPerStream.min)}–${mib(r.bytesPerStream.max)}) | ${r.ratio.toFixed(2)} |`,
  );
  return [
    '| kbit/s | a joiner per GOP | GOP payload MiB | Buffers held per stream MiB, median (min–max) | held / GOP |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

async function main(): Promise<void> {
  const program = new Command()
    .name('stream-memory-bench')
    .description('Buffer memory a node keeps per live stream (GOP cache, headers, join bytes), after a full collection')
    .option('--streams <n>', 'hubs per measurement', positiveInt, 100)
    .option('--kbps <list>', 'stream bitrates, audio included', positiveIntList, [300, 2500])
    .option('--runs <n>', 'measurements per case (the median is reported)', positiveInt, 3)
    .option('--json <file>', 'write the results as JSON')
    .parse();
  const { streams, kbps, runs, json } = program.opts<{
    streams: number;
    kbps: number[];
    runs: number;
    json?: string;
  }>();
  const cases = kbps.flatMap((k) => [
    { kbps: k, joiners: false },
    { kbps: k, joiners: true },
  ]);
  console.error(`stream-memory-bench: ${streams} streams x ${runs} runs per case, node ${process.version}`);
  const results = measureStreamMemory(cases, streams, runs);
  console.log(formatStreamMemory(results));
  if (json) writeFileSync(json, JSON.stringify({ node: process.version, streams, runs, results }, null, 2));
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`stream-memory-bench: ${(err as Error).message}`);
    process.exit(1);
  });
}

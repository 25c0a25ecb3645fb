/**
 * An independent client for cross-checking the light viewers: a real FFmpeg player reading the stream through the
 * load. Two modes:
 * - `decode`: `ffmpeg -i rtmp://... -vf showinfo -f null -`, decoding every video frame. `showinfo` logs each decoded
 *   frame with its timestamp (`-copyts`: the stream's own RTMP timestamp), so the player counts decoded frames and
 *   measures, per frame, the time from the publisher's send to the frame leaving FFmpeg's decoder.
 * - `packets`: `ffmpeg -i rtmp://... -c copy -f framecrc -flush_packets 1 -`: FFmpeg's own RTMP client and FLV
 *   demuxer, one line per video packet (its dts is the RTMP timestamp) as soon as it is demuxed, no decoding. A
 *   720p30 decode costs about 20 % of a core per player, which on a 2-core machine is taken from the load
 *   generator's core; the packet mode costs a few percent and still checks delivery and latency with a client we
 *   did not write.
 * Either way the latency is measured up to the line's arrival here, through a pipe: a little later than FFmpeg's own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { SampleBuffer } from './stats.js';

const FRAME_LINE = /Parsed_showinfo.*\bpts_time:\s*(-?[\d.]+)/;
/** framecrc: `stream_index, dts, pts, duration, size, crc` in the stream's time base (FLV: milliseconds). */
const PACKET_LINE = /^0,\s*(-?\d+),/;

export type FfmpegPlayerMode = 'decode' | 'packets';
export const FFMPEG_PLAYER_MODES: readonly FfmpegPlayerMode[] = ['decode', 'packets'];
const STOP_GRACE_MS = 2000;

export interface FfmpegPlayerResult {
  mode: FfmpegPlayerMode;
  /** Video frames (decoded, or demuxed packets in `packets` mode) in the window. */
  framesInWindow: number;
  /** Over the video frames the publisher sent in the window. */
  ratio: number;
  latencyMs: { count: number; p50: number; p95: number; p99: number };
  /** Ended or failed before the window closed. */
  error: string | undefined;
}

export class FfmpegPlayer {
  private child: ChildProcess | undefined;
  private frames = 0;
  private framesAtWindowStart = NaN;
  private framesAtWindowEnd = NaN;
  private inWindow = false;
  readonly latency = new SampleBuffer(256);
  exitedWith: string | undefined;
  private stderrTail = '';

  constructor(
    private readonly url: string,
    /** Main-thread send time of a video timestamp, if known. */
    private readonly sentAt: (ts: number) => number | undefined,
    readonly mode: FfmpegPlayerMode = 'decode',
  ) {}

  start(): void {
    const input = ['-hide_banner', '-nostdin', '-fflags', 'nobuffer', '-copyts', '-threads', '1', '-i', this.url];
    const packets = this.mode === 'packets';
    const output = packets
      ? ['-map', '0:v:0', '-c', 'copy', '-f', 'framecrc', '-flush_packets', '1', '-nostats', '-']
      : ['-map', '0:v:0', '-vf', 'showinfo', '-f', 'null', '-nostats', '-'];
    const args = ['-loglevel', packets ? 'error' : 'info', ...input, ...output];
    const child = spawn('ffmpeg', args, { stdio: ['ignore', packets ? 'pipe' : 'ignore', 'pipe'] });
    this.child = child;
    child.on('error', (err) => (this.exitedWith ??= err.message));
    child.on('exit', (code, signal) => (this.exitedWith ??= `exited ${code ?? signal}`));
    const frame = (ts: number): void => {
      this.frames++;
      if (!this.inWindow) return;
      const at = this.sentAt(ts >>> 0);
      if (at !== undefined) this.latency.push(performance.now() - at);
    };
    const keepTail = (line: string): void => {
      this.stderrTail = (this.stderrTail + line + '\n').slice(-500);
    };
    if (packets) {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = PACKET_LINE.exec(line);
        if (m) frame(Number(m[1]));
      });
      createInterface({ input: child.stderr! }).on('line', keepTail);
      return;
    }
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const m = FRAME_LINE.exec(line);
      if (m) frame(Math.round(Number(m[1]) * 1000));
      else keepTail(line);
    });
  }

  windowStart(): void {
    this.inWindow = true;
    this.framesAtWindowStart = this.frames;
  }

  windowEnd(): void {
    this.inWindow = false;
    this.framesAtWindowEnd = this.frames;
  }

  result(
    videoFramesSentInWindow: number,
    summarize: (v: Float64Array) => { count: number; p50: number; p95: number; p99: number },
  ): FfmpegPlayerResult {
    const framesInWindow = this.framesAtWindowEnd - this.framesAtWindowStart;
    const s = summarize(this.latency.view());
    return {
      mode: this.mode,
      framesInWindow,
      ratio: videoFramesSentInWindow > 0 ? framesInWindow / videoFramesSentInWindow : NaN,
      latencyMs: { count: s.count, p50: s.p50, p95: s.p95, p99: s.p99 },
      error: this.exitedWith ? `${this.exitedWith} ${this.stderrTail.trim()}`.trim() : undefined,
    };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    this.exitedWith = undefined; // stopped by us: not an error
  }
}

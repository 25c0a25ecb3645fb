/**
 * An independent client for cross-checking the light viewers: a real FFmpeg player reading the stream through the
 * load (`ffmpeg -i rtmp://... -vf showinfo -f null -`, decoding every video frame). `showinfo` logs each decoded
 * frame with its timestamp (`-copyts`: the stream's own RTMP timestamp), so the player counts decoded frames and
 * measures, per frame, the time from the publisher's send to the frame leaving FFmpeg's decoder (the log line's
 * arrival here, through a pipe: a little later than the decode itself).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { SampleBuffer } from './stats.js';

const FRAME_LINE = /Parsed_showinfo.*\bpts_time:\s*(-?[\d.]+)/;
const STOP_GRACE_MS = 2000;

export interface FfmpegPlayerResult {
  /** Decoded video frames in the window. */
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
  ) {}

  start(): void {
    const args = [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'info',
      '-fflags',
      'nobuffer',
      '-copyts',
      '-threads',
      '1',
      '-i',
      this.url,
      '-map',
      '0:v:0',
      '-vf',
      'showinfo',
      '-f',
      'null',
      '-nostats',
      '-',
    ];
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.on('error', (err) => (this.exitedWith ??= err.message));
    child.on('exit', (code, signal) => (this.exitedWith ??= `exited ${code ?? signal}`));
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      const m = FRAME_LINE.exec(line);
      if (!m) {
        this.stderrTail = (this.stderrTail + line + '\n').slice(-500);
        return;
      }
      this.frames++;
      if (!this.inWindow) return;
      const at = this.sentAt(Math.round(Number(m[1]) * 1000) >>> 0);
      if (at !== undefined) this.latency.push(performance.now() - at);
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

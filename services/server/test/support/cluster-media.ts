import { start, type Running } from './processes.js';

/**
 * A long-running FFmpeg player that decodes the video of `url` and reports its decoded frame count through
 * `-progress` every 100 ms, so a test can tell when decoding stalls and when it resumes.
 */
export interface FfmpegWatcher {
  readonly proc: Running;
  /** (arrival time, decoded frames) each time the count changed; `at` is performance.now(). */
  readonly samples: Array<{ at: number; frames: number }>;
  /** Latest decoded frame count. */
  frames(): number;
  /** First time at or after `since` when the count exceeded `frames`, if any. */
  firstProgressAfter(since: number, frames: number): number | undefined;
  running(): boolean;
}

export function ffmpegWatch(url: string, seconds: number): FfmpegWatcher {
  const proc = start(
    'ffmpeg',
    [
      '-hide_banner',
      '-v',
      'error',
      '-rw_timeout',
      '15000000',
      '-i',
      url,
      '-t',
      String(seconds),
      '-map',
      '0:v:0',
      '-f',
      'null',
      '-',
      '-progress',
      'pipe:1',
      '-stats_period',
      '0.1',
    ],
    { timeoutMs: (seconds + 30) * 1000 },
  );
  const samples: Array<{ at: number; frames: number }> = [];
  let pending = '';
  proc.child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^frame=(\d+)/.exec(line.trim());
      if (!m) continue;
      const frames = Number(m[1]);
      if (frames !== samples.at(-1)?.frames) samples.push({ at: performance.now(), frames });
    }
  });
  let done = false;
  void proc.exited.then(() => (done = true));
  return {
    proc,
    samples,
    frames: () => samples.at(-1)?.frames ?? 0,
    firstProgressAfter: (since, frames) => samples.find((s) => s.at >= since && s.frames > frames)?.at,
    running: () => !done,
  };
}
